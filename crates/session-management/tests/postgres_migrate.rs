//! `PostgresStore` with several instances on one database: concurrent migrations and expiry sweeps.
//!
//! Needs PostgreSQL (see `tests/support/test_db.rs` for the URL); each test uses a database of its own.

#[path = "support/test_db.rs"]
mod test_db;

use std::sync::Arc;
use std::time::Duration;

use session_management::{
    App, Clock, CreateUserData, ManualClock, PostgresStore, SessionMetadata, Store, Ttl,
    UserManager,
};
use sqlx::Connection;
use test_db::TestDatabase;
use time::OffsetDateTime;

async fn instances(db: &TestDatabase, count: usize) -> Vec<PostgresStore> {
    let mut stores = Vec::with_capacity(count);
    for _ in 0..count {
        stores.push(PostgresStore::connect(db.url()).await.expect("connect"));
    }
    stores
}

/// Sessions of `store` that expired at or before `now` and are still stored.
async fn expired_rows(store: &PostgresStore, now: OffsetDateTime) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sessions WHERE expires_at <= $1")
        .bind(now)
        .fetch_one(store.pool())
        .await
        .expect("count expired")
}

/// Creates a user with `short` sessions of 10 s and `long` sessions of 1 h, through `manager`.
async fn sessions(manager: &UserManager, short: usize, long: usize) {
    let web = App::parse("web").unwrap();
    let user = manager
        .create(
            &web,
            CreateUserData {
                email: "ada@example.com".into(),
                name: "Ada".into(),
            },
        )
        .await
        .expect("create user");
    let metadata = SessionMetadata::parse("203.0.113.7", "purge test").unwrap();
    for ttl in std::iter::repeat_n(10, short).chain(std::iter::repeat_n(3600, long)) {
        manager
            .create_session(
                &web,
                user.id,
                metadata.clone(),
                Ttl::from_secs(ttl).unwrap(),
            )
            .await
            .expect("create session");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_from_four_instances_all_succeed_and_apply_everything_once() {
    let db = TestDatabase::create().await;
    let stores = instances(&db, 4).await;

    // Spawned, so all four run at once and contend for the migrator's advisory lock.
    let mut migrations = tokio::task::JoinSet::new();
    for store in &stores {
        let store = store.clone();
        migrations.spawn(async move { store.migrate().await });
    }
    for result in migrations.join_all().await {
        result.expect("every concurrent migrate succeeds");
    }

    for store in &stores {
        let status = store.migration_status().await.expect("status");
        assert!(!status.is_empty(), "migrations are embedded");
        assert!(
            status.iter().all(|m| m.applied),
            "every migration applied: {status:?}"
        );
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(stores[0].pool())
        .await
        .unwrap();
    assert_eq!(
        rows as usize,
        stores[0].migration_status().await.unwrap().len(),
        "each migration recorded exactly once"
    );
    // Migrating again is a no-op.
    stores[3].migrate().await.expect("re-migrate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_status_before_migrating_shows_nothing_applied() {
    let db = TestDatabase::create().await;
    let store = PostgresStore::connect(db.url()).await.expect("connect");
    let status = store.migration_status().await.expect("status");
    assert!(!status.is_empty());
    assert!(status.iter().all(|m| !m.applied), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_purges_from_two_instances_delete_each_expired_session_exactly_once() {
    const EXPIRED: usize = 57;
    const LIVE: usize = 5;
    let db = TestDatabase::create().await;
    let stores = instances(&db, 2).await;
    stores[0].migrate().await.expect("migrate");
    let clock = ManualClock::new();
    let manager = UserManager::new(Arc::new(stores[0].clone())).with_clock(Arc::new(clock.clone()));
    sessions(&manager, EXPIRED, LIVE).await;
    clock.advance(Duration::from_secs(60));
    let now = clock.now();
    assert_eq!(expired_rows(&stores[0], now).await, EXPIRED as i64);

    // Small batches, so both instances keep coming back while the other may hold the sweep lock.
    let sweep = |store: PostgresStore| async move {
        let mut total = 0;
        loop {
            let deleted = store.purge_expired(now, 4).await.expect("purge");
            total += deleted;
            if deleted == 0 {
                if expired_rows(&store, now).await == 0 {
                    return total;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(sweep(stores[0].clone())),
        tokio::spawn(sweep(stores[1].clone())),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a + b,
        EXPIRED as u64,
        "each expired row deleted once ({a} + {b})"
    );

    let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(stores[1].pool())
        .await
        .unwrap();
    assert_eq!(remaining, LIVE as i64, "live sessions are untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_does_nothing_while_another_instance_holds_the_sweep_lock() {
    let db = TestDatabase::create().await;
    let stores = instances(&db, 2).await;
    stores[0].migrate().await.expect("migrate");
    let clock = ManualClock::new();
    let manager = UserManager::new(Arc::new(stores[0].clone())).with_clock(Arc::new(clock.clone()));
    sessions(&manager, 3, 1).await;
    clock.advance(Duration::from_secs(60));
    let now = clock.now();

    // Another instance mid-sweep holds the lock for its transaction.
    let mut other = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PostgresStore::PURGE_LOCK_KEY)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(stores[1].purge_expired(now, 100).await.unwrap(), 0);
    assert_eq!(expired_rows(&stores[1], now).await, 3, "nothing swept");

    tx.rollback().await.unwrap();
    assert_eq!(stores[1].purge_expired(now, 100).await.unwrap(), 3);
    assert_eq!(expired_rows(&stores[1], now).await, 0);
    drop(other);
}
