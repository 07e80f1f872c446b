//! `session-bench`: measures session-management's stores, and the raw clients doing the same round
//! trips (the limit), at a given concurrency. See `BENCHMARKS.md` and `scripts/bench`.
//!
//! Every run uses its own PostgreSQL database and Redis key prefixes and removes them at the end;
//! every operation checks its result, and post-run checks make sure writes really reached the durable
//! store and reads were served by the tier the workload names. A run with a failed operation or
//! check is reported as invalid and exits with status 1.

mod args;
mod common;
#[path = "../../session-management/tests/support/fault_proxy.rs"]
mod fault_proxy;
mod footprint;
mod limit;
mod ours;
mod probe;
mod services;
mod table;
mod workloads;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;

use crate::args::Args;
use crate::services::Services;

/// The same allocator as `sessionctl`, for ours, the limit and the peer alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.table {
        return match table::render_file(path) {
            Ok((markdown, complete)) => {
                print!("{markdown}");
                if complete {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(err) => {
                eprintln!("session-bench: {err:#}");
                ExitCode::from(2)
            }
        };
    }
    let Some(backend) = args.backend else {
        eprintln!("session-bench: --backend is required");
        return ExitCode::from(2);
    };
    probe::install();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = args.worker_threads {
        builder.worker_threads(threads);
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("session-bench: cannot start the runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let worker_threads = runtime.metrics().num_workers();
    let services = Arc::new(Services::new(&args.postgres_url, &args.redis_url));
    let result = runtime.block_on(async {
        // On its own task, so that a panic or Ctrl-C still lets the cleanup below run.
        let (task_args, task_services) = (args.clone(), services.clone());
        let task = tokio::spawn(async move {
            if backend.is_raw() {
                limit::run(backend, &task_args, &task_services).await
            } else {
                workloads::run(backend, &task_args, &task_services).await
            }
        });
        let abort = task.abort_handle();
        let result = tokio::select! {
            joined = task => joined.unwrap_or_else(|err| Err(anyhow::anyhow!("the run failed: {err}"))),
            _ = tokio::signal::ctrl_c() => {
                abort.abort();
                Err(anyhow::anyhow!("interrupted"))
            }
        };
        for problem in services.cleanup().await {
            eprintln!("session-bench: cleanup: {problem}");
        }
        result
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
            eprintln!("session-bench: {err:#}");
            ExitCode::from(2)
        }
    }
}
