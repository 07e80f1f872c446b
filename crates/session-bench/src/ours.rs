//! Our stores, built directly (not through the factory, so the harness controls prefixes, proxies and
//! clocks), and the fixtures the workloads need: users and sessions created through the manager.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use session_management::store::breaker::BreakerState;
use session_management::{
    App, Clock, CreateUserData, MemoryStore, PostgresStore, RedisSessionCache, Session,
    SessionMetadata, SessionToken, SqliteStore, Store, TieredOptions, TieredStore, Ttl, UserId,
    UserManager,
};

use crate::args::Backend;
use crate::common::runner;
use crate::common::shape::{IP, TTL_SECS, USER_AGENT};
use crate::fault_proxy::FaultProxy;
use crate::services::Services;

/// Concurrency of untimed setup work.
pub const SETUP_CONCURRENCY: usize = 64;

/// One of our stores behind a [`UserManager`], with handles on its parts.
pub struct Ours {
    /// The manager under test.
    pub manager: UserManager,
    /// The tiered store, when that is the backend.
    pub tiered: Option<Arc<TieredStore>>,
    /// The durable store under the tiered store (or the store itself for postgres).
    pub durable: Arc<dyn Store>,
    /// The PostgreSQL store, for raw measurements (table sizes).
    pub postgres: Option<PostgresStore>,
    /// The proxy between the tiered store and Redis, when asked for.
    pub proxy: Option<FaultProxy>,
    /// Keeps the SQLite file's directory alive.
    _sqlite_dir: Option<tempfile::TempDir>,
}

impl Ours {
    /// Opens `backend` on the run's own database and key prefix; with `via_proxy`, the tiered
    /// store reaches Redis through a [`FaultProxy`] that can be cut.
    pub async fn open(
        backend: Backend,
        services: &Services,
        via_proxy: bool,
        clock: Option<Arc<dyn Clock>>,
    ) -> Result<Self> {
        let mut sqlite_dir = None;
        let mut postgres = None;
        let durable: Arc<dyn Store> = match backend {
            Backend::Memory => Arc::new(MemoryStore::new()),
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}/bench.db", dir.path().display());
                sqlite_dir = Some(dir);
                Arc::new(SqliteStore::connect(&url).await?)
            }
            Backend::Postgres | Backend::Tiered => {
                let url = services.database().await?;
                let mut store = PostgresStore::connect(&url).await?;
                if backend == Backend::Tiered {
                    store = store.with_invalidation_outbox();
                }
                postgres = Some(store.clone());
                Arc::new(store)
            }
            raw => bail!("{} is not one of our stores", raw.name()),
        };
        durable.migrate().await.context("migrating")?;
        let mut proxy = None;
        let mut tiered = None;
        let store = if backend == Backend::Tiered {
            let mut url = services.redis_url().to_owned();
            if via_proxy {
                let target = redis_addr(&url)?;
                let started = FaultProxy::start(target).await?;
                url = format!("redis://{}", started.addr());
                proxy = Some(started);
            }
            let store =
                Arc::new(open_tiered(&url, &services.prefix().await?, durable.clone()).await?);
            tiered = Some(store.clone());
            store as Arc<dyn Store>
        } else {
            durable.clone()
        };
        let mut manager = UserManager::new(store);
        if let Some(clock) = clock {
            manager = manager.with_clock(clock);
        }
        Ok(Self {
            manager,
            tiered,
            durable,
            postgres,
            proxy,
            _sqlite_dir: sqlite_dir,
        })
    }

    /// Cuts Redis off (the proxy closes every connection and refuses new ones) and drives the
    /// breaker open, so that reads are served by PostgreSQL.
    ///
    /// After one failed Redis call the tiered store stops consulting Redis until its next upkeep
    /// (`maintain`, which re-trusts Redis when the outbox is empty), so the breaker's consecutive
    /// failures come one per upkeep: this validates and runs the upkeep in turn until it opens.
    pub async fn cut_redis(&self, app: &App, token: &SessionToken) -> Result<()> {
        let (Some(proxy), Some(tiered)) = (&self.proxy, &self.tiered) else {
            bail!("only the tiered store behind a proxy can lose Redis");
        };
        proxy.cut();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while tiered.breaker_state() == BreakerState::Closed {
            if tokio::time::Instant::now() > deadline {
                bail!("Redis was cut but the breaker did not open within 10 s");
            }
            if self.manager.validate(app, token).await?.is_none() {
                bail!("a live session did not validate with Redis cut");
            }
            tiered.maintain().await?;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        if tiered.redis_trusted() {
            bail!("the breaker is open but Redis is still trusted for reads");
        }
        Ok(())
    }
}

/// A tiered store over `durable` with Redis at `redis_url` under `prefix`, trusted (`maintain`).
pub async fn open_tiered(
    redis_url: &str,
    prefix: &str,
    durable: Arc<dyn Store>,
) -> Result<TieredStore> {
    let options = TieredOptions::default();
    let hot = RedisSessionCache::connect(redis_url, prefix, options.redis_timeout).await?;
    let tiered = TieredStore::new(hot, durable, options)?;
    tiered.maintain().await?;
    if !tiered.redis_trusted() {
        bail!("Redis is not trusted after maintain()");
    }
    Ok(tiered)
}

fn redis_addr(url: &str) -> Result<std::net::SocketAddr> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port
        .parse()
        .with_context(|| format!("the proxy needs an IP:port Redis URL, not {url}"))
}

/// The metadata of every session.
pub fn metadata() -> SessionMetadata {
    SessionMetadata::parse(IP, USER_AGENT).expect("valid metadata")
}

/// The TTL of every session.
pub fn ttl() -> Ttl {
    Ttl::from_secs(TTL_SECS).expect("valid ttl")
}

/// Creates `n` users (emails `u<i>-<tag>@bench.example`) on `SETUP_CONCURRENCY` tasks.
pub async fn create_users(
    manager: &UserManager,
    app: &App,
    n: u64,
    tag: &str,
) -> Result<Vec<UserId>> {
    let (manager, app, tag) = (manager.clone(), app.clone(), tag.to_owned());
    runner::collect(n, SETUP_CONCURRENCY, move |i| {
        let (manager, app, tag) = (manager.clone(), app.clone(), tag.clone());
        async move {
            let data = CreateUserData {
                email: format!("u{i}-{tag}@bench.example"),
                name: format!("Bench user {i}"),
            };
            manager
                .create(&app, data)
                .await
                .map(|user| user.id)
                .map_err(|err| format!("creating user {i}: {err}"))
        }
    })
    .await
    .map_err(anyhow::Error::msg)
}

/// Creates `n` sessions, session `i` for `users[i % users.len()]`, on `SETUP_CONCURRENCY` tasks.
pub async fn create_sessions(
    manager: &UserManager,
    app: &App,
    users: &Arc<Vec<UserId>>,
    n: u64,
) -> Result<Vec<(SessionToken, Session)>> {
    if n > 0 && users.is_empty() {
        bail!("sessions need users");
    }
    let (manager, app, users) = (manager.clone(), app.clone(), users.clone());
    runner::collect(n, SETUP_CONCURRENCY, move |i| {
        let (manager, app, users) = (manager.clone(), app.clone(), users.clone());
        async move {
            let user = users[(i % users.len() as u64) as usize];
            manager
                .create_session(&app, user, metadata(), ttl())
                .await
                .map_err(|err| format!("creating session {i}: {err}"))
        }
    })
    .await
    .map_err(anyhow::Error::msg)
}

/// The app's session count (rows in the durable store).
pub async fn session_count(manager: &UserManager, app: &App) -> Result<u64> {
    Ok(manager
        .app_stats()
        .await?
        .into_iter()
        .find(|stats| &stats.app == app)
        .map_or(0, |stats| stats.sessions))
}

#[cfg(test)]
mod tests {
    #[test]
    fn redis_urls_become_socket_addresses() {
        assert_eq!(
            super::redis_addr("redis://:pw@localhost:6379/0").unwrap(),
            "127.0.0.1:6379".parse().unwrap()
        );
    }
}
