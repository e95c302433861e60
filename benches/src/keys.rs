//! Key choice: uniform, or zipfian as YCSB draws it (Gray et al., "Quickly generating
//! billion-record synthetic databases"), with ranks scattered over the key space so the hot
//! keys are not neighbours in storage.

use rand::Rng;

use crate::args::KeyDist;

/// Draws indexes into a key list of length `n`.
#[derive(Clone, Debug)]
pub enum Chooser {
    /// Every index equally likely.
    Uniform {
        /// Number of keys.
        n: u64,
    },
    /// Rank `r` (0 is hottest) with probability proportional to `1 / (r + 1)^s`.
    Zipf(Zipf),
}

/// Precomputed constants of the zipfian draw.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zeta_n: f64,
    eta: f64,
}

impl Chooser {
    /// A chooser over `n` keys (at least 1).
    pub fn new(dist: KeyDist, n: u64, s: f64) -> Chooser {
        let n = n.max(1);
        match dist {
            KeyDist::Uniform => Chooser::Uniform { n },
            KeyDist::Zipf => Chooser::Zipf(Zipf::new(n, s)),
        }
    }

    /// The next index.
    pub fn next(&self, rng: &mut impl Rng) -> usize {
        match self {
            Chooser::Uniform { n } => rng.random_range(0..*n) as usize,
            Chooser::Zipf(z) => scatter(z.rank(rng), z.n) as usize,
        }
    }
}

impl Zipf {
    /// Exponent `s` in (0, 1) ∪ (1, ∞); YCSB's default is 0.99.
    fn new(n: u64, s: f64) -> Zipf {
        let theta = if (s - 1.0).abs() < 1e-9 { 0.999_999 } else { s };
        let zeta = |m: u64| (1..=m).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zeta_n = zeta(n);
        let zeta_2 = zeta(2.min(n));
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n);
        Zipf {
            n,
            theta,
            alpha,
            zeta_n,
            eta,
        }
    }

    fn rank(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zeta_n;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.n - 1);
        }
        let r = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.n - 1)
    }
}

/// A fixed permutation-like spread of ranks over `[0, n)`: a multiplicative hash. Distinct
/// ranks may share a slot, which only merges two cold keys.
fn scatter(rank: u64, n: u64) -> u64 {
    rank.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) % n
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn counts(c: &Chooser, n: usize, draws: usize) -> Vec<usize> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut counts = vec![0; n];
        for _ in 0..draws {
            counts[c.next(&mut rng)] += 1;
        }
        counts
    }

    #[test]
    fn draws_stay_in_range_and_zipf_is_skewed() {
        // (distribution, exponent, least and most share of draws of the 10 hottest keys)
        let table = [
            (KeyDist::Uniform, 0.0, 0.005, 0.03),
            (KeyDist::Zipf, 0.99, 0.15, 0.6),
        ];
        for (dist, s, min_top_share, max_top_share) in table {
            let c = Chooser::new(dist, 1000, s);
            let mut got = counts(&c, 1000, 100_000);
            got.sort_unstable_by(|a, b| b.cmp(a));
            let top10: usize = got[..10].iter().sum();
            let share = top10 as f64 / 100_000.0;
            let expected = min_top_share..=max_top_share;
            assert!(
                expected.contains(&share),
                "{dist:?}: top 10 keys drew {share}"
            );
        }
    }

    #[test]
    fn one_key_is_always_index_zero() {
        for dist in [KeyDist::Uniform, KeyDist::Zipf] {
            assert_eq!(counts(&Chooser::new(dist, 1, 0.99), 1, 100), vec![100]);
        }
    }
}
