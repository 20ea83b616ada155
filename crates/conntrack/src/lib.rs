//! uvs connection table: shared by all workers, lock-free, bounded, both directions indexed.
//!
//! A NIC's RSS sends a flow's two directions to different queues, so every worker must find
//! every connection: the table is one shared structure (`Arc<ConnTable>`), built only from
//! atomics (`#![deny(unsafe_code)]` holds everywhere but `hugepage.rs`, which asks for
//! transparent huge pages with one advisory `madvise`, and `prefetch.rs`, a cache hint).
//! Lookups take no lock, make no syscall and store nothing; inserts, updates and reclaims are CAS loops. See `family.rs` for the protocol.
//!
//! # Shape
//! - **Entries**: fixed-size slots of `AtomicU64` words, one slab per address family
//!   (IPv4 5 words = 40 B, IPv6 11 words = 88 B), each guarded by its own `ctl` word
//!   (generation ‖ state ‖ deadline) that acts as a seqlock for the key words.
//! - **Index**: each tuple (original *and* reply) hashes (keyed, random seed) to two
//!   64-byte buckets of 8 lanes; a lookup reads at most those two cache lines plus the
//!   entry, and a hit almost always only the first (a tuple goes to its first bucket
//!   until that is fairly full, `index.rs`). Index sized at ~70 % lane occupancy for a
//!   full table.
//! - **Memory per connection**, index included: **IPv4 62.9 B** (40 B entry + 2 lanes of
//!   8 B at 70 % occupancy = 22.9 B), **IPv6 110.9 B** (88 + 22.9). IPVS's
//!   `struct ip_vs_conn` is 128+ B plus its hash links. [`ConnTable::bytes_per_entry`]
//!   reports the exact figure. Measured refusals (`Overflow`) filling a 1M table to 100 %:
//!   0 at this sizing (405 at 80 % lane occupancy, 60 B/entry — hence 70 %), before
//!   bucket 0 was filled first (`index.rs`); since, 48 in 5 fills of random keys, none
//!   before 90 % of capacity.
//!
//! # Figures
//! `examples/ct_bench.rs`, release, IPv4, this 2-vCPU VM (shared, noisy; medians of 3 runs):
//! 1 000 entries — ~41 M lookups/s (1.6× `std::HashMap`, which has no concurrency at all; a
//! lookup is ~21 ns, ~27 ns for IPv6), burst ~42 M/s, misses ~62 M/s, inserts ~8 M/s;
//! 1 000 000 entries — ~2.1 M lookups/s one at a time (≈ HashMap; the bench's own random
//! read of the key misses cache too), **~8 M/s with [`ConnTable::lookup_burst`]**, misses
//! ~3 M/s, inserts ~4 M/s. The lookup path was tuned against a profile: the address width
//! is a const generic per family (no `memcmp`, no runtime-length loops), the probe turns a
//! bucket pair into a tag bit mask, the hash chained 2 multiplies (IPv4; one since). Against the
//! previous version in one session: lookups 1.9× (1 000) and 1.6× (1 000 000), bursts
//! 2.9× / 2.0×, misses 2.2× / 1.5× (but 0.7× in `ct_bench`'s 1M miss loop); the
//! `uvs-bench pipeline` established-flow figure went from ~101 to ~81 ns/packet at 1 000
//! flows.
//!
//! # Time
//! `now` and deadlines are **ticks of u32 milliseconds** of a monotonic clock, compared in
//! wrapping arithmetic (so the clock may wrap; deadlines must be < 2^31 ms ahead). The
//! dataplane reads the clock once per burst. `update` skips its write when neither state nor
//! deadline changed, so a caller that rounds `now` (e.g. to 64 ms) turns most per-packet
//! updates into a load.
//!
//! # Expiry
//! An entry past its deadline is absent to `lookup` at once; nothing on the packet path
//! scans. The control thread calls [`ConnTable::expire_step`] regularly with a slot budget;
//! it sweeps a cursor through the slabs, reclaims expired slots, and reports each reclaimed
//! connection to its callback so the caller can decrement the real server's active/inactive
//! counters (exactly once per connection: either `remove` returned true for it or the
//! callback saw it). An insert that meets an expired entry with its tuple retires it so a late
//! `update` cannot revive it; `expire_step` still reclaims and reports it.
//! [`ConnTable::sweep_step`] is the same walk for a caller that keeps some expired entries
//! ([`Sweep::hold`]: uvs keeps a persistence template while its connections live) and sees
//! the live ones as it passes them.
//!
//! # When the table is full
//! IPVS has no hard limit; when memory runs low and the `drop_entry` defense is on,
//! `ip_vs_random_dropentry` walks random hash buckets and drops connections: any in
//! SYN_RECV/SYNACK, and — at a sampled rate (`todrop_entry`) — ESTABLISHED TCP and UDP
//! entries that have lived over 60 s. Established flows can thus lose their state at random. uvs refuses the
//! *new* flow instead: [`ConnTable::insert`] returns [`InsertError::Full`], the caller drops
//! the packet and counts it, and every existing entry stays until it expires or the
//! dataplane's own `drop_entry` defence removes it (half-open TCP, idle UDP). Capacity is
//! fixed at construction (from the YAML config).

#![deny(unsafe_code)]

mod family;
mod flow;
mod hugepage;
mod index;
mod layout;
pub mod memprobe;
pub mod tcp;
pub mod timeouts;

// A cache hint: the crate's second `unsafe` (see the module).
mod prefetch;

use std::hash::{BuildHasher, Hasher};

/// What the expiry walk ([`ConnTable::sweep_step`]) tells its caller and asks it.
pub trait Sweep {
    /// Whether the walk reads each live entry for [`live`](Self::live) and each expired one
    /// for [`hold`](Self::hold) (a read of the entry's words per slot); false: neither is
    /// called and expired entries are reclaimed.
    fn reads(&self) -> bool {
        false
    }
    /// A live entry that has not expired (only when [`reads`](Self::reads)).
    fn live(&mut self, _conn: &Conn) {}
    /// An expired entry about to be reclaimed, with the deadline it passed (only when
    /// [`reads`](Self::reads); never an entry an insert retired): `Some(deadline)` keeps
    /// it, unchanged but for its deadline.
    fn hold(&mut self, _conn: &Conn, _deadline: u32) -> Option<u32> {
        None
    }
    /// A reclaimed entry, with the last state it had (exactly once per connection, as
    /// [`ConnTable::expire_step`]'s callback).
    fn reclaimed(&mut self, conn: &Conn);
    /// The walk over the family's slab (`v6`) came back to its first slot: a whole pass
    /// over every slot used ended. An entry that was live through a whole pass has been
    /// shown to [`live`](Self::live) (or to [`hold`](Self::hold)) in it.
    fn pass_ended(&mut self, _v6: bool) {}
}

/// [`ConnTable::expire_step`]'s sweep: reclaims every expired entry.
struct Reclaim<F>(F);

impl<F: FnMut(&Conn)> Sweep for Reclaim<F> {
    fn reclaimed(&mut self, conn: &Conn) {
        (self.0)(conn)
    }
}

pub use flow::{Conn, ConnId, ConnView, Dir, Entry, FlowKey, Hit, InsertError, STATE_RESERVED_MIN};
pub use prefetch::prefetch;
pub use timeouts::{Proto, Timeouts};

use family::FamilyTable;

/// The shared connection table. `Send + Sync`; share it with `Arc`.
pub struct ConnTable {
    v4: FamilyTable<1>,
    v6: FamilyTable<4>,
}

/// Runs `$e` with `$f` bound to the IPv6 or the IPv4 storage (two types: their address width
/// is a constant, so each family's code is specialised).
macro_rules! on_family {
    ($self:expr, $v6:expr, |$f:ident| $e:expr) => {
        if $v6 {
            let $f = &$self.v6;
            $e
        } else {
            let $f = &$self.v4;
            $e
        }
    };
}

impl ConnTable {
    /// A table for `capacity` IPv4 and `capacity` IPv6 connections.
    pub fn new(capacity: usize) -> Self {
        Self::with_capacities(capacity, capacity)
    }

    /// A table with separate capacities for IPv4 and IPv6 connections (each family has its
    /// own slab; 0 disables a family).
    pub fn with_capacities(v4: usize, v6: usize) -> Self {
        let seed = random_seed();
        ConnTable {
            v4: FamilyTable::new(v4, seed),
            v6: FamilyTable::new(v6, seed.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15),
        }
    }

    /// The live connection whose original or reply tuple is `key`, unless it is past its
    /// deadline at `now` (ms ticks). Reads at most two index cache lines and one entry.
    #[inline]
    pub fn lookup(&self, key: &FlowKey, now: u32) -> Option<Hit> {
        on_family!(self, key.v6, |f| f.lookup(key, now))
    }

    /// [`lookup`](Self::lookup) for a burst of keys, `out[i]` for `keys[i]` (extra `out`
    /// slots are left alone). Hashes the burst and prefetches every key's buckets and likely
    /// entry before probing, so the cache misses of a large table overlap instead of
    /// queueing one after another. No allocation; bursts are processed 32 keys at a time.
    ///
    /// A table whose entries and index fit in 1 MiB stays in cache,
    /// where the extra passes only cost time (measured: 29 vs 21 ns per key at 1 000
    /// entries), so such a table is probed key by key.
    pub fn lookup_burst(&self, keys: &[FlowKey], now: u32, out: &mut [Option<Hit>]) {
        const CHUNK: usize = 32;
        if self.memory_bytes() <= BURST_PREFETCH_MIN_BYTES {
            for (k, o) in keys.iter().zip(out.iter_mut()) {
                *o = self.lookup(k, now);
            }
            return;
        }
        for (keys, out) in keys.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
            let mut prep = [Prepared::default(); CHUNK];
            for (p, k) in prep.iter_mut().zip(keys) {
                *p = self.prepare(k);
            }
            for p in &mut prep[..keys.len()] {
                self.prefetch_entry(p);
            }
            for (p, o) in prep.iter().zip(out.iter_mut()) {
                *o = self.finish(p, now);
            }
        }
    }

    /// First step of a lookup split in three so that a burst's cache misses overlap with
    /// other work: hashes `key` and starts loading its first index bucket. Then, once that
    /// has had time to arrive, [`prefetch_entry`](Self::prefetch_entry) starts loading the
    /// entry, and later [`finish`](Self::finish) gives what [`lookup`](Self::lookup)
    /// would. A worker that prepares each frame's key as it parses the burst, prefetches
    /// the entries after the parse, and finishes each lookup only when it gets to that
    /// frame lets the entry's miss overlap with the frames before it, where
    /// [`lookup_burst`](Self::lookup_burst) waits for all of them at once.
    #[inline]
    pub fn prepare(&self, key: &FlowKey) -> Prepared {
        let (k, pos) = on_family!(self, key.v6, |f| f.prepare(key));
        Prepared {
            k,
            pos,
            v6: key.v6,
            lane: 0,
        }
    }

    /// Second step (see [`prepare`](Self::prepare)): reads the key's first index bucket
    /// and starts loading the entry its tag points at (or the second bucket), and keeps
    /// that lane in `p` for [`finish`](Self::finish).
    #[inline(always)]
    pub fn prefetch_entry(&self, p: &mut Prepared) {
        p.lane = on_family!(self, p.v6, |f| f.prefetch_entry(&p.pos));
    }

    /// Last step (see [`prepare`](Self::prepare)): the lookup's answer at `now`. Correct
    /// whenever it is called: the earlier steps only warm the cache.
    #[inline]
    pub fn finish(&self, p: &Prepared, now: u32) -> Option<Hit> {
        on_family!(self, p.v6, |f| f.finish(&p.k, &p.pos, p.lane, now))
    }

    /// [`finish`](Self::finish) for a caller that needs a few fields of a connection
    /// found where [`prefetch_entry`](Self::prefetch_entry) pointed: the entry of the lane
    /// it found, undecoded, when that entry is live and holds the key (the commonest hit).
    /// `None` says only that this quick answer is not there: the key may still be in the
    /// table (another lane, a lane found after the prefetch), which [`finish`](Self::finish)
    /// would find. A `Some` is what `finish` would give, as [`Entry`] instead of [`Hit`].
    #[inline(always)]
    pub fn finish_lane(&self, p: &Prepared, now: u32) -> Option<Entry> {
        on_family!(self, p.v6, |f| f.finish_lane(&p.k, p.lane, now))
    }

    /// [`lookup`](Self::lookup) of `key` that takes a burst's prepared lookup when it is
    /// `key`'s ([`prepare`](Self::prepare) of an equal key): its bucket and entry may have
    /// been loaded ahead. Any other `hint` (another key's, or none) is ignored. The answer
    /// is `lookup`'s either way, as [`finish`](Self::finish)'s always is.
    #[inline]
    pub fn lookup_hinted(&self, key: &FlowKey, hint: Option<&Prepared>, now: u32) -> Option<Hit> {
        match hint {
            Some(p) if p.v6 == key.v6 && p.k == layout::encode_key(key) => self.finish(p, now),
            _ => self.lookup(key, now),
        }
    }

    /// Stores a new connection expiring at `deadline`; `now` decides whether a same-tuple
    /// entry found on the way has already expired (then it is retired, not a conflict).
    ///
    /// When two workers insert the same new flow at once, one wins and the other gets
    /// [`InsertError::Exists`] with the winner's id (fetch it with [`ConnTable::get`]). The
    /// loser waits for the winner by spinning a bounded time, never in a syscall: if the
    /// winner was preempted mid-insert it gets [`InsertError::Contended`] instead.
    pub fn insert(&self, conn: &Conn, now: u32, deadline: u32) -> Result<ConnId, InsertError> {
        if !insertable(conn) {
            return Err(InsertError::Invalid);
        }
        on_family!(self, conn.orig.v6, |f| f.insert(conn, now, deadline))
    }

    /// [`insert`](Self::insert) in two steps, so that its cache misses overlap with other
    /// work: this one hashes both tuples of `conn` and starts loading the reply tuple's
    /// index buckets and the free slot the insert will probably take (at a large table
    /// they are not in cache: the reply tuple exists only once a real server is chosen);
    /// [`insert_prepared`](Self::insert_prepared) stores it. A worker that schedules a
    /// burst's new flows first and stores them afterwards lets each insert's misses
    /// overlap with the scheduling of the others, as DPDK's bulk operations do. Nothing
    /// is stored or reserved in between: keeping it longer only loses the prefetch.
    #[inline]
    pub fn prepare_insert(&self, conn: &Conn) -> PreparedInsert {
        let at = on_family!(self, conn.orig.v6, |f| f.insert_pos(conn));
        PreparedInsert { conn: *conn, at }
    }

    /// Stores [`prepare_insert`](Self::prepare_insert)'s connection: the same answers as
    /// [`insert`](Self::insert) would give at this moment.
    pub fn insert_prepared(
        &self,
        p: &PreparedInsert,
        now: u32,
        deadline: u32,
    ) -> Result<ConnId, InsertError> {
        let conn = &p.conn;
        if !insertable(conn) {
            return Err(InsertError::Invalid);
        }
        on_family!(self, conn.orig.v6, |f| f
            .insert_at(conn, &p.at, now, deadline))
    }

    /// Sets state and deadline of `id`; false if `id` no longer names a live connection (it
    /// was removed, reclaimed, or retired by a newer insert of its tuple) or `state` is
    /// reserved. Writes nothing when both are unchanged.
    #[inline]
    pub fn update(&self, id: ConnId, state: u8, deadline: u32) -> bool {
        state < STATE_RESERVED_MIN
            && on_family!(self, id.is_v6(), |f| f.update(id, state, deadline))
    }

    /// Clears the flag bits `mask` of the connection `hit` found, if the entry still holds
    /// them as the lookup read them: true if this call cleared them (of two workers, one
    /// does). False if the entry is gone or its flags changed meanwhile.
    #[inline]
    pub fn clear_flags(&self, hit: &Hit, mask: u8) -> bool {
        on_family!(self, hit.id.is_v6(), |f| f.clear_flags(
            hit.id,
            hit.meta(),
            mask
        ))
    }

    /// Compare-and-set of a connection's state: moves `id` from `from` to `to` (deadline
    /// `deadline`) only if its state is still `from`, so that of two workers applying a
    /// transition to the same connection from a stale view exactly one succeeds — the one
    /// that may move the real server's active/inactive counters. `Err(Some(s))`: the state
    /// is now `s` (re-derive the transition from it); `Err(None)`: the entry is gone.
    #[inline]
    pub fn transition(
        &self,
        id: ConnId,
        from: u8,
        to: u8,
        deadline: u32,
    ) -> Result<(), Option<u8>> {
        if to >= STATE_RESERVED_MIN {
            return Err(None);
        }
        on_family!(self, id.is_v6(), |f| f.transition(id, from, to, deadline))
    }

    /// The connection `id` names and its deadline, if it is still stored (expired entries
    /// not yet reclaimed included).
    /// The state and deadline of connection `id`, if it is still stored and a lookup of
    /// its tuple would find it now (not removed, retired, pending or expired at `now`): what
    /// a worker that remembered a lookup's [`Hit::id`] reads to trust the rest of that hit
    /// again. The key, service, real server and method of an entry never change while its
    /// id is current (its flags may: see [`ConnTable::clear_flags`]). One load.
    #[inline]
    pub fn current(&self, id: ConnId, now: u32) -> Option<(u8, u32)> {
        on_family!(self, id.is_v6(), |f| f.current(id, now))
    }

    pub fn get(&self, id: ConnId) -> Option<(Conn, u32)> {
        on_family!(self, id.is_v6(), |f| f.get(id))
    }

    /// Removes `id` now; true if this call removed it (the caller does its accounting; the
    /// `expire_step` callback will not see it).
    pub fn remove(&self, id: ConnId) -> bool {
        on_family!(self, id.is_v6(), |f| f.remove(id))
    }

    /// Examines the next `budget` slots of each family's slab (a cursor wraps around) and
    /// reclaims those expired at `now`, calling `on_reclaim` with each reclaimed connection
    /// (its `state` is the last one it had). Returns how many it reclaimed. Meant for the
    /// control thread; cost is O(budget), independent of table size, and no more than the
    /// slots ever used: the walk wraps at the first slot no connection has ever taken (slots
    /// are taken as a prefix of the slab), so an idle table costs next to nothing.
    pub fn expire_step(&self, now: u32, budget: usize, on_reclaim: impl FnMut(&Conn)) -> usize {
        self.sweep_step(now, budget, &mut Reclaim(on_reclaim))
    }

    /// [`expire_step`](Self::expire_step) with a caller that may keep an expired entry
    /// (a persistence template that still controls connections) and, if it asks, sees
    /// every live entry the walk passes and the end of each pass: see [`Sweep`].
    pub fn sweep_step(&self, now: u32, budget: usize, sweep: &mut impl Sweep) -> usize {
        self.v4.expire_step(now, budget, sweep) + self.v6.expire_step(now, budget, sweep)
    }

    /// Visits every stored connection (expired but unreclaimed ones included) with its id and
    /// deadline: for `uvsadm -c` listings and sync. Entries inserted or removed during the
    /// walk may or may not be visited.
    pub fn for_each(&self, mut f: impl FnMut(ConnId, &Conn, u32)) {
        self.v4.for_each(&mut f);
        self.v6.for_each(&mut f);
    }

    /// Visits the stored connections of one family, as [`for_each`](Self::for_each) does.
    pub fn for_each_of(&self, v6: bool, mut f: impl FnMut(ConnId, &Conn, u32)) {
        on_family!(self, v6, |fam| fam.for_each(&mut f))
    }

    /// Stored connections of one family.
    pub fn len_of(&self, v6: bool) -> usize {
        on_family!(self, v6, |f| f.len())
    }

    /// Stored connections (both families).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total capacity (both families).
    pub fn capacity(&self) -> usize {
        self.v4.capacity() + self.v6.capacity()
    }

    /// Capacity of one family.
    pub fn capacity_of(&self, v6: bool) -> usize {
        on_family!(self, v6, |f| f.capacity())
    }

    /// Bytes of entry plus index memory per connection slot of a family.
    pub fn bytes_per_entry(&self, v6: bool) -> f64 {
        let (bytes, cap) = on_family!(self, v6, |f| (f.bytes(), f.capacity()));
        if cap == 0 {
            return 0.0;
        }
        bytes as f64 / cap as f64
    }

    /// Size of one entry of a family, index excluded (40 for IPv4, 88 for IPv6).
    pub fn entry_bytes(&self, v6: bool) -> usize {
        on_family!(self, v6, |f| f.entry_bytes())
    }

    /// Total bytes held by entries and indexes.
    pub fn memory_bytes(&self) -> usize {
        self.v4.bytes() + self.v6.bytes()
    }

    /// Occupied index lanes of a family (2 per stored connection once inserts settle).
    pub fn index_lanes_used(&self, v6: bool) -> usize {
        on_family!(self, v6, |f| f.index_lanes_used())
    }
}

/// A key hashed for [`ConnTable::finish`], its first index bucket prefetched
/// ([`ConnTable::prepare`]). Plain data: keeping it longer only loses the prefetch.
#[derive(Clone, Copy, Debug, Default)]
pub struct Prepared {
    k: layout::EncKey,
    pos: index::Pos,
    v6: bool,
    /// The index lane [`ConnTable::prefetch_entry`] found for the key (0: none, or not
    /// looked at yet): [`ConnTable::finish`] tries its entry first instead of probing the
    /// bucket again.
    lane: u64,
}

impl Prepared {
    /// Bits of the key's keyed hash (its index tag and first bucket): equal keys of one
    /// table have equal fingerprints (different ones rarely do), so a caller can tell
    /// cheaply whether a prepared lookup may concern one of the [`PreparedInsert`]s it
    /// holds ([`PreparedInsert::fingerprints`]).
    #[inline]
    pub fn fingerprint(&self) -> u64 {
        self.pos.fingerprint()
    }

    /// The direction of the index lane [`ConnTable::prefetch_entry`] found for the key, or
    /// `None` (no lane carries its tag, or not looked at yet). A guess from the lane's
    /// tag alone, until [`ConnTable::finish`] compares the entry's key: good for deciding
    /// what else to prefetch, never for forwarding.
    #[inline]
    pub fn likely_dir(&self) -> Option<Dir> {
        (self.lane != 0).then(|| index::lane_dir(self.lane))
    }
}

/// A connection hashed for [`ConnTable::insert_prepared`], its reply tuple's index buckets
/// being loaded ([`ConnTable::prepare_insert`]). Plain data, holding its own copy of the
/// connection, so it cannot be stored under another connection's positions.
#[derive(Clone, Copy, Debug, Default)]
pub struct PreparedInsert {
    conn: Conn,
    at: family::InsertPos,
}

impl PreparedInsert {
    /// The connection this will insert.
    #[inline]
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// [`Prepared::fingerprint`]s of the original and the reply tuple.
    #[inline]
    pub fn fingerprints(&self) -> [u64; 2] {
        [self.at.po.fingerprint(), self.at.pr.fingerprint()]
    }
}

/// What every insert checks first: one family and protocol, IPv4 keys with nothing in the
/// unused address bytes, a state the caller may set.
#[inline]
fn insertable(conn: &Conn) -> bool {
    conn.orig.v6 == conn.reply.v6
        && conn.orig.proto == conn.reply.proto
        && conn.orig.is_canonical()
        && conn.reply.is_canonical()
        && conn.state < STATE_RESERVED_MIN
}

/// Tables up to this many bytes (entries and index, both families) skip the prefetch passes of
/// [`ConnTable::lookup_burst`]: they fit well inside a core's L2 (4 MiB on the test VM) next
/// to the packet buffers.
const BURST_PREFETCH_MIN_BYTES: usize = 1 << 20;

/// A per-table hash seed from the std library's per-process random keys.
fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish() | 1
}

#[cfg(test)]
mod tests;
