//! The result of one run, printed as text or as one JSON object (`--json`) that `scripts/bench`
//! collects. The harness and the peer print exactly this.

use std::collections::BTreeMap;

use serde::Serialize;

use super::runner::Outcome;
use super::stats::{self, Summary};

/// Bytes per stored session, measured by a dedicated pass of `sessions` creates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Footprint {
    /// Sessions created by the pass (one user each).
    pub sessions: u64,
    /// Redis `INFO memory` `used_memory` after minus before, over `sessions`. Server-wide, so other
    /// clients of a shared Redis add noise; compare with `redis_bytes_per_session_keys`.
    pub redis_bytes_per_session: Option<f64>,
    /// Sum of `MEMORY USAGE key SAMPLES 0` over every key the pass wrote, over `sessions`: this
    /// client's keys only (omits the expiry table's entry per key).
    pub redis_bytes_per_session_keys: Option<f64>,
    /// Redis keys the pass left, over `sessions` (2.0 = a session key and an index key per session).
    pub redis_keys_per_session: Option<f64>,
    /// `pg_total_relation_size` of the session table (heap, TOAST and indexes) after minus before,
    /// over `sessions`.
    pub pg_bytes_per_session: Option<f64>,
}

/// One run of one workload on one implementation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `ours`, `limit` or `peer`.
    pub implementation: String,
    /// The store (`tiered`, `raw-redis`, `tower-sessions-redis-store`, …).
    pub backend: String,
    /// The workload (`validate`, `create`, `get`, `redis-load`, …).
    pub workload: String,
    /// Operations done (rows for batched inserts).
    pub ops: u64,
    /// Concurrent tasks.
    pub concurrency: usize,
    /// Tokio worker threads.
    pub worker_threads: usize,
    /// What one latency sample covers: `op`, or `statement of 64 rows`.
    pub latency_unit: String,
    /// Failed operations; any makes the run invalid.
    pub failures: u64,
    /// The first few distinct failure messages.
    pub errors: Vec<String>,
    /// Post-run checks that did not hold (rows really written, reads really served by the tier
    /// under test, …); any makes the run invalid.
    pub failed_checks: Vec<String>,
    /// No failed operation and no failed check.
    pub valid: bool,
    /// Untimed setup (pre-created users, sessions, keys), in seconds.
    pub setup_secs: f64,
    /// Timed section, in seconds.
    pub elapsed_secs: f64,
    /// `ops` over `elapsed_secs`.
    pub ops_per_sec: f64,
    /// Latency percentiles.
    #[serde(flatten)]
    pub latency: Summary,
    /// Peak RSS of the process (`VmHWM`) at the end of the timed section, in KiB: setup included,
    /// the footprint pass not.
    pub peak_rss_kib: Option<u64>,
    /// Store counters seen during the timed section (e.g. `sm_redis_hits_total`).
    pub counters: BTreeMap<String, u64>,
    /// Bytes per session, when a footprint pass ran.
    pub footprint: Option<Footprint>,
    /// Anything worth knowing about how the numbers were made.
    pub notes: Vec<String>,
}

impl Report {
    /// A report of `outcome`, where `ops` operations were done in `outcome.latencies_ns.len()` calls.
    pub fn new(
        implementation: &str,
        backend: &str,
        workload: &str,
        ops: u64,
        concurrency: usize,
        outcome: Outcome,
    ) -> Self {
        let elapsed = outcome.elapsed.as_secs_f64();
        let calls = outcome.latencies_ns.len() as u64;
        Self {
            implementation: implementation.to_owned(),
            backend: backend.to_owned(),
            workload: workload.to_owned(),
            ops,
            concurrency,
            worker_threads: 0,
            latency_unit: if calls == ops {
                "op".to_owned()
            } else {
                format!("call of ~{} ops", ops.div_ceil(calls.max(1)))
            },
            failures: outcome.failures,
            errors: outcome.errors,
            failed_checks: Vec::new(),
            valid: outcome.failures == 0,
            setup_secs: 0.0,
            elapsed_secs: elapsed,
            ops_per_sec: if elapsed > 0.0 {
                ops as f64 / elapsed
            } else {
                0.0
            },
            latency: stats::summarize(outcome.latencies_ns),
            peak_rss_kib: stats::peak_rss_kib(),
            counters: BTreeMap::new(),
            footprint: None,
            notes: Vec::new(),
        }
    }

    /// Records a post-run check; a false one makes the run invalid.
    pub fn check(&mut self, holds: bool, what: impl FnOnce() -> String) {
        if !holds {
            self.failed_checks.push(what());
            self.valid = false;
        }
    }

    /// Prints the report: one JSON line, or a few lines of text.
    pub fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string(self).expect("a report serializes")
            );
            return;
        }
        println!(
            "{} {} {}: {} ops, concurrency {}, {:.1} ops/s; latency per {}: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; peak RSS {} KiB; setup {:.1} s",
            self.implementation,
            self.backend,
            self.workload,
            self.ops,
            self.concurrency,
            self.ops_per_sec,
            self.latency_unit,
            self.latency.p50_us,
            self.latency.p99_us,
            self.latency.max_us,
            self.peak_rss_kib
                .map_or_else(|| "?".to_owned(), |k| k.to_string()),
            self.setup_secs,
        );
        if !self.counters.is_empty() {
            println!("  counters: {:?}", self.counters);
        }
        if let Some(f) = &self.footprint {
            let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
            println!(
                "  footprint over {} sessions: Redis {} B/session (INFO delta), {} B/session (MEMORY USAGE of its keys), {} keys/session; PostgreSQL {} B/session",
                f.sessions,
                show(f.redis_bytes_per_session),
                show(f.redis_bytes_per_session_keys),
                f.redis_keys_per_session
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
                show(f.pg_bytes_per_session),
            );
        }
        for note in &self.notes {
            println!("  note: {note}");
        }
        if self.failures > 0 {
            println!(
                "  INVALID: {} of {} operations failed: {:?}",
                self.failures, self.ops, self.errors
            );
        }
        for check in &self.failed_checks {
            println!("  INVALID: {check}");
        }
    }
}
