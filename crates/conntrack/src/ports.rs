//! FullNAT local address:port allocation.
//!
//! FullNAT rewrites the client's address:port to a local-pool address:port, so each
//! connection needs a (local addr, port) no other live connection holds. The port range is
//! partitioned between workers — worker `w` of `n` owns the ports `p` with
//! `(p - first) % n == w` — so workers never contend; each worker's share is a bitmap per
//! local address. Only the owner allocates (no lock, one `fetch_or` per hit); any thread
//! frees (the control thread when `expire_step` reclaims the connection, a worker on
//! `remove`), through [`PortPools::free`], which finds the owner from the port.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::flow::Addr;

/// A local address of the FullNAT pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalAddr {
    pub addr: Addr,
    pub v6: bool,
}

/// One worker's share of the pool.
pub struct PortAllocator {
    worker: usize,
    workers: usize,
    first: u16,
    /// Ports per address in this worker's share.
    per_addr: usize,
    addrs: Vec<LocalAddr>,
    /// `addrs.len()` bitmaps of `per_addr` bits, 1 = in use.
    bits: Box<[AtomicU64]>,
    words_per_addr: usize,
    /// Where the next search starts (owner only; atomic so the type is `Sync`).
    cursor: AtomicUsize,
    in_use: AtomicUsize,
}

impl PortAllocator {
    fn new(worker: usize, workers: usize, addrs: &[LocalAddr], first: u16, last: u16) -> Self {
        let span = (last - first) as usize + 1;
        let per_addr = span / workers + usize::from(worker < span % workers);
        let words_per_addr = per_addr.div_ceil(64);
        PortAllocator {
            worker,
            workers,
            first,
            per_addr,
            addrs: addrs.to_vec(),
            bits: (0..words_per_addr * addrs.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            words_per_addr,
            cursor: AtomicUsize::new(0),
            in_use: AtomicUsize::new(0),
        }
    }

    /// The worker this share belongs to.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// (address, port) pairs this share can hand out for a family.
    pub fn capacity(&self, v6: bool) -> usize {
        self.addrs.iter().filter(|a| a.v6 == v6).count() * self.per_addr
    }

    /// Pairs currently handed out.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    /// A free (local address, port) of family `v6`, marked in use; None when the share is
    /// exhausted. Call only from the owning worker (two callers would still never get the
    /// same pair, but would fight over the cursor).
    pub fn alloc(&self, v6: bool) -> Option<(Addr, u16)> {
        let total = self.addrs.len() * self.words_per_addr;
        if total == 0 {
            return None;
        }
        let start = self.cursor.load(Ordering::Relaxed);
        for step in 0..total {
            let wi = (start + step) % total;
            let a = wi / self.words_per_addr;
            if self.addrs[a].v6 != v6 {
                continue;
            }
            let word = &self.bits[wi];
            let bit_base = (wi % self.words_per_addr) * 64;
            let valid = (self.per_addr - bit_base).min(64);
            let mask = if valid == 64 {
                u64::MAX
            } else {
                (1u64 << valid) - 1
            };
            let mut cur = word.load(Ordering::Relaxed);
            while cur & mask != mask {
                let bit = (!cur & mask).trailing_zeros() as usize;
                let prev = word.fetch_or(1 << bit, Ordering::AcqRel);
                if prev & (1 << bit) == 0 {
                    self.cursor.store(wi, Ordering::Relaxed);
                    self.in_use.fetch_add(1, Ordering::Relaxed);
                    let idx = bit_base + bit;
                    let port = self.first as usize + idx * self.workers + self.worker;
                    return Some((self.addrs[a].addr, port as u16));
                }
                cur = prev | (1 << bit);
            }
        }
        None
    }

    fn slot_of(&self, addr: Addr, port: u16) -> Option<(usize, u32)> {
        let a = self.addrs.iter().position(|l| l.addr == addr)?;
        let off = (port as usize).checked_sub(self.first as usize)?;
        if off % self.workers != self.worker {
            return None;
        }
        let idx = off / self.workers;
        if idx >= self.per_addr {
            return None;
        }
        Some((a * self.words_per_addr + idx / 64, (idx % 64) as u32))
    }

    /// Returns a pair to the share; false if it was not handed out by it.
    fn free(&self, addr: Addr, port: u16) -> bool {
        let Some((wi, bit)) = self.slot_of(addr, port) else {
            return false;
        };
        let prev = self.bits[wi].fetch_and(!(1u64 << bit), Ordering::AcqRel);
        let was = prev & (1u64 << bit) != 0;
        if was {
            self.in_use.fetch_sub(1, Ordering::Relaxed);
        }
        was
    }
}

/// All workers' shares of one local-address pool and port range.
pub struct PortPools {
    first: u16,
    last: u16,
    shares: Vec<PortAllocator>,
}

impl PortPools {
    /// Splits `first..=last` of every address in `addrs` between `workers` workers.
    /// Panics if `workers` is 0 or `first > last` (a configuration bug, checked by config).
    pub fn new(workers: usize, addrs: &[LocalAddr], first: u16, last: u16) -> Self {
        assert!(workers > 0 && first <= last, "bad port pool parameters");
        PortPools {
            first,
            last,
            shares: (0..workers)
                .map(|w| PortAllocator::new(w, workers, addrs, first, last))
                .collect(),
        }
    }

    /// Worker `w`'s share (hand it to that worker).
    pub fn worker(&self, w: usize) -> &PortAllocator {
        &self.shares[w]
    }

    /// Which worker's share holds `port`.
    pub fn owner(&self, port: u16) -> Option<usize> {
        if port < self.first || port > self.last {
            return None;
        }
        Some((port - self.first) as usize % self.shares.len())
    }

    /// Returns a pair from any thread (e.g. in the `expire_step` callback); false if the
    /// pair was not handed out.
    pub fn free(&self, addr: Addr, port: u16) -> bool {
        match self.owner(port) {
            Some(w) => self.shares[w].free(addr, port),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn pool() -> Vec<LocalAddr> {
        vec![
            LocalAddr {
                addr: Addr::v4([198, 18, 2, 1]),
                v6: false,
            },
            LocalAddr {
                addr: Addr::v4([198, 18, 2, 2]),
                v6: false,
            },
            LocalAddr {
                addr: Addr::v6([0x20, 1, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]),
                v6: true,
            },
        ]
    }

    #[test]
    fn workers_never_collide_and_exhaust_exactly() {
        let pools = PortPools::new(3, &pool(), 1024, 1024 + 199);
        let mut seen = HashSet::new();
        let mut total = 0;
        for w in 0..3 {
            let share = pools.worker(w);
            let cap = share.capacity(false);
            for _ in 0..cap {
                let (a, p) = share.alloc(false).expect("share has room");
                assert!((1024..1224).contains(&p));
                assert_eq!(pools.owner(p), Some(w));
                assert!(seen.insert((a, p)), "duplicate {a:?}:{p}");
            }
            assert_eq!(share.alloc(false), None);
            total += cap;
        }
        assert_eq!(total, 2 * 200);
        assert_eq!(seen.len(), 400);
    }

    #[test]
    fn free_from_another_thread_returns_the_pair() {
        let pools = PortPools::new(2, &pool(), 2000, 2009);
        let share = pools.worker(1);
        let (a, p) = share.alloc(true).unwrap();
        assert_eq!(a, pool()[2].addr);
        assert_eq!(share.in_use(), 1);
        std::thread::scope(|s| {
            s.spawn(|| assert!(pools.free(a, p)));
        });
        assert!(!pools.free(a, p), "double free is refused");
        assert_eq!(share.in_use(), 0);
        assert!(!pools.free(Addr::v4([1, 2, 3, 4]), p));
        assert!(!pools.free(a, 1999));
        // the freed pair comes back
        let mut got = HashSet::new();
        while let Some(x) = share.alloc(true) {
            got.insert(x);
        }
        assert!(got.contains(&(a, p)));
        assert_eq!(got.len(), 5);
    }
}
