//! Weighted round robin with IPVS's interleaving (`ip_vs_wrr.c`), lock-free.
//!
//! IPVS walks the server list repeatedly with a current weight `cw` that starts at the
//! maximum weight `mw` and drops by `gcd` after each pass; a pass picks, in list order,
//! every server whose weight is at least `cw`. Weights 4,3,2 give `a a b a b c a b c`.
//!
//! Instead of a mutable `(cl, cw)` pair behind a lock, the whole cycle is treated as a
//! sequence and the k-th element is computed directly: passes with the same eligible set
//! form a *band* (the passes where `cw` lies between two adjacent distinct weights), so
//! position → (band, pass, index within the set) is a binary search plus a division. The
//! cursor is one `AtomicU64` that workers `fetch_add`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::padded::CachePadded;

/// Above this many stored set members (Σ band sizes, ≤ N·distinct weights) the sets are
/// not materialised and members are found by scanning the weights instead.
const MAX_MATERIALISED_MEMBERS: usize = 1 << 20;

#[derive(Debug, Clone, Copy)]
struct Band {
    /// First cycle position of this band.
    start: u64,
    /// Passes (values of `cw`) in this band.
    passes: u64,
    /// Servers whose weight/gcd is at least this are eligible.
    threshold: u64,
    /// Eligible servers in this band.
    len: u32,
    /// Offset of this band's members in `members` (materialised mode).
    offset: u32,
}

#[derive(Debug)]
pub(crate) struct WrrCycle {
    bands: Box<[Band]>,
    /// Server indices of each band's eligible set, in list order; empty in scan mode.
    members: Box<[u16]>,
    /// weight/gcd per server (scan mode and tests).
    units: Box<[u64]>,
    materialised: bool,
    cycle_len: u64,
    cursor: CachePadded<AtomicU64>,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl WrrCycle {
    pub(crate) fn new(weights: &[u32]) -> Self {
        let g = weights
            .iter()
            .filter(|&&w| w > 0)
            .fold(0u64, |g, &w| gcd(g, u64::from(w)));
        let units: Box<[u64]> = weights
            .iter()
            .map(|&w| u64::from(w).checked_div(g).unwrap_or(0))
            .collect();
        let mut levels: Vec<u64> = units.iter().copied().filter(|&u| u > 0).collect();
        levels.sort_unstable_by(|a, b| b.cmp(a));
        levels.dedup();

        let mut bands = Vec::with_capacity(levels.len());
        let mut start = 0u64;
        let mut offset = 0usize;
        for (i, &thr) in levels.iter().enumerate() {
            let next = levels.get(i + 1).copied().unwrap_or(0);
            let len = units.iter().filter(|&&u| u >= thr).count();
            let passes = thr - next;
            bands.push(Band {
                start,
                passes,
                threshold: thr,
                len: len as u32,
                offset: offset.min(u32::MAX as usize) as u32,
            });
            start += passes * len as u64;
            offset += len;
        }
        let materialised = offset <= MAX_MATERIALISED_MEMBERS;
        let members: Box<[u16]> = if materialised {
            bands
                .iter()
                .flat_map(|b| {
                    units
                        .iter()
                        .enumerate()
                        .filter(move |(_, &u)| u >= b.threshold)
                        .map(|(i, _)| i as u16)
                })
                .collect()
        } else {
            Box::new([])
        };
        WrrCycle {
            bands: bands.into_boxed_slice(),
            members,
            units,
            materialised,
            cycle_len: start,
            cursor: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// Length of one full cycle: Σ weight/gcd.
    pub(crate) fn cycle_len(&self) -> u64 {
        self.cycle_len
    }

    /// The `j`-th eligible server of band `b`.
    #[inline]
    fn member(&self, b: &Band, j: u32) -> usize {
        if self.materialised {
            usize::from(self.members[b.offset as usize + j as usize])
        } else {
            self.scan_member(b, j)
        }
    }

    #[cold]
    fn scan_member(&self, b: &Band, j: u32) -> usize {
        self.units
            .iter()
            .enumerate()
            .filter(|(_, &u)| u >= b.threshold)
            .nth(j as usize)
            .map(|(i, _)| i)
            .unwrap_or(0)
    }

    /// Server at cycle position `p` (< cycle_len), ignoring availability.
    pub(crate) fn at(&self, p: u64) -> usize {
        let bi = self.bands.partition_point(|b| b.start <= p) - 1;
        let b = &self.bands[bi];
        let j = ((p - b.start) % u64::from(b.len)) as u32;
        self.member(b, j)
    }

    /// Next pick: advances the shared cursor and returns the first available server at or
    /// after it in cycle order, consuming the skipped positions as IPVS's scan does.
    pub(crate) fn pick(&self, available: impl Fn(usize) -> bool) -> Option<usize> {
        if self.cycle_len == 0 {
            return None;
        }
        let p = self.cursor.fetch_add(1, Relaxed) % self.cycle_len;
        let (server, q) = self.first_available_from(p, &available)?;
        let skipped = (q + self.cycle_len - p) % self.cycle_len;
        if skipped != 0 {
            self.cursor.fetch_add(skipped, Relaxed);
        }
        Some(server)
    }

    /// First available server at or after position `p` and its position. Visits every band
    /// at most twice, so it ends even when nothing is available.
    fn first_available_from(
        &self,
        mut p: u64,
        available: &impl Fn(usize) -> bool,
    ) -> Option<(usize, u64)> {
        for _ in 0..=self.bands.len() {
            let bi = self.bands.partition_point(|b| b.start <= p) - 1;
            let b = &self.bands[bi];
            let len = u64::from(b.len);
            let off = p - b.start;
            let pass = off / len;
            let j = (off % len) as u32;
            for jj in j..b.len {
                let s = self.member(b, jj);
                if available(s) {
                    return Some((s, p + u64::from(jj - j)));
                }
            }
            if pass + 1 < b.passes {
                // The next pass has the same set; only its first j members are unseen.
                for jj in 0..j {
                    let s = self.member(b, jj);
                    if available(s) {
                        return Some((s, b.start + (pass + 1) * len + u64::from(jj)));
                    }
                }
            }
            // Nobody in this band's set is available: jump to the next band.
            p = b.start + b.passes * len;
            if p >= self.cycle_len {
                p = 0;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPVS `ip_vs_wrr_schedule` transcribed with its mutable `(cl, cw)` state, as the
    /// reference: `mw = max - (gcd - 1)`, `cw` starts at `mw`, `cl` at the list head; a
    /// scan continues after `cl` for a non-overloaded server with `weight >= cw`, else
    /// lowers `cw` by the gcd (wrapping to `mw`). `up[i]` false = overloaded.
    pub(crate) fn ipvs_wrr_reference(weights: &[u32], up: &[bool], picks: usize) -> Vec<usize> {
        let di = weights
            .iter()
            .filter(|&&w| w > 0)
            .fold(0u64, |g, &w| gcd(g, u64::from(w))) as i64;
        let n = weights.len();
        let mut out = Vec::new();
        if di == 0 || !(0..n).any(|i| up[i] && weights[i] > 0) {
            return out;
        }
        let mw = i64::from(weights.iter().copied().max().unwrap_or(0)) - (di - 1);
        let (mut cl, mut cw) = (n, mw);
        while out.len() < picks {
            let start = if cl == n { 0 } else { cl + 1 };
            match (start..n).find(|&i| up[i] && i64::from(weights[i]) >= cw) {
                Some(i) => {
                    cl = i;
                    out.push(i);
                }
                None => {
                    cl = n;
                    cw -= di;
                    if cw <= 0 {
                        cw = mw;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn weights_4_3_2_interleave_like_ipvs() {
        let c = WrrCycle::new(&[4, 3, 2]);
        assert_eq!(c.cycle_len(), 9);
        let seq: Vec<usize> = (0..9).map(|p| c.at(p)).collect();
        assert_eq!(seq, [0, 0, 1, 0, 1, 2, 0, 1, 2]);
        assert_eq!(ipvs_wrr_reference(&[4, 3, 2], &[true; 3], 9), seq);
    }

    #[test]
    fn zero_weights_and_gcd() {
        let c = WrrCycle::new(&[0, 6, 0, 4]);
        assert_eq!(c.cycle_len(), 5);
        let seq: Vec<usize> = (0..5).map(|p| c.at(p)).collect();
        assert_eq!(seq, ipvs_wrr_reference(&[0, 6, 0, 4], &[true; 4], 5));
        assert!(WrrCycle::new(&[0, 0]).pick(|_| true).is_none());
        assert!(WrrCycle::new(&[]).pick(|_| true).is_none());
    }

    #[test]
    fn skipping_unavailable_consumes_positions() {
        // a a b a b c a b c with b down → a a a c a c, like IPVS's continued scan.
        let c = WrrCycle::new(&[4, 3, 2]);
        let got: Vec<usize> = (0..6).map(|_| c.pick(|s| s != 1).unwrap()).collect();
        assert_eq!(got, [0, 0, 0, 2, 0, 2]);
        assert_eq!(ipvs_wrr_reference(&[4, 3, 2], &[true, false, true], 6), got);
        assert!(c.pick(|_| false).is_none());
    }

    #[test]
    fn scan_mode_agrees_with_materialised() {
        let w = [5u32, 1, 3, 3, 9, 2];
        let mut scan = WrrCycle::new(&w);
        scan.materialised = false;
        let mat = WrrCycle::new(&w);
        for p in 0..mat.cycle_len() {
            assert_eq!(scan.at(p), mat.at(p));
        }
    }
}
