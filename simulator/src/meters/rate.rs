//! A token bucket on tokio time that holds a rate of rows per second across batches: a batch of n
//! rows waits until n tokens have accrued, so the long-run rate is exact whatever the batch size.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` tokens per second; a full bucket holds `burst` tokens (one batch). Starts full, so
    /// the first batch leaves at once; over any span T at most `rate * T + burst` tokens are taken.
    pub fn new(rate: f64, burst: f64) -> TokenBucket {
        let capacity = burst.max(1.0);
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = now;
    }

    /// How long to wait before `n` tokens are available (zero when they are), without taking them.
    pub fn delay_for(&mut self, n: f64, now: Instant) -> Duration {
        self.refill(now);
        let need = n.min(self.capacity) - self.tokens;
        if need <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(need / self.rate)
        }
    }

    /// Waits until `n` tokens are there and takes them. Batches bigger than the bucket go into debt,
    /// which later batches repay, so the average stays at `rate`.
    pub async fn acquire(&mut self, n: usize) {
        let n = n as f64;
        loop {
            let delay = self.delay_for(n, Instant::now());
            if delay.is_zero() {
                break;
            }
            tokio::time::sleep_until(Instant::now() + delay).await;
        }
        self.tokens -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn holds_the_rate_over_many_batches() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1000.0, 500.0);
        for _ in 0..20 {
            bucket.acquire(500).await;
        }
        // 10 000 rows at 1000 rows/s; the first batch of 500 leaves at once from the full bucket.
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(9_490) && elapsed <= Duration::from_millis(9_510),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn batches_larger_than_the_bucket_still_average_out() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 10.0);
        for _ in 0..10 {
            bucket.acquire(50).await;
        }
        // 500 rows at 100 rows/s; the last batch's debt is not waited for.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((4.4..=5.1).contains(&elapsed), "{elapsed}");
    }
}
