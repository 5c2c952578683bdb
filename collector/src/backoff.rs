//! Exponential backoff with jitter for retrying deliveries.

use std::time::Duration;

/// First retry delay.
pub const BASE: Duration = Duration::from_millis(100);
/// Longest delay between two attempts.
pub const CAP: Duration = Duration::from_secs(30);

/// The delay before retry number `attempt` (0 for the first retry): `min(cap, base * 2^attempt)`
/// with "equal jitter": half of it fixed, the other half scaled by `jitter` (in `[0, 1]`,
/// clamped), so that many collectors do not retry in step while each still waits at least half
/// the exponential delay.
pub fn delay(attempt: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX));
    let full = exp.min(cap);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// [`delay`] with [`BASE`], [`CAP`] and a random jitter, never shorter than `at_least` (the
/// server's `Retry-After`) nor longer than [`CAP`] plus `at_least`.
pub fn next_delay(attempt: u32, at_least: Option<Duration>) -> Duration {
    let d = delay(attempt, BASE, CAP, rand::random::<f64>());
    match at_least {
        Some(min) => d.max(min.min(Duration::from_secs(300))),
        None => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_then_caps() {
        let b = Duration::from_millis(100);
        let cap = Duration::from_secs(30);
        assert_eq!(delay(0, b, cap, 1.0), Duration::from_millis(100));
        assert_eq!(delay(1, b, cap, 1.0), Duration::from_millis(200));
        assert_eq!(delay(3, b, cap, 1.0), Duration::from_millis(800));
        assert_eq!(delay(9, b, cap, 1.0), Duration::from_secs(30));
        assert_eq!(delay(1000, b, cap, 1.0), Duration::from_secs(30));
    }

    #[test]
    fn jitter_spans_the_upper_half() {
        let b = Duration::from_millis(100);
        let cap = Duration::from_secs(30);
        assert_eq!(delay(2, b, cap, 0.0), Duration::from_millis(200));
        assert_eq!(delay(2, b, cap, 0.5), Duration::from_millis(300));
        assert_eq!(delay(2, b, cap, 7.0), Duration::from_millis(400));
        assert_eq!(delay(2, b, cap, -1.0), Duration::from_millis(200));
    }

    #[test]
    fn retry_after_is_respected() {
        for attempt in 0..5 {
            let d = next_delay(attempt, Some(Duration::from_secs(2)));
            assert!(d >= Duration::from_secs(2), "{d:?}");
        }
        assert!(next_delay(50, None) <= CAP);
    }
}
