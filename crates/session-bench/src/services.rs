//! The shared PostgreSQL and Redis, used politely: a database of our own (`sm_bench_<random>`,
//! dropped at the end) and key prefixes of our own (`sb<random>:`, deleted with SCAN + UNLINK at the
//! end). Never FLUSHALL/FLUSHDB: tests use the same servers at the same time.

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::{Context as _, Result};
use redis::aio::MultiplexedConnection;
use sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection};

/// The run's databases and key prefixes, removed by [`Services::cleanup`].
pub struct Services {
    admin_url: String,
    redis_url: String,
    databases: Mutex<Vec<String>>,
    prefixes: Mutex<Vec<String>>,
}

impl Services {
    /// Nothing is created until asked for.
    pub fn new(admin_url: &str, redis_url: &str) -> Self {
        Self {
            admin_url: admin_url.to_owned(),
            redis_url: redis_url.to_owned(),
            databases: Mutex::default(),
            prefixes: Mutex::default(),
        }
    }

    /// The Redis URL.
    pub fn redis_url(&self) -> &str {
        &self.redis_url
    }

    /// Creates an empty database and returns its URL.
    pub async fn database(&self) -> Result<String> {
        let name = format!("sm_bench_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", self.admin_url))?;
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .context("CREATE DATABASE")?;
        admin.close().await.ok();
        let url = with_database(&self.admin_url, &name);
        self.databases.lock().expect("not poisoned").push(name);
        Ok(url)
    }

    /// A fresh key prefix, `sb<6 random hex digits>:`, in which no key exists yet. Short on purpose:
    /// 9 bytes, near the production default `sm:`, so keys (and bytes per session) are as long as in
    /// production. Everything the harness writes under it also expires within the hour.
    pub async fn prefix(&self) -> Result<String> {
        let mut conn = redis_connection(&self.redis_url).await?;
        for _ in 0..10 {
            let random = uuid::Uuid::now_v7().simple().to_string();
            let prefix = format!("sb{}:", &random[random.len() - 6..]);
            if scan_prefix(&mut conn, &prefix).await?.is_empty() {
                self.prefixes
                    .lock()
                    .expect("not poisoned")
                    .push(prefix.clone());
                return Ok(prefix);
            }
        }
        anyhow::bail!("no unused key prefix found in 10 tries")
    }

    /// Drops every database and deletes every key under every prefix of this run. Returns what
    /// could not be cleaned.
    pub async fn cleanup(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let databases = std::mem::take(&mut *self.databases.lock().expect("not poisoned"));
        for name in databases {
            if let Err(err) = drop_database(&self.admin_url, &name).await {
                problems.push(format!("database {name}: {err:#}"));
            }
        }
        let prefixes = std::mem::take(&mut *self.prefixes.lock().expect("not poisoned"));
        if !prefixes.is_empty() {
            match redis_connection(&self.redis_url).await {
                Ok(mut conn) => {
                    for prefix in prefixes {
                        if let Err(err) = unlink_prefix(&mut conn, &prefix).await {
                            problems.push(format!("Redis prefix {prefix}: {err:#}"));
                        }
                    }
                }
                Err(err) => problems.push(format!("Redis: {err:#}")),
            }
        }
        problems
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    let mut admin = PgConnection::connect(admin_url).await?;
    admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .await?;
    admin.close().await.ok();
    Ok(())
}

/// `url` with its database (the path) replaced by `name`, keeping any query parameters.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// A plain multiplexed connection for measuring and cleaning (not the one under test).
pub async fn redis_connection(url: &str) -> Result<MultiplexedConnection> {
    let client = redis::Client::open(url).context("Redis URL")?;
    client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connecting to Redis at {url}"))
}

/// `used_memory` from `INFO memory`, in bytes.
pub async fn used_memory(conn: &mut MultiplexedConnection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no used_memory in INFO memory")
}

/// Every key under `prefix` (which must hold no glob characters).
pub async fn scan_prefix(conn: &mut MultiplexedConnection, prefix: &str) -> Result<Vec<Vec<u8>>> {
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    let mut all = Vec::new();
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        all.extend(keys);
        if next == 0 {
            return Ok(all);
        }
        cursor = next;
    }
}

/// `MEMORY USAGE key SAMPLES 0` summed over `keys`, by key type (`string`, `set`, …).
pub async fn memory_usage_by_type(
    conn: &mut MultiplexedConnection,
    keys: &[Vec<u8>],
) -> Result<BTreeMap<String, u64>> {
    let mut by_type = BTreeMap::new();
    for chunk in keys.chunks(500) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("TYPE").arg(key);
            pipe.cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .arg("SAMPLES")
                .arg(0);
        }
        let answers: Vec<redis::Value> = pipe.query_async(conn).await?;
        for pair in answers.chunks(2) {
            let kind: String = redis::from_redis_value(pair[0].clone())?;
            let size: Option<u64> = redis::from_redis_value(pair[1].clone())?;
            *by_type.entry(kind).or_default() += size.unwrap_or(0);
        }
    }
    Ok(by_type)
}

/// Deletes every key under `prefix` with SCAN + UNLINK; returns how many.
pub async fn unlink_prefix(conn: &mut MultiplexedConnection, prefix: &str) -> Result<u64> {
    let keys = scan_prefix(conn, prefix).await?;
    let mut deleted = 0;
    for chunk in keys.chunks(500) {
        let n: u64 = redis::cmd("UNLINK").arg(chunk).query_async(conn).await?;
        deleted += n;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_is_replaced_and_the_query_kept() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
