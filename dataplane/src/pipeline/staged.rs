//! New connections of a burst scheduled first and stored afterwards.
//!
//! A new flow's insert waits for its reply tuple's index buckets, which exist only once a
//! real server is chosen: at a large table, a cache miss per new flow, a few ns after the
//! choice. In a worker's burst (burst-lookup mode, `worker.rs`) a TCP or UDP flow that
//! NAT, DR or TUN opens is therefore only *scheduled* when its frame comes: service,
//! scheduler, persistence template, real server bound, reply tuple hashed and its buckets
//! and a free slot prefetched ([`ConnTable::prepare_insert`]). Its frame is staged
//! ([`Verdict::Deferred`]) and the worker goes on with the next frames; at the end of the
//! burst the staged flows are stored in the order they were scheduled and their frames
//! forwarded ([`store`]), each insert's misses having overlapped with the scheduling of
//! the others, as DPDK's bulk operations overlap theirs.
//!
//! What a frame sees does not change: before a frame whose tuple may be one of a staged
//! flow's two (a retransmitted SYN, a second datagram, a reply: their tuples'
//! fingerprints are compared, [`Staging::may_hold`]), or a frame whose lookup the worker
//! did not prepare (ICMP, SCTP, a later fragment), the worker stores every staged flow
//! first ([`Staging::begin_flush`]). So a frame still finds what earlier frames of its
//! burst inserted, and one flow's frames leave in the order they came; only frames of
//! different flows may leave a burst in another order. The real server counts the flow
//! from its scheduling on (`lifecycle::bind`, as IPVS binds a connection to its dest
//! before hashing it), so the burst's later picks see it; an insert that then fails
//! (`Exists`, a full table, …) gives that back (`lifecycle::unbind`) and answers as it
//! would have at once. Persistence templates are stored at once, as before. FullNAT
//! (its local port is found by inserting), one-packet scheduling, fragments, SCTP and the
//! SYN proxy are never staged.
//!
//! [`ConnTable::prepare_insert`]: uvs_conntrack::ConnTable::prepare_insert
//! [`Verdict::Deferred`]: crate::verdict::Verdict::Deferred

use uvs_conntrack::{Conn, ConnTable, PreparedInsert};

use crate::worker::BURST;

/// One new flow of the burst: scheduled, bound to its real server, its insert prepared.
#[derive(Clone, Copy, Debug, Default)]
pub struct Staged {
    pub(crate) prep: PreparedInsert,
    pub(crate) deadline: u32,
    /// The frame's index in its burst.
    pub frame: u8,
}

/// A worker's staged new flows (see the module docs). Allocated once per worker.
pub struct Staging {
    /// The frame being processed, while it may be staged (its index in the burst).
    armed: Option<u8>,
    flows: [Staged; BURST],
    len: usize,
    /// Staged flows already stored, while a flush runs.
    stored: usize,
    /// A bit per staged tuple's fingerprint, then the fingerprints: most frames are told
    /// apart by one bit test.
    bloom: [u64; 4],
    prints: [u64; 2 * BURST],
}

impl Default for Staging {
    fn default() -> Self {
        Self {
            armed: None,
            flows: [Staged::default(); BURST],
            len: 0,
            stored: 0,
            bloom: [0; 4],
            prints: [0; 2 * BURST],
        }
    }
}

#[inline(always)]
fn bloom_bit(print: u64) -> (usize, u64) {
    // The fingerprint's high half is the tuple's index tag: hash bits.
    let b = (print >> 32) as usize & 255;
    (b >> 6, 1 << (b & 63))
}

impl Staging {
    /// Lets the next frame (`frame` of the burst) be staged, if it opens a flow that can be.
    #[inline(always)]
    pub fn arm(&mut self, frame: Option<usize>) {
        self.armed = frame.map(|f| f as u8);
    }

    /// The frame being processed may be staged: its index.
    #[inline(always)]
    pub(crate) fn armed(&self) -> Option<u8> {
        self.armed.filter(|_| self.len < BURST)
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a tuple of this fingerprint ([`uvs_conntrack::Prepared::fingerprint`]) may
    /// be one of a staged flow's (then the staged flows are stored before its frame).
    #[inline]
    pub fn may_hold(&self, print: u64) -> bool {
        let (w, bit) = bloom_bit(print);
        self.bloom[w] & bit != 0 && self.prints[..2 * self.len].contains(&print)
    }

    /// Stages the armed frame's new flow `conn`: prepares its insert in place.
    #[inline]
    pub(crate) fn push(&mut self, frame: u8, conns: &ConnTable, conn: &Conn, deadline: u32) {
        // Never during a flush: `begin_flush` disarms the stage.
        debug_assert!(self.len < BURST && self.stored == 0);
        let s = &mut self.flows[self.len];
        s.prep = conns.prepare_insert(conn);
        s.deadline = deadline;
        s.frame = frame;
        for (i, print) in s.prep.fingerprints().into_iter().enumerate() {
            let (w, bit) = bloom_bit(print);
            self.bloom[w] |= bit;
            self.prints[2 * self.len + i] = print;
        }
        self.len += 1;
        self.armed = None;
    }

    /// Starts storing the staged flows ([`next_to_store`](Self::next_to_store) until it
    /// says none is left).
    #[inline]
    pub fn begin_flush(&mut self) {
        self.armed = None;
    }

    /// Staged flow `i` (from [`next_to_store`](Self::next_to_store)).
    #[inline(always)]
    pub fn get(&self, i: usize) -> &Staged {
        &self.flows[i]
    }

    /// The next staged flow to store, in the order they were staged (its index, for
    /// [`get`](Self::get)); `None` ends the flush and empties the stage.
    #[inline]
    pub fn next_to_store(&mut self) -> Option<usize> {
        if self.stored < self.len {
            self.stored += 1;
            return Some(self.stored - 1);
        }
        self.len = 0;
        self.stored = 0;
        self.bloom = [0; 4];
        None
    }
}
