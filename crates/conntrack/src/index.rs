//! The tuple index: two-choice buckets of 8 lanes, one cache line each.
//!
//! A tuple hashes to two buckets; a lookup reads at most those 16 lanes (a miss costs two
//! cache lines, never a chain walk). A lane is one `AtomicU64`:
//! `tag (31) ‖ dir (1) ‖ slot+1 (32)`, 0 = empty. The tag is 31 more bits of the tuple's hash,
//! so a lane that is not ours is rejected without touching the entry.
//!
//! Lanes are written only by CAS (0 → value on place, value → 0 on removal). Since nothing
//! probes past an empty lane, removal needs no tombstones. Place and the rescan that follows
//! it are `SeqCst` so two inserters of the same tuple cannot both miss each other (see
//! `family.rs`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::flow::Dir;
use crate::layout::tag_of;

pub(crate) const LANES: usize = 8;

/// A tuple goes to its first bucket while that holds fewer than this many, then to the
/// emptier of its two. Simulated over random keys at the index's sizing: at a third of
/// capacity under 1 % of tuples land in bucket 1, half full ~3.5 %, full ~16 %, and no
/// overflow filling to capacity (6 here: 11 %, but overflows appear when full). Measured
/// on the table itself, random keys do see a few refusals in the last tenth: 2^17 entries,
/// 53 in 30 fills, none before 92 %; 10^6 entries, 48 in 5, none before 90 %
/// (bench/README.md, "Structured keys").
const PREFER_FIRST: usize = 5;

/// Bit `i` set where lane `i` carries `tag`.
#[inline]
fn tag_mask(lanes: &[u64; LANES], tag: u32) -> u32 {
    let mut m = 0u32;
    for (i, &v) in lanes.iter().enumerate() {
        m |= ((lane_tag(v) == tag) as u32) << i;
    }
    m
}

#[repr(align(64))]
#[derive(Default)]
struct Bucket([AtomicU64; LANES]);

/// Where a tuple lives in the index.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pos {
    pub b: [usize; 2],
    pub tag: u32,
}

impl Pos {
    /// The tag and the first bucket: 31 + log2(buckets) bits of the tuple's hash.
    #[inline]
    pub(crate) fn fingerprint(&self) -> u64 {
        ((self.tag as u64) << 32) ^ self.b[0] as u64
    }
}

/// Lane value for `slot` holding a tuple with `tag` in direction `dir`.
#[inline]
pub(crate) fn lane_value(tag: u32, dir: Dir, slot: usize) -> u64 {
    ((tag as u64) << 33) | (((dir == Dir::Reply) as u64) << 32) | (slot as u64 + 1)
}
#[inline]
pub(crate) fn lane_tag(v: u64) -> u32 {
    (v >> 33) as u32
}
#[inline]
pub(crate) fn lane_dir(v: u64) -> Dir {
    if (v >> 32) & 1 == 1 {
        Dir::Reply
    } else {
        Dir::Original
    }
}
#[inline]
pub(crate) fn lane_slot(v: u64) -> usize {
    (v & 0xffff_ffff) as usize - 1
}

pub(crate) struct Index {
    buckets: Box<[Bucket]>,
}

impl Index {
    /// An index with room for `keys` tuples at ~70 % lane occupancy when full; see
    /// `ConnTable` docs for the measured refusal rate.
    pub(crate) fn new(keys: usize) -> Self {
        let lanes = keys.saturating_mul(10).div_ceil(7);
        let n = lanes.div_ceil(LANES).max(2);
        assert!(n <= u32::MAX as usize, "index too large");
        let index = Index {
            buckets: crate::hugepage::boxed(n, |_| Bucket::default()),
        };
        // The allocator hands out zeroed pages lazily; touch every page now so the packet
        // path never takes a page fault on its first insert into a fresh part of the
        // index (measured: a third of a new-flow benchmark's time was clear_page).
        let per_page = (4096 / std::mem::size_of::<Bucket>()).max(1);
        for b in index.buckets.iter().step_by(per_page) {
            b.0[0].store(0, Ordering::Relaxed);
        }
        index
    }

    pub(crate) fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }

    /// Both bucket numbers and the tag for a 64-bit tuple hash (multiply-shift range
    /// reduction, so the bucket count need not be a power of two).
    #[inline]
    pub(crate) fn pos(&self, h: u64) -> Pos {
        let n = self.buckets.len() as u64;
        let b0 = (((h & 0xffff_ffff) * n) >> 32) as usize;
        let mut b1 = (((h >> 32) * n) >> 32) as usize;
        if b1 == b0 {
            b1 = if b0 + 1 == n as usize { 0 } else { b0 + 1 };
        }
        Pos {
            b: [b0, b1],
            tag: tag_of(h),
        }
    }

    /// Calls `f(lane value)` for every lane of `pos` whose tag matches, stopping when `f`
    /// returns `Some`, bucket 0 first. Each bucket's lanes are loaded together and turned
    /// into a tag bit mask: a branch per lane on whether it is empty or ours mispredicted
    /// with the buckets' varying fill, in every insert's two rescans. The lookup's probe
    /// is this one with `Acquire` ([`find`](Self::find)).
    #[inline]
    pub(crate) fn probe<R>(
        &self,
        pos: &Pos,
        order: Ordering,
        mut f: impl FnMut(u64) -> Option<R>,
    ) -> Option<R> {
        for &b in &pos.b {
            // `get`: a `Pos` of another table (`ConnTable::finish` misused) finds nothing
            // rather than panicking; the bounds check is there either way.
            let Bucket(bucket) = self.buckets.get(b)?;
            let lanes: [u64; LANES] = std::array::from_fn(|i| bucket[i].load(order));
            let mut m = tag_mask(&lanes, pos.tag);
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                if let Some(r) = f(lanes[i % LANES]) {
                    return Some(r);
                }
            }
        }
        None
    }

    /// The lookup probe, bucket 0 first: turns one bucket's tag comparison into a bit mask
    /// (no branch per lane, so where the match sits costs no mispredict), then calls
    /// `f(lane value)` for each candidate until it returns `Some`; bucket 1 is read only
    /// when bucket 0 holds no answer. [`place`](Self::place) puts a tuple in its bucket 0
    /// unless that one is fairly full, so a hit almost always costs one index cache line
    /// (under 1 % of tuples sit in bucket 1 at a third of capacity, ~16 % when full) and
    /// only a miss reads both. Tags are never 0, so empty lanes never match. Acquire, so an
    /// entry placed before its lane is seen whole.
    #[inline]
    pub(crate) fn find<R>(&self, pos: &Pos, f: impl FnMut(u64) -> Option<R>) -> Option<R> {
        self.probe(pos, Ordering::Acquire, f)
    }

    /// Starts loading bucket 0 of `pos`, where [`find`](Self::find) looks first (see
    /// `prefetch.rs`).
    #[inline]
    pub(crate) fn prefetch(&self, pos: &Pos) {
        if let Some(b) = self.buckets.get(pos.b[0]) {
            crate::prefetch::prefetch_once(b);
        }
    }

    /// Starts loading bucket 1 of `pos` as well (an insert reads both).
    #[inline]
    pub(crate) fn prefetch_both(&self, pos: &Pos) {
        crate::prefetch::prefetch(&self.buckets[pos.b[0]]);
        crate::prefetch::prefetch(&self.buckets[pos.b[1]]);
    }

    /// The first lane of bucket 0 of `pos` whose tag matches: the likely hit, for
    /// prefetching its entry. None when bucket 0 has none, so the answer (if any) is in
    /// bucket 1: that bucket is then prefetched instead. Relaxed: only a hint.
    #[inline(always)]
    pub(crate) fn first_match(&self, pos: &Pos) -> Option<u64> {
        let Bucket(bucket) = self.buckets.get(pos.b[0])?;
        let lanes: [u64; LANES] = std::array::from_fn(|i| bucket[i].load(Ordering::Relaxed));
        let m = tag_mask(&lanes, pos.tag);
        if m != 0 {
            return Some(lanes[m.trailing_zeros() as usize % LANES]);
        }
        if let Some(b) = self.buckets.get(pos.b[1]) {
            crate::prefetch::prefetch(b);
        }
        None
    }

    /// Stores `value` in an empty lane: bucket 0 of `pos` while it holds fewer than
    /// [`PREFER_FIRST`] tuples, otherwise the emptier bucket; false if both are full.
    /// Filling bucket 0 first is what lets a lookup usually stop there (see
    /// [`find`](Self::find)); switching to the emptier bucket near the top keeps the
    /// two-choice balance where overflows would come from.
    pub(crate) fn place(&self, pos: &Pos, value: u64) -> bool {
        let e0 = self.empty_lanes(pos.b[0]);
        let u0 = LANES - e0.count_ones() as usize;
        let (order, mut empty) = if u0 >= PREFER_FIRST {
            let e1 = self.empty_lanes(pos.b[1]);
            if LANES - (e1.count_ones() as usize) < u0 {
                ([pos.b[1], pos.b[0]], e1)
            } else {
                (pos.b, e0)
            }
        } else {
            (pos.b, e0)
        };
        for (k, b) in order.into_iter().enumerate() {
            if k == 1 {
                empty = self.empty_lanes(b);
            }
            // The lowest empty lane; after a lost race for one, the bucket is looked at
            // afresh (at most once per lane).
            for _ in 0..LANES {
                if empty == 0 {
                    break;
                }
                let lane = &self.buckets[b].0[empty.trailing_zeros() as usize % LANES];
                if lane
                    .compare_exchange(0, value, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    return true;
                }
                empty = self.empty_lanes(b);
            }
        }
        false
    }

    /// Bit `i` set where lane `i` of bucket `b` is empty (one load per lane, no branch).
    #[inline]
    fn empty_lanes(&self, b: usize) -> u32 {
        let Bucket(bucket) = &self.buckets[b];
        let mut m = 0u32;
        for (i, lane) in bucket.iter().enumerate() {
            m |= ((lane.load(Ordering::Relaxed) == 0) as u32) << i;
        }
        m
    }

    /// Clears the lane holding exactly `value`; false if none does.
    pub(crate) fn remove(&self, pos: &Pos, value: u64) -> bool {
        for &b in &pos.b {
            for lane in &self.buckets[b].0 {
                if lane.load(Ordering::Relaxed) == value
                    && lane
                        .compare_exchange(value, 0, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    return true;
                }
            }
        }
        false
    }

    /// Occupied lanes (for tests and the bench).
    pub(crate) fn occupied(&self) -> usize {
        self.buckets
            .iter()
            .flat_map(|b| b.0.iter())
            .filter(|l| l.load(Ordering::Relaxed) != 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_fields() {
        let v = lane_value(0x7fff_ffff, Dir::Reply, 41);
        assert_eq!(lane_tag(v), 0x7fff_ffff);
        assert_eq!(lane_dir(v), Dir::Reply);
        assert_eq!(lane_slot(v), 41);
        let v = lane_value(0, Dir::Original, 0);
        assert_ne!(v, 0);
        assert_eq!(lane_dir(v), Dir::Original);
        assert_eq!(lane_slot(v), 0);
    }

    #[test]
    fn place_probe_remove() {
        let ix = Index::new(16);
        let pos = ix.pos(0x1234_5678_9abc_def0);
        assert_ne!(pos.b[0], pos.b[1]);
        // two full buckets of one tag, then refusal
        for s in 0..2 * LANES {
            assert!(ix.place(&pos, lane_value(pos.tag, Dir::Original, s)));
        }
        assert!(!ix.place(&pos, lane_value(pos.tag, Dir::Original, 99)));
        let mut seen = 0;
        ix.probe::<()>(&pos, Ordering::Acquire, |_| {
            seen += 1;
            None
        });
        assert_eq!(seen, 2 * LANES);
        assert!(ix.remove(&pos, lane_value(pos.tag, Dir::Original, 3)));
        assert!(!ix.remove(&pos, lane_value(pos.tag, Dir::Original, 3)));
        assert_eq!(ix.occupied(), 2 * LANES - 1);
        assert!(ix.place(&pos, lane_value(pos.tag, Dir::Reply, 99)));
    }

    #[test]
    fn find_visits_only_tag_matches_bucket0_first() {
        let ix = Index::new(64);
        let pos = ix.pos(0x0bad_cafe_f00d_1234);
        let other = Pos {
            tag: pos.tag ^ 1,
            ..pos
        };
        // fill bucket 0 (the emptier one when equal) with a mix, then bucket 1
        for s in 0..2 * LANES {
            let p = if s % 3 == 0 { &pos } else { &other };
            assert!(ix.place(p, lane_value(p.tag, Dir::Original, s)));
        }
        let mut seen = Vec::new();
        assert_eq!(
            ix.find::<()>(&pos, |v| {
                seen.push(lane_slot(v));
                None
            }),
            None
        );
        let mut want: Vec<usize> = (0..2 * LANES).filter(|s| s % 3 == 0).collect();
        // place alternates buckets by occupancy; find reports bucket 0 lanes first
        let in_b0 = |s: &usize| {
            ix.buckets[pos.b[0]]
                .0
                .iter()
                .any(|l| lane_slot(l.load(Ordering::Relaxed)) == *s)
        };
        want.sort_by_key(|s| !in_b0(s));
        assert_eq!(seen.len(), want.len());
        assert!(seen.iter().all(|s| want.contains(s)));
        assert!(seen.windows(2).all(|w| in_b0(&w[0]) || !in_b0(&w[1])));
        // stops at the first Some
        assert_eq!(ix.find(&pos, |v| Some(lane_slot(v))), Some(seen[0]));
        // an empty lane never matches: tags are never 0
        let empty = Index::new(16);
        assert_eq!(empty.find(&empty.pos(7), Some), None);
        assert!((0..10_000u64).all(|h| crate::layout::tag_of(h.wrapping_mul(0x9e37_79b9)) != 0));
    }
}
