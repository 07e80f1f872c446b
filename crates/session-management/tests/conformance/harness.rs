//! One fresh store per test, and small helpers the tests share.

use std::sync::Arc;
use std::time::Duration;

use session_management::{
    App, AppStats, CreateUserData, ManualClock, MemoryStore, PostgresStore, RedisSessionCache,
    Session, SessionMetadata, SessionToken, SqliteStore, Store, TieredOptions, TieredStore, Ttl,
    User, UserManager,
};

use crate::redis_prefix::TestPrefix;
use crate::test_db::TestDatabase;

/// A manager over a fresh store, with a clock the test moves by hand.
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub manager: UserManager,
    pub clock: ManualClock,
    /// Keeps the SQLite file's directory alive for the test's duration.
    _dir: Option<tempfile::TempDir>,
    /// Deletes the test's Redis keys when the harness goes.
    _redis: Option<TestPrefix>,
    /// Drops the test's PostgreSQL database when the harness goes, even after a panic. Declared
    /// last so the store's pool goes first.
    _db: Option<TestDatabase>,
}

impl Harness {
    fn new(store: Arc<dyn Store>, dir: Option<tempfile::TempDir>) -> Self {
        let clock = ManualClock::new();
        let manager = UserManager::new(store.clone()).with_clock(Arc::new(clock.clone()));
        Self {
            store,
            manager,
            clock,
            _dir: dir,
            _redis: None,
            _db: None,
        }
    }

    /// Ties a test database's lifetime to the harness.
    fn with_database_guard(mut self, db: TestDatabase) -> Self {
        self._db = Some(db);
        self
    }

    /// A second manager on the same store and clock, with another maximum lifetime.
    pub fn manager_with_max_lifetime(&self, max: Duration) -> UserManager {
        self.manager.clone().with_max_lifetime(max)
    }

    pub async fn user(&self, app: &App, email: &str) -> User {
        self.manager
            .create(
                app,
                CreateUserData {
                    email: email.into(),
                    name: "Test User".into(),
                },
            )
            .await
            .expect("create user")
    }

    pub async fn session(&self, app: &App, user: &User, ttl_secs: u64) -> (SessionToken, Session) {
        self.manager
            .create_session(app, user.id, metadata(), ttl(ttl_secs))
            .await
            .expect("create session")
    }

    pub async fn stats(&self) -> Vec<AppStats> {
        self.manager.app_stats().await.expect("stats")
    }

    pub fn advance(&self, secs: f64) {
        self.clock.advance(Duration::from_secs_f64(secs));
    }
}

pub fn app(name: &str) -> App {
    App::parse(name).unwrap()
}

pub fn ttl(secs: u64) -> Ttl {
    Ttl::from_secs(secs).unwrap()
}

pub fn metadata() -> SessionMetadata {
    SessionMetadata::parse("203.0.113.7", "Mozilla/5.0 (X11; Linux x86_64) conformance").unwrap()
}

pub async fn memory() -> Harness {
    Harness::new(Arc::new(MemoryStore::new()), None)
}

pub async fn memory_with_outbox() -> Harness {
    Harness::new(Arc::new(MemoryStore::with_invalidation_outbox()), None)
}

async fn sqlite_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    let store = SqliteStore::connect(&url).await.expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    (store, dir)
}

pub async fn sqlite() -> Harness {
    let (store, dir) = sqlite_store().await;
    Harness::new(Arc::new(store), Some(dir))
}

pub async fn sqlite_with_outbox() -> Harness {
    let (store, dir) = sqlite_store().await;
    Harness::new(Arc::new(store.with_invalidation_outbox()), Some(dir))
}

/// A migrated store on a database of the test's own.
async fn postgres_store() -> (PostgresStore, TestDatabase) {
    let db = TestDatabase::create().await;
    let store = PostgresStore::connect(db.url())
        .await
        .expect("connect postgres");
    store.migrate().await.expect("migrate postgres");
    (store, db)
}

pub async fn postgres() -> Harness {
    let (store, db) = postgres_store().await;
    Harness::new(Arc::new(store), None).with_database_guard(db)
}

pub async fn postgres_with_outbox() -> Harness {
    let (store, db) = postgres_store().await;
    Harness::new(Arc::new(store.with_invalidation_outbox()), None).with_database_guard(db)
}

/// A Redis tier on a key prefix of the test's own, in front of `durable` (which records invalidations).
async fn tiered(durable: Arc<dyn Store>) -> (Arc<dyn Store>, TestPrefix) {
    let prefix = TestPrefix::new();
    let options = TieredOptions {
        // Generous: a busy CI machine must not turn the suite into a fallback test.
        redis_timeout: Duration::from_secs(2),
        ..TieredOptions::default()
    };
    let hot = RedisSessionCache::connect(prefix.url(), prefix.as_str(), options.redis_timeout)
        .await
        .expect("connect redis");
    let store = TieredStore::new(hot, durable, options).expect("tiered store");
    store.maintain().await.expect("Redis trusted");
    assert!(store.redis_trusted());
    (Arc::new(store), prefix)
}

pub async fn tiered_postgres() -> Harness {
    let (durable, db) = postgres_store().await;
    let (store, prefix) = tiered(Arc::new(durable.with_invalidation_outbox())).await;
    let mut harness = Harness::new(store, None).with_database_guard(db);
    harness._redis = Some(prefix);
    harness
}

pub async fn tiered_sqlite() -> Harness {
    let (durable, dir) = sqlite_store().await;
    let (store, prefix) = tiered(Arc::new(durable.with_invalidation_outbox())).await;
    let mut harness = Harness::new(store, Some(dir));
    harness._redis = Some(prefix);
    harness
}
