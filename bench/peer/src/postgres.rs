//! tower-sessions' `PostgresStore` on sqlx: `pg-create` and `pg-load`, and its bytes per session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tower_sessions_sqlx_store::PostgresStore;
use tower_sessions_sqlx_store::sqlx::PgPool;
use tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions;

use crate::common::report::{Footprint, Report};
use crate::services::Database;
use crate::workload::{self, create_all, fresh_ids};
use crate::{Args, Workload, user_ids};

/// session-management's `PostgresStore` pool size, for a like-for-like comparison.
const POOL_SIZE: u32 = 16;
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

    let outcome = workload::timed(&store, &ids, &users, load, ops, args.concurrency).await;
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
