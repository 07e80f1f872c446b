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
/// light: a request alone is its own batch). A caller leads one batch at most, so no caller waits on
/// anyone else's requests for longer than its own batch.
///
/// The answers of a batch are handed out in turn: each caller, once woken with its own, wakes the
/// next one (a [`Baton`]). So a batch wakes one task at a time, on the worker that got the reply,
/// instead of making its callers runnable all at once for other workers to steal: on a small
/// machine, that stealing cost more (thread wake-ups) than the work it spread. A caller passes the
/// baton as soon as it is polled, before its own work goes on, and Tokio runs a woken task from its
/// worker's LIFO slot only a few times in a row before queueing it where idle workers can take it, so
/// a long batch still spreads over the workers of a bigger machine. The leader's permit
/// travels with the answers; the last caller passes it on to a drain task that runs the next batch,
/// by then carrying the requests the callers just answered have queued.
///
/// A leading caller that is cancelled (it timed out or went away) drops the answers of the batch it
/// held, so those callers get an error, as they would have timed out too; what is still queued is
/// handed to a drain task, so nobody waits for a caller that will never come. A caller that goes
/// away while its answer is on the way passes the baton on all the same.
pub struct Combiner<Req: Send + 'static, Resp: Send + 'static> {
    name: &'static str,
    max_batch: usize,
    queue: std::sync::Mutex<Vec<Waiting<Req, Resp>>>,
    /// How many batches may run at once (each leader holds a permit).
    leaders: Arc<tokio::sync::Semaphore>,
    #[allow(clippy::type_complexity)]
    run: Box<dyn Fn(Vec<Req>) -> BoxFuture<Vec<Result<Resp>>> + Send + Sync>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// A queued request and where its answer goes.
type Waiting<Req, Resp> = (Req, oneshot::Sender<Answer<Req, Resp>>);
/// Where an answer goes, and the answer.
type Answered<Req, Resp> = (oneshot::Sender<Answer<Req, Resp>>, Result<Resp>);

impl<Req: Send + 'static, Resp: Send + 'static> std::fmt::Debug for Combiner<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Combiner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One caller's answer, and the baton for the callers after it.
struct Answer<Req: Send + 'static, Resp: Send + 'static> {
    result: Result<Resp>,
    _baton: Baton<Req, Resp>,
}

/// The rest of a batch's answers, and the permit of the batch. Dropped, it wakes the next caller
/// still waiting (skipping those who went away), or, at the end, passes the permit on.
struct Baton<Req: Send + 'static, Resp: Send + 'static> {
    rest: std::vec::IntoIter<Answered<Req, Resp>>,
    permit: Option<(Arc<Combiner<Req, Resp>>, tokio::sync::OwnedSemaphorePermit)>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Drop for Baton<Req, Resp> {
    fn drop(&mut self) {
        while let Some((reply, result)) = self.rest.next() {
            let baton = Baton {
                rest: std::mem::take(&mut self.rest),
                permit: self.permit.take(),
            };
            match reply.send(Answer {
                result,
                _baton: baton,
            }) {
                Ok(()) => return,
                // That caller went away: take the baton back and try the next one.
                Err(mut answer) => {
                    self.rest = std::mem::take(&mut answer._baton.rest);
                    self.permit = answer._baton.permit.take();
                }
            }
        }
        if let Some((combiner, permit)) = self.permit.take() {
            combiner.pass_on(permit);
        }
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
            self.combiner.pass_on(permit);
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

    fn take(&self) -> Vec<Waiting<Req, Resp>> {
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
            // Boxed: only a leader runs it, and it would size every caller's future.
            Box::pin(self.lead(Leadership {
                combiner: self.clone(),
                permit: Some(permit),
            }))
            .await;
        }
        let answer = answer.await.map_err(|_| Error::Unavailable {
            store: self.name,
            source: "the batch carrying this request was cancelled".into(),
        })?;
        // Dropping the rest of the answer wakes the next caller of the batch.
        answer.result
    }

    /// Runs what is queued (up to `max_batch`) as one batch and starts handing out its answers,
    /// the permit with them; with nothing queued, passes the permit on.
    async fn lead(&self, mut leadership: Leadership<Req, Resp>) {
        let jobs = self.take();
        if jobs.is_empty() {
            return; // `leadership` passes the permit on
        }
        let (requests, replies): (Vec<Req>, Vec<_>) = jobs.into_iter().unzip();
        let count = replies.len();
        let mut results = (self.run)(requests).await;
        if results.len() != count {
            results = (0..count)
                .map(|_| {
                    Err(Error::Internal {
                        context: self.name,
                        source: "a batch returned a wrong number of results".into(),
                    })
                })
                .collect();
        }
        let permit = leadership
            .permit
            .take()
            .map(|p| (leadership.combiner.clone(), p));
        drop(Baton {
            rest: replies
                .into_iter()
                .zip(results)
                .collect::<Vec<_>>()
                .into_iter(),
            permit,
        });
    }

    /// At the end of a batch: a drain task leads the next one if requests are waiting, else the
    /// permit is given back (and a request queued meanwhile, whose caller found no permit free,
    /// still gets a drain task).
    fn pass_on(self: &Arc<Self>, permit: tokio::sync::OwnedSemaphorePermit) {
        let permit = if self.queue_is_empty() {
            drop(permit);
            if self.queue_is_empty() {
                return;
            }
            match self.leaders.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => return, // another leader has it
            }
        } else {
            permit
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let combiner = self.clone();
            runtime.spawn(async move {
                let leadership = Leadership {
                    combiner: combiner.clone(),
                    permit: Some(permit),
                };
                combiner.lead(leadership).await;
            });
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

    #[tokio::test]
    async fn a_caller_gone_while_its_answer_waits_passes_the_baton_on() {
        let combiner = Arc::new(Combiner::new("test", 8, 1, |xs: Vec<u32>| async move {
            xs.into_iter().map(Ok).collect()
        }));
        let permit = combiner.leaders.clone().try_acquire_owned().unwrap();
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..4).map(|_| oneshot::channel()).unzip();
        let [mut first, gone, mut second, mut third] = <[_; 4]>::try_from(receivers).ok().unwrap();
        // This caller went away before its batch was answered.
        drop(gone);
        drop(Baton {
            rest: senders
                .into_iter()
                .zip([Ok(1), Ok(0), Ok(2), Ok(3)])
                .collect::<Vec<_>>()
                .into_iter(),
            permit: Some((combiner.clone(), permit)),
        });
        // One answer at a time: the next waits until the first caller lets go of its own.
        let answer = first.try_recv().expect("the first is answered");
        assert_eq!(answer.result.as_ref().ok(), Some(&1));
        assert!(matches!(
            second.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        drop(answer);
        // Skipping the caller that had gone, the second is answered; it goes away without
        // reading its answer, and the third still gets its own.
        assert!(matches!(
            third.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        drop(second);
        let answer = third.try_recv().expect("the third is answered");
        assert_eq!(answer.result.as_ref().ok(), Some(&3));
        assert_eq!(
            combiner.leaders.available_permits(),
            0,
            "the permit travels with the answers"
        );
        drop(answer);
        assert_eq!(
            combiner.leaders.available_permits(),
            1,
            "and comes back at the end"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_giving_up_at_any_moment_strand_nobody() {
        let combiner = Arc::new(Combiner::new("test", 16, 2, |xs: Vec<u32>| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            xs.into_iter().map(|x| Ok(x + 1)).collect()
        }));
        let calls: Vec<_> = (0..300u32)
            .map(|x| {
                let combiner = combiner.clone();
                tokio::spawn(async move {
                    if x % 3 == 0 {
                        // Gives up somewhere between queueing and reading its answer.
                        let patience = Duration::from_micros(u64::from(x % 7) * 500);
                        let _ = tokio::time::timeout(patience, combiner.call(x)).await;
                        None
                    } else {
                        Some(combiner.call(x).await)
                    }
                })
            })
            .collect();
        for (x, call) in (0..300u32).zip(calls) {
            let answer = tokio::time::timeout(Duration::from_secs(5), call)
                .await
                .unwrap_or_else(|_| panic!("call {x} was stranded"))
                .unwrap();
            if let Some(answer) = answer {
                assert_eq!(answer.unwrap(), x + 1);
            }
        }
        assert_eq!(
            combiner.leaders.available_permits(),
            2,
            "every permit came back"
        );
        assert!(combiner.queue_is_empty());
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
