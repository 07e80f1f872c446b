//! tower-sessions' `PostgresStore` on sqlx: `pg-create` and `pg-load`, and its bytes per session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tower_sessions_core::SessionStore as _;
use tower_sessions_core::session::Id;
use tower_sessions_sqlx_store::PostgresStore;
use tower_sessions_sqlx_store::sqlx::PgPool;
use tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions;

use crate::common::report::{Footprint, Report};
use crate::common::runner;
use crate::services::Database;
use crate::{Args, Workload, record, user_ids};

/// session-management's `PostgresStore` pool size, for a like-for-like comparison.
const POOL_SIZE: u32 = 16;
/// Concurrency of untimed setup work.
const SETUP_CONCURRENCY: usize = 64;

async fn create_all(
    store: &Arc<PostgresStore>,
    ids: &Arc<Vec<Id>>,
    users: &Arc<Vec<String>>,
) -> Result<()> {
    let (store, ids, users) = (store.clone(), ids.clone(), users.clone());
    runner::collect(ids.len() as u64, SETUP_CONCURRENCY, move |i| {
        let (store, ids, users) = (store.clone(), ids.clone(), users.clone());
        async move {
            let mut record = record(ids[i as usize], &users[i as usize % users.len()]);
            store.create(&mut record).await.map_err(|e| e.to_string())
        }
    })
    .await
    .map_err(anyhow::Error::msg)?;
    Ok(())
}

fn fresh_ids(n: u64) -> Arc<Vec<Id>> {
    Arc::new((0..n).map(|_| Id::default()).collect())
}

async fn rows(pool: &PgPool) -> Result<i64> {
    Ok(
        tower_sessions_sqlx_store::sqlx::query_scalar(
            "SELECT count(*) FROM tower_sessions.session",
        )
        .fetch_one(pool)
        .await?,
    )
}

async fn table_size(pool: &PgPool) -> Result<i64> {
    Ok(tower_sessions_sqlx_store::sqlx::query_scalar(
        "SELECT pg_total_relation_size('tower_sessions.session')",
    )
    .fetch_one(pool)
    .await?)
}

/// Runs `pg-create` or `pg-load` in a database of its own, then the footprint pass if asked.
pub async fn run(args: &Args) -> Result<Report> {
    let database = Database::create(&args.postgres_url).await?;
    let result = measure(args, &database.url).await;
    let dropped = database.drop_now().await;
    let report = result?;
    dropped?;
    Ok(report)
}

async fn measure(args: &Args, url: &str) -> Result<Report> {
    let setup_started = Instant::now();
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await?;
    let store = Arc::new(PostgresStore::new(pool.clone()));
    store.migrate().await?;
    let ops = args.ops;
    let load = args.workload == Workload::PgLoad;
    let ids = fresh_ids(if load { args.sessions.max(1) } else { ops });
    let users = Arc::new(user_ids(ids.len() as u64));
    if load {
        create_all(&store, &ids, &users).await?;
    } else {
        // Warm the pool as the load setup (and ours) does.
        create_all(&store, &fresh_ids(POOL_SIZE.into()), &users).await?;
    }
    let rows_before = rows(&pool).await?;
    let setup_secs = setup_started.elapsed().as_secs_f64();

    let (timed_store, timed_ids, timed_users) = (store.clone(), ids.clone(), users.clone());
    let outcome = runner::run(ops, args.concurrency, move |i| {
        let (store, ids, users) = (timed_store.clone(), timed_ids.clone(), timed_users.clone());
        async move {
            if load {
                let id = ids[(i % ids.len() as u64) as usize];
                match store.load(&id).await {
                    Ok(Some(found)) if found.id == id => Ok(()),
                    Ok(Some(_)) => Err("load returned another record".to_owned()),
                    Ok(None) => Err("load returned None for a live record".to_owned()),
                    Err(err) => Err(format!("load: {err}")),
                }
            } else {
                let mut record = record(ids[i as usize], &users[i as usize]);
                store
                    .create(&mut record)
                    .await
                    .map_err(|err| format!("create: {err}"))
            }
        }
    })
    .await;
    let mut report = Report::new(
        "peer",
        "tower-sessions-sqlx-store",
        args.workload.name(),
        ops,
        args.concurrency,
        outcome,
    );
    report.setup_secs = setup_secs;
    report
        .notes
        .push(format!("sqlx PgPool of {POOL_SIZE} connections"));
    let written = rows(&pool).await? - rows_before;
    let expected = if load { 0 } else { ops as i64 };
    report.check(written == expected, || {
        format!("{written} rows written, expected {expected}")
    });
    if args.footprint > 0 {
        let k = args.footprint;
        let before = table_size(&pool).await?;
        create_all(&store, &fresh_ids(k), &Arc::new(user_ids(k))).await?;
        let after = table_size(&pool).await?;
        report.footprint = Some(Footprint {
            sessions: k,
            pg_bytes_per_session: Some((after - before) as f64 / k as f64),
            ..Footprint::default()
        });
    }
    pool.close().await;
    Ok(report)
}
