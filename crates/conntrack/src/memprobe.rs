//! What one random cache line costs on this machine, by working-set size: the platform
//! figure under the table's large-flow lookups (`uvs-bench memory`).
//!
//! The array is allocated the way the table's arrays are: 64-byte lines backed by
//! transparent huge pages where the kernel grants them (`hugepage.rs`). Two costs are
//! measured:
//! - **dependent**: a pointer chase through a random cyclic permutation of the lines, so each
//!   load waits for the one before it. This is the latency one lookup pays when nothing
//!   overlaps it.
//! - **prefetched**: independent loads of random lines, each prefetched `ahead` loads before
//!   it is read, as the worker's burst lookup does. This is the throughput a core gets when
//!   it keeps many misses in flight.
//!
//! On a virtual machine the second figure also depends on how the host backs the guest's
//! memory. The guest's huge pages cannot widen the TLB's reach beyond the host's page size,
//! and every TLB miss walks two sets of page tables.

use std::time::Instant;

use crate::hugepage;
use crate::prefetch::prefetch;

#[repr(align(64))]
#[derive(Clone, Copy, Default)]
struct Line([u64; 8]);

/// One working-set size's figures.
#[derive(Clone, Copy, Debug)]
pub struct MemoryCost {
    /// Bytes in the array (a whole number of 64-byte lines).
    pub bytes: usize,
    /// Nanoseconds per load of a pointer chase (each load depends on the previous one).
    pub dependent_ns: f64,
    /// Nanoseconds per load of independent random loads, each prefetched `ahead` loads
    /// earlier.
    pub prefetched_ns: f64,
}

/// A xorshift64 generator: enough to scatter loads over the array, and the same sequence on
/// every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform enough in `0..n` for a benchmark (n ≪ 2^64).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Each line's successor in one random cycle through all `lines`: the lines in a shuffled
/// order, each followed by the next in that order, so a chase visits every line before it
/// repeats.
fn successors(lines: usize, rng: &mut Rng) -> Vec<u32> {
    let mut order: Vec<u32> = (0..lines as u32).collect();
    for i in (1..lines).rev() {
        let j = rng.below(i + 1);
        order.swap(i, j);
    }
    let mut next = vec![0u32; lines];
    for w in 0..lines {
        next[order[w] as usize] = order[(w + 1) % lines];
    }
    next
}

/// Measures [`MemoryCost`] over an array of `bytes` (at least two lines), `loads` loads per
/// figure, prefetching `ahead` loads ahead (0: no prefetch).
pub fn memory_cost(bytes: usize, loads: usize, ahead: usize) -> MemoryCost {
    let lines = (bytes / 64).max(2);
    let mut a = hugepage::boxed(lines, |_| Line::default());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (line, next) in a.iter_mut().zip(successors(lines, &mut rng)) {
        line.0[0] = u64::from(next);
    }

    let start = Instant::now();
    let mut at = 0usize;
    for _ in 0..loads {
        at = a[at].0[0] as usize;
    }
    let dependent_ns = start.elapsed().as_nanos() as f64 / loads as f64;
    std::hint::black_box(at);

    let picks: Vec<u32> = (0..loads + ahead)
        .map(|_| rng.below(lines) as u32)
        .collect();
    let start = Instant::now();
    let mut sum = 0u64;
    for i in 0..loads {
        if ahead > 0 {
            prefetch(&a[picks[i + ahead] as usize]);
        }
        sum = sum.wrapping_add(a[picks[i] as usize].0[1]);
    }
    let prefetched_ns = start.elapsed().as_nanos() as f64 / loads as f64;
    std::hint::black_box(sum);

    MemoryCost {
        bytes: lines * 64,
        dependent_ns,
        prefetched_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chase_and_loads_cover_the_array_and_give_positive_costs() {
        let c = memory_cost(64 * 1024, 10_000, 8);
        assert_eq!(c.bytes, 64 * 1024);
        assert!(c.dependent_ns > 0.0 && c.prefetched_ns > 0.0, "{c:?}");
        // Two lines at least, whatever was asked.
        assert_eq!(memory_cost(1, 10, 0).bytes, 128);
    }

    #[test]
    fn the_chase_is_one_cycle_through_every_line() {
        let lines = 1000;
        let next = successors(lines, &mut Rng(7));
        let (mut at, mut seen) = (0, vec![false; lines]);
        for _ in 0..lines {
            assert!(!seen[at], "line {at} visited twice");
            seen[at] = true;
            at = next[at] as usize;
        }
        assert_eq!(at, 0);
        assert!(seen.iter().all(|s| *s));
    }
}
