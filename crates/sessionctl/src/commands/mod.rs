//! One module per command group; each turns parsed arguments into library calls and prints the result.

use session_management::config::environment;
use session_management::{App, Config, UserManager, UserManagerFactory};

use crate::cli::{Cli, Command};

mod db;
mod serve;
mod sessions;
mod users;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let vars = environment()?;
    let config = Config::from_map(&vars)?;
    let manager = UserManagerFactory::from_config(config.clone()).await?;
    let json = cli.json;
    match cli.command {
        Command::Serve(args) => serve::run(args, &vars, &config, manager, false).await,
        Command::Studio(args) => serve::run(args, &vars, &config, manager, true).await,
        Command::Db(command) => db::run(command, &config, &manager, json).await,
        Command::Users(command) => users::run(command, &manager, json).await,
        Command::Sessions(command) => sessions::run(command, &manager, json).await,
    }
}

/// Parses an `--app` value.
fn app(raw: &str) -> anyhow::Result<App> {
    Ok(App::parse(raw)?)
}

/// A manager reference, for the modules' signatures.
type Manager = UserManager;
