//! `sessionctl sessions …`

use std::io::Read as _;

use session_management::{
    Session, SessionData, SessionId, SessionMetadata, SessionToken, Ttl, UserId,
};

use super::{Manager, app};
use crate::cli::{SessionsCommand, TokenArgs};
use crate::output::{self, CliError};

pub async fn run(command: SessionsCommand, manager: &Manager, json: bool) -> anyhow::Result<()> {
    match command {
        SessionsCommand::Create {
            app: a,
            user,
            ip,
            user_agent,
            ttl,
            data,
        } => {
            let app = app(&a)?;
            let user = UserId::parse(&user)?;
            let metadata = SessionMetadata::parse(&ip, &user_agent)?;
            let ttl = Ttl::from_secs(ttl)?;
            let data = data
                .as_deref()
                .map(SessionData::from_json)
                .transpose()?
                .unwrap_or_default();
            let (token, session) = manager
                .create_session_with_data(&app, user, metadata, ttl, data)
                .await?;
            print_token_and_session(&token, &session, json)
        }
        SessionsCommand::Validate(args) => {
            let (app, token) = token_args(args)?;
            let session = manager
                .validate(&app, &token)
                .await?
                .ok_or(CliError::InvalidSession)?;
            print_session(&session, json)
        }
        SessionsCommand::Touch(args) => {
            let (app, token) = token_args(args)?;
            print_session(&manager.touch(&app, &token).await?, json)
        }
        SessionsCommand::Rotate(args) => {
            let (app, token) = token_args(args)?;
            let (token, session) = manager.rotate(&app, &token).await?;
            print_token_and_session(&token, &session, json)
        }
        SessionsCommand::List { app: a, user } => {
            let sessions = manager
                .list_sessions(&app(&a)?, UserId::parse(&user)?)
                .await?;
            if json {
                output::json(&serde_json::json!({ "items": sessions }))
            } else {
                output::sessions(&sessions);
                Ok(())
            }
        }
        SessionsCommand::Revoke { app: a, id } => {
            let id = SessionId::parse(&id)?;
            manager.revoke(&app(&a)?, &id).await?;
            if json {
                output::json(&serde_json::json!({ "revoked": id }))
            } else {
                println!("revoked session {id}");
                Ok(())
            }
        }
        SessionsCommand::RevokeAll { app: a, user } => {
            let revoked = manager.revoke_all(&app(&a)?, UserId::parse(&user)?).await?;
            if json {
                output::json(&serde_json::json!({ "revoked": revoked }))
            } else {
                println!("revoked {revoked} sessions");
                Ok(())
            }
        }
    }
}

/// The app and the token, from `--token` or else the first line of stdin.
fn token_args(args: TokenArgs) -> anyhow::Result<(session_management::App, SessionToken)> {
    let app = app(&args.app)?;
    let raw = match args.token {
        Some(token) => token,
        None => {
            let mut input = String::new();
            std::io::stdin().take(4096).read_to_string(&mut input)?;
            input.lines().next().unwrap_or("").to_owned()
        }
    };
    Ok((app, SessionToken::parse(&raw)?))
}

fn print_session(session: &Session, json: bool) -> anyhow::Result<()> {
    output::either(json, session, output::session)
}

/// The only place a token is printed: once, when it is issued.
fn print_token_and_session(
    token: &SessionToken,
    session: &Session,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        output::json(&serde_json::json!({ "token": token.expose_secret(), "session": session }))
    } else {
        println!("token:         {}", token.expose_secret());
        println!("               (shown once: store it now, it cannot be recovered)");
        output::session(session);
        Ok(())
    }
}
