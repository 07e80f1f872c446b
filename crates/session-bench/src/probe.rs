//! A minimal `metrics` recorder that counts the library's counters (`sm_redis_hits_total`, …), so a
//! run can prove which tier served it. Labels are ignored: counters are summed by name. Gauges and
//! histograms are dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

static COUNTERS: OnceLock<RwLock<HashMap<String, Arc<AtomicU64>>>> = OnceLock::new();

fn counters() -> &'static RwLock<HashMap<String, Arc<AtomicU64>>> {
    COUNTERS.get_or_init(Default::default)
}

/// The recorder; install it once with [`install`].
struct Probe;

impl Recorder for Probe {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let name = key.name();
        if let Some(counter) = counters()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Counter::from_arc(counter.clone());
        }
        let mut all = counters().write().unwrap_or_else(|p| p.into_inner());
        Counter::from_arc(all.entry(name.to_owned()).or_default().clone())
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// Installs the recorder as the global one (once per process; later calls do nothing).
pub fn install() {
    let _ = metrics::set_global_recorder(Probe);
}

/// Every counter's current value.
pub fn snapshot() -> BTreeMap<String, u64> {
    counters()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(name, value)| (name.clone(), value.load(Ordering::Relaxed)))
        .collect()
}

/// What every counter gained from `before` to `after` (zero gains left out).
pub fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(name, &value)| (name.clone(), value - before.get(name).copied().unwrap_or(0)))
        .filter(|&(_, gained)| gained > 0)
        .collect()
}
