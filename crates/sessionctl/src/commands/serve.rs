//! `sessionctl serve` and `sessionctl studio`: the HTTP server with its background work, until
//! Ctrl-C or SIGTERM.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use session_management::{BackgroundOptions, Config, UserManager};

use crate::cli::ServeArgs;
use crate::server::{self, ApiKey, AppState};

pub async fn run(
    args: ServeArgs,
    vars: &HashMap<String, String>,
    config: &Config,
    manager: UserManager,
    studio: bool,
) -> anyhow::Result<()> {
    let api_key = vars
        .get("SESSION_API_KEY")
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
        .map(ApiKey::new);
    if api_key.is_none() && !args.addr.ip().is_loopback() {
        bail!(
            "SESSION_API_KEY is not set: refusing to listen on {} (the API would be open). \
             Set SESSION_API_KEY, or listen on a loopback address such as 127.0.0.1",
            args.addr
        );
    }
    if api_key.is_none() {
        tracing::warn!("SESSION_API_KEY is not set: the API is open to local clients only");
    }
    let shutdown = server::shutdown_signal();
    let metrics = server::ops::prometheus();
    let upkeep = {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                metrics.run_upkeep();
            }
        })
    };
    let background = manager.start_background(BackgroundOptions::default());
    let state = AppState::new(manager, api_key, Some(metrics));
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "sessionctl: listening on http://{addr} ({}; store: {}{})",
        if studio {
            format!("studio at http://{addr}/studio")
        } else {
            "API under /v1, docs at /docs, studio at /studio".to_owned()
        },
        config.store,
        if config.redis.is_some() {
            " + redis"
        } else {
            ""
        },
    );
    tracing::info!(%addr, backend = state.manager().store().backend(), "listening");
    server::serve(listener, server::app(state), shutdown).await?;
    background.shutdown().await;
    upkeep.abort();
    tracing::info!("stopped");
    Ok(())
}
