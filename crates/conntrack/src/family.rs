//! One family's storage: a slab of fixed-size entries, a lock-free free list, and the tuple
//! index. `ConnTable` holds one for IPv4 and one for IPv6.
//!
//! # Concurrency protocol
//! - **Readers** (lookup, get, for_each) copy an entry between two loads of its `ctl` word and
//!   keep the copy only if the generation did not move (a seqlock; the key words change only
//!   while the generation is odd). No stores, no retries unless a slot is recycled under them.
//! - **Insert** pops a slot from the free list (a Treiber stack whose head carries a 32-bit
//!   ABA counter; the next link lives in the free entry's `meta` word), writes the entry as
//!   *pending*, places its original lane, rescans that tuple's buckets, then does the same for
//!   the reply tuple, then commits (pending → the caller's state). Place and rescan are
//!   `SeqCst`, so of two inserters of one tuple at least one sees the other (Dekker): a
//!   committed rival means `Exists`/`Clash`; of two pending rivals the one in the lower slot
//!   waits for the other to settle and the higher withdraws, waits and retries — so at most
//!   one ever commits a tuple. Waiting happens only between inserts of the *same* new tuple
//!   (a rare race); lookups never wait.
//! - **Update** is one CAS on `ctl` that names the generation: it cannot touch a recycled slot.
//! - **Reclaim** (remove, expire) CASes `ctl` to the next odd generation — exactly one caller
//!   wins — then clears both lanes and only then pushes the slot, so a lane never outlives its
//!   entry into the next occupant.

use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

use crate::flow::{Conn, ConnId, Dir, Entry, Hit, InsertError};
use crate::index::{lane_dir, lane_slot, lane_value, Index, Pos};
use crate::layout::{
    ctl_dead, ctl_deadline, ctl_gen, ctl_live, ctl_pack, ctl_state, decode_conn, encode_conn,
    encode_key, expired, hash_key, key_matches, EncKey, Seed, CTL, CTL_DEAD, CTL_NEVER_USED,
    GEN_MASK, MAX_WORDS, META, STATE_PENDING,
};
use crate::Sweep;

/// Attempts before an insert that keeps yielding to pending twins gives up with `Contended`.
const MAX_ATTEMPTS: u32 = 64;
/// Back-off rounds while waiting for one pending rival before declaring it stuck (about
/// 60 µs of spinning in all): the packet path never sleeps or yields in a syscall, so a
/// rival preempted mid-insert costs this insert a `Contended`, not a wait.
const MAX_WAIT_ROUNDS: u32 = 64;

/// `AW` is the number of address words per tuple (1 for IPv4, 4 for IPv6): a constant, so
/// the entry copy, key comparison and the hit's copy of the words on the lookup path
/// compile to straight-line word loads and compares.
pub(crate) struct FamilyTable<const AW: usize> {
    cap: usize,
    words: Box<[AtomicU64]>,
    /// `aba counter (32) ‖ slot+1 (32)`, 0 in the low half = empty.
    free_head: AtomicU64,
    index: Index,
    seed: Seed,
    live: AtomicUsize,
    cursor: AtomicUsize,
}

/// Both tuples of a connection being inserted, encoded, and their index positions.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct InsertPos {
    pub ko: EncKey,
    pub kr: EncKey,
    pub po: Pos,
    pub pr: Pos,
}

enum Rescan {
    Clear,
    /// A committed live entry holds the tuple (as its `Dir` tuple).
    Taken(ConnId, Dir),
    /// Another insert of the tuple is in flight in this slot (and generation).
    Racing(usize, u32),
}

/// How an insert stands on one tuple after placing its lane.
enum Claim {
    Won,
    Taken(ConnId, Dir),
    /// A pending rival in a lower slot has precedence: withdraw, wait for it, retry.
    Yield(usize, u32),
    /// A pending rival never finished (its thread stalled for very long).
    Stuck,
}

impl<const AW: usize> FamilyTable<AW> {
    /// Words per entry.
    const STRIDE: usize = 3 + 2 * AW;
    const V6: bool = AW == 4;

    pub(crate) fn new(cap: usize, seed: u64) -> Self {
        assert!(AW == 1 || AW == 4, "1 (IPv4) or 4 (IPv6) address words");
        assert!(cap < u32::MAX as usize, "capacity must fit in 32 bits");
        let stride = Self::STRIDE;
        let words: Box<[AtomicU64]> = crate::hugepage::boxed(cap * stride, |i| {
            let slot = i / stride;
            match i % stride {
                // generation 1: odd = free; never used
                CTL => AtomicU64::new(CTL_NEVER_USED),
                // free-list link: slot+1 of the next free slot, 0 ends the list
                META if slot + 1 < cap => AtomicU64::new(slot as u64 + 2),
                _ => AtomicU64::new(0),
            }
        });
        FamilyTable {
            cap,
            words,
            free_head: AtomicU64::new(if cap > 0 { 1 } else { 0 }),
            index: Index::new(cap.saturating_mul(2)),
            seed: Seed::new(seed),
            live: AtomicUsize::new(0),
            cursor: AtomicUsize::new(0),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }
    pub(crate) fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
    /// Bytes of entries plus index.
    pub(crate) fn bytes(&self) -> usize {
        self.words.len() * 8 + self.index.bytes()
    }
    pub(crate) fn entry_bytes(&self) -> usize {
        Self::STRIDE * 8
    }
    pub(crate) fn index_lanes_used(&self) -> usize {
        self.index.occupied()
    }

    #[inline]
    fn entry(&self, slot: usize) -> &[AtomicU64] {
        &self.words[slot * Self::STRIDE..(slot + 1) * Self::STRIDE]
    }

    #[inline]
    fn pos(&self, k: &EncKey) -> Pos {
        self.index.pos(hash_key::<AW>(&self.seed, k))
    }

    /// A consistent copy of a live entry (`w[0]` = its latest `ctl`), or None if the slot
    /// is free or being torn down.
    #[inline]
    fn read(&self, slot: usize) -> Option<[u64; MAX_WORDS]> {
        let e = self.entry(slot);
        loop {
            let c1 = e[CTL].load(Ordering::Acquire);
            if !ctl_live(c1) {
                return None;
            }
            let mut w = [0u64; MAX_WORDS];
            for (dst, src) in w[1..Self::STRIDE].iter_mut().zip(&e[1..]) {
                *dst = src.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            let c2 = e[CTL].load(Ordering::Relaxed);
            if ctl_gen(c2) == ctl_gen(c1) {
                w[CTL] = c2;
                return Some(w);
            }
            if !ctl_live(c2) {
                return None;
            }
        }
    }

    fn pop(&self) -> Option<usize> {
        let mut h = self.free_head.load(Ordering::Acquire);
        loop {
            let idx = (h & 0xffff_ffff) as usize;
            if idx == 0 {
                return None;
            }
            let slot = idx - 1;
            // May read a link the slot's next owner already overwrote; the counter in the
            // head then makes the CAS fail.
            let next = self.entry(slot)[META].load(Ordering::Relaxed) & 0xffff_ffff;
            let new = (((h >> 32).wrapping_add(1)) << 32) | next;
            match self
                .free_head
                .compare_exchange_weak(h, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(slot),
                Err(x) => h = x,
            }
        }
    }

    fn push(&self, slot: usize) {
        let link = &self.entry(slot)[META];
        let mut h = self.free_head.load(Ordering::Relaxed);
        loop {
            link.store(h & 0xffff_ffff, Ordering::Relaxed);
            let new = (((h >> 32).wrapping_add(1)) << 32) | (slot as u64 + 1);
            match self
                .free_head
                .compare_exchange_weak(h, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(x) => h = x,
            }
        }
    }

    #[inline]
    fn hit(&self, slot: usize, dir: Dir, w: &[u64; MAX_WORDS]) -> Hit {
        Hit::from_words::<AW>(ConnId::new(Self::V6, slot as u32, ctl_gen(w[CTL])), dir, w)
    }

    #[inline]
    fn find(&self, k: &EncKey, pos: &Pos, now: u32) -> Option<Hit> {
        self.index.find(pos, |v| self.try_lane(k, v, now))
    }

    /// The hit for `k` if index lane value `v` points at a live, unexpired entry holding
    /// `k` in the lane's direction.
    #[inline(always)]
    fn try_lane(&self, k: &EncKey, v: u64, now: u32) -> Option<Hit> {
        let (slot, dir, w) = self.lane_entry(k, v, now)?;
        Some(self.hit(slot, dir, &w))
    }

    /// [`try_lane`](Self::try_lane)'s entry: its slot, direction and words, undecoded.
    #[inline(always)]
    fn lane_entry(&self, k: &EncKey, v: u64, now: u32) -> Option<(usize, Dir, [u64; MAX_WORDS])> {
        let slot = lane_slot(v);
        let dir = lane_dir(v);
        let w = self.read(slot)?;
        let c = w[CTL];
        // One branch for all four conditions: a tag match is almost always the hit.
        let usable = key_matches::<AW>(&w, dir, k)
            & !ctl_dead(c)
            & (ctl_state(c) != STATE_PENDING)
            & !expired(ctl_deadline(c), now);
        usable.then_some((slot, dir, w))
    }

    /// [`finish`](Self::finish) when the lane `prefetch_entry` found holds `k` (see
    /// [`ConnTable::finish_lane`](crate::ConnTable::finish_lane)), its entry undecoded.
    #[inline(always)]
    pub(crate) fn finish_lane(&self, k: &EncKey, lane: u64, now: u32) -> Option<Entry> {
        if lane == 0 {
            return None;
        }
        let (_, dir, w) = self.lane_entry(k, lane, now)?;
        Some(Entry::from_words::<AW>(dir, w))
    }

    #[inline]
    pub(crate) fn lookup(&self, key: &crate::FlowKey, now: u32) -> Option<Hit> {
        let k = encode_key(key);
        self.find(&k, &self.pos(&k), now)
    }

    /// First pass of a burst lookup: the key's encoding and index position, with a
    /// prefetch of its first bucket (where a hit almost always is) so their cache misses
    /// overlap with the other keys' ones.
    #[inline]
    pub(crate) fn prepare(&self, key: &crate::FlowKey) -> (EncKey, Pos) {
        let k = encode_key(key);
        let pos = self.pos(&k);
        self.index.prefetch(&pos);
        (k, pos)
    }

    /// Second pass: prefetches the entry of the first lane of bucket 0 whose tag matches
    /// (the likely hit), both ends of it (an entry can straddle two cache lines); with no
    /// match there, bucket 1 instead. Returns that lane (0: none) for [`finish`](Self::finish).
    #[inline(always)]
    pub(crate) fn prefetch_entry(&self, pos: &Pos) -> u64 {
        match self.index.first_match(pos) {
            Some(v) => {
                self.prefetch_slot(lane_slot(v));
                v
            }
            None => 0,
        }
    }

    #[inline(always)]
    fn prefetch_slot(&self, slot: usize) {
        if let Some(e) = self
            .words
            .get(slot * Self::STRIDE..(slot + 1) * Self::STRIDE)
        {
            crate::prefetch::prefetch(&e[CTL]);
            crate::prefetch::prefetch(&e[Self::STRIDE - 1]);
        }
    }

    /// Second half of a burst lookup: the entry of the lane `prefetch_entry` found
    /// (`lane`, 0 for none), without probing the bucket again, when it holds `k`; otherwise
    /// the whole probe. Taking that entry without the probe gives what the probe would:
    /// a live entry holding `k` is `k`'s connection, as a tuple belongs to one live entry
    /// at a time, whether or not its lane is still the first match.
    #[inline]
    pub(crate) fn finish(&self, k: &EncKey, pos: &Pos, lane: u64, now: u32) -> Option<Hit> {
        if lane != 0 {
            if let Some(hit) = self.try_lane(k, lane, now) {
                return Some(hit);
            }
        }
        self.find(k, pos, now)
    }

    /// Looks at every other lane for `k` after ours was placed; retires expired holders.
    fn rescan(&self, k: &EncKey, pos: &Pos, me: usize, now: u32) -> Rescan {
        let mut racing = None;
        let taken = self.index.probe(pos, Ordering::SeqCst, |v| {
            let slot = lane_slot(v);
            if slot == me {
                return None;
            }
            let dir = lane_dir(v);
            let ctl = &self.entry(slot)[CTL];
            loop {
                let w = self.read(slot)?;
                if !key_matches::<AW>(&w, dir, k) {
                    return None;
                }
                let c = w[CTL];
                if ctl_dead(c) {
                    return None;
                }
                if ctl_state(c) == STATE_PENDING {
                    racing = racing.or(Some((slot, ctl_gen(c))));
                    return None;
                }
                if expired(ctl_deadline(c), now) {
                    // Retire it so a late update cannot bring it back beside us; expire_step
                    // still reclaims and reports it.
                    if ctl
                        .compare_exchange(c, c | CTL_DEAD, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                    {
                        return None;
                    }
                    continue;
                }
                return Some((ConnId::new(Self::V6, slot as u32, ctl_gen(c)), dir));
            }
        });
        match (taken, racing) {
            (Some((id, dir)), _) => Rescan::Taken(id, dir),
            (None, Some((slot, gen))) => Rescan::Racing(slot, gen),
            (None, None) => Rescan::Clear,
        }
    }

    /// Resolves our claim on tuple `k` against other inserts of it. Of two pending inserts
    /// the one in the lower slot keeps its lane and waits; the higher withdraws. Waits only
    /// go from lower to higher slots, so they cannot form a cycle, and the Dekker rescan
    /// guarantees that a rival which did not see us is seen by us.
    fn settle(&self, k: &EncKey, pos: &Pos, me: usize, now: u32) -> Claim {
        loop {
            match self.rescan(k, pos, me, now) {
                Rescan::Clear => return Claim::Won,
                Rescan::Taken(id, dir) => return Claim::Taken(id, dir),
                Rescan::Racing(rival, gen) if me < rival => {
                    if !self.wait_pending(rival, gen) {
                        return Claim::Stuck;
                    }
                }
                Rescan::Racing(rival, gen) => return Claim::Yield(rival, gen),
            }
        }
    }

    /// Waits until the insert in `slot` generation `gen` has committed or withdrawn.
    #[cold]
    fn wait_pending(&self, slot: usize, gen: u32) -> bool {
        let ctl = &self.entry(slot)[CTL];
        for i in 0..MAX_WAIT_ROUNDS {
            let c = ctl.load(Ordering::Acquire);
            if ctl_gen(c) != gen || ctl_state(c) != STATE_PENDING {
                return true;
            }
            backoff(i);
        }
        false
    }

    /// Does `id` (still) hold `k` as its `dir` tuple?
    fn holds(&self, id: ConnId, dir: Dir, k: &EncKey) -> bool {
        self.read(id.slot())
            .is_some_and(|w| ctl_gen(w[CTL]) == id.gen() && key_matches::<AW>(&w, dir, k))
    }

    /// Undoes an unfinished insert: lanes first, then the slot.
    fn withdraw(&self, slot: usize, gen: u32, lanes: &[(Pos, u64)]) {
        for (p, v) in lanes {
            self.index.remove(p, *v);
        }
        self.entry(slot)[CTL].store(ctl_pack(gen.wrapping_add(1), 0, 0), Ordering::Release);
        self.push(slot);
    }

    /// A live connection already holding `c`'s original tuple (`Exists` as its original,
    /// `Clash` as its reply) or else its reply tuple ([`reply_taken`](Self::reply_taken)),
    /// as the insert's error. Asked only when the insert fails for lack of room.
    #[cold]
    fn holder(
        &self,
        c: &Conn,
        (ko, po): (&EncKey, &Pos),
        (kr, pr): (&EncKey, &Pos),
        now: u32,
    ) -> Option<InsertError> {
        if let Some(h) = self.find(ko, po, now) {
            return Some(match h.dir {
                Dir::Original => InsertError::Exists(h.id),
                Dir::Reply => InsertError::Clash(h.id),
            });
        }
        self.reply_taken(c, kr, pr, now)
    }

    /// A live connection already holding `c`'s reply tuple, as the insert's error: a clash,
    /// or `Exists` for a twin of `c` committed a moment ago. Asked only when the insert
    /// fails for lack of room, so a clash is still reported before `Full`/`Overflow`.
    #[cold]
    fn reply_taken(&self, c: &Conn, kr: &EncKey, pr: &Pos, now: u32) -> Option<InsertError> {
        let h = self.find(kr, pr, now)?;
        Some(if h.dir == Dir::Reply && h.orig() == c.orig {
            InsertError::Exists(h.id)
        } else {
            InsertError::Clash(h.id)
        })
    }

    /// The first half of an insert: both tuples hashed, and the loads it will wait for
    /// started. The original tuple's buckets are usually warm (the packet was just looked
    /// up); the reply tuple's exist only now that a real server was chosen, and at a large
    /// table they are a cache miss per new flow. Start loading them, and the free slot we
    /// will probably pop, so the misses overlap with whatever the caller does before
    /// [`insert_at`](Self::insert_at): the rest of this insert, or (a worker's burst) the
    /// scheduling of the burst's other new flows.
    #[inline]
    pub(crate) fn insert_pos(&self, c: &Conn) -> InsertPos {
        let ko = encode_key(&c.orig);
        let kr = encode_key(&c.reply);
        let po = self.pos(&ko);
        let pr = self.pos(&kr);
        self.index.prefetch_both(&pr);
        let head = self.free_head.load(Ordering::Relaxed) & 0xffff_ffff;
        if head != 0 {
            self.prefetch_slot(head as usize - 1);
        }
        InsertPos { ko, kr, po, pr }
    }

    pub(crate) fn insert(&self, c: &Conn, now: u32, deadline: u32) -> Result<ConnId, InsertError> {
        let at = self.insert_pos(c);
        self.insert_at(c, &at, now, deadline)
    }

    /// The second half of an insert; `at` is [`insert_pos`](Self::insert_pos)`(c)`.
    pub(crate) fn insert_at(
        &self,
        c: &Conn,
        at: &InsertPos,
        now: u32,
        deadline: u32,
    ) -> Result<ConnId, InsertError> {
        let InsertPos { ko, kr, po, pr } = *at;
        let body = encode_conn::<AW>(c);
        for _ in 0..MAX_ATTEMPTS {
            // No look for a holder of either tuple first: the claims below find one all the
            // same (`settle`, then the twin check), so a new flow — the common case — reads
            // each tuple's buckets once, and the reply tuple's only after the original
            // tuple's work has given their miss (prefetched above) time to resolve. Only
            // when there is no room are holders looked for, so that `Exists`/`Clash` are
            // still reported before `Full`/`Overflow`.
            let Some(slot) = self.pop() else {
                return Err(self
                    .holder(c, (&ko, &po), (&kr, &pr), now)
                    .unwrap_or(InsertError::Full));
            };
            let e = self.entry(slot);
            let gen = ctl_gen(e[CTL].load(Ordering::Relaxed)).wrapping_add(1) & GEN_MASK;
            // Pairs with the reader's acquire fence: a reader that sees any word below also
            // sees the odd generation that freed the slot.
            fence(Ordering::Release);
            for (dst, src) in e[1..].iter().zip(&body[1..Self::STRIDE]) {
                dst.store(*src, Ordering::Relaxed);
            }
            e[CTL].store(ctl_pack(gen, STATE_PENDING, deadline), Ordering::Release);

            let vo = lane_value(po.tag, Dir::Original, slot);
            if !self.index.place(&po, vo) {
                self.withdraw(slot, gen, &[]);
                return Err(self
                    .holder(c, (&ko, &po), (&kr, &pr), now)
                    .unwrap_or(InsertError::Overflow));
            }
            match self.settle(&ko, &po, slot, now) {
                Claim::Won => {}
                Claim::Taken(id, dir) => {
                    self.withdraw(slot, gen, &[(po, vo)]);
                    return Err(match dir {
                        Dir::Original => InsertError::Exists(id),
                        Dir::Reply => InsertError::Clash(id),
                    });
                }
                Claim::Yield(rival, rgen) => {
                    self.withdraw(slot, gen, &[(po, vo)]);
                    if self.wait_pending(rival, rgen) {
                        continue;
                    }
                    return Err(InsertError::Contended);
                }
                Claim::Stuck => {
                    self.withdraw(slot, gen, &[(po, vo)]);
                    return Err(InsertError::Contended);
                }
            }
            let vr = lane_value(pr.tag, Dir::Reply, slot);
            if !self.index.place(&pr, vr) {
                self.withdraw(slot, gen, &[(po, vo)]);
                return Err(self
                    .reply_taken(c, &kr, &pr, now)
                    .unwrap_or(InsertError::Overflow));
            }
            match self.settle(&kr, &pr, slot, now) {
                Claim::Won => {}
                Claim::Taken(id, dir) => {
                    self.withdraw(slot, gen, &[(po, vo), (pr, vr)]);
                    let twin = dir == Dir::Reply && self.holds(id, Dir::Original, &ko);
                    return Err(if twin {
                        InsertError::Exists(id)
                    } else {
                        InsertError::Clash(id)
                    });
                }
                Claim::Yield(rival, rgen) => {
                    self.withdraw(slot, gen, &[(po, vo), (pr, vr)]);
                    if self.wait_pending(rival, rgen) {
                        continue;
                    }
                    return Err(InsertError::Contended);
                }
                Claim::Stuck => {
                    self.withdraw(slot, gen, &[(po, vo), (pr, vr)]);
                    return Err(InsertError::Contended);
                }
            }
            // Nobody else writes a pending ctl (update/remove need an id we have not handed
            // out; expire and retire skip pending entries).
            e[CTL].store(ctl_pack(gen, c.state, deadline), Ordering::Release);
            self.live.fetch_add(1, Ordering::Relaxed);
            return Ok(ConnId::new(Self::V6, slot as u32, gen));
        }
        Err(InsertError::Contended)
    }

    pub(crate) fn update(&self, id: ConnId, state: u8, deadline: u32) -> bool {
        let Some(e) = self
            .words
            .get(id.slot() * Self::STRIDE..(id.slot() + 1) * Self::STRIDE)
        else {
            return false;
        };
        let new = ctl_pack(id.gen(), state, deadline);
        let mut c = e[CTL].load(Ordering::Acquire);
        loop {
            if ctl_gen(c) != id.gen() || ctl_dead(c) || ctl_state(c) == STATE_PENDING {
                return false;
            }
            if c == new {
                return true;
            }
            match e[CTL].compare_exchange_weak(c, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(x) => c = x,
            }
        }
    }

    /// Clears the flag bits `mask` of entry `id`, whose `meta` word read `meta` (a hit's).
    /// True if this call cleared them. One CAS on the word: readers see the old flags or the
    /// new ones, both this entry's; a recycled slot (another meta, or a free-list link)
    /// makes it fail.
    pub(crate) fn clear_flags(&self, id: ConnId, meta: u64, mask: u8) -> bool {
        let Some(e) = self
            .words
            .get(id.slot() * Self::STRIDE..(id.slot() + 1) * Self::STRIDE)
        else {
            return false;
        };
        let bits = u64::from(mask) << 48;
        let c = e[CTL].load(Ordering::Acquire);
        if meta & bits == 0
            || ctl_gen(c) != id.gen()
            || ctl_dead(c)
            || ctl_state(c) == STATE_PENDING
        {
            return false;
        }
        e[META]
            .compare_exchange(meta, meta & !bits, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Moves `id` from state `from` to `to` with a new deadline, only if its state is still
    /// `from`. `Ok(())` when this call made the move (or `from == to` and it is live);
    /// `Err(Some(state))` when another writer changed the state first; `Err(None)` when the
    /// entry is gone.
    pub(crate) fn transition(
        &self,
        id: ConnId,
        from: u8,
        to: u8,
        deadline: u32,
    ) -> Result<(), Option<u8>> {
        let Some(e) = self
            .words
            .get(id.slot() * Self::STRIDE..(id.slot() + 1) * Self::STRIDE)
        else {
            return Err(None);
        };
        let new = ctl_pack(id.gen(), to, deadline);
        let mut c = e[CTL].load(Ordering::Acquire);
        loop {
            if ctl_gen(c) != id.gen() || ctl_dead(c) || ctl_state(c) == STATE_PENDING {
                return Err(None);
            }
            if ctl_state(c) != from {
                return Err(Some(ctl_state(c)));
            }
            if c == new {
                return Ok(());
            }
            match e[CTL].compare_exchange_weak(c, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(x) => c = x,
            }
        }
    }

    /// The state and deadline of `id` if its slot still holds it as a lookup would find it:
    /// same generation, not dead, not pending, not expired at `now`. One load of `ctl`.
    #[inline(always)]
    pub(crate) fn current(&self, id: ConnId, now: u32) -> Option<(u8, u32)> {
        let c = self
            .words
            .get(id.slot() * Self::STRIDE)?
            .load(Ordering::Acquire);
        let usable = (ctl_gen(c) == id.gen())
            & !ctl_dead(c)
            & (ctl_state(c) != STATE_PENDING)
            & !expired(ctl_deadline(c), now);
        usable.then(|| (ctl_state(c), ctl_deadline(c)))
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<(Conn, u32)> {
        if id.slot() >= self.cap {
            return None;
        }
        let w = self.read(id.slot())?;
        let c = w[CTL];
        if ctl_gen(c) != id.gen() || ctl_dead(c) || ctl_state(c) == STATE_PENDING {
            return None;
        }
        Some((decode_conn::<AW>(&w), ctl_deadline(c)))
    }

    /// Takes the slot from the state `observed`; on success clears its lanes, frees it and
    /// returns what it held.
    fn retire(&self, slot: usize, observed: u64) -> Option<Conn> {
        let e = self.entry(slot);
        let free = ctl_pack(ctl_gen(observed).wrapping_add(1), 0, 0);
        e[CTL]
            .compare_exchange(observed, free, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        // The slot is ours: its words cannot change until we push it.
        let mut w = [0u64; MAX_WORDS];
        for (dst, src) in w[1..Self::STRIDE].iter_mut().zip(&e[1..]) {
            *dst = src.load(Ordering::Relaxed);
        }
        w[CTL] = observed;
        let conn = decode_conn::<AW>(&w);
        let ko = encode_key(&conn.orig);
        let kr = encode_key(&conn.reply);
        let po = self.pos(&ko);
        let pr = self.pos(&kr);
        self.index
            .remove(&po, lane_value(po.tag, Dir::Original, slot));
        self.index.remove(&pr, lane_value(pr.tag, Dir::Reply, slot));
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.push(slot);
        Some(conn)
    }

    pub(crate) fn remove(&self, id: ConnId) -> bool {
        if id.slot() >= self.cap {
            return false;
        }
        let ctl = &self.entry(id.slot())[CTL];
        loop {
            let c = ctl.load(Ordering::Acquire);
            if ctl_gen(c) != id.gen() || ctl_dead(c) || ctl_state(c) == STATE_PENDING {
                return false;
            }
            if self.retire(id.slot(), c).is_some() {
                return true;
            }
        }
    }

    pub(crate) fn expire_step(&self, now: u32, budget: usize, sweep: &mut impl Sweep) -> usize {
        if self.cap == 0 {
            return 0;
        }
        let reads = sweep.reads();
        // From the cursor up to the first never-used slot (the used prefix's end), then on
        // from slot 0 up to where this round started: `budget` slots at most.
        let start = self.cursor.load(Ordering::Relaxed) % self.cap;
        let (mut slot, mut left, mut wrapped) = (start, budget.min(self.cap), false);
        let mut reclaimed = 0;
        while left > 0 {
            let c = self.entry(slot)[CTL].load(Ordering::Acquire);
            if c == CTL_NEVER_USED {
                // The rest of the slab has never been used. (A slot being taken right now
                // may still read as never used; a later round sees it and those after it.)
                let whole = wrapped || start == 0;
                (slot, wrapped) = (0, true);
                sweep.pass_ended(Self::V6);
                if whole {
                    break;
                }
                continue;
            }
            if ctl_live(c) && ctl_state(c) != STATE_PENDING {
                if ctl_dead(c) || expired(ctl_deadline(c), now) {
                    if !self.hold(slot, c, reads, sweep) {
                        if let Some(conn) = self.retire(slot, c) {
                            sweep.reclaimed(&conn);
                            reclaimed += 1;
                        }
                    }
                } else if reads {
                    if let Some(w) = self.read(slot).filter(|w| ctl_gen(w[CTL]) == ctl_gen(c)) {
                        sweep.live(&decode_conn::<AW>(&w));
                    }
                }
            }
            left -= 1;
            slot += 1;
            if slot == self.cap {
                (slot, wrapped) = (0, true);
                sweep.pass_ended(Self::V6);
            }
            if wrapped && slot == start {
                break;
            }
        }
        self.cursor.store(slot, Ordering::Relaxed);
        reclaimed
    }

    /// Whether `sweep` keeps the expired entry in `slot` (seen with `ctl` `c`): then its
    /// deadline is moved, if no writer moved it first (then the next pass decides).
    fn hold(&self, slot: usize, c: u64, reads: bool, sweep: &mut impl Sweep) -> bool {
        if !reads || ctl_dead(c) {
            return false;
        }
        let Some(w) = self.read(slot).filter(|w| w[CTL] == c) else {
            // Changed since `c` was read: no longer the expired entry seen.
            return true;
        };
        let Some(deadline) = sweep.hold(&decode_conn::<AW>(&w), ctl_deadline(c)) else {
            return false;
        };
        let moved = ctl_pack(ctl_gen(c), ctl_state(c), deadline);
        let _ =
            self.entry(slot)[CTL].compare_exchange(c, moved, Ordering::AcqRel, Ordering::Relaxed);
        true
    }

    pub(crate) fn for_each(&self, f: &mut impl FnMut(ConnId, &Conn, u32)) {
        for slot in 0..self.cap {
            if self.entry(slot)[CTL].load(Ordering::Relaxed) == CTL_NEVER_USED {
                break;
            }
            if let Some(w) = self.read(slot) {
                let c = w[CTL];
                if ctl_dead(c) || ctl_state(c) == STATE_PENDING {
                    continue;
                }
                let conn = decode_conn::<AW>(&w);
                f(
                    ConnId::new(Self::V6, slot as u32, ctl_gen(c)),
                    &conn,
                    ctl_deadline(c),
                );
            }
        }
    }
}

/// Lets a twin insert finish: spin, longer each round (capped), never a syscall.
#[inline]
fn backoff(attempt: u32) {
    for _ in 0..(8u32 << attempt.min(6)) {
        std::hint::spin_loop();
    }
}
