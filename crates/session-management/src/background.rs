//! Background work a long-running process starts from its manager: the store's upkeep (for the
//! tiered store, probing Redis and replaying the invalidation outbox) a few times a second, and
//! sweeps of expired sessions in bounded batches. Stopped cleanly by [`Background::shutdown`].

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::manager::UserManager;

/// How often the background work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackgroundOptions {
    /// Store upkeep: the outbox replay bound ("a revoked session stops validating everywhere within
    /// about a second").
    pub maintain_every: Duration,
    /// Expired-session sweeps.
    pub sweep_every: Duration,
}

impl Default for BackgroundOptions {
    fn default() -> Self {
        Self {
            maintain_every: Duration::from_millis(250),
            sweep_every: Duration::from_secs(60),
        }
    }
}

/// The running background task. Dropping it stops the task too, without waiting.
#[derive(Debug)]
pub struct Background {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Background {
    pub(crate) fn start(manager: UserManager, options: BackgroundOptions) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut maintain = tokio::time::interval(options.maintain_every);
            let mut sweep = tokio::time::interval(options.sweep_every);
            maintain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = maintain.tick() => {
                        if let Err(err) = manager.store().maintain().await {
                            tracing::debug!(error = %err, "store upkeep failed; retrying");
                        }
                    }
                    _ = sweep.tick() => match manager.purge_expired().await {
                        Ok(swept) => {
                            metrics::counter!("sm_sweeps_total").increment(1);
                            metrics::counter!("sm_swept_sessions_total").increment(swept);
                            if swept > 0 {
                                tracing::info!(swept, "expired sessions swept");
                            }
                        }
                        Err(err) => tracing::warn!(error = %err, "expired-session sweep failed"),
                    },
                }
            }
        });
        Self {
            stop,
            task: Some(task),
        }
    }

    /// Stops the background work, letting the step in progress finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
