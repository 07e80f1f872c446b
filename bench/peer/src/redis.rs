//! tower-sessions' `RedisStore` on fred: `redis-create` and `redis-load`, and its bytes per session.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use tower_sessions_core::SessionStore as _;
use tower_sessions_core::session::Id;
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::*;

use crate::common::report::{Footprint, Report};
use crate::common::runner;
use crate::services;
use crate::{Args, Workload, record, user_ids};

/// Concurrency of untimed setup work.
const SETUP_CONCURRENCY: usize = 64;

/// Creates `ids.len()` records (record `i` with id `ids[i]` for user `users[i % users.len()]`).
async fn create_all(
    store: &Arc<RedisStore<Pool>>,
    ids: &Arc<Vec<Id>>,
    users: &Arc<Vec<String>>,
) -> Result<()> {
    let (store, ids, users) = (store.clone(), ids.clone(), users.clone());
    runner::collect(ids.len() as u64, SETUP_CONCURRENCY, move |i| {
        let (store, ids, users) = (store.clone(), ids.clone(), users.clone());
        async move {
            let mut record = record(ids[i as usize], &users[i as usize % users.len()]);
            store.create(&mut record).await.map_err(|e| e.to_string())?;
            if record.id != ids[i as usize] {
                return Err("the id collided and was replaced".to_owned());
            }
            Ok(())
        }
    })
    .await
    .map_err(anyhow::Error::msg)?;
    Ok(())
}

fn fresh_ids(n: u64) -> Arc<Vec<Id>> {
    Arc::new((0..n).map(|_| Id::default()).collect())
}

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
