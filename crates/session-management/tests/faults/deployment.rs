//! A deployment under test: one PostgreSQL database and one Redis prefix, reached through fault
//! proxies, with as many manager instances on them as a test wants.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use session_management::{
    App, Background, BackgroundOptions, CreateUserData, ManualClock, PostgresStore,
    RedisSessionCache, Session, SessionMetadata, SessionToken, SqliteStore, Store, TieredOptions,
    TieredStore, Ttl, User, UserManager,
};

use crate::fault_proxy::FaultProxy;
use crate::redis_prefix::{TestPrefix, redis_url};
use crate::test_db::TestDatabase;

/// Short timeouts so faults are noticed fast; the breaker opens after 3 failures.
pub const OPTIONS: TieredOptions = TieredOptions {
    redis_timeout: Duration::from_millis(100),
    failure_threshold: 3,
    cool_down: Duration::from_millis(200),
};

/// The replayer's period in these tests.
pub const MAINTAIN_EVERY: Duration = Duration::from_millis(100);

pub fn addr_of(url: &str) -> SocketAddr {
    let authority = url.split("://").nth(1).unwrap();
    let authority = authority.split('/').next().unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    host_port.parse().unwrap()
}

/// `url` with its host and port replaced by `addr`.
fn via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let userinfo = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{userinfo}{addr}{path}")
}

/// The durable store a deployment uses.
pub enum Durable {
    Postgres(TestDatabase),
    Sqlite(tempfile::TempDir),
}

pub struct Deployment {
    pub durable: Durable,
    pub prefix: TestPrefix,
    pub redis_proxy: FaultProxy,
    pub pg_proxy: Option<FaultProxy>,
}

/// One manager instance (as one server process would have).
pub struct Instance {
    pub manager: UserManager,
    pub tiered: Arc<TieredStore>,
    _background: Option<Background>,
}

impl Deployment {
    pub async fn postgres() -> Self {
        Self::postgres_with_redis_at(addr_of(&redis_url())).await
    }

    /// PostgreSQL, and the Redis server at `redis` (for tests that restart their own Redis).
    pub async fn postgres_with_redis_at(redis: SocketAddr) -> Self {
        let db = TestDatabase::create().await;
        let pg_proxy = FaultProxy::start(addr_of(db.url())).await.unwrap();
        Self {
            durable: Durable::Postgres(db),
            prefix: TestPrefix::new(),
            redis_proxy: FaultProxy::start(redis).await.unwrap(),
            pg_proxy: Some(pg_proxy),
        }
    }

    pub async fn sqlite() -> Self {
        Self {
            durable: Durable::Sqlite(tempfile::tempdir().unwrap()),
            prefix: TestPrefix::new(),
            redis_proxy: FaultProxy::start(addr_of(&redis_url())).await.unwrap(),
            pg_proxy: None,
        }
    }

    /// A new instance whose Redis traffic goes through `redis_proxy`, with its background task.
    pub async fn instance_via(&self, redis_proxy: &FaultProxy) -> Instance {
        self.build(redis_proxy, None).await
    }

    /// An instance on a manual clock, without a background task (the test calls `maintain`).
    pub async fn instance_with_clock(&self, clock: ManualClock) -> Instance {
        self.build(&self.redis_proxy, Some(clock)).await
    }

    async fn build(&self, redis_proxy: &FaultProxy, clock: Option<ManualClock>) -> Instance {
        let durable: Arc<dyn Store> = match &self.durable {
            Durable::Postgres(db) => {
                let proxy = self.pg_proxy.as_ref().unwrap();
                let store = PostgresStore::connect(&via(db.url(), proxy.addr()))
                    .await
                    .unwrap();
                Arc::new(store.with_invalidation_outbox())
            }
            Durable::Sqlite(dir) => {
                let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
                Arc::new(
                    SqliteStore::connect(&url)
                        .await
                        .unwrap()
                        .with_invalidation_outbox(),
                )
            }
        };
        durable.migrate().await.unwrap();
        let redis = format!("redis://{}", redis_proxy.addr());
        let hot = RedisSessionCache::connect(&redis, self.prefix.as_str(), OPTIONS.redis_timeout)
            .await
            .unwrap();
        let tiered = Arc::new(TieredStore::new(hot, durable, OPTIONS).unwrap());
        tiered.maintain().await.unwrap();
        let manager = UserManager::new(tiered.clone());
        let (manager, background) = match clock {
            Some(clock) => (manager.with_clock(Arc::new(clock)), None),
            None => {
                let background = manager.start_background(BackgroundOptions {
                    maintain_every: MAINTAIN_EVERY,
                    sweep_every: Duration::from_secs(3600),
                });
                (manager, Some(background))
            }
        };
        Instance {
            manager,
            tiered,
            _background: background,
        }
    }

    pub async fn instance(&self) -> Instance {
        self.instance_via(&self.redis_proxy).await
    }
}

pub fn web() -> App {
    App::parse("web").unwrap()
}

pub async fn user(manager: &UserManager, email: &str) -> User {
    manager
        .create(
            &web(),
            CreateUserData {
                email: email.into(),
                name: "Fault Test".into(),
            },
        )
        .await
        .unwrap()
}

pub fn metadata() -> SessionMetadata {
    SessionMetadata::parse("192.0.2.10", "Mozilla/5.0 (fault test)").unwrap()
}

pub async fn sessions(
    manager: &UserManager,
    user: &User,
    n: usize,
) -> Vec<(SessionToken, Session)> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            manager
                .create_session(&web(), user.id, metadata(), Ttl::from_secs(3600).unwrap())
                .await
                .unwrap(),
        );
    }
    out
}

/// Waits until `check` holds, polling, for at most `limit`; returns whether it did.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Redis server of a test's own, on a free port, that the test can kill and start again.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.restart_empty().await;
        redis
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server (SIGKILL: nothing is saved, and it keeps nothing on disk anyway).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts it again, empty, on the same port.
    pub async fn restart_empty(&mut self) {
        self.kill();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test --install)");
        self.child = Some(child);
        let addr = self.addr();
        let up = eventually(Duration::from_secs(5), async || {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        assert!(up, "private redis-server did not start on {addr}");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
