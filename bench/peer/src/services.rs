//! The peer's own PostgreSQL database on the shared server, and Redis measuring helpers on fred.

use anyhow::{Context as _, Result};
use tower_sessions_redis_store::fred::prelude::*;
use tower_sessions_redis_store::fred::types::{ClusterHash, CustomCommand};
use tower_sessions_sqlx_store::sqlx::{Connection as _, Executor as _, PgConnection};

/// A database of our own, `sm_bench_<random>`; [`Database::drop_now`] removes it.
pub struct Database {
    admin_url: String,
    name: String,
    /// Its URL.
    pub url: String,
}

impl Database {
    /// Creates an empty database.
    pub async fn create(admin_url: &str) -> Result<Self> {
        let name = format!("sm_bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await?;
        admin.close().await.ok();
        let (base, _) = admin_url
            .rsplit_once('/')
            .context("admin URL without a path")?;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }

    /// Drops the database (closing any connection still open to it).
    pub async fn drop_now(self) -> Result<()> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
            .await?;
        admin.close().await.ok();
        Ok(())
    }
}

fn command(name: &'static str) -> CustomCommand {
    CustomCommand::new_static(name, ClusterHash::FirstKey, false)
}

/// `used_memory` from `INFO memory`, in bytes.
pub async fn used_memory(client: &Client) -> Result<u64> {
    let info: String = client.custom(command("INFO"), vec!["memory"]).await?;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no used_memory in INFO memory")
}

/// The sum of `MEMORY USAGE key SAMPLES 0` over `keys` (64 commands in flight).
pub async fn memory_usage(client: &Client, keys: &[String]) -> Result<u64> {
    let keys = std::sync::Arc::new(keys.to_vec());
    let client = client.clone();
    let sizes = crate::common::runner::collect(keys.len() as u64, 64, move |i| {
        let (client, keys) = (client.clone(), keys.clone());
        async move {
            let key = keys[i as usize].as_str();
            client
                .custom::<Option<u64>, _>(command("MEMORY"), vec!["USAGE", key, "SAMPLES", "0"])
                .await
                .map_err(|err| err.to_string())
        }
    })
    .await
    .map_err(anyhow::Error::msg)?;
    Ok(sizes.into_iter().flatten().sum())
}

/// How many of `keys` exist.
pub async fn count_existing(client: &Client, keys: &[String]) -> Result<u64> {
    let mut total = 0;
    for chunk in keys.chunks(500) {
        let n: u64 = client.custom(command("EXISTS"), chunk.to_vec()).await?;
        total += n;
    }
    Ok(total)
}

/// Deletes exactly `keys`.
pub async fn unlink(client: &Client, keys: &[String]) -> Result<()> {
    for chunk in keys.chunks(500) {
        let _: u64 = client.custom(command("UNLINK"), chunk.to_vec()).await?;
    }
    Ok(())
}
