//! tower-sessions' `RedisStore` on fred: `redis-create` and `redis-load`, and its bytes per session.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use tower_sessions_core::session::Id;
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::*;

use crate::common::report::{Footprint, Report};
use crate::services;
use crate::workload::{self, create_all, fresh_ids};
use crate::{Args, Workload, user_ids};

fn keys(ids: &[Id]) -> Vec<String> {
    ids.iter().map(Id::to_string).collect()
}

/// Runs `redis-create` or `redis-load`, then the footprint pass if asked.
pub async fn run(args: &Args) -> Result<Report> {
    let setup_started = Instant::now();
    let config = Config::from_url(&args.redis_url)?;
    let pool = Pool::new(config, None, None, None, args.redis_pool.max(1))?;
    pool.init().await?;
    let admin = pool.next().clone();
    let store = Arc::new(RedisStore::new(pool.clone()));
    // Every key this run writes, deleted at the end whatever happens.
    let mut written: Vec<String> = Vec::new();
    let result = measure(args, &store, &admin, &mut written, setup_started).await;
    let cleaned = services::unlink(&admin, &written).await;
    pool.quit().await.ok();
    let report = result?;
    cleaned?;
    Ok(report)
}

async fn measure(
    args: &Args,
    store: &Arc<RedisStore<Pool>>,
    admin: &Client,
    written: &mut Vec<String>,
    setup_started: Instant,
) -> Result<Report> {
    let ops = args.ops;
    let load = args.workload == Workload::RedisLoad;
    let ids = fresh_ids(if load { args.sessions.max(1) } else { ops });
    written.extend(keys(&ids));
    let users = Arc::new(user_ids(ids.len() as u64));
    if load {
        create_all(store, &ids, &users).await?;
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();

    let outcome = workload::timed(store, &ids, &users, load, ops, args.concurrency).await;
    let mut report = Report::new(
        "peer",
        "tower-sessions-redis-store",
        args.workload.name(),
        ops,
        args.concurrency,
        outcome,
    );
    report.setup_secs = setup_secs;
    report.notes.push(format!(
        "fred Pool of {} connection(s), auto-pipelined",
        args.redis_pool.max(1)
    ));
    if !load {
        let existing = services::count_existing(admin, &keys(&ids)).await?;
        report.check(existing == ops, || {
            format!("{existing} of {ops} created records are in Redis")
        });
    }
    if args.footprint > 0 {
        report.footprint = Some(footprint(store, admin, written, args.footprint).await?);
    }
    Ok(report)
}

/// `used_memory` delta and `MEMORY USAGE` of the keys over `k` creates, one user each.
async fn footprint(
    store: &Arc<RedisStore<Pool>>,
    admin: &Client,
    written: &mut Vec<String>,
    k: u64,
) -> Result<Footprint> {
    let ids = fresh_ids(k);
    let keys = keys(&ids);
    written.extend(keys.iter().cloned());
    let users = Arc::new(user_ids(k));
    let before = services::used_memory(admin).await?;
    create_all(store, &ids, &users).await?;
    let after = services::used_memory(admin).await?;
    let existing = services::count_existing(admin, &keys).await?;
    if existing != k {
        bail!("only {existing} of {k} footprint records are in Redis");
    }
    let usage = services::memory_usage(admin, &keys).await?;
    services::unlink(admin, &keys).await?;
    Ok(Footprint {
        sessions: k,
        redis_bytes_per_session: Some((after as f64 - before as f64) / k as f64),
        redis_bytes_per_session_keys: Some(usage as f64 / k as f64),
        redis_keys_per_session: Some(1.0),
        pg_bytes_per_session: None,
    })
}
