//! A small Zipf sampler: rank `k` (0-based) of `n` is drawn with probability proportional to
//! `1 / (k + 1)^s`, by binary search over a precomputed cumulative table.

use rand::Rng;

/// Draws ranks `0..n` with a Zipf distribution of exponent `s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// A sampler over `n` ranks (at least one: `n == 0` is treated as 1) with exponent `s`
    /// (1.0 is the classic law; a larger `s` concentrates the mass on the first ranks).
    pub fn new(n: usize, s: f64) -> Zipf {
        let n = n.max(1);
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 0..n {
            sum += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(sum);
        }
        for p in &mut cdf {
            *p /= sum;
        }
        Zipf { cdf }
    }

    /// The number of ranks.
    pub fn len(&self) -> usize {
        self.cdf.len()
    }

    /// Always false: a sampler has at least one rank.
    pub fn is_empty(&self) -> bool {
        self.cdf.is_empty()
    }

    /// The probability of rank `k`; 0 past the end.
    pub fn probability(&self, k: usize) -> f64 {
        match k {
            0 => self.cdf.first().copied().unwrap_or(0.0),
            k if k < self.cdf.len() => self.cdf[k] - self.cdf[k - 1],
            _ => 0.0,
        }
    }

    /// Draws one rank in `0..len()`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let u: f64 = rng.random();
        let k = self.cdf.partition_point(|&p| p < u);
        k.min(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn probabilities_follow_the_law() {
        let z = Zipf::new(3, 1.0);
        // 1, 1/2, 1/3 normalised by 11/6.
        assert!((z.probability(0) - 6.0 / 11.0).abs() < 1e-12);
        assert!((z.probability(1) - 3.0 / 11.0).abs() < 1e-12);
        assert!((z.probability(2) - 2.0 / 11.0).abs() < 1e-12);
        assert_eq!(z.probability(3), 0.0);
    }

    #[test]
    fn samples_stay_in_range_and_favour_low_ranks() {
        let z = Zipf::new(100, 1.1);
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0usize; 100];
        for _ in 0..20_000 {
            counts[z.sample(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[1]);
        assert!(counts[1] > counts[10]);
        assert!(counts[0] > 20_000 / 10);
    }

    #[test]
    fn zero_ranks_is_one_rank() {
        let z = Zipf::new(0, 1.0);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(z.len(), 1);
        assert_eq!(z.sample(&mut rng), 0);
    }
}
