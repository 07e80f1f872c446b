//! Command-line arguments.

use clap::{Parser, ValueEnum};

/// Benchmarks session-management's stores, and the raw clients doing the same round trips (the
/// limit), at a given concurrency. Prints one report per run (`--json`: one JSON object).
#[derive(Debug, Clone, Parser)]
#[command(name = "session-bench", version)]
pub struct Args {
    /// The store under test, or a raw client (the limit).
    #[arg(long, value_enum, required_unless_present = "table")]
    pub backend: Option<Backend>,
    /// What every operation does (ignored by the raw backends, which do one thing each).
    #[arg(long, value_enum, default_value = "validate")]
    pub workload: Workload,
    /// Operations in the timed section (rows for `raw-pg-insert-batch64`).
    #[arg(long, default_value_t = 20_000)]
    pub ops: u64,
    /// Concurrent tasks issuing operations.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    pub worker_threads: Option<usize>,
    /// Sessions (or keys) pre-created for the read workloads; operation `i` reads number `i % N`.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: u64,
    /// Users pre-created for the create workloads; sessions are spread over them round-robin.
    #[arg(long, default_value_t = 1_000)]
    pub users: u64,
    /// After the timed section, measure bytes per session over this many creates (one user each)
    /// under a fresh key prefix (postgres and tiered backends). 0 skips the pass.
    #[arg(long, default_value_t = 0)]
    pub footprint: u64,
    /// Run the store's background upkeep (outbox replay, breaker probe) during the run, as a
    /// server does (tiered backend).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub background: bool,
    /// PostgreSQL admin URL; the run creates its own `sm_bench_<random>` database and drops it.
    #[arg(
        long,
        env = "SM_TEST_POSTGRES_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres_url: String,
    /// Redis URL; the run uses its own key prefixes and deletes their keys (SCAN + UNLINK).
    #[arg(
        long,
        env = "SM_TEST_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Instead of running anything, print the Markdown comparison of the JSON reports in this file
    /// (one per line, as `scripts/bench` collects them from session-bench and peer-bench).
    #[arg(long, value_name = "FILE", conflicts_with = "backend")]
    pub table: Option<std::path::PathBuf>,
}

/// The store under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// `MemoryStore`.
    Memory,
    /// `SqliteStore` on a file in a temporary directory.
    Sqlite,
    /// `PostgresStore`.
    Postgres,
    /// `TieredStore`: Redis in front of `PostgresStore` with its invalidation outbox.
    Tiered,
    /// The limit for validate: one raw `GET` per operation (redis crate, `ConnectionManager`).
    RawRedis,
    /// The limit for create: one single-row `INSERT` into our `sessions` table per operation (sqlx).
    RawPgInsert,
    /// The batched limit for create: 64-row `INSERT`s into our `sessions` table (ops = rows).
    RawPgInsertBatch64,
    /// The limit for validate-fallback: one `SELECT` of a session row by id per operation (sqlx).
    RawPgSelect,
}

impl Backend {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Tiered => "tiered",
            Self::RawRedis => "raw-redis",
            Self::RawPgInsert => "raw-pg-insert",
            Self::RawPgInsertBatch64 => "raw-pg-insert-batch64",
            Self::RawPgSelect => "raw-pg-select",
        }
    }

    /// Whether this is a raw client (the limit) rather than one of our stores.
    pub fn is_raw(self) -> bool {
        matches!(
            self,
            Self::RawRedis | Self::RawPgInsert | Self::RawPgInsertBatch64 | Self::RawPgSelect
        )
    }
}

/// What every timed operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// `create_session` for a pre-created user.
    Create,
    /// `validate` of a pre-created session; every one must return it.
    Validate,
    /// `validate` with Redis cut off (tiered only): the breaker is open, PostgreSQL answers.
    ValidateFallback,
    /// `touch` of a session past half its TTL, so every one extends it (one session per op).
    Touch,
    /// `revoke` of a pre-created session (one session per op).
    Revoke,
    /// 90% validate, 5% create, 5% revoke, interleaved.
    Mixed,
}

impl Workload {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Validate => "validate",
            Self::ValidateFallback => "validate-fallback",
            Self::Touch => "touch",
            Self::Revoke => "revoke",
            Self::Mixed => "mixed",
        }
    }
}
