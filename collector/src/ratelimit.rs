//! A token bucket limiting the lines read per second from one namespace.
//!
//! Lines over the limit are held back, never dropped: the runtime asks
//! [`RateLimiter::try_take`] before handing lines on and, when refused, waits
//! [`RateLimiter::wait_time`] before reading more. Time is passed in, so tests are exact.
//! Tokens are counted in billionths, so refills are exact to the nanosecond.

use std::time::{Duration, Instant};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A token bucket of `burst` lines refilled at `lines_per_sec`; see the module docs.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Lines per second; 0 means no limit.
    rate: u64,
    burst: u64,
    /// `burst` in billionths of a token.
    capacity: i128,
    /// Tokens in billionths as of `last`; negative after an oversized take.
    tokens: i128,
    /// The time of the last take; `None` before the first, when the bucket is full.
    last: Option<Instant>,
}

impl RateLimiter {
    /// A bucket holding `burst` lines (0 means `lines_per_sec`, as in the config), full at
    /// first use. `lines_per_sec == 0` means no limit.
    pub fn new(lines_per_sec: u64, burst: u64) -> Self {
        let burst = if burst == 0 { lines_per_sec } else { burst };
        let capacity = (u128::from(burst) * NANOS_PER_SEC) as i128;
        RateLimiter {
            rate: lines_per_sec,
            burst,
            capacity,
            tokens: capacity,
            last: None,
        }
    }

    /// The bucket for a `[[collector.rate_limits]]` rule.
    pub fn from_config(rule: &trawl_config::RateLimit) -> Self {
        RateLimiter::new(rule.lines_per_sec, rule.effective_burst())
    }

    fn available(&self, now: Instant) -> i128 {
        let Some(last) = self.last else {
            return self.tokens;
        };
        let elapsed = now.saturating_duration_since(last).as_nanos();
        let added = elapsed.saturating_mul(u128::from(self.rate));
        let room = (self.capacity - self.tokens).max(0) as u128;
        self.tokens + added.min(room) as i128
    }

    /// Takes `n` tokens if the bucket holds them and says whether it did. A take larger than
    /// `burst` succeeds when the bucket is full and leaves it in debt, so that big batches
    /// are slowed down rather than refused forever.
    pub fn try_take(&mut self, n: u64, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let available = self.available(now);
        self.last = Some(self.last.map_or(now, |last| last.max(now)));
        let need = (u128::from(n) * NANOS_PER_SEC) as i128;
        let ok = available >= need || (n > self.burst && available >= self.capacity);
        self.tokens = if ok { available - need } else { available };
        ok
    }

    /// How long from `now` until `try_take(n)` would succeed; zero if it would now.
    pub fn wait_time(&self, n: u64, now: Instant) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let need = (u128::from(n.min(self.burst)) * NANOS_PER_SEC) as i128;
        let deficit = need - self.available(now);
        if deficit <= 0 {
            return Duration::ZERO;
        }
        let nanos = (deficit as u128).div_ceil(u128::from(self.rate));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn burst_then_sustained_rate() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(10, 5);
        for _ in 0..5 {
            assert!(rl.try_take(1, t0));
        }
        assert!(!rl.try_take(1, t0));
        assert_eq!(rl.wait_time(1, t0), 100 * MS);
        assert_eq!(rl.wait_time(3, t0), 300 * MS);
        assert!(!rl.try_take(1, t0 + 99 * MS));
        assert_eq!(rl.wait_time(1, t0 + 99 * MS), MS);
        assert!(rl.try_take(1, t0 + 100 * MS));
        assert!(!rl.try_take(1, t0 + 100 * MS));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert!(rl.try_take(5, later));
        assert!(!rl.try_take(1, later));
    }

    #[test]
    fn refusal_takes_nothing() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(10, 5);
        assert!(rl.try_take(4, t0));
        assert!(!rl.try_take(2, t0));
        assert!(rl.try_take(1, t0));
        assert_eq!(rl.wait_time(2, t0), 200 * MS);
    }

    #[test]
    fn oversized_take_waits_for_a_full_bucket_then_goes_into_debt() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(10, 5);
        assert!(rl.try_take(8, t0));
        assert_eq!(rl.wait_time(1, t0), 400 * MS);
        assert!(rl.try_take(1, t0 + 400 * MS));
        assert!(!rl.try_take(8, t0 + 500 * MS));
        assert_eq!(rl.wait_time(8, t0 + 500 * MS), 400 * MS);
        assert!(rl.try_take(8, t0 + 900 * MS));
    }

    #[test]
    fn zero_burst_means_rate_and_zero_rate_means_unlimited() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(3, 0);
        assert!(rl.try_take(3, t0));
        assert!(!rl.try_take(1, t0));
        assert_eq!(rl.wait_time(1, t0), Duration::from_nanos(333_333_334));
        let mut free = RateLimiter::new(0, 0);
        assert!(free.try_take(1_000_000, t0));
        assert_eq!(free.wait_time(1_000_000, t0), Duration::ZERO);
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut rl = RateLimiter::new(1, 1);
        assert!(rl.try_take(1, t0));
        assert!(!rl.try_take(1, t0 - Duration::from_secs(5)));
        assert!(rl.try_take(1, t0 + Duration::from_secs(1)));
    }
}
