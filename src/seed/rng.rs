//! A small self-contained PRNG (SplitMix64) and the distributions the generator draws from.
//! Self-contained on purpose: the output must stay byte-identical across `rand` releases, and every entity
//! (service, day, team) gets its own stream seeded by [`hash`], so the order of generation never changes values.

/// The SplitMix64 finaliser: a bijective 64-bit mix.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Combines a seed with entity coordinates into the seed of that entity's stream.
pub(crate) fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x6A09_E667_F3BC_C908, |h, &p| mix(h ^ p))
}

pub(crate) struct Rng(u64);

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Rng {
    #[cfg(test)]
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn for_entity(parts: &[u64]) -> Self {
        Rng(hash(parts))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Uniform in [0, n); 0 when n is 0.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform integer in [lo, hi] (hi < lo gives lo).
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Index drawn with the given (unnormalised, non-negative) weights.
    pub(crate) fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    /// Standard normal (Box-Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and log-space sigma: the shape of coding, review and repair times.
    pub(crate) fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Log-normal seconds clamped to [lo, hi].
    pub(crate) fn secs(&mut self, median: f64, sigma: f64, lo: i64, hi: i64) -> i64 {
        (self.lognormal(median, sigma) as i64).clamp(lo, hi)
    }

    pub(crate) fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 30.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u32;
        }
        let limit = (-lambda).exp();
        let mut k = 0;
        let mut p = self.f64();
        while p > limit {
            k += 1;
            p *= self.f64();
        }
        k
    }

    /// A 40-character lower-case hex string, the shape of a git sha.
    pub(crate) fn sha(&mut self) -> String {
        let mut out = String::with_capacity(40);
        let words = [self.next_u64(), self.next_u64(), self.next_u64()];
        for i in 0..40 {
            let nibble = (words[i / 16] >> ((i % 16) * 4)) & 0xF;
            out.push(HEX[nibble as usize] as char);
        }
        out
    }
}

/// A PagerDuty-like id (`P` and 6 upper-case base-36 characters) that is unique per `n` < 2^31:
/// `n` goes through a bijection of 31-bit integers, so distinct inputs never collide.
pub(crate) fn pd_id(n: u64) -> String {
    const BITS: u32 = 31;
    const MASK: u64 = (1 << BITS) - 1;
    let mut x = n & MASK;
    x = x.wrapping_mul(0x2545_F491) & MASK;
    x ^= x >> 15;
    x = x.wrapping_mul(0x6C8E_9CF5) & MASK;
    x ^= x >> 13;
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(x % 36) as usize];
        x /= 36;
    }
    let mut s = String::with_capacity(7);
    s.push('P');
    s.push_str(std::str::from_utf8(&out).unwrap_or("000000"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::for_entity(&[1, 2]).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::for_entity(&[1, 2]).next_u64(), Rng::for_entity(&[1, 3]).next_u64());
        let sha = Rng::new(7).sha();
        assert_eq!(sha.len(), 40);
        assert!(sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn pagerduty_ids_never_collide() {
        // 36^6 > 2^31, and the mix is a bijection, so 200k consecutive inputs give 200k ids.
        let ids: std::collections::HashSet<String> = (0..200_000u64).map(pd_id).collect();
        assert_eq!(ids.len(), 200_000);
        assert!(pd_id(5).starts_with('P') && pd_id(5).len() == 7);
    }

    #[test]
    fn distributions_have_the_requested_centre() {
        let mut r = Rng::new(11);
        let mut v: Vec<f64> = (0..20_001).map(|_| r.lognormal(100.0, 0.8)).collect();
        v.sort_by(f64::total_cmp);
        assert!((v[10_000] - 100.0).abs() < 5.0, "median {}", v[10_000]);
        let mean = (0..20_000).map(|_| r.poisson(2.5) as f64).sum::<f64>() / 20_000.0;
        assert!((mean - 2.5).abs() < 0.1, "poisson mean {mean}");
    }
}
