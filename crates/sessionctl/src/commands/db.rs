//! `sessionctl db …`: migrations, status, resets.

use std::io::{BufRead as _, Write as _};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use session_management::{App, AppStats, Config, ManagerEnvironment};

use super::{Manager, app};
use crate::cli::{DbCommand, ResetArgs};
use crate::output::{self, CliError};

pub async fn run(
    command: DbCommand,
    config: &Config,
    manager: &Manager,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        DbCommand::Migrate => {
            manager.store().migrate().await?;
            let migrations = manager.store().migration_status().await?;
            if json {
                output::json(
                    &serde_json::json!({ "store": config.store.to_string(), "migrations": migrations }),
                )
            } else {
                println!(
                    "{}: {} migrations applied, schema up to date",
                    config.store,
                    migrations.len()
                );
                Ok(())
            }
        }
        DbCommand::Status => status(config, manager, json).await,
        DbCommand::Reset(args) => reset(args, config, manager, json).await,
        DbCommand::PurgeExpired => {
            let purged = manager.purge_expired().await?;
            if json {
                output::json(&serde_json::json!({ "purged": purged }))
            } else {
                println!("deleted {purged} expired sessions");
                Ok(())
            }
        }
    }
}

#[derive(Serialize)]
struct Status {
    environment: ManagerEnvironment,
    store: String,
    redis: Option<String>,
    backend: &'static str,
    migrations: Vec<session_management::store::MigrationState>,
    apps: Vec<AppStats>,
}

async fn status(config: &Config, manager: &Manager, json: bool) -> anyhow::Result<()> {
    let status = Status {
        environment: config.environment,
        store: config.store.to_string(),
        redis: config.redis.as_ref().map(|r| {
            format!(
                "{} (key prefix {:?})",
                session_management::factory::redact_url(&r.url),
                r.key_prefix
            )
        }),
        backend: manager.store().backend(),
        migrations: manager.store().migration_status().await?,
        apps: manager.app_stats().await?,
    };
    if json {
        return output::json(&status);
    }
    println!("environment: {}", status.environment);
    println!("store:       {}", status.store);
    if let Some(redis) = &status.redis {
        println!("redis:       {redis}");
    }
    let pending = status.migrations.iter().filter(|m| !m.applied).count();
    println!(
        "migrations:  {} applied, {pending} pending",
        status.migrations.len() - pending
    );
    for m in &status.migrations {
        let state = if m.applied { "applied" } else { "PENDING" };
        println!("  {} {:<40} {state}", m.version, m.description);
    }
    if status.apps.is_empty() {
        println!("apps:        none yet");
    } else {
        println!("{:<34}  {:>10}  {:>10}", "APP", "USERS", "SESSIONS");
        for a in &status.apps {
            println!("{:<34}  {:>10}  {:>10}", a.app, a.users, a.sessions);
        }
    }
    Ok(())
}

async fn reset(
    args: ResetArgs,
    config: &Config,
    manager: &Manager,
    json: bool,
) -> anyhow::Result<()> {
    if config.environment == ManagerEnvironment::Production && !args.force {
        return Err(
            CliError::Refused("SESSION_ENV=production: add --force to reset anyway").into(),
        );
    }
    let stats = manager.app_stats().await?;
    let targets: Vec<AppStats> = match &args.app {
        Some(name) => {
            let app = app(name)?;
            let found = stats.iter().find(|s| s.app == app).cloned();
            vec![found.unwrap_or(AppStats {
                app,
                users: 0,
                sessions: 0,
            })]
        }
        None => stats,
    };
    let (users, sessions) = targets
        .iter()
        .fold((0, 0), |(u, s), t| (u + t.users, s + t.sessions));
    let names: Vec<&str> = targets.iter().map(|t| t.app.as_str()).collect();
    if !args.yes {
        confirm(&format!(
            "Delete {users} users and {sessions} sessions of {} from {}?",
            if args.all {
                format!("ALL apps ({})", names.join(", "))
            } else {
                format!("app {}", names.join(""))
            },
            config.store,
        ))?;
    }
    let mut deleted = Vec::new();
    for target in &targets {
        let count = reset_one(manager, &target.app, target.users + target.sessions).await?;
        deleted.push(serde_json::json!({ "app": target.app, "deleted_rows": count }));
        if !json {
            println!("reset {}: deleted {count} rows", target.app);
        }
    }
    if json {
        output::json(&serde_json::json!({ "reset": deleted }))
    } else {
        Ok(())
    }
}

/// Resets one app with a progress bar on stderr (drawn only when stderr is a terminal).
async fn reset_one(manager: &Manager, app: &App, expected_rows: u64) -> anyhow::Result<u64> {
    let bar = ProgressBar::new(expected_rows.max(1));
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} rows ({elapsed})")?
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("resetting {app}"));
    let progress = bar.clone();
    let count = manager
        .reset_app(app, move |done| progress.set_position(done))
        .await?;
    bar.finish_and_clear();
    Ok(count)
}

/// Asks on stderr and reads the answer from stdin; anything but "yes" (or "y") aborts.
fn confirm(question: &str) -> anyhow::Result<()> {
    eprint!("{question} Type \"yes\" to continue: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" => Ok(()),
        _ => Err(CliError::Aborted.into()),
    }
}
