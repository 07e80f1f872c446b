//! Runs a number of calls spread over concurrent tokio tasks, timing every call.
//!
//! Every task takes the next call index from a shared counter until all are taken, so `C` tasks keep
//! `C` calls in flight until the end. The clock starts once every task is spawned and waiting at a
//! barrier, and stops when the last task is done.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How many distinct error messages a run keeps (the count covers every failure).
const KEPT_ERRORS: usize = 5;

/// What a timed run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency of every call, in nanoseconds, failed calls included.
    pub latencies_ns: Vec<u64>,
    /// Calls that returned an error (a store error or a wrong result).
    pub failures: u64,
    /// The first few distinct error messages.
    pub errors: Vec<String>,
    /// Wall time from the start signal to the end of the last call.
    pub elapsed: Duration,
}

/// Runs `op(0..calls)` on `concurrency` tasks of the current runtime. `op` returns `Err(reason)`
/// for a failure, which is counted and never stops the run.
pub async fn run<F, Fut>(calls: u64, concurrency: usize, op: F) -> Outcome
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let tasks = concurrency.max(1);
    let start = Arc::new(tokio::sync::Barrier::new(tasks + 1));
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (op, next, start) = (op.clone(), next.clone(), start.clone());
        handles.push(tokio::spawn(async move {
            let mut mine = Outcome {
                latencies_ns: Vec::with_capacity((calls as usize / tasks) + 1),
                ..Outcome::default()
            };
            start.wait().await;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= calls {
                    return mine;
                }
                let began = Instant::now();
                let result = op(i).await;
                mine.latencies_ns.push(began.elapsed().as_nanos() as u64);
                if let Err(err) = result {
                    mine.failures += 1;
                    if mine.errors.len() < KEPT_ERRORS && !mine.errors.contains(&err) {
                        mine.errors.push(err);
                    }
                }
            }
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut total = Outcome {
        latencies_ns: Vec::with_capacity(calls as usize),
        ..Outcome::default()
    };
    for handle in handles {
        match handle.await {
            Ok(part) => {
                total.latencies_ns.extend(part.latencies_ns);
                total.failures += part.failures;
                for err in part.errors {
                    if total.errors.len() < KEPT_ERRORS && !total.errors.contains(&err) {
                        total.errors.push(err);
                    }
                }
            }
            Err(err) => {
                total.failures += 1;
                total.errors.push(format!("worker task failed: {err}"));
            }
        }
    }
    total.elapsed = began.elapsed();
    total
}

/// Computes `f(0..n)` on `concurrency` tasks (untimed setup work: users, sessions, keys) and returns
/// the results in index order, or the first error.
pub async fn collect<T, F, Fut>(n: u64, concurrency: usize, f: F) -> Result<Vec<T>, String>
where
    T: Send + 'static,
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, String>> + Send + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (f, next) = (f.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, String>(mine);
                }
                mine.push((i, f(i).await?));
            }
        }));
    }
    let mut all = Vec::with_capacity(n as usize);
    for handle in handles {
        all.extend(handle.await.map_err(|err| err.to_string())??);
    }
    all.sort_unstable_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, value)| value).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_call_runs_once_and_failures_are_counted() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let outcome = run(1000, 8, move |i| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(i);
                if i % 100 == 0 {
                    Err(format!("call {}", i % 3))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert_eq!(outcome.latencies_ns.len(), 1000);
        assert_eq!(outcome.failures, 10);
        assert_eq!(outcome.errors.len(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn collect_keeps_index_order_and_stops_on_errors() {
        let squares = collect(100, 7, |i| async move { Ok(i * i) }).await.unwrap();
        assert_eq!(squares, (0..100).map(|i| i * i).collect::<Vec<_>>());
        let failed = collect(10, 2, |i| async move {
            if i == 5 {
                Err("five".to_owned())
            } else {
                Ok(i)
            }
        })
        .await;
        assert_eq!(failed, Err("five".to_owned()));
    }
}
