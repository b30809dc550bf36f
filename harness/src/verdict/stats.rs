//! Latency (insert → receipt) percentiles and delivery throughput.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Nearest-rank percentiles of latencies given in microseconds.
pub fn latency(mut us: Vec<u64>) -> Option<Latency> {
    if us.is_empty() {
        return None;
    }
    us.sort_unstable();
    let rank = |p: f64| {
        let i = ((p * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1;
        us[i] as f64 / 1000.0
    };
    Some(Latency {
        samples: us.len(),
        p50_ms: rank(0.50),
        p99_ms: rank(0.99),
        max_ms: *us.last().expect("non-empty") as f64 / 1000.0,
    })
}

/// Messages per second between the first and the last receipt.
pub fn throughput(receipts_us: &[u64]) -> Option<f64> {
    let first = receipts_us.iter().min()?;
    let last = receipts_us.iter().max()?;
    let span = (last - first) as f64 / 1e6;
    (receipts_us.len() > 1 && span > 0.0).then(|| receipts_us.len() as f64 / span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let l = latency((1..=100).map(|ms| ms * 1000).collect()).unwrap();
        assert_eq!(
            (l.samples, l.p50_ms, l.p99_ms, l.max_ms),
            (100, 50.0, 99.0, 100.0)
        );
        assert_eq!(latency(vec![]), None);
        assert_eq!(latency(vec![2500]).unwrap().p99_ms, 2.5);
    }

    #[test]
    fn throughput_over_the_receipt_span() {
        assert_eq!(throughput(&[0, 500_000, 1_000_000]), Some(3.0));
        assert_eq!(throughput(&[5]), None);
    }
}
