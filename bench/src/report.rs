//! Output: one line per metric, `<scenario> <metric> <value> <unit> [vs <other> <value> ratio <r>]`,
//! and the percentile arithmetic behind latency figures.

use std::time::Duration;

/// Prints `<scenario> <metric> <value> <unit>`.
pub fn metric(scenario: &str, name: &str, value: f64, unit: &str) {
    println!("{scenario} {name} {} {unit}", fmt(value));
}

/// Prints `<scenario> <metric> <value> <unit> vs <other> <other_value> ratio <value/other>`.
pub fn compare(scenario: &str, name: &str, value: f64, unit: &str, other: &str, other_value: f64) {
    let ratio = if other_value == 0.0 {
        f64::NAN
    } else {
        value / other_value
    };
    println!(
        "{scenario} {name} {} {unit} vs {other} {} ratio {ratio:.3}",
        fmt(value),
        fmt(other_value)
    );
}

/// Prints `<scenario> <metric> unavailable <reason>`: the product part measured is not there.
pub fn unavailable(scenario: &str, name: &str, reason: &str) {
    let reason: String = reason.chars().take(300).collect();
    println!(
        "{scenario} {name} unavailable ({})",
        reason.replace('\n', " ")
    );
}

/// Prints `<scenario> <metric> <text>` for a non-numeric fact (machine, settings).
pub fn info(scenario: &str, name: &str, text: &str) {
    println!("{scenario} {name} {text}");
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return "nan".into();
    }
    let a = v.abs();
    if a >= 1000.0 || v == v.trunc() && a >= 10.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// The `p`th percentile (0..=100) by nearest rank; `None` for no samples.
pub fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Milliseconds as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints p50 and p99 (ms) of `samples` as two metrics `<name>_p50` and `<name>_p99`.
pub fn percentiles(scenario: &str, name: &str, samples: &[Duration]) {
    match (percentile(samples, 50.0), percentile(samples, 99.0)) {
        (Some(p50), Some(p99)) => {
            metric(scenario, &format!("{name}_p50"), ms(p50), "ms");
            metric(scenario, &format!("{name}_p99"), ms(p99), "ms");
        }
        _ => unavailable(scenario, name, "no samples"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&s, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&s[..1], 99.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn number_format() {
        assert_eq!(fmt(1234.56), "1235");
        assert_eq!(fmt(12.34), "12.3");
        assert_eq!(fmt(0.5), "0.50");
        assert_eq!(fmt(0.01234), "0.0123");
        assert_eq!(fmt(20.0), "20");
    }
}
