//! Locality-based schedulers keyed by destination IP: lblc (`ip_vs_lblc.c`) and lblcr
//! (`ip_vs_lblcr.c`), built for cache clusters where each destination should stay on
//! "its" server.
//!
//! IPVS keeps a chained hash table under a lock with a periodic garbage collector. Here the
//! table is a fixed array of slots, each a few atomics, indexed by a hash of the
//! destination and tagged with 32 more hash bits: a new destination that lands on a taken
//! slot simply takes it over (a direct-mapped cache; IPVS evicts entries idle for 6 min
//! when over its size cap instead). Concurrent workers may race on a slot; every outcome is
//! a valid entry naming real servers, and `pick` re-checks availability before using one,
//! so a lost update only costs locality, never correctness.
//!
//! Entries unused for `locality_expiration_s` are ignored (IPVS `lblc_expiration`,
//! `lblcr_expiration`, default 24 h). lblcr sets hold up to [`LBLCR_SET_CAPACITY`] servers
//! (IPVS: unbounded); when full, adding a server evicts the most loaded member.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::flow::hash_addr_port;
use crate::select::wlc;
use crate::server::ServerLive;

/// Servers an lblcr destination set can hold: four `u16` indices packed in one `AtomicU64`
/// so that set updates are single compare-and-swaps.
pub const LBLCR_SET_CAPACITY: usize = 4;
const SEED_LOCALITY: u64 = 0x2545_f491_4f6c_dd1d;
/// Bounded retries for set updates; losing them only loses a cache update.
const CAS_TRIES: usize = 4;

/// IPVS lblc/lblcr `is_overloaded`: a server is overloaded for locality purposes when its
/// active connections exceed its weight while some other server is below half load
/// (`active*2 < weight`). Only available servers count as the less loaded alternative.
/// Weights are the ones in effect (an agent's percentage applied).
fn locality_overloaded(s: usize, weights: &[u32], live: &[ServerLive]) -> bool {
    if live[s].active.load(Relaxed) <= live[s].weight(weights[s]) {
        return false;
    }
    live.iter().enumerate().any(|(i, l)| {
        l.available(weights[i])
            && u64::from(l.active.load(Relaxed)) * 2 < u64::from(l.weight(weights[i]))
    })
}

#[inline]
fn expired(now: u32, last: u32, expiration: u32) -> bool {
    now.wrapping_sub(last) >= expiration
}

/// Slot index and tag for a destination address.
#[inline]
fn slot_and_tag(dst: &[u8; 16], mask: usize) -> (usize, u32) {
    let h = hash_addr_port(dst, 0, SEED_LOCALITY);
    ((h as usize) & mask, (h >> 32) as u32)
}

#[derive(Debug, Default)]
struct LblcSlot {
    /// `tag << 32 | (server + 1)`; 0 = empty.
    entry: AtomicU64,
    lastuse: AtomicU32,
}

/// lblc: one server per destination.
#[derive(Debug)]
pub(crate) struct LblcTable {
    slots: Box<[LblcSlot]>,
    mask: usize,
    expiration: u32,
}

impl LblcTable {
    pub(crate) fn new(slots: u32, expiration: u32) -> Self {
        LblcTable {
            slots: (0..slots).map(|_| LblcSlot::default()).collect(),
            mask: slots as usize - 1,
            expiration: expiration.max(1),
        }
    }

    /// `ip_vs_lblc_schedule`: the cached server if it is available and not
    /// locality-overloaded, else wlc over all servers, remembered for this destination.
    pub(crate) fn pick(
        &self,
        dst: &[u8; 16],
        now: u32,
        weights: &[u32],
        live: &[ServerLive],
    ) -> Option<usize> {
        let (i, tag) = slot_and_tag(dst, self.mask);
        let slot = &self.slots[i];
        let e = slot.entry.load(Relaxed);
        let cached = (e as u32) as usize;
        if (e >> 32) as u32 == tag
            && cached != 0
            && cached <= weights.len()
            && !expired(now, slot.lastuse.load(Relaxed), self.expiration)
        {
            if slot.lastuse.load(Relaxed) != now {
                slot.lastuse.store(now, Relaxed);
            }
            let s = cached - 1;
            if live[s].available(weights[s]) && !locality_overloaded(s, weights, live) {
                return Some(s);
            }
        }
        let s = wlc(weights, live)?;
        slot.entry
            .store(u64::from(tag) << 32 | (s as u64 + 1), Relaxed);
        slot.lastuse.store(now, Relaxed);
        Some(s)
    }
}

#[derive(Debug, Default)]
struct LblcrSlot {
    /// `tag << 32 | lastmod` (seconds the set last changed).
    head: AtomicU64,
    /// Up to four `server + 1` values in 16-bit lanes; 0 lanes are empty.
    members: AtomicU64,
    lastuse: AtomicU32,
}

fn lanes(m: u64) -> impl Iterator<Item = usize> {
    (0..LBLCR_SET_CAPACITY)
        .map(move |k| ((m >> (16 * k)) & 0xffff) as usize)
        .filter(|&v| v != 0)
        .map(|v| v - 1)
}

/// lblcr: a set of servers per destination.
#[derive(Debug)]
pub(crate) struct LblcrTable {
    slots: Box<[LblcrSlot]>,
    mask: usize,
    expiration: u32,
}

impl LblcrTable {
    pub(crate) fn new(slots: u32, expiration: u32) -> Self {
        LblcrTable {
            slots: (0..slots).map(|_| LblcrSlot::default()).collect(),
            mask: slots as usize - 1,
            expiration: expiration.max(1),
        }
    }

    /// `ip_vs_lblcr_schedule`: the least loaded (wlc) available member of the destination's
    /// set; if there is none or it is locality-overloaded, wlc over all servers joins the
    /// set. A set with more than one member that has not changed for the expiration time
    /// loses its most loaded member.
    pub(crate) fn pick(
        &self,
        dst: &[u8; 16],
        now: u32,
        weights: &[u32],
        live: &[ServerLive],
    ) -> Option<usize> {
        let (i, tag) = slot_and_tag(dst, self.mask);
        let slot = &self.slots[i];
        let head = slot.head.load(Relaxed);
        let members = slot.members.load(Relaxed);
        let n = weights.len();
        let valid = lanes(members).all(|s| s < n);
        if (head >> 32) as u32 != tag
            || members == 0
            || !valid
            || expired(now, slot.lastuse.load(Relaxed), self.expiration)
        {
            let s = wlc(weights, live)?;
            slot.members.store(s as u64 + 1, Relaxed);
            slot.head
                .store(u64::from(tag) << 32 | u64::from(now), Relaxed);
            slot.lastuse.store(now, Relaxed);
            return Some(s);
        }
        if slot.lastuse.load(Relaxed) != now {
            slot.lastuse.store(now, Relaxed);
        }
        let dest = set_min(members, weights, live);
        let lastmod = head as u32;
        if lanes(members).count() > 1 && expired(now, lastmod, self.expiration) {
            if let Some(m) = set_max(members, weights, live) {
                self.update_set(slot, tag, now, |set| remove(set, m));
            }
        }
        if let Some(d) = dest {
            if !locality_overloaded(d, weights, live) {
                return Some(d);
            }
        }
        let d = wlc(weights, live)?;
        self.update_set(slot, tag, now, |set| insert(set, d, weights, live));
        Some(d)
    }

    /// Applies `f` to the member set with a bounded CAS loop, then stamps `lastmod` if the
    /// set changed and the slot still belongs to `tag`.
    fn update_set(&self, slot: &LblcrSlot, tag: u32, now: u32, f: impl Fn(u64) -> u64) {
        for _ in 0..CAS_TRIES {
            let cur = slot.members.load(Relaxed);
            let new = f(cur);
            if new == cur {
                return;
            }
            if slot
                .members
                .compare_exchange(cur, new, Relaxed, Relaxed)
                .is_ok()
            {
                let head = slot.head.load(Relaxed);
                if (head >> 32) as u32 == tag {
                    let _ = slot.head.compare_exchange(
                        head,
                        u64::from(tag) << 32 | u64::from(now),
                        Relaxed,
                        Relaxed,
                    );
                }
                return;
            }
        }
    }

    #[cfg(test)]
    fn members_of(&self, dst: &[u8; 16]) -> Vec<usize> {
        let (i, _) = slot_and_tag(dst, self.mask);
        lanes(self.slots[i].members.load(Relaxed)).collect()
    }
}

/// `ip_vs_dest_set_min`: the available member with least overhead/weight (first of equals).
fn set_min(members: u64, weights: &[u32], live: &[ServerLive]) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None;
    for s in lanes(members) {
        if !live[s].available(weights[s]) {
            continue;
        }
        let (doh, w) = (live[s].conn_overhead(), live[s].scaled_weight(weights[s]));
        if best.is_none_or(|(_, loh, bw)| {
            u128::from(loh) * u128::from(w) > u128::from(doh) * u128::from(bw)
        }) {
            best = Some((s, doh, w));
        }
    }
    best.map(|(s, _, _)| s)
}

/// `ip_vs_dest_set_max`: the member with weight > 0 and most overhead/weight.
fn set_max(members: u64, weights: &[u32], live: &[ServerLive]) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None;
    for s in lanes(members) {
        let w = live[s].scaled_weight(weights[s]);
        if w == 0 {
            continue;
        }
        let doh = live[s].conn_overhead();
        if best.is_none_or(|(_, moh, bw)| {
            u128::from(moh) * u128::from(w) < u128::from(doh) * u128::from(bw)
        }) {
            best = Some((s, doh, w));
        }
    }
    best.map(|(s, _, _)| s)
}

fn remove(set: u64, s: usize) -> u64 {
    let mut out = set;
    for k in 0..LBLCR_SET_CAPACITY {
        if ((set >> (16 * k)) & 0xffff) as usize == s + 1 {
            out &= !(0xffff << (16 * k));
        }
    }
    out
}

fn insert(set: u64, s: usize, weights: &[u32], live: &[ServerLive]) -> u64 {
    if lanes(set).any(|m| m == s) {
        return set;
    }
    let v = s as u64 + 1;
    if let Some(k) = (0..LBLCR_SET_CAPACITY).find(|k| (set >> (16 * k)) & 0xffff == 0) {
        return set | v << (16 * k);
    }
    // Full: the most loaded member makes room (IPVS would let the set grow).
    match set_max(set, weights, live) {
        Some(m) => insert(remove(set, m), s, weights, live),
        None => set,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(active: &[u32]) -> Vec<ServerLive> {
        active
            .iter()
            .map(|&a| ServerLive::with_conns(a, 0))
            .collect()
    }

    fn dst(i: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(&[198, 18, 7, i]);
        a
    }

    #[test]
    fn lblc_sticks_until_overloaded_or_unavailable() {
        let t = LblcTable::new(1024, 100);
        let w = [4, 4, 4];
        let l = live(&[0, 0, 0]);
        let first = t.pick(&dst(1), 0, &w, &l).unwrap();
        assert_eq!(first, 0, "wlc picks the first of equals");
        // Make server 0 the most loaded but not overloaded (active 4 == weight): stays.
        l[0].active.store(4, Relaxed);
        assert_eq!(t.pick(&dst(1), 1, &w, &l), Some(0));
        // active 5 > weight 4 and server 1 is below half load → reschedule by wlc.
        l[0].active.store(5, Relaxed);
        assert_eq!(t.pick(&dst(1), 2, &w, &l), Some(1));
        assert_eq!(t.pick(&dst(1), 3, &w, &l), Some(1), "new entry remembered");
        l[1].health_up.store(false, Relaxed);
        assert_eq!(t.pick(&dst(1), 4, &w, &l), Some(2));
    }

    #[test]
    fn lblc_entry_expires() {
        let t = LblcTable::new(64, 10);
        let w = [1, 1];
        let l = live(&[0, 0]);
        assert_eq!(t.pick(&dst(9), 0, &w, &l), Some(0));
        l[0].active.store(1, Relaxed);
        assert_eq!(
            t.pick(&dst(9), 9, &w, &l),
            Some(0),
            "cached, not overloaded"
        );
        // Idle for the expiration time → forgotten → wlc picks the idle server 1.
        assert_eq!(t.pick(&dst(9), 19, &w, &l), Some(1));
    }

    #[test]
    fn lblcr_set_grows_when_overloaded_and_shrinks_after_expiration() {
        let t = LblcrTable::new(1024, 60);
        let w = [2, 2, 2];
        let l = live(&[0, 0, 0]);
        let d = dst(3);
        assert_eq!(t.pick(&d, 0, &w, &l), Some(0));
        assert_eq!(t.members_of(&d), [0]);
        l[0].active.store(3, Relaxed); // > weight, and others are below half
        assert_eq!(t.pick(&d, 1, &w, &l), Some(1));
        assert_eq!(t.members_of(&d), [0, 1]);
        // Set min is now server 1 (0 active) → used without growing.
        assert_eq!(t.pick(&d, 2, &w, &l), Some(1));
        // 60 s after the last change, the most loaded member (0) is dropped.
        assert_eq!(t.pick(&d, 61, &w, &l), Some(1));
        assert_eq!(t.members_of(&d), [1]);
    }

    #[test]
    fn lblcr_set_capacity_evicts_most_loaded() {
        let w = [1; 6];
        let l = live(&[5, 4, 3, 2, 0, 0]);
        let set = [0usize, 1, 2, 3]
            .iter()
            .enumerate()
            .fold(0u64, |m, (k, &s)| m | (s as u64 + 1) << (16 * k));
        let grown = insert(set, 4, &w, &l);
        let mut got: Vec<_> = lanes(grown).collect();
        got.sort();
        assert_eq!(got, [1, 2, 3, 4]);
        assert_eq!(insert(grown, 4, &w, &l), grown, "no duplicates");
    }
}
