//! `Batcher`: groups concurrent requests into one round trip (one `MGET`, one multi-row `INSERT`, one
//! `SELECT … = ANY`). A few worker tasks each take whatever requests are waiting, up to a maximum, and
//! run them together; while a batch is in flight the next one fills up. With one caller at a time a
//! batch is a single request, so nothing waits for company.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::{Error, Result};

type Job<Req, Resp> = (Req, oneshot::Sender<Result<Resp>>);

/// A queue of requests served in batches by background workers. Dropping it stops the workers once
/// the queue is empty.
pub struct Batcher<Req, Resp> {
    name: &'static str,
    queue: mpsc::Sender<Job<Req, Resp>>,
}

impl<Req, Resp> std::fmt::Debug for Batcher<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// Starts `workers` tasks on the current Tokio runtime. `run` gets up to `max_batch` requests and
    /// must return exactly one result per request, in order.
    pub fn spawn<F, Fut>(name: &'static str, max_batch: usize, workers: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<Resp>>> + Send + 'static,
    {
        let max_batch = max_batch.max(1);
        let (queue, receiver) = mpsc::channel::<Job<Req, Resp>>(max_batch * workers.max(1) * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let run = Arc::new(run);
        for _ in 0..workers.max(1) {
            let (receiver, run) = (receiver.clone(), run.clone());
            tokio::spawn(async move {
                loop {
                    let mut jobs = Vec::with_capacity(max_batch);
                    if receiver.lock().await.recv_many(&mut jobs, max_batch).await == 0 {
                        return;
                    }
                    let (requests, replies): (Vec<Req>, Vec<_>) = jobs.into_iter().unzip();
                    let count = requests.len();
                    metrics::histogram!("sm_batch_size", "batch" => name).record(count as f64);
                    let mut results = run(requests).await.into_iter();
                    for reply in replies {
                        let result = results.next().unwrap_or_else(|| {
                            Err(Error::Internal {
                                context: name,
                                source: "a batch returned fewer results than requests".into(),
                            })
                        });
                        // The caller may have given up (timeout); its answer is dropped.
                        let _ = reply.send(result);
                    }
                }
            });
        }
        Self { name, queue }
    }

    /// Queues one request and waits for its result.
    pub async fn call(&self, request: Req) -> Result<Resp> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::Internal {
            context: self.name,
            source: "the batch workers have stopped".into(),
        };
        self.queue
            .send((request, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// One result per request, all the same error (shared, so each keeps the source).
pub(crate) fn fail_all<T, E>(
    count: usize,
    err: E,
    wrap: impl Fn(Arc<E>) -> Error,
) -> Vec<Result<T>> {
    let shared = Arc::new(err);
    (0..count).map(|_| Err(wrap(shared.clone()))).collect()
}

/// Flat combining: callers queue their request; a caller that finds a leader's permit free runs the
/// waiting requests as one batch itself, in its own task (no hop through a worker when the load is
/// light: a request alone is its own batch). Under load, a caller leads one batch only and hands the
/// permit on to a short-lived drain task, which runs the next batches back to back until the queue
/// is empty, letting the callers it just answered queue their next requests first (bigger batches).
/// So no caller waits on anyone else's requests for longer than its own batch.
///
/// A leading caller that is cancelled (it timed out or went away) drops the answers of the batch it
/// held, so those callers get an error, as they would have timed out too; what is still queued is
/// handed to a drain task, so nobody waits for a caller that will never come.
pub struct Combiner<Req, Resp> {
    name: &'static str,
    max_batch: usize,
    queue: std::sync::Mutex<Vec<Job<Req, Resp>>>,
    /// How many batches may run at once (each leader holds a permit).
    leaders: Arc<tokio::sync::Semaphore>,
    #[allow(clippy::type_complexity)]
    run: Box<dyn Fn(Vec<Req>) -> BoxFuture<Vec<Result<Resp>>> + Send + Sync>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

impl<Req, Resp> std::fmt::Debug for Combiner<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Combiner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A leading caller's permit. Dropped while still armed (the caller was cancelled mid-batch), it
/// releases the permit and hands what is queued to a drain task.
struct Leadership<Req: Send + 'static, Resp: Send + 'static> {
    combiner: Arc<Combiner<Req, Resp>>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Drop for Leadership<Req, Resp> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.combiner.release(permit);
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Combiner<Req, Resp> {
    /// `run` gets up to `max_batch` requests and returns one result per request, in order.
    pub fn new<F, Fut>(name: &'static str, max_batch: usize, leaders: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<Resp>>> + Send + 'static,
    {
        Self {
            name,
            max_batch: max_batch.max(1),
            queue: std::sync::Mutex::new(Vec::new()),
            leaders: Arc::new(tokio::sync::Semaphore::new(leaders.max(1))),
            run: Box::new(move |requests| Box::pin(run(requests))),
        }
    }

    fn take(&self) -> Vec<Job<Req, Resp>> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.len() <= self.max_batch {
            std::mem::take(&mut *queue)
        } else {
            queue.drain(..self.max_batch).collect()
        }
    }

    fn queue_is_empty(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Queues one request and waits for its result, leading one batch when a permit is free.
    pub async fn call(self: &Arc<Self>, request: Req) -> Result<Resp> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((request, reply));
        if let Ok(permit) = self.leaders.clone().try_acquire_owned() {
            let mut leadership = Leadership {
                combiner: self.clone(),
                permit: Some(permit),
            };
            let ran = self.run_batch().await;
            if let Some(permit) = leadership.permit.take() {
                if ran > 1 {
                    // Under load: the next batches are a drain task's, not this caller's.
                    self.hand_off(permit);
                } else {
                    self.release(permit);
                }
            }
        }
        answer.await.map_err(|_| Error::Unavailable {
            store: self.name,
            source: "the batch carrying this request was cancelled".into(),
        })?
    }

    /// Runs what is queued (up to `max_batch`) as one batch and answers it; returns how many.
    async fn run_batch(&self) -> usize {
        let jobs = self.take();
        let count = jobs.len();
        if count == 0 {
            return 0;
        }
        let (requests, replies): (Vec<Req>, Vec<_>) = jobs.into_iter().unzip();
        let mut results = (self.run)(requests).await.into_iter();
        for reply in replies {
            let result = results.next().unwrap_or_else(|| {
                Err(Error::Internal {
                    context: self.name,
                    source: "a batch returned fewer results than requests".into(),
                })
            });
            let _ = reply.send(result);
        }
        count
    }

    /// Gives the permit to a new drain task.
    fn hand_off(self: &Arc<Self>, permit: tokio::sync::OwnedSemaphorePermit) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let combiner = self.clone();
            runtime.spawn(async move { combiner.drain(permit).await });
        }
    }

    /// Gives the permit back; a request queued meanwhile (its caller found no permit free) goes
    /// to a drain task.
    fn release(self: &Arc<Self>, permit: tokio::sync::OwnedSemaphorePermit) {
        drop(permit);
        if !self.queue_is_empty()
            && let Ok(permit) = self.leaders.clone().try_acquire_owned()
        {
            self.hand_off(permit);
        }
    }

    /// Runs batches until the queue is empty. Before each, lets the callers just answered (queued
    /// on this worker) run and queue their next requests, so the batch carries them.
    async fn drain(self: Arc<Self>, permit: tokio::sync::OwnedSemaphorePermit) {
        loop {
            tokio::task::yield_now().await;
            if self.run_batch().await == 0 {
                break;
            }
        }
        self.release(permit);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_are_grouped_and_each_gets_its_own_answer() {
        let batches = Arc::new(AtomicUsize::new(0));
        let counted = batches.clone();
        let batcher = Arc::new(Batcher::spawn("test", 64, 1, move |xs: Vec<u32>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                xs.into_iter().map(|x| Ok(x * 2)).collect()
            }
        }));
        let calls: Vec<_> = (0..100u32)
            .map(|x| {
                let batcher = batcher.clone();
                tokio::spawn(async move { (x, batcher.call(x).await.unwrap()) })
            })
            .collect();
        for call in calls {
            let (x, doubled) = call.await.unwrap();
            assert_eq!(doubled, x * 2);
        }
        let batches = batches.load(Ordering::SeqCst);
        assert!(
            (2..100).contains(&batches),
            "{batches} batches for 100 calls of at most 64"
        );
    }

    #[tokio::test]
    async fn a_short_batch_result_is_an_error_not_a_hang() {
        let batcher = Batcher::spawn("short", 8, 1, |_: Vec<u8>| async {
            Vec::<Result<u8>>::new()
        });
        assert!(matches!(batcher.call(1).await, Err(Error::Internal { .. })));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn combined_calls_are_grouped_and_each_gets_its_own_answer() {
        let batches = Arc::new(AtomicUsize::new(0));
        let counted = batches.clone();
        let combiner = Arc::new(Combiner::new("test", 64, 2, move |xs: Vec<u32>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                xs.into_iter().map(|x| Ok(x + 1)).collect()
            }
        }));
        let calls: Vec<_> = (0..200u32)
            .map(|x| {
                let combiner = combiner.clone();
                tokio::spawn(async move { (x, combiner.call(x).await.unwrap()) })
            })
            .collect();
        for call in calls {
            let (x, answer) = call.await.unwrap();
            assert_eq!(answer, x + 1);
        }
        let batches = batches.load(Ordering::SeqCst);
        assert!(
            (4..200).contains(&batches),
            "{batches} batches for 200 calls"
        );
        // Alone, a call is its own batch and nothing waits.
        assert_eq!(combiner.call(7).await.unwrap(), 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leading_caller_returns_while_others_keep_calling() {
        let combiner = Arc::new(Combiner::new("test", 8, 1, |xs: Vec<u32>| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            xs.into_iter().map(|x| Ok(x + 1)).collect()
        }));
        // The first caller leads (one permit); while its batch is in flight, callers that never
        // let the queue run dry queue up behind it.
        let first = tokio::spawn({
            let combiner = combiner.clone();
            async move { combiner.call(100).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load: Vec<_> = (0..16u32)
            .map(|x| {
                let (combiner, stop) = (combiner.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        assert_eq!(combiner.call(x).await.unwrap(), x + 1);
                    }
                })
            })
            .collect();
        // It gets its answer and returns, although the queue never empties: it is not kept
        // leading everybody else's batches.
        let answer = tokio::time::timeout(Duration::from_secs(5), first)
            .await
            .expect("the leading caller kept leading while others kept calling");
        assert_eq!(answer.unwrap().unwrap(), 101);
        stop.store(true, Ordering::SeqCst);
        for task in load {
            task.await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_queued_behind_a_cancelled_leader_are_still_answered() {
        let combiner = Arc::new(Combiner::new("test", 64, 1, |xs: Vec<u32>| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            xs.into_iter().map(|x| Ok(x * 10)).collect()
        }));
        // The leader's batch is in flight when two more callers queue behind it (one permit).
        let leader = tokio::spawn({
            let combiner = combiner.clone();
            async move { combiner.call(1).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let followers: Vec<_> = [2, 3]
            .map(|x| {
                let combiner = combiner.clone();
                tokio::spawn(async move { combiner.call(x).await })
            })
            .into_iter()
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        // A new leader takes over: they are answered, not left waiting for another caller.
        for (follower, x) in followers.into_iter().zip([2, 3]) {
            let answer = tokio::time::timeout(Duration::from_secs(5), follower)
                .await
                .expect("a queued request was stranded by its cancelled leader")
                .unwrap();
            assert_eq!(answer.unwrap(), x * 10);
        }
    }

    #[tokio::test]
    async fn a_cancelled_leader_fails_its_batch_and_later_calls_still_work() {
        let combiner = Arc::new(Combiner::new("slow", 8, 1, |xs: Vec<u64>| async move {
            tokio::time::sleep(Duration::from_millis(xs[0])).await;
            xs.into_iter().map(Ok).collect()
        }));
        let slow = tokio::time::timeout(Duration::from_millis(10), combiner.call(1000)).await;
        assert!(slow.is_err(), "the caller gave up");
        assert_eq!(combiner.call(1).await.unwrap(), 1);
    }

    #[test]
    fn fail_all_gives_one_error_per_request() {
        let results: Vec<Result<()>> =
            fail_all(3, std::io::Error::other("down"), |e| Error::Unavailable {
                store: "test",
                source: Box::new(e),
            });
        assert_eq!(results.len(), 3);
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(Error::Unavailable { .. })))
        );
    }
}
