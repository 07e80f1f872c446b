//! `sessionctl users …`

use session_management::{CreateUserData, Error, UpdateUserData, UserId};

use super::{Manager, app};
use crate::cli::UsersCommand;
use crate::output;

pub async fn run(command: UsersCommand, manager: &Manager, json: bool) -> anyhow::Result<()> {
    match command {
        UsersCommand::Create {
            app: a,
            email,
            name,
        } => {
            let user = manager
                .create(&app(&a)?, CreateUserData { email, name })
                .await?;
            output::either(json, &user, output::user)
        }
        UsersCommand::Get { app: a, id, email } => {
            let app = app(&a)?;
            let user = match (id, email) {
                (Some(id), _) => manager.get(&app, UserId::parse(&id)?).await?,
                (None, Some(email)) => manager
                    .find_by_email(&app, &email)
                    .await?
                    .ok_or(Error::NotFound { what: "user" })?,
                (None, None) => unreachable!("clap requires --id or --email"),
            };
            output::either(json, &user, output::user)
        }
        UsersCommand::List {
            app: a,
            limit,
            cursor,
        } => {
            let page = manager.list(&app(&a)?, cursor.as_deref(), limit).await?;
            output::either(json, &page, output::users)
        }
        UsersCommand::Update {
            app: a,
            id,
            email,
            name,
        } => {
            let user = manager
                .update(
                    &app(&a)?,
                    UserId::parse(&id)?,
                    UpdateUserData { email, name },
                )
                .await?;
            output::either(json, &user, output::user)
        }
        UsersCommand::Delete { app: a, id } => {
            let id = UserId::parse(&id)?;
            manager.delete(&app(&a)?, id).await?;
            if json {
                output::json(&serde_json::json!({ "deleted": id }))
            } else {
                println!("deleted user {id} and revoked all their sessions");
                Ok(())
            }
        }
    }
}
