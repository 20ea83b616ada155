//! Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
//! Balancer", NSDI 2016, §3.4), with IPVS mh's weighting (`ip_vs_mh.c`).
//!
//! Each backend gets a permutation of the table positions from its stable key:
//! `offset = h1(key) mod M`, `skip = h2(key) mod (M-1) + 1`, `perm[j] = (offset + j·skip)
//! mod M` — a full permutation because M is prime. Backends take turns claiming their next
//! unclaimed preferred position until the table is full (the paper's Pseudocode 1).
//!
//! **Weights** follow IPVS mh rather than the paper's weighted variant: a backend with
//! weight w takes `turns = (w / gcd) >> rshift` consecutive claims per round (at least 1
//! when w > 0), where `rshift = max(0, bits(max_w / gcd) - ⌈log2 M⌉ / 2)` keeps the turn
//! counts small relative to M (IPVS: `CONFIG_IP_VS_MH_TAB_INDEX / 2`, the same value for
//! its primes). For M = 65537, turns equal weight/gcd whenever max weight/gcd ≤ 255. Shares are
//! then proportional to turns; weight-0 backends own no entries.
//!
//! The table is built by control (off the packet path); lookups are one hash and one load.

use crate::flow::{hash_addr_port, mix64};

/// Marks an unclaimed entry during population; never a server index (< MAX_SERVERS).
const EMPTY: u16 = u16::MAX;
/// Seeds for the two permutation hashes (h1, h2) and the flow hash; fixed so every node and
/// every rebuild computes the same table.
const SEED_OFFSET: u64 = 0x9e37_79b9_7f4a_7c15;
const SEED_SKIP: u64 = 0xc2b2_ae3d_27d4_eb4f;
const SEED_FLOW: u64 = 0x1656_67b1_9e37_79f9;
/// Random rehashes tried before the fallback walks the table linearly.
const FALLBACK_REHASHES: u64 = 64;

/// Deterministic primality test by trial division (M ≤ 2^24, so ≤ 2048 divisions).
pub fn is_prime(m: u32) -> bool {
    if m < 2 {
        return false;
    }
    if m.is_multiple_of(2) {
        return m == 2;
    }
    let mut d = 3u32;
    while u64::from(d) * u64::from(d) <= u64::from(m) {
        if m.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Claim turns per round for each backend, as IPVS mh computes them.
pub(crate) fn mh_turns(weights: &[u32], table_size: u32) -> Vec<u32> {
    let g = weights
        .iter()
        .filter(|&&w| w > 0)
        .fold(0, |g, &w| gcd(g, w));
    if g == 0 {
        return vec![0; weights.len()];
    }
    let mw = weights.iter().copied().max().unwrap_or(0) / g;
    let fls = 32 - mw.leading_zeros();
    // IPVS: CONFIG_IP_VS_MH_TAB_INDEX / 2, where the index is ⌈log2 M⌉ for its primes.
    let tab_bits = table_size.ilog2().div_ceil(2);
    let rshift = fls.saturating_sub(tab_bits);
    weights
        .iter()
        .map(|&w| match (w / g) >> rshift {
            0 => u32::from(w != 0),
            t => t,
        })
        .collect()
}

/// A populated Maglev lookup table.
#[derive(Debug)]
pub(crate) struct MaglevTable {
    /// Entry → server index; empty when no server has a positive weight.
    entries: Box<[u16]>,
}

impl MaglevTable {
    /// Populates a table of prime size `m` (> number of servers, checked by the caller).
    pub(crate) fn build(keys: &[u64], weights: &[u32], m: u32) -> Self {
        let turns = mh_turns(weights, m);
        if turns.iter().all(|&t| t == 0) {
            return MaglevTable {
                entries: Box::new([]),
            };
        }
        let m64 = u64::from(m);
        let mut next: Vec<u64> = keys.iter().map(|&k| mix64(k ^ SEED_OFFSET) % m64).collect();
        let skip: Vec<u64> = keys
            .iter()
            .map(|&k| mix64(k ^ SEED_SKIP) % (m64 - 1) + 1)
            .collect();
        let mut entries = vec![EMPTY; m as usize].into_boxed_slice();
        let mut filled = 0u32;
        'fill: loop {
            for (i, &t) in turns.iter().enumerate() {
                for _ in 0..t {
                    let mut c = next[i];
                    while entries[c as usize] != EMPTY {
                        c += skip[i];
                        if c >= m64 {
                            c -= m64;
                        }
                    }
                    entries[c as usize] = i as u16;
                    next[i] = c;
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
        MaglevTable { entries }
    }

    pub(crate) fn entries(&self) -> &[u16] {
        &self.entries
    }

    #[inline]
    fn slot(&self, h: u64) -> usize {
        // Lemire's multiply-shift range reduction: uniform for M < 2^32, no division.
        (((h >> 32) * self.entries.len() as u64) >> 32) as usize
    }

    /// Looks the flow up; with `fallback`, an unavailable backend's flows are rehashed to
    /// other backends (IPVS `ip_vs_mh_get_fallback`), deterministically for a given live
    /// state: first up to 64 rehashes, then a linear walk from the original entry.
    #[inline]
    pub(crate) fn lookup(
        &self,
        addr: &[u8; 16],
        port: u16,
        fallback: bool,
        available: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let h = hash_addr_port(addr, port, SEED_FLOW);
        let first = self.slot(h);
        let s = usize::from(self.entries[first]);
        if available(s) {
            return Some(s);
        }
        if fallback {
            self.fallback(h, first, &available)
        } else {
            None
        }
    }

    #[cold]
    fn fallback(&self, h: u64, first: usize, available: &impl Fn(usize) -> bool) -> Option<usize> {
        for i in 1..=FALLBACK_REHASHES {
            let s = usize::from(self.entries[self.slot(mix64(h ^ i))]);
            if available(s) {
                return Some(s);
            }
        }
        // Every backend with weight > 0 owns at least one entry (M > N), so a full walk
        // finds any available one.
        let n = self.entries.len();
        (1..n)
            .map(|d| usize::from(self.entries[(first + d) % n]))
            .find(|&s| available(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        let small: Vec<u32> = (0..30).filter(|&m| is_prime(m)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65_537));
        assert!(is_prime(655_373));
        assert!(!is_prime(65_535));
        assert!(!is_prime(65_539 * 3));
        assert!(is_prime(4093) && is_prime(251));
    }

    #[test]
    fn turns_follow_ipvs_mh() {
        // gcd 2 → 2,3,1; small weights are not shifted.
        assert_eq!(mh_turns(&[4, 6, 2, 0], 65_537), [2, 3, 1, 0]);
        // M = 4093 (IPVS default, index 12): 6 bits. max/gcd = 1000 (10 bits) → shift 4.
        assert_eq!(mh_turns(&[1000, 1, 64], 4093), [62, 1, 4]);
        // M = 65537: 8 bits; 255 is kept exactly, 256 shifts by one.
        assert_eq!(mh_turns(&[255, 1], 65_537), [255, 1]);
        assert_eq!(mh_turns(&[256, 1, 3], 65_537), [128, 1, 1]);
        assert_eq!(mh_turns(&[0, 0], 251), [0, 0]);
    }

    #[test]
    fn permutation_fills_whole_table_with_expected_shares() {
        let keys: Vec<u64> = (0..7).collect();
        let t = MaglevTable::build(&keys, &[1; 7], 251);
        let mut count = [0usize; 7];
        for &e in t.entries() {
            count[usize::from(e)] += 1;
        }
        // Unweighted Maglev gives every backend ⌊M/N⌋ or ⌈M/N⌉ entries.
        assert!(count.iter().all(|&c| c == 35 || c == 36), "{count:?}");
    }

    #[test]
    fn weight_zero_owns_nothing_and_weights_scale_shares() {
        let t = MaglevTable::build(&[10, 20, 30], &[0, 1, 3], 65_537);
        let mut count = [0usize; 3];
        for &e in t.entries() {
            count[usize::from(e)] += 1;
        }
        assert_eq!(count[0], 0);
        let ratio = count[2] as f64 / count[1] as f64;
        assert!((ratio - 3.0).abs() < 0.01, "{count:?}");
        assert!(MaglevTable::build(&[1], &[0], 7)
            .lookup(&[0; 16], 0, true, |_| true)
            .is_none());
    }

    #[test]
    fn fallback_finds_the_only_available_backend() {
        let keys: Vec<u64> = (0..50).collect();
        let t = MaglevTable::build(&keys, &[1; 50], 65_537);
        for a in 0..200u8 {
            let addr = [a; 16];
            assert_eq!(t.lookup(&addr, 0, true, |s| s == 37), Some(37));
            let home = t.lookup(&addr, 0, false, |_| true).unwrap();
            assert_eq!(t.lookup(&addr, 0, false, |s| s != home), None);
        }
        assert_eq!(t.lookup(&[1; 16], 0, true, |_| false), None);
    }
}
