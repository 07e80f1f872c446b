//! `CircuitBreaker`: stops waiting on a dead Redis. After a few consecutive failures calls skip Redis
//! for a cool-down; then a probe (the tiered store's maintenance) decides whether it is back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What the breaker lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Redis is used.
    Closed,
    /// Redis is skipped until a probe succeeds.
    Open,
    /// The cool-down is over: one probe may try Redis.
    HalfOpen,
}

impl BreakerState {
    /// The value exported as the `sm_redis_breaker_state` gauge (0 closed, 1 half-open, 2 open).
    pub fn as_gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed { consecutive_failures: u32 },
    Open { since: Instant },
}

/// A consecutive-failure circuit breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    /// Mirrors `inner` being `Closed { consecutive_failures: 0 }`: the hot path reads only this.
    healthy: AtomicBool,
    inner: Mutex<Inner>,
    failure_threshold: u32,
    cool_down: Duration,
}

impl CircuitBreaker {
    /// Opens after `failure_threshold` consecutive failures; stays open at least `cool_down`.
    pub fn new(failure_threshold: u32, cool_down: Duration) -> Self {
        Self {
            healthy: AtomicBool::new(true),
            inner: Mutex::new(Inner::Closed {
                consecutive_failures: 0,
            }),
            failure_threshold: failure_threshold.max(1),
            cool_down,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a normal call may use Redis now.
    pub fn allows_calls(&self) -> bool {
        self.healthy.load(Ordering::Acquire) || matches!(*self.lock(), Inner::Closed { .. })
    }

    /// The current state, as seen from outside.
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { since } if since.elapsed() >= self.cool_down => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
        }
    }

    /// A call (or probe) succeeded: the breaker closes.
    pub fn record_success(&self) {
        if self.healthy.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.lock();
        *inner = Inner::Closed {
            consecutive_failures: 0,
        };
        self.healthy.store(true, Ordering::Release);
    }

    /// A call failed; returns `true` when this failure opened the breaker.
    pub fn record_failure(&self) -> bool {
        let mut inner = self.lock();
        self.healthy.store(false, Ordering::Release);
        match *inner {
            Inner::Closed {
                consecutive_failures,
            } => {
                let failures = consecutive_failures + 1;
                if failures >= self.failure_threshold {
                    *inner = Inner::Open {
                        since: Instant::now(),
                    };
                    true
                } else {
                    *inner = Inner::Closed {
                        consecutive_failures: failures,
                    };
                    false
                }
            }
            Inner::Open { .. } => {
                // A failed probe restarts the cool-down.
                *inner = Inner::Open {
                    since: Instant::now(),
                };
                false
            }
        }
    }

    /// Opens the breaker at once (used when Redis is known to be untrustworthy).
    pub fn trip(&self) {
        let mut inner = self.lock();
        self.healthy.store(false, Ordering::Release);
        *inner = Inner::Open {
            since: Instant::now(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(60));
        assert!(!breaker.record_failure());
        assert!(!breaker.record_failure());
        assert!(breaker.allows_calls());
        assert!(breaker.record_failure(), "the third failure opens it");
        assert!(!breaker.allows_calls());
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(60));
        breaker.record_failure();
        breaker.record_success();
        breaker.record_failure();
        assert!(breaker.allows_calls(), "failures were not consecutive");
    }

    #[test]
    fn half_open_after_the_cool_down_and_a_probe_closes_or_reopens_it() {
        let breaker = CircuitBreaker::new(1, Duration::from_millis(20));
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(!breaker.allows_calls(), "only the probe goes through");
        breaker.record_failure();
        assert_eq!(
            breaker.state(),
            BreakerState::Open,
            "a failed probe restarts the cool-down"
        );
        std::thread::sleep(Duration::from_millis(30));
        breaker.record_success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.allows_calls());
    }

    #[test]
    fn trip_opens_at_once() {
        let breaker = CircuitBreaker::new(5, Duration::from_secs(1));
        breaker.trip();
        assert!(!breaker.allows_calls());
    }
}
