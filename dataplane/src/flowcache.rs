//! A worker's cache of how it forwards its busiest flows: the established path worked out
//! once per flow and replayed.
//!
//! An established IPv4 or IPv6 TCP or UDP packet of a NAT or FullNAT connection takes, on
//! the full path, the parse into a `Parsed`, the connection-table lookup (hash, index bucket, the entry's words decoded into a
//! `Hit`), then the service and real server, the state machine's "nothing changes" test,
//! the egress header, the NAT rewrite with its checksum terms, and the counters. For a
//! packet that changes nothing in its connection (TCP: a segment with ACK and none of
//! SYN/FIN/RST, of an ESTABLISHED connection; UDP: any datagram) whose entry's deadline
//! was refreshed within the last second, all of that gives the same answer as for the
//! flow's previous packet. So the full path, having forwarded such a packet, leaves a
//! `Record` here keyed by the packet's tuple: the connection's id, the rewrite with its
//! checksum terms summed ([`uvs_wire::V4Rewrite`], [`uvs_wire::V6Rewrite`]), the egress
//! port and MACs, the egress MTU, the service's and real server's counters, the state and
//! timeout the "nothing changes" test needs. The next packet of the tuple, read before any
//! parse at the fixed offsets of the commonest frame ([`CommonV4`], [`CommonV6`]: untagged,
//! no IPv4 options or IPv6 extension headers — only such frames are recorded), is checked
//! against the record and the entry's one `ctl` word ([`ConnTable::current`](uvs_conntrack::ConnTable::current): the same connection, still usable, its
//! state and deadline) and rewritten, counted and sent without the table lookup; anything
//! else, or any doubt, takes the full path, which is always right. This is Open vSwitch's
//! exact-match cache in front of its classifier, for a load balancer's connection table.
//!
//! Validity, case by case:
//! - The connection: its id names the slot and the generation; a removed, retired, expired
//!   or reused slot fails [`ConnTable::current`](uvs_conntrack::ConnTable::current). An entry's key, service, real server and
//!   method never change while its id is current; its flags only lose bits (a synced flow
//!   adopted), and only flows with no flags are recorded.
//! - The state: the record holds the state it was made in and the timeout of that state;
//!   the packet is replayed only if the entry still holds that state and its deadline is
//!   fresh (`lifecycle::deadline_fresh`), exactly when the full path's `track_state`
//!   writes nothing.
//! - The tables snapshot and the neighbour map (service, real server slot and address,
//!   egress port, MTU, MACs, timeouts): every record is forgotten when the worker loads a
//!   different snapshot or map ([`FlowCache::sync`], once per poll), as the egress cache
//!   does. A real server's health (`expire_nodest_conn`) is not in the snapshot: it is
//!   read for each packet, as the full path does.
//! - The packet: the same tuple and protocol; TTL above 1, not a fragment, and within the
//!   egress MTU, or it takes the full path (which answers those). Its IPv4 header checksum
//!   and lengths are checked by the parse's own fixed-offset reading; its L4 checksum is
//!   verified (a partial one completed, a wrong one dropped) here, as TCP's and UDP's
//!   inspection does on the full path.
//!
//! Records are filled only from one packet in [`FILL_EVERY`] of the flows that qualify (a
//! random draw): a small table of few flows warms within a few packets a flow, while a
//! table of a million flows, most of which this cache cannot hold, does not pay for making
//! records that are overwritten before they are used (Open vSwitch inserts into its
//! exact-match cache with probability 1/100 for the same reason).
//!
//! # Class records
//!
//! A table of more flows than the records hold (tens of thousands and up) leaves them
//! resting, and every packet took the full path. But a NAT connection's client → server
//! rewrite does not depend on the connection, only on its *class*: the virtual address
//! and port it was sent to, the real server's address and port it goes to, the protocol,
//! the service and the real server (`ClassKey`). The client's address and port are left
//! as they are, so the header and checksum terms, the egress port, MACs and MTU, the
//! state's timeout and the counters are the same for every connection of the class. So
//! the worker also keeps a few hundred class records per family (`ClassRecord4`,
//! `ClassRecord6`), filled by the full path as flow records are (from a client → server
//! NAT packet it forwarded whole, whenever a packet found no record of its class), and a
//! client → server packet whose own record is not there is replayed from its class's
//! (`forward_class`) once the connection-table lookup has found its entry: the entry
//! gives the class (its addresses, ports, service, real server, method; no flags) and the
//! checks a flow record's id gave (state, fresh deadline); the rewrite is the class's with
//! the packet's own source ([`uvs_wire::V4Rewrite::with_source`],
//! [`uvs_wire::V6Rewrite::with_source`]).
//!
//! Class records are used in the large-table burst loop (`worker.rs`; tables of
//! `worker::BATCH_LOOKUP_MIN_CAPACITY` entries or more, uvsd's default), where the lookup
//! is the one prepared with the burst: the entry of the index lane its prefetch found,
//! read without decoding it into a `Hit` (`ConnTable::finish_lane`, an
//! `uvs_conntrack::Entry`; any other answer is the full path's). There a frame they may
//! forward (TCP with ACK alone or UDP, IPv4 or IPv6, read at its fixed offsets:
//! `Replayable`) of a burst received ahead is keyed and its bucket prefetched without
//! the parse; it is parsed only if it takes the full path, or when its index lane says it
//! is not client → server (then right after the burst in front of it, as every frame was
//! parsed ahead before). What the class replay skips is the parse, the hit's service and real server,
//! `established`, the egress and the rewrite's working out. A port that takes few client
//! → server packets parses its bursts ahead as before (`Rest`, per port).
//!
//! Not replayed from class records, measured rather than assumed: replies (server →
//! client; their egress is the client's route and neighbour, not the class's), and any
//! packet of the per-frame loop (tables under that size). A reply's replay cost more than
//! the full path it replaced at 20 000 flows (the route and neighbour looked up, and the
//! lookup made twice when the class declined), and every way tried to reach it from the
//! burst loop slowed the client → server replay by 6–10 ns at 1 000 000 flows; classes
//! tried frame by frame cost replies the same second lookup. Nor FullNAT packets (each
//! connection has its own local address and port), nor any packet while the kernel fast
//! path is on (there the full path writes the flow's XDP lines at its first established
//! packet, which a replay would skip). `tests/flowcache.rs` runs the same random traffic
//! through a worker with class records alone and one without the cache, and the `bursts`
//! fuzz target compares a worker using class records alone with one frame by frame.

use std::sync::Arc;

use uvs_conntrack::{ConnId, ConnTable, ConnView, Dir, Entry, Hit};
use uvs_wire::{CommonV4, CommonV6, Frag, L4Checksum, Parsed, V4Rewrite, V6Rewrite, L3};

use crate::counters::PerWorkerStats;
use crate::egress::{FilledFrom, L2};
use crate::neigh::NeighMap;
use crate::pipeline::{Ctx, Packet, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::tables::{Method, ServiceRt, Tables};
use crate::verdict::{DropReason, Verdict};

/// Records per worker: a power of two. Direct-mapped; a collision costs the full path.
pub const RECORDS: usize = 4096;

/// One qualifying packet in this many (on average) leaves a record.
pub const FILL_EVERY: u32 = 8;

/// Qualifying packets per judgement of the cache's hit rate.
pub const WINDOW: u32 = 16_384;

/// Polls during which the cache is left alone (neither looked up nor filled) after a
/// window in which fewer than a quarter of the packets found their record: more flows than
/// it holds. Doubled after each such window in a row, up to [`REST`] × 2^[`BACKOFF`]: a
/// window of misses costs a few milliseconds at a million flows (every lookup a cache miss,
/// an eighth of the packets recorded for nothing), which a fixed rest of a few hundred
/// thousand packets repeated a dozen times a second. A busy worker's poll takes up to 256
/// packets; an idle one's polls are short, so a quiet worker tries again soon.
pub const REST: u32 = 4096;

/// How many times the rest doubles (see [`REST`]).
pub const BACKOFF: u32 = 8;

/// A packet's key: source ‖ destination address, and protocol ‖ sport ‖ dport, the
/// addresses and ports as they lie in the frame ([`Parsed::v4_tuple`]). An empty record's
/// protocol is 0, which no recorded packet has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Key {
    addrs: u64,
    ports: u64,
}

impl Key {
    /// The key of an IPv4 packet that is not a fragment, `p` its parse of `frame`, if the
    /// frame is one a record can be found for: untagged, its IPv4 header without options
    /// (the fixed offsets [`CommonV4`] reads; any other frame takes the full path).
    #[inline(always)]
    pub(crate) fn of(frame: &[u8], p: &Parsed) -> Option<Key> {
        if usize::from(p.l3_off) != CommonV4::L3_OFF || usize::from(p.l4_off) != CommonV4::L4_OFF {
            return None;
        }
        let (addrs, ports) = p.v4_tuple(frame)?;
        Some(Key::new(addrs, ports, p.l4_proto))
    }

    /// The ports word is turned to numeric order (sport in the high half): consecutive
    /// client ports then land on consecutive multiples of the hash constant, which spread
    /// over the lines without a collision; in the frame's order on a little-endian machine
    /// a third of 1 000 such flows shared a line.
    #[inline(always)]
    fn new(addrs: u64, ports: u32, proto: u8) -> Key {
        Key {
            addrs,
            ports: (u64::from(proto) << 32) | u64::from(u32::from_be(ports)),
        }
    }

    #[inline(always)]
    fn line(&self) -> usize {
        let h = (self.addrs ^ self.ports.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> (64 - RECORDS.trailing_zeros())) as usize
    }
}

/// [`Key`] of an IPv6 packet: its 32 bytes of addresses as four words, and protocol ‖
/// sport ‖ dport as [`Key::new`] orders them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Key6 {
    addrs: [u64; 4],
    ports: u64,
}

impl Key6 {
    /// [`Key::of`] for IPv6: untagged, the TCP/UDP header right after the fixed header
    /// ([`CommonV6`]'s offsets).
    #[inline(always)]
    pub(crate) fn of(frame: &[u8], p: &Parsed) -> Option<Key6> {
        if p.l3 != L3::V6
            || p.frag != Frag::None
            || usize::from(p.l3_off) != CommonV6::L3_OFF
            || usize::from(p.l4_off) != CommonV6::L4_OFF
        {
            return None;
        }
        let f = CommonV6::read(frame)?;
        Some(Key6::new(&f.addrs, f.ports, f.proto))
    }

    #[inline(always)]
    fn new(addrs: &[u8; 32], ports: u32, proto: u8) -> Key6 {
        let w = |i: usize| {
            let b: [u8; 8] = addrs[8 * i..8 * i + 8].try_into().unwrap_or_default();
            u64::from_ne_bytes(b)
        };
        Key6 {
            addrs: [w(0), w(1), w(2), w(3)],
            ports: Key::new(0, ports, proto).ports,
        }
    }

    #[inline(always)]
    fn line(&self) -> usize {
        let [a, b, c, d] = self.addrs;
        let folded = a ^ b.rotate_left(17) ^ c.rotate_left(31) ^ d.rotate_left(47);
        Key {
            addrs: folded,
            ports: self.ports,
        }
        .line()
    }
}

/// How the full path forwarded a flow's packet, for the next one (see the module): IPv4's
/// ([`Record4`]) or IPv6's ([`Record6`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct Record<K, W> {
    pub key: K,
    pub id: Option<ConnId>,
    pub rewrite: W,
    pub l2: L2,
    /// The egress link's MTU.
    pub mtu: u16,
    /// The state the entry held, and that state's timeout (ticks).
    pub state: u8,
    pub timeout: u32,
    pub service: u16,
    pub real: u16,
    /// The service's and the real server's counters, held here rather than reached from
    /// the snapshot: through it each was the end of a chain of four dependent loads
    /// (services → the service → its counters → this worker's line), which a replayed
    /// packet's counting waited for. The snapshot's own `Arc`s: a record lives no longer
    /// than the snapshot it was filled from (`FlowCache::sync`).
    pub svc_stats: Option<Arc<PerWorkerStats>>,
    pub real_stats: Option<Arc<PerWorkerStats>>,
    /// Client → server.
    pub inbound: bool,
}

pub(crate) type Record4 = Record<Key, V4Rewrite>;

/// Class records per worker: a power of two. Direct-mapped, as the flow records are; a
/// class is a (service, real server, addresses and ports) combination, so a worker sees
/// tens or hundreds of them, not one per flow.
pub const CLASSES: usize = 512;

/// A NAT connection's class (see the module): everything the rewrite of its client →
/// server packets depends on besides the client's own address and port. The entry's
/// protocol, method, service and real server (its `meta` word, flags left out: only
/// connections without flags are replayed), the virtual address and the real server's
/// address as numbers (`A`: one `u64` for IPv4, four for IPv6: the table's own words, so
/// a key is built from a looked-up [`Entry`] without byte shuffles), and the virtual port
/// ‖ the real server's port. Two connections of one class
/// have the same destination before and after the rewrite, so the same header and
/// checksum terms, the same egress and the same counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClassKey<A> {
    meta: u64,
    addrs: A,
    ports: u32,
}

/// [`ClassKey`] of an IPv4 connection.
pub(crate) type ClassKey4 = ClassKey<u64>;
/// [`ClassKey`] of an IPv6 connection.
pub(crate) type ClassKey6 = ClassKey<[u64; 4]>;

impl<A> ClassKey<A> {
    #[inline(always)]
    fn with(hit: &Hit, addrs: A) -> Self {
        Self::of_fields(
            (hit.proto(), hit.method(), hit.service(), hit.real()),
            (hit.orig_dport(), hit.reply_sport()),
            addrs,
        )
    }

    /// From a connection's protocol, method, service, real server, virtual port and real
    /// server's port: a [`Hit`]'s or an [`Entry`]'s, alike.
    #[inline(always)]
    fn of_fields(
        (proto, method, service, real): (u8, u8, u16, u16),
        (vport, rport): (u16, u16),
        addrs: A,
    ) -> Self {
        ClassKey {
            meta: (u64::from(proto) << 56)
                | (u64::from(method) << 40)
                | (u64::from(service) << 16)
                | u64::from(real),
            addrs,
            ports: (u32::from(vport) << 16) | u32::from(rport),
        }
    }

    #[inline(always)]
    fn of_entry(e: &Entry, addrs: A) -> Self {
        Self::of_fields(
            (e.proto(), e.method(), e.service(), e.real()),
            (e.orig_dport(), e.reply_sport()),
            addrs,
        )
    }

    /// The record's line: from the service, the real server and the virtual port (within
    /// one snapshot the service and real server name the addresses too, and the ports
    /// but for a firewall-mark service's; the key compares everything): the service
    /// times 36, the real server's slot, the port times 5, XORed: no multiply (an address
    /// computation and shifts). The line is on each replay's longest chain (entry → key →
    /// line → record → compare), where a multiply hash over the addresses took ~13
    /// instructions and measured ~3 ns a packet more at 1 000 000 flows. The form was
    /// chosen over service × real server × port layouts (one service with 500 real
    /// servers, 100 services with 4, 16 with 32, firewall-mark services with many ports):
    /// each gets about as many lines as a random hash gives, or more
    /// (`line_spreads_classes`).
    #[inline(always)]
    fn line(&self) -> usize {
        let (service, real) = ((self.meta >> 16) as u16, self.meta as u16);
        let vport = (self.ports >> 16) as u16;
        (((usize::from(service) * 9) << 2) ^ usize::from(real) ^ (usize::from(vport) * 5))
            & (CLASSES - 1)
    }
}

impl ClassKey4 {
    /// The class of an IPv4 connection `hit`.
    #[inline(always)]
    pub(crate) fn of(hit: &Hit) -> Self {
        let a = |x: &[u8; 16]| u64::from(u32::from_be_bytes([x[0], x[1], x[2], x[3]]));
        Self::with(hit, (a(hit.orig_dst()) << 32) | a(hit.reply_src()))
    }

    /// The class of an IPv4 connection found as `e`.
    #[inline(always)]
    pub(crate) fn of_entry4(e: &Entry) -> Self {
        let a = |x: [u8; 4]| u64::from(u32::from_be_bytes(x));
        Self::of_entry(e, (a(e.orig_dst_v4()) << 32) | a(e.reply_src_v4()))
    }
}

/// Two IPv6 addresses as four words: the class key's form.
#[inline(always)]
fn words6(a: &[u8; 16], b: &[u8; 16]) -> [u64; 4] {
    let (a, b) = (u128::from_be_bytes(*a), u128::from_be_bytes(*b));
    [(a >> 64) as u64, a as u64, (b >> 64) as u64, b as u64]
}

impl ClassKey6 {
    /// The class of an IPv6 connection `hit`.
    #[inline(always)]
    pub(crate) fn of(hit: &Hit) -> Self {
        Self::with(hit, words6(hit.orig_dst(), hit.reply_src()))
    }

    /// The class of an IPv6 connection found as `e`.
    #[inline(always)]
    pub(crate) fn of_entry6(e: &Entry) -> Self {
        Self::of_entry(e, words6(&e.orig_dst_v6(), &e.reply_src_v6()))
    }
}

/// How the full path forwarded a client → server packet of a NAT connection of one class:
/// a [`Record`] whose key is the class and whose `id` is unused (the connection is the
/// one the packet's lookup finds). IPv4's and IPv6's.
pub(crate) type ClassRecord4 = Record<ClassKey4, V4Rewrite>;
pub(crate) type ClassRecord6 = Record<ClassKey6, V6Rewrite>;
pub(crate) type Record6 = Record<Key6, V6Rewrite>;

/// A recorded rewrite, replayed on the frame its [`CommonV4`] or [`CommonV6`] was read from.
pub(crate) trait Replay {
    fn write_common(&self, frame: &mut [u8]) -> bool;
}

impl Replay for V4Rewrite {
    #[inline(always)]
    fn write_common(&self, frame: &mut [u8]) -> bool {
        V4Rewrite::write_common(self, frame)
    }
}

impl Replay for V6Rewrite {
    #[inline(always)]
    fn write_common(&self, frame: &mut [u8]) -> bool {
        V6Rewrite::write_common(self, frame)
    }
}

/// The per-worker cache (see the module).
pub struct FlowCache {
    from: FilledFrom,
    records: Box<[Record4]>,
    records6: Box<[Record6]>,
    classes: Box<[ClassRecord4]>,
    classes6: Box<[ClassRecord6]>,
    /// A packet found no record of its class: the full path records the next client →
    /// server packet it forwards whole ([`Filling::wanted`]).
    class_missed: bool,
    /// [`forward_class`] left a packet to the full path to be recorded: it won the draw.
    fill_next: bool,
    /// Per-flow records in use (tests and the pipeline benchmark turn them off to see the
    /// class records alone: [`FlowCache::set_flow_records`]).
    flow_records: bool,
    /// xorshift state for the fill draw.
    draw: u32,
    /// Qualifying packets and those that found their record, and the rest a window of
    /// misses calls for (see [`REST`]).
    rest: Rest,
    /// Off: neither looked at nor filled (`Shared::flow_cache`).
    enabled: bool,
    /// On and not resting, for this poll.
    active: bool,
}

impl Default for FlowCache {
    fn default() -> Self {
        Self {
            from: FilledFrom::default(),
            records: vec![Record4::default(); RECORDS].into_boxed_slice(),
            records6: vec![Record6::default(); RECORDS].into_boxed_slice(),
            classes: vec![ClassRecord4::default(); CLASSES].into_boxed_slice(),
            classes6: vec![ClassRecord6::default(); CLASSES].into_boxed_slice(),
            class_missed: false,
            fill_next: false,
            flow_records: true,
            draw: 0x9e37_79b9,
            rest: Rest::default(),
            enabled: true,
            active: false,
        }
    }
}

impl FlowCache {
    /// Forgets every record unless `tables` and `neigh` are the ones they were filled
    /// from, and counts down a rest. Once per poll, before its first packet.
    #[inline]
    pub fn sync(&mut self, tables: &Tables, neigh: &Arc<NeighMap>, enabled: bool) {
        if self.from.changed(tables, neigh) || self.enabled != enabled {
            self.reset(enabled);
        }
        self.rest.poll();
        self.active = self.enabled && self.flow_records && self.rest.on();
    }

    #[cold]
    fn reset(&mut self, enabled: bool) {
        self.enabled = enabled;
        // The rest and its backoff are about the traffic, not the tables: they carry over.
        self.rest.new_window();
        (self.class_missed, self.fill_next) = (false, false);
        // Whole records: their counters' `Arc`s go with the snapshot.
        self.records.fill(Record4::default());
        self.records6.fill(Record6::default());
        self.classes.fill(ClassRecord4::default());
        self.classes6.fill(ClassRecord6::default());
    }

    /// Keeps `r` for its class's packets.
    #[inline]
    pub(crate) fn put_class(&mut self, r: ClassRecord4) {
        let line = r.key.line();
        self.classes[line] = r;
        self.class_missed = false;
    }

    /// [`put_class`](Self::put_class) for IPv6.
    #[inline]
    pub(crate) fn put_class6(&mut self, r: ClassRecord6) {
        let line = r.key.line();
        self.classes6[line] = r;
        self.class_missed = false;
    }

    /// Uses per-flow records (`true`, the default) or only class records: for tests and
    /// the pipeline benchmark, to see what the class records do where the flow records
    /// would otherwise answer first.
    pub fn set_flow_records(&mut self, on: bool) {
        self.flow_records = on;
        self.active &= on;
    }

    /// The record for this packet's tuple, if there is one (a packet that may use one:
    /// IPv4, not a fragment, TCP without SYN/FIN/RST and with ACK, or UDP).
    /// Counts toward the hit rate: after a [`WINDOW`] of such packets of which fewer than
    /// a quarter found their record, the cache rests for [`REST`] polls: at a million
    /// flows a record is almost never found, and the look and the fills only cost time.
    #[inline(always)]
    pub(crate) fn get(&mut self, f: &CommonV4) -> Option<&Record4> {
        if !self.active || !qualifies_common(f.proto, f.tcp_flags) {
            return None;
        }
        let key = Key::new(f.addrs, f.ports, f.proto);
        let line = key.line();
        let found = self.records[line].key == key;
        self.tally(found);
        found.then_some(&self.records[line])
    }

    /// [`get`](Self::get) for IPv6.
    #[inline(always)]
    pub(crate) fn get6(&mut self, f: &CommonV6) -> Option<&Record6> {
        if !self.active || !qualifies_common(f.proto, f.tcp_flags) {
            return None;
        }
        let key = Key6::new(&f.addrs, f.ports, f.proto);
        let line = key.line();
        let found = self.records6[line].key == key;
        self.tally(found);
        found.then_some(&self.records6[line])
    }

    /// Counts a lookup towards the window's hit rate; a window of too few hits stops the
    /// cache at once.
    #[inline(always)]
    fn tally(&mut self, found: bool) {
        if self.rest.tally(found) {
            self.active = false;
        }
    }

    /// Whether the cache is resting after a window of few hits (see `FlowCache::get`).
    pub fn resting(&self) -> bool {
        !self.rest.on()
    }

    /// Starts loading the record a frame will look for, read from its bytes before the
    /// parse ([`uvs_wire::guess_v4_tuple`]): called for the next frame of a burst while
    /// this one is processed, so the record is there when its turn comes.
    #[inline(always)]
    pub(crate) fn prefetch(&self, frame: &[u8]) {
        if let Some((addrs, ports, proto)) = uvs_wire::guess_v4_tuple(frame) {
            uvs_conntrack::prefetch(&self.records[Key::new(addrs, ports, proto).line()]);
        }
    }

    /// Whether the cache is in use this poll: on and not resting.
    #[inline(always)]
    pub(crate) fn active(&self) -> bool {
        self.active
    }

    /// One draw: whether to record the packet now being forwarded ([`FILL_EVERY`]).
    #[inline]
    fn draw(&mut self) -> bool {
        let mut x = self.draw;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.draw = x;
        x.is_multiple_of(FILL_EVERY)
    }

    /// Keeps `r` for its key's packets.
    #[inline]
    pub(crate) fn put(&mut self, r: Record4) {
        let line = r.key.line();
        self.records[line] = r;
    }

    /// [`put`](Self::put) for IPv6.
    #[inline]
    pub(crate) fn put6(&mut self, r: Record6) {
        let line = r.key.line();
        self.records6[line] = r;
    }
}

/// Whether a packet may be replayed from a record: IPv4, not a fragment, and TCP with ACK
/// and none of SYN, FIN, RST (it leaves an ESTABLISHED connection as it is) or UDP.
#[inline(always)]
pub(crate) fn qualifies(p: &Parsed) -> bool {
    p.frag == Frag::None
        && match p.l4_proto {
            crate::pipeline::PROTO_TCP => {
                p.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK) == TCP_ACK
            }
            crate::pipeline::PROTO_UDP => true,
            _ => false,
        }
}

/// [`qualifies`] for a frame read at fixed offsets (not a fragment, TCP or UDP).
#[inline(always)]
fn qualifies_common(proto: u8, tcp_flags: u8) -> bool {
    proto == crate::pipeline::PROTO_UDP
        || tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK) == TCP_ACK
}

/// Forwards a frame (`frame` exactly the frame) from its tuple's record if the record
/// still holds (see the module): `Some(verdict)` when the frame was rewritten, counted and
/// its MACs written, or dropped for a bad L4 checksum; `None` when it takes the full path.
/// Tried before the parse: a frame with a record is read at the fixed offsets of the
/// commonest frame ([`CommonV4`], the parse's own checks for it) and never parsed into a
/// `Parsed`, copied into a [`Packet`] or taken into the protocol's `ingress`.
///
/// The L4 checksum is verified (and a partial one completed) here, as TCP's and UDP's
/// inspection does before the lookup, once the record is found: a frame that then takes
/// the full path is parsed and verified again there (its completed checksum now full),
/// which costs a recorded flow's packet that fails the record's checks a second reading,
/// never a different verdict.
#[inline(always)]
pub(crate) fn forward(ctx: &mut Ctx<'_>, frame: &mut [u8]) -> Option<Verdict> {
    forward_v4(ctx, frame).or_else(|| forward_v6(ctx, frame))
}

/// [`forward`] for an IPv4 frame (`None` for any other): the per-frame loop's, inlined
/// there, IPv6's tried after it ([`forward_v6`], in `pipeline::process_rest`).
#[inline(always)]
pub(crate) fn forward_v4(ctx: &mut Ctx<'_>, frame: &mut [u8]) -> Option<Verdict> {
    if !ctx.flows.active() {
        return None;
    }
    let f = CommonV4::read(frame)?;
    forward_flow_v4(ctx, frame, &f)
}

/// A frame of the burst loop read as `f` (`CommonV4` or `CommonV6`) already: its flow's
/// record, else its class's ([`forward_class`], `lookup` finding its connection).
#[inline(always)]
pub(crate) fn forward_common<F: ClassFamily>(
    ctx: &mut Ctx<'_>,
    frame: &mut [u8],
    f: &F,
    lookup: impl FnOnce(&ConnTable, &F, u32) -> Option<Entry>,
) -> Option<Verdict> {
    match f.forward_flow(ctx, frame) {
        Some(v) => Some(v),
        None => forward_class(ctx, frame, f, lookup),
    }
}

/// [`forward_v4`] from the flow's own record.
#[inline(always)]
fn forward_flow_v4(ctx: &mut Ctx<'_>, frame: &mut [u8], f: &CommonV4) -> Option<Verdict> {
    if !ctx.flows.active() {
        return None;
    }
    let r = ctx.flows.get(f)?;
    if ctx.verify_l4_checksums {
        if let L4Checksum::Bad = uvs_wire::complete_common_v4_checksum(frame, f) {
            return Some(Verdict::Drop(DropReason::BadChecksum));
        }
    }
    let port = replay(
        r,
        frame,
        f.ip_total_len,
        ctx.conns,
        ctx.tables,
        &ctx.settings,
        ctx.now,
        ctx.worker,
    )?;
    ctx.counters.flow_cache.add(1);
    Some(Verdict::Forward(port))
}

/// [`forward`] for an IPv6 frame (`None` for any other). The same steps as
/// [`forward_v4`], written out again: one generic function over the two families (the
/// checksum as a closure, the context's parts in a struct) measured 15–36 more
/// instructions an IPv4 packet (bench/README.md, "Fourteenth pass").
#[inline(always)]
pub(crate) fn forward_v6(ctx: &mut Ctx<'_>, frame: &mut [u8]) -> Option<Verdict> {
    if !ctx.flows.active() {
        return None;
    }
    let f = CommonV6::read(frame)?;
    forward_flow_v6(ctx, frame, &f)
}

/// [`forward_v6`] from the flow's own record.
#[inline(always)]
fn forward_flow_v6(ctx: &mut Ctx<'_>, frame: &mut [u8], f: &CommonV6) -> Option<Verdict> {
    if !ctx.flows.active() {
        return None;
    }
    let r = ctx.flows.get6(f)?;
    if ctx.verify_l4_checksums {
        if let L4Checksum::Bad = uvs_wire::complete_common_v6_checksum(frame, f) {
            return Some(Verdict::Drop(DropReason::BadChecksum));
        }
    }
    let port = replay(
        r,
        frame,
        f.ip_total_len,
        ctx.conns,
        ctx.tables,
        &ctx.settings,
        ctx.now,
        ctx.worker,
    )?;
    ctx.counters.flow_cache.add(1);
    Some(Verdict::Forward(port))
}

/// The record's checks and its replay on `frame` (an IP packet of `ip_total_len` bytes):
/// the egress port when the frame was rewritten, counted and given its MACs.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn replay<K, W: Replay>(
    r: &Record<K, W>,
    frame: &mut [u8],
    ip_total_len: u16,
    conns: &uvs_conntrack::ConnTable,
    tables: &Tables,
    settings: &crate::lifecycle::Settings,
    now: u32,
    worker: usize,
) -> Option<u8> {
    let (state, deadline) = conns.current(r.id?, now)?;
    if state != r.state
        || !crate::lifecycle::deadline_fresh(deadline.wrapping_sub(now), r.timeout)
        || ip_total_len > r.mtu
    {
        return None;
    }
    if settings.expire_nodest_conn {
        let svc: &ServiceRt = tables.service(r.service)?;
        if !crate::lifecycle::slot_alive(svc, r.real) {
            return None;
        }
    }
    let bytes = frame.len() as u64;
    if !r.rewrite.write_common(frame) {
        return None;
    }
    if let Some(s) = &r.svc_stats {
        crate::pipeline::count(s.worker(worker), bytes, r.inbound);
    }
    if let Some(s) = &r.real_stats {
        crate::pipeline::count(s.worker(worker), bytes, r.inbound);
    }
    frame[..12].copy_from_slice(&r.l2.macs);
    Some(r.l2.port)
}

/// Forwards a client → server NAT packet from its connection's class record (see the
/// module), `lookup` giving the connection the packet's tuple finds in the table (the
/// burst's prepared lookup): `Some(verdict)` when the frame was rewritten, counted and
/// given its MACs, or dropped for a bad L4 checksum; `None` when it takes the full path.
/// Tried where the flow record was not found, on a frame read at the fixed offsets of the
/// commonest frame ([`CommonV4`], [`CommonV6`]) that [`Replayable::read`] kept, and only
/// while [`classes_on`].
///
/// Not with the kernel fast path on: there the full path writes the flow's lines in the
/// XDP program at its first established packet, which a replay would skip. One packet in
/// [`FILL_EVERY`] of those the flow records could hold takes the full path, to fill them.
#[inline(always)]
fn forward_class<F: ClassFamily>(
    ctx: &mut Ctx<'_>,
    frame: &mut [u8],
    f: &F,
    lookup: impl FnOnce(&ConnTable, &F, u32) -> Option<Entry>,
) -> Option<Verdict> {
    let (proto, tcp_flags, ip_total_len) = f.fields();
    // The burst loop reads frames at their fixed offsets only while class records are in
    // use, and keeps only such frames (`Replayable::read`): not checked again here.
    debug_assert!(classes_on(ctx) && qualifies_common(proto, tcp_flags));
    let hit = lookup(ctx.conns, f, ctx.now)?;
    if hit.dir != Dir::Original || hit.flags() != 0 || hit.method() != Method::Nat as u8 {
        return None;
    }
    if ctx.flows.active && ctx.flows.draw() {
        // The flow records fill from the full path.
        ctx.flows.fill_next = true;
        return None;
    }
    let Some(r) = F::class(ctx.flows, &hit) else {
        ctx.flows.class_missed = true;
        return None;
    };
    if hit.state() != r.state
        || !crate::lifecycle::deadline_fresh(hit.deadline().wrapping_sub(ctx.now), r.timeout)
        || ip_total_len > r.mtu
    {
        return None;
    }
    if ctx.settings.expire_nodest_conn {
        let svc: &ServiceRt = ctx.tables.service(r.service)?;
        if !crate::lifecycle::slot_alive(svc, r.real) {
            return None;
        }
    }
    if ctx.verify_l4_checksums {
        if let L4Checksum::Bad = f.complete_checksum(frame) {
            return Some(Verdict::Drop(DropReason::BadChecksum));
        }
    }
    let bytes = frame.len() as u64;
    if !f.with_source(&r.rewrite).write_common(frame) {
        return None;
    }
    if let Some(s) = &r.svc_stats {
        crate::pipeline::count(s.worker(ctx.worker), bytes, true);
    }
    if let Some(s) = &r.real_stats {
        crate::pipeline::count(s.worker(ctx.worker), bytes, true);
    }
    frame[..12].copy_from_slice(&r.l2.macs);
    ctx.counters.class_replays.add(1);
    Some(Verdict::Forward(r.l2.port))
}

/// What [`forward_class`] needs of a frame read at fixed offsets: [`CommonV4`] or
/// [`CommonV6`], with its family's class records and rewrite.
pub(crate) trait ClassFamily {
    type Key: PartialEq;
    type Rewrite: Replay;
    /// Protocol, TCP flags, bytes of the IP packet.
    fn fields(&self) -> (u8, u8, u16);
    /// The frame forwarded from its flow's own record ([`forward_v4`], [`forward_v6`]).
    fn forward_flow(&self, ctx: &mut Ctx<'_>, frame: &mut [u8]) -> Option<Verdict>;
    /// The record of `hit`'s class (of this family), if there is one.
    fn class<'c>(cache: &'c FlowCache, e: &Entry) -> Option<&'c Record<Self::Key, Self::Rewrite>>;
    /// The L4 checksum verified, a partial one completed.
    fn complete_checksum(&self, frame: &mut [u8]) -> L4Checksum;
    /// `rw` with this frame's own source address and port.
    fn with_source(&self, rw: &Self::Rewrite) -> Self::Rewrite;
}

impl ClassFamily for CommonV4 {
    type Key = ClassKey4;
    type Rewrite = V4Rewrite;
    #[inline(always)]
    fn forward_flow(&self, ctx: &mut Ctx<'_>, frame: &mut [u8]) -> Option<Verdict> {
        forward_flow_v4(ctx, frame, self)
    }
    #[inline(always)]
    fn fields(&self) -> (u8, u8, u16) {
        (self.proto, self.tcp_flags, self.ip_total_len)
    }
    #[inline(always)]
    fn class<'c>(cache: &'c FlowCache, e: &Entry) -> Option<&'c ClassRecord4> {
        let key = ClassKey4::of_entry4(e);
        let r = &cache.classes[key.line()];
        (r.key == key).then_some(r)
    }
    #[inline(always)]
    fn complete_checksum(&self, frame: &mut [u8]) -> L4Checksum {
        uvs_wire::complete_common_v4_checksum(frame, self)
    }
    #[inline(always)]
    fn with_source(&self, rw: &V4Rewrite) -> V4Rewrite {
        rw.with_source(self.addrs, self.ports)
    }
}

impl ClassFamily for CommonV6 {
    type Key = ClassKey6;
    type Rewrite = V6Rewrite;
    #[inline(always)]
    fn forward_flow(&self, ctx: &mut Ctx<'_>, frame: &mut [u8]) -> Option<Verdict> {
        forward_flow_v6(ctx, frame, self)
    }
    #[inline(always)]
    fn fields(&self) -> (u8, u8, u16) {
        (self.proto, self.tcp_flags, self.ip_total_len)
    }
    #[inline(always)]
    fn class<'c>(cache: &'c FlowCache, e: &Entry) -> Option<&'c ClassRecord6> {
        let key = ClassKey6::of_entry6(e);
        let r = &cache.classes6[key.line()];
        (r.key == key).then_some(r)
    }
    #[inline(always)]
    fn complete_checksum(&self, frame: &mut [u8]) -> L4Checksum {
        uvs_wire::complete_common_v6_checksum(frame, self)
    }
    #[inline(always)]
    fn with_source(&self, rw: &V6Rewrite) -> V6Rewrite {
        rw.with_source(&self.addrs, self.ports)
    }
}

/// Whether class records are in use this poll: the cache is on and the kernel fast path off
/// (see [`forward_class`]).
#[inline(always)]
pub(crate) fn classes_on(ctx: &Ctx<'_>) -> bool {
    ctx.flows.enabled && ctx.fast.is_none()
}

/// A frame of a burst received ahead that [`forward_common`] may forward: read at the
/// fixed offsets, TCP with ACK and none of SYN/FIN/RST or UDP. Its lookup is then prepared
/// from this alone (no parse): the parse waits until the frame is found to need it. Which
/// form it was read in; the fields themselves go to the caller's per-family slots
/// ([`Replayable::read`]): kept as one enum holding either family's fields, each frame's
/// store and load copied the larger one's 44 bytes (~29 instructions a packet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Replayable {
    /// Not such a frame.
    #[default]
    No,
    V4,
    V6,
}

impl Replayable {
    /// Reads `frame` into `v4` or `v6`, as its family is, if it is such a frame (the other
    /// slot is left as it was).
    #[inline(always)]
    pub(crate) fn read(frame: &[u8], v4: &mut CommonV4, v6: &mut CommonV6) -> Replayable {
        if let Some(f) = CommonV4::read(frame) {
            if qualifies_common(f.proto, f.tcp_flags) {
                *v4 = f;
                return Replayable::V4;
            }
            return Replayable::No;
        }
        match CommonV6::read(frame) {
            Some(f) if qualifies_common(f.proto, f.tcp_flags) => {
                *v6 = f;
                Replayable::V6
            }
            _ => Replayable::No,
        }
    }
}

/// A window of tallies and the rest it may call for: after [`WINDOW`] tallies of which
/// fewer than a quarter were hits, off for [`REST`] polls, doubling after each such window
/// in a row (up to [`BACKOFF`] times); a window of hits ends the backoff. The flow records
/// tally their lookups (found or not). Each port of a worker tallies its frames read ahead
/// at fixed offsets (see [`Replayable`]), hits those whose index lane said client →
/// server: the class records decline the others in the large-table burst loop, and a
/// port taking mostly such frames (a real servers' link) cost its replies ~15 % at 100 000
/// flows and more read ahead so; resting, it parses its bursts ahead as before.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rest {
    seen: u32,
    hits: u32,
    /// Polls still to stay off.
    resting: u32,
    /// Windows of misses in a row.
    failures: u32,
}

impl Rest {
    /// Whether on now (not resting).
    #[inline(always)]
    pub(crate) fn on(&self) -> bool {
        self.resting == 0
    }

    /// Once per poll: counts a rest down.
    #[inline(always)]
    pub(crate) fn poll(&mut self) {
        self.resting = self.resting.saturating_sub(1);
    }

    /// One tally; true when it ended a window that calls for a rest.
    #[inline(always)]
    pub(crate) fn tally(&mut self, hit: bool) -> bool {
        self.seen += 1;
        self.hits += u32::from(hit);
        self.seen == WINDOW && self.judge()
    }

    /// `seen` tallies of which `hits` were hits at once; true when they ended a window
    /// that calls for a rest.
    #[inline(always)]
    pub(crate) fn tally_many(&mut self, seen: u32, hits: u32) -> bool {
        self.seen += seen;
        self.hits += hits;
        self.seen >= WINDOW && self.judge()
    }

    /// Starts the window again (the rest and its backoff carry over).
    pub(crate) fn new_window(&mut self) {
        (self.seen, self.hits) = (0, 0);
    }

    /// The end of a window: rest if too few hits.
    #[cold]
    fn judge(&mut self) -> bool {
        // A quarter of the window's tallies (a window tallied many at once may pass
        // `WINDOW`).
        let rest = self.hits < self.seen / 4;
        if rest {
            self.resting = REST << self.failures;
            self.failures = (self.failures + 1).min(BACKOFF);
        } else {
            self.failures = 0;
        }
        self.new_window();
        rest
    }
}

/// The connection-table key of an IPv6 frame read at fixed offsets.
#[inline(always)]
pub(crate) fn common_key6(f: &CommonV6) -> uvs_conntrack::FlowKey {
    let p = f.ports.to_ne_bytes();
    let mut src = [0; 16];
    let mut dst = [0; 16];
    src.copy_from_slice(&f.addrs[..16]);
    dst.copy_from_slice(&f.addrs[16..]);
    uvs_conntrack::FlowKey::v6(
        f.proto,
        src,
        u16::from_be_bytes([p[0], p[1]]),
        dst,
        u16::from_be_bytes([p[2], p[3]]),
    )
}

/// The connection-table key of a frame read at fixed offsets.
#[inline(always)]
pub(crate) fn common_key(f: &CommonV4) -> uvs_conntrack::FlowKey {
    let a = f.addrs.to_ne_bytes();
    let p = f.ports.to_ne_bytes();
    uvs_conntrack::FlowKey::v4(
        f.proto,
        [a[0], a[1], a[2], a[3]],
        u16::from_be_bytes([p[0], p[1]]),
        [a[4], a[5], a[6], a[7]],
        u16::from_be_bytes([p[2], p[3]]),
    )
}

/// The key a [`Filling`] records under.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FillKey {
    V4(Key),
    V6(Key6),
}

/// A packet the full path is to record once forwarded: drawn in `established` before its
/// rewrite (`pipeline/forward.rs`, `record`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Filling {
    /// The packet's key and parse before the rewrite.
    pub key: FillKey,
    pub before: Parsed,
    pub id: ConnId,
    pub state: u8,
}

impl Filling {
    /// Whether to record this established packet of connection `hit`: the cache is in use,
    /// the packet qualifies, and it wins the draw. No flags on the entry (not synced, not
    /// the SYN proxy's, not NAT64); TCP only in ESTABLISHED, where a segment with ACK and
    /// none of SYN/FIN/RST never moves the state; UDP has no states.
    #[inline(always)]
    pub(crate) fn wanted(cache: &mut FlowCache, p: &Parsed, hit: &Hit) -> bool {
        const ES: u8 = uvs_conntrack::tcp::TcpState::Established as u8;
        if !(hit.flags() == 0
            && qualifies(p)
            && (p.l4_proto != crate::pipeline::PROTO_TCP || hit.state() == ES))
        {
            return false;
        }
        if std::mem::take(&mut cache.fill_next) {
            return true;
        }
        (cache.class_missed && hit.dir == Dir::Original) || (cache.active() && cache.draw())
    }

    /// The filling for a packet [`wanted`](Self::wanted), before its rewrite.
    pub(crate) fn new(pkt: &Packet<'_>, hit: &Hit) -> Option<Filling> {
        let key = match pkt.p.l3 {
            L3::V4 => FillKey::V4(Key::of(pkt.frame(), &pkt.p)?),
            L3::V6 => FillKey::V6(Key6::of(pkt.frame(), &pkt.p)?),
        };
        Some(Filling {
            key,
            before: pkt.p,
            id: hit.id,
            state: hit.state(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab;
    use crate::tables::{Method, TablesBuilder};
    use uvs_sched::SchedulerKind;
    use uvs_testkit as tk;

    fn frame(sport: u16) -> Vec<u8> {
        tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            lab::CLIENT4.parse().unwrap(),
            sport,
            lab::VIP4.parse().unwrap(),
            80,
            tk::ACK,
            b"",
        )
    }

    /// Class records' lines spread the layouts a balancer has: one service with many real
    /// servers, many services with a few, firewall-mark services whose classes differ by
    /// port (a hash that kept 5 bits of the real server's slot gave one service's 200 real
    /// servers 32 lines).
    #[test]
    fn line_spreads_classes() {
        let lines = |classes: &[(u16, u16, u16)]| {
            let mut seen = std::collections::HashSet::new();
            for &(service, real, vport) in classes {
                let k = ClassKey4::of_fields((6, 0, service, real), (vport, 8080), 0);
                assert!(k.line() < CLASSES);
                seen.insert(k.line());
            }
            seen.len()
        };
        let many_reals: Vec<_> = (0..500).map(|r| (1, r, 80)).collect();
        assert_eq!(lines(&many_reals), 500);
        let many_services: Vec<_> = (0..100)
            .flat_map(|s| (0..4).map(move |r| (s, r, 443)))
            .collect();
        assert_eq!(lines(&many_services), 400);
        let fwmark: Vec<_> = (0..5)
            .flat_map(|r| (0..50).map(move |p| (3, r, 1000 + p)))
            .collect();
        assert!(lines(&fwmark) >= 200, "{}", lines(&fwmark));
        let grid: Vec<_> = (0..16)
            .flat_map(|s| (0..32).map(move |r| (s, r, 80)))
            .collect();
        assert!(lines(&grid) >= 450, "{}", lines(&grid));
    }

    /// A window in which fewer than a quarter of the packets found a record makes the
    /// cache rest for [`REST`] polls (no lookups, no fills), then try again, resting twice
    /// as long after another such window; a window of hits keeps it in use and ends the
    /// backoff; a new snapshot forgets the records but not the rest.
    #[test]
    fn rests_after_a_window_of_misses_and_tries_again() {
        let t = TablesBuilder::build(&lab::spec(Method::Nat, SchedulerKind::Rr, 1), None).unwrap();
        let n = Arc::new(NeighMap::default());
        let mut c = FlowCache::default();
        c.sync(&t, &n, true);
        assert!(c.active());
        // Every packet a different flow, none recorded: twice in a row.
        let misses = |c: &mut FlowCache| {
            for i in 0..WINDOW {
                let f = frame(1024 + (i % 60_000) as u16);
                assert!(c.get(&CommonV4::read(&f).unwrap()).is_none());
            }
            assert!(c.resting() && !c.active());
        };
        let rest = |c: &mut FlowCache, polls: u32| {
            for _ in 0..polls - 1 {
                c.sync(&t, &n, true);
                assert!(!c.active());
            }
            c.sync(&t, &n, true);
            assert!(c.active(), "tries again after the rest");
        };
        misses(&mut c);
        rest(&mut c, REST);
        misses(&mut c);
        rest(&mut c, 2 * REST);
        let f = frame(7);
        let p = uvs_wire::parse_frame(&f).unwrap();
        let common = CommonV4::read(&f).unwrap();
        // One flow, recorded: every lookup hits, no rest.
        c.put(Record4 {
            key: Key::of(&f, &p).unwrap(),
            ..Record4::default()
        });
        for _ in 0..2 * WINDOW {
            assert!(c.get(&common).is_some());
        }
        assert!(c.active());
        assert_eq!(c.rest.failures, 0, "a window of hits ends the backoff");
        // A new snapshot forgets the records, not a rest.
        c.rest.resting = REST;
        let t2 =
            TablesBuilder::build(&lab::spec(Method::Nat, SchedulerKind::Rr, 1), Some(&t)).unwrap();
        assert_ne!(t2.epoch, t.epoch);
        c.sync(&t2, &n, true);
        assert!(!c.active() && c.get(&common).is_none());
    }
}
