//! `peer-bench`: tower-sessions' `RedisStore` (fred) and `PostgresStore` (sqlx), called directly
//! through their `SessionStore` trait with session-bench's record shape, concurrency, checks and
//! report (this crate includes `crates/session-bench/src/common`), so the numbers compare with
//! ours run for run.
//!
//! The peer's Redis keys are bare session ids (22 base64url characters, no namespace), so this
//! binary records every id it writes and deletes exactly those at the end (they carry a 1 h expiry
//! anyway). Its PostgreSQL table lives in its own `sm_bench_<random>` database, dropped at the end.

#[path = "../../../crates/session-bench/src/common/mod.rs"]
#[allow(dead_code, reason = "shared with session-bench, which uses all of it")]
mod common;
mod postgres;
mod redis;
mod services;
mod workload;

use std::collections::HashMap;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};

use crate::common::report::Report;
use crate::common::shape::{IP, TTL_SECS, USER_AGENT};

/// Runs one workload on one of tower-sessions' stores and prints one report.
#[derive(Debug, Clone, Parser)]
#[command(name = "peer-bench", version)]
pub struct Args {
    /// What every operation does.
    #[arg(long, value_enum)]
    pub workload: Workload,
    /// Operations in the timed section.
    #[arg(long, default_value_t = 20_000)]
    pub ops: u64,
    /// Concurrent tasks issuing operations.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    pub worker_threads: Option<usize>,
    /// Sessions pre-created for the load workloads; operation `i` loads number `i % N`.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: u64,
    /// After the timed section, measure bytes per session over this many creates. 0 skips it.
    #[arg(long, default_value_t = 0)]
    pub footprint: u64,
    /// fred connections in the pool (1: one multiplexed connection, as session-management uses).
    #[arg(long, default_value_t = 1)]
    pub redis_pool: usize,
    /// PostgreSQL admin URL; the run creates its own database and drops it.
    #[arg(
        long,
        env = "SM_TEST_POSTGRES_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres_url: String,
    /// Redis URL.
    #[arg(
        long,
        env = "SM_TEST_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The peer's workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// `RedisStore::create` of a new record.
    RedisCreate,
    /// `RedisStore::load` of a pre-created record; every one must return it.
    RedisLoad,
    /// `PostgresStore::create` of a new record.
    PgCreate,
    /// `PostgresStore::load` of a pre-created record; every one must return it.
    PgLoad,
}

impl Workload {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::RedisCreate => "redis-create",
            Self::RedisLoad => "redis-load",
            Self::PgCreate => "pg-create",
            Self::PgLoad => "pg-load",
        }
    }
}

/// A record of the shared shape: ip, user agent and user id in the data, 1 h expiry.
pub fn record(id: Id, user_id: &str) -> Record {
    let data = HashMap::from([
        ("ip".to_owned(), serde_json::Value::from(IP)),
        ("user_agent".to_owned(), serde_json::Value::from(USER_AGENT)),
        ("user_id".to_owned(), serde_json::Value::from(user_id)),
    ]);
    Record {
        id,
        data,
        expiry_date: OffsetDateTime::now_utc() + time::Duration::seconds(TTL_SECS as i64),
    }
}

/// `n` user ids (UUID strings), one per session unless sessions are spread over fewer.
pub fn user_ids(n: u64) -> Vec<String> {
    (0..n.max(1))
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect()
}

/// The same allocator as ours, for a like-for-like comparison.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = args.worker_threads {
        builder.worker_threads(threads);
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("peer-bench: cannot start the runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let worker_threads = runtime.metrics().num_workers();
    let result: anyhow::Result<Report> = runtime.block_on(async {
        match args.workload {
            Workload::RedisCreate | Workload::RedisLoad => redis::run(&args).await,
            Workload::PgCreate | Workload::PgLoad => postgres::run(&args).await,
        }
    });
    match result {
        Ok(mut report) => {
            report.worker_threads = worker_threads;
            report.print(args.json);
            if report.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(err) => {
            eprintln!("peer-bench: {err:#}");
            ExitCode::from(2)
        }
    }
}
