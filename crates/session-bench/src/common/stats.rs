//! Latency percentiles (exact, from every recorded latency) and the process's peak memory.

use serde::Serialize;

/// Latency summary of one run, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest call.
    pub max_us: f64,
    /// Arithmetic mean.
    pub mean_us: f64,
}

/// Summarizes latencies given in nanoseconds (nearest-rank percentiles over every sample).
pub fn summarize(mut nanos: Vec<u64>) -> Summary {
    if nanos.is_empty() {
        return Summary::default();
    }
    nanos.sort_unstable();
    let rank = |q: f64| {
        let index = ((q * nanos.len() as f64).ceil() as usize).clamp(1, nanos.len()) - 1;
        nanos[index] as f64 / 1000.0
    };
    let sum: u128 = nanos.iter().map(|&n| u128::from(n)).sum();
    Summary {
        p50_us: rank(0.50),
        p99_us: rank(0.99),
        max_us: nanos[nanos.len() - 1] as f64 / 1000.0,
        mean_us: sum as f64 / nanos.len() as f64 / 1000.0,
    }
}

/// The peak resident set size of this process so far (`VmHWM` in `/proc/self/status`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = summarize((1..=100).map(|us| us * 1000).collect());
        assert_eq!(s.p50_us, 50.0);
        assert_eq!(s.p99_us, 99.0);
        assert_eq!(s.max_us, 100.0);
        assert_eq!(s.mean_us, 50.5);
        assert_eq!(summarize(vec![7000]).p99_us, 7.0);
        assert_eq!(summarize(Vec::new()).max_us, 0.0);
    }

    #[test]
    fn peak_rss_is_read_on_linux() {
        assert!(peak_rss_kib().is_some_and(|kib| kib > 0));
    }
}
