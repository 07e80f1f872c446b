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

/// Flat combining: callers queue their request; whoever finds no batch running becomes the leader and
/// runs everything queued, in its own task, until the queue is empty. No worker task, so a follower
/// costs one wake-up (its answer), not two. A leader that is cancelled (its caller timed out or went
/// away) drops the answers of the batch it held, so those callers get an error, as they would have
/// timed out too; the requests still queued behind it are handed to a new leader task, so nobody
/// waits for a caller that will never come.
pub struct Combiner<Req, Resp> {
    name: &'static str,
    max_batch: usize,
    queue: std::sync::Mutex<Vec<Job<Req, Resp>>>,
    /// How many batches may run at once (each leader holds a permit).
    leaders: tokio::sync::Semaphore,
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

/// A leader's permit; dropped before the leader finished (cancelled), it hands what is still queued
/// to a new leader task.
struct Leadership<'a, Req: Send + 'static, Resp: Send + 'static> {
    combiner: &'a Arc<Combiner<Req, Resp>>,
    permit: Option<tokio::sync::SemaphorePermit<'a>>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Leadership<'_, Req, Resp> {
    /// The leader ran until the queue was empty: no hand-off.
    fn finish(mut self) {
        self.permit.take();
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Drop for Leadership<'_, Req, Resp> {
    fn drop(&mut self) {
        if self.permit.take().is_none() || self.combiner.queue_is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let combiner = self.combiner.clone();
            runtime.spawn(async move { combiner.lead().await });
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
            leaders: tokio::sync::Semaphore::new(leaders.max(1)),
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

    /// Queues one request and waits for its result, leading batches while nobody else does.
    pub async fn call(self: &Arc<Self>, request: Req) -> Result<Resp> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((request, reply));
        self.lead().await;
        answer.await.map_err(|_| Error::Unavailable {
            store: self.name,
            source: "the batch carrying this request was cancelled".into(),
        })?
    }

    /// Runs batches while a leader's permit is free and requests are queued.
    async fn lead(self: &Arc<Self>) {
        while let Ok(permit) = self.leaders.try_acquire() {
            let leadership = Leadership {
                combiner: self,
                permit: Some(permit),
            };
            loop {
                let jobs = self.take();
                if jobs.is_empty() {
                    break;
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
                // Let the callers just answered (queued on this worker) run and queue their next
                // requests, so the next batch carries them instead of leaving with a few.
                tokio::task::yield_now().await;
            }
            leadership.finish();
            // A request queued after the last take, while we still led, is ours to run.
            if self.queue_is_empty() {
                break;
            }
        }
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
