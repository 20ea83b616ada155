//! A poll-mode worker: owns one queue's port on every interface, runs bursts to
//! completion, and never waits for control.
//!
//! Per poll: load the tables snapshot and the neighbour map once; per port receive up to
//! [`BURST`] frames into a stack array (while bursts come full, up to [`BURSTS_PER_POLL`]
//! of them, each received before the one ahead of it is processed), run the pipeline on
//! each, transmit the frames that leave by the port they came in on as one batch per
//! burst, copy the others to their egress port, hand ARP/NDP/echo to the slow path; then
//! flush every port once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use uvs_conntrack::ConnTable;
use uvs_port::{Frame, Port, FRAME_CAPACITY};

use crate::counters::{new_counters, AllCounters};
use crate::flowcache::{Replayable, Rest};
use crate::neigh::{NeighTable, Pending, PendingAction};
use crate::pipeline::{
    lookup_key, prepare, process, process_parsed, process_rest, store, Ctx, Packet, Staging,
};
use crate::slowpath;
use crate::tables::{IpKey, Tables};
use crate::verdict::{DropReason, Verdict};
use crate::wake::Stop;
use uvs_conntrack::Dir;
use uvs_wire::{CommonV4, CommonV6};

/// Frames per receive burst (DPDK's and DPVS's usual 32).
pub const BURST: usize = 32;

/// Bursts a worker takes from one port in one poll while they come full. Each is received
/// before the one in front of it is processed; in burst-lookup mode it is also parsed and
/// its index buckets prefetched then, so that those misses overlap with that burst's work
/// and its entries' misses with the next parse (bench/README.md, "Sixth pass": with the
/// per-poll work shared by more frames, `stage full` 1 000 000 flows 83.35 → 80.45 ns,
/// 1 000 flows 62.9 → 61.05). A burst that is not full ends the port's turn at once:
/// nothing waits for traffic that has not come, and every burst is processed in the poll
/// that received it. The ports are flushed after each burst, as when a poll took one; the
/// bound keeps the rest of the poll (frames waiting for a neighbour, the SYN proxy's
/// timers) at least once per 256 frames of a port.
pub const BURSTS_PER_POLL: usize = 8;

/// Connection tables at least this large are looked up a burst at a time: their entries
/// are not in cache, and overlapping the misses roughly doubles lookups per second, while
/// for a cache-resident table the batch costs more than it saves (measured with the
/// conntrack crate's ct_bench).
pub const BATCH_LOOKUP_MIN_CAPACITY: usize = 1 << 18;

/// Seconds since the dataplane started, the unit of connection deadlines.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    /// Added to the real clock; tests move time forward with it.
    offset: AtomicU64,
    /// The real clock is left out: only [`Clock::advance`] moves time ([`Clock::stop`]).
    stopped: AtomicBool,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            offset: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }
}

impl Clock {
    #[inline]
    pub fn now_s(&self) -> u32 {
        self.now().0
    }

    /// Seconds and table ticks from one reading of the clock (once per poll).
    #[inline]
    pub fn now(&self) -> (u32, u32) {
        let e = if self.stopped.load(Ordering::Relaxed) {
            std::time::Duration::ZERO
        } else {
            self.start.elapsed()
        };
        let off = self.offset.load(Ordering::Relaxed);
        (
            (e.as_secs() + off) as u32,
            (e.as_millis() as u64 + off * 1000) as u32,
        )
    }

    /// Connection-table ticks: milliseconds, wrapping at 2^32 (the table compares
    /// deadlines with wrapping arithmetic).
    #[inline]
    pub fn now_ticks(&self) -> u32 {
        self.now().1
    }

    /// Moves the clock forward (tests and simulations).
    pub fn advance(&self, secs: u64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }

    /// Leaves the real clock out from now on: time stands at [`Clock::advance`]'s sum
    /// (tests that compare two dataplanes, whose real clocks tick over at other moments).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// How long an idle worker polls before it sleeps unless told otherwise (`workers.spin_us`,
/// [`Worker::spin`]): long enough that a steady flow never sleeps between bursts, short
/// enough that an idle worker costs little.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(200);

/// Empty polls a spinning worker makes with a spin-loop hint before it yields its core
/// between polls (see [`Worker::run`]).
pub const SPIN_POLLS_BEFORE_YIELD: u32 = 256;

/// The longest a worker with timed work (frames waiting for a neighbour, the SYN proxy's
/// retransmissions, an announcement's rounds) sleeps before it looks at it again.
pub const SLEEP_MAX_MS: u16 = 50;

/// The longest a worker with nothing timed sleeps. Traffic, uvsd's stop and control
/// handing it work (its [`Doorbell`](crate::wake::Doorbell)) wake it at once; this bounds
/// what anything else would wait.
pub const IDLE_SLEEP_MAX_MS: u16 = 1000;

/// State shared by all workers and control.
pub struct Shared {
    pub tables: ArcSwap<Tables>,
    pub conns: ConnTable,
    pub neigh: NeighTable,
    pub counters: AllCounters,
    pub clock: Clock,
    /// IPVS's connection-lifecycle sysctls (conn_reuse_mode, expire_nodest_conn, …).
    pub settings: crate::lifecycle::SharedSettings,
    /// New connections and state changes for the sync daemon.
    pub sync: crate::sync_tap::SyncTap,
    /// Active/backup: addresses of backup groups, announcements of groups become master.
    pub cluster: crate::cluster::Cluster,
    /// Verify TCP/UDP checksums and complete partial ones (on; `uvs-bench pipeline` turns
    /// it off to measure the cost against the path without it).
    pub verify_l4_checksums: AtomicBool,
    /// Forward established packets from each worker's flow cache (`crate::flowcache`; on:
    /// `uvs-bench pipeline --no-flow-cache` turns it off to compare).
    pub flow_cache: AtomicBool,
    /// The SYN proxy's cookie secret and splice table.
    pub synproxy: crate::synproxy::ProxyShared,
    /// One per worker: wakes it from its sleep when control hands it work.
    pub doorbells: Box<[crate::wake::Doorbell]>,
    /// Connections the `drop_entry` defence removed to make room
    /// ([`crate::lifecycle::drop_half_open`]), counted by control.
    pub conns_dropped: AtomicU64,
    /// The kernel fast path's tables and switch (`crate::fastpath`).
    pub fast: crate::fastpath::FastPath,
    /// Connection sync has just started and its peers may yet send the connections they
    /// carry (a restarted uvsd learns them back at once): until control clears this, a
    /// segment uvs has no entry for is dropped unanswered rather than reset
    /// (`pipeline::tcp::reset_untracked`), since a RST would end a flow whose entry is on
    /// its way, and the sender's retransmission finds it.
    pub sync_learning: AtomicBool,
    /// One per worker: control asks the worker to leave [`Worker::run`] so that its owner
    /// can give it new ports (an interface made again: `Worker::replace_port`), and rings
    /// its doorbell; the owner clears it once the ports are in place.
    pub reopen_ports: Box<[AtomicBool]>,
}

impl Shared {
    pub fn new(tables: Tables, conn_capacity: usize, workers: usize) -> Self {
        let syn_proxy = tables.services.iter().flatten().any(|s| s.syn_proxy);
        let shared = Self {
            tables: ArcSwap::from_pointee(tables),
            conns: ConnTable::new(conn_capacity),
            neigh: NeighTable::default(),
            counters: new_counters(workers),
            clock: Clock::default(),
            settings: Default::default(),
            sync: crate::sync_tap::SyncTap::new(workers),
            cluster: Default::default(),
            verify_l4_checksums: AtomicBool::new(true),
            flow_cache: AtomicBool::new(true),
            synproxy: crate::synproxy::ProxyShared::new(workers),
            doorbells: (0..workers).map(|_| Default::default()).collect(),
            conns_dropped: AtomicU64::new(0),
            fast: Default::default(),
            sync_learning: AtomicBool::new(false),
            reopen_ports: (0..workers).map(|_| AtomicBool::new(false)).collect(),
        };
        if syn_proxy {
            // Allocated now rather than by the first proxied handshake on a worker.
            shared.synproxy.splices(&shared.conns);
        }
        shared
    }

    pub fn workers(&self) -> usize {
        self.counters.len()
    }

    /// Asks worker 0, which speaks for the node, to send `a` (control), waking it.
    pub fn announce(&self, a: crate::cluster::Announcement) {
        self.cluster.announce(a);
        if let Some(bell) = self.doorbells.first() {
            bell.ring();
        }
    }

    /// Zeroes every service's and real server's traffic counters (ipvsadm -Z).
    pub fn zero_traffic_counters(&self) {
        let tables = self.tables.load();
        for s in tables.services.iter().flatten() {
            s.stats.reset();
            for r in s.reals.iter().flatten() {
                r.stats.reset();
            }
        }
    }
}

/// One worker and its ports (index = interface index in the tables).
pub struct Worker<P: Port> {
    pub id: usize,
    pub ports: Vec<P>,
    shared: Arc<Shared>,
    pending: Pending,
    fullnat_cursor: u32,
    frags: crate::frag::FragTable,
    pieces: crate::frag::Pieces,
    /// SYNs sent to real servers for proxied connections, kept for retransmission.
    proxy_syns: crate::synproxy::retransmit::ProxySyns,
    /// Look each burst's flows up together (large tables, where lookups miss the cache).
    batch_lookups: bool,
    /// Never sleep while idle (see [`Worker::run`]).
    pub busy_poll: bool,
    /// How long an idle worker keeps polling before it sleeps (`workers.spin_us`, default
    /// [`DEFAULT_SPIN`]); zero: it sleeps at the first empty poll (see [`Worker::run`]).
    pub spin: Duration,
    /// The longest sleep with nothing timed, in milliseconds ([`IDLE_SLEEP_MAX_MS`]; tests
    /// lengthen it to show that what wakes the worker is not this timer).
    pub idle_sleep_ms: u16,
    /// The burst-lookup stage's arrays, allocated once rather than set up every poll: the
    /// burst being processed and the one received ahead of it.
    burst: Box<[BurstScratch; 2]>,
    /// Per port: whether its bursts received ahead are read at fixed offsets.
    read_ahead: Vec<crate::flowcache::Rest>,
    /// The burst's staged new flows (`pipeline/staged.rs`).
    staging: Box<Staging>,
    /// Worker 0's progress through the current VIP announcement.
    announcer: crate::cluster::Announcer,
    /// Stale neighbours asked again (worker 0 only).
    neigh_refresh: crate::neigh::Refresh,
    scratch: Box<[u8]>,
    /// Link-layer headers towards real servers (`crate::egress`).
    egress: crate::egress::EgressCache,
    /// SCTP tags found valid lately (`crate::sctp::tags::TagCache`).
    sctp_tags: crate::sctp::tags::TagCache,
    /// Error answers left this second (`crate::verdict::ErrorBudget`).
    errors: crate::verdict::ErrorBudget,
    /// Each port's [`Port::rx_lost`] when last read, and the second it was read in
    /// (`u32::MAX`: never).
    rx_lost: Vec<u64>,
    rx_lost_read: u32,
    /// The snapshot the kernel fast path's lines were last emptied for (its address).
    fast_snapshot: usize,
    /// The second worker 0 last took the fast path's counts in.
    fast_harvested: u32,
    /// How this worker forwarded its busiest flows (`crate::flowcache`).
    flows: crate::flowcache::FlowCache,
}

/// A burst's parse results and prepared connection lookups (burst-lookup mode).
struct BurstScratch {
    prepared: [Result<uvs_wire::Parsed, Verdict>; BURST],
    /// Per frame: read at fixed offsets and left unparsed, its lookup prepared from that
    /// alone (`flowcache::Replayable`: while class records are in use). Its `prepared`
    /// is then written only if it takes the full path.
    common: [Replayable; BURST],
    /// Bit `k` set where lookup `k`'s frame was read at its fixed offsets (`common`).
    lean_keys: u32,
    /// Per frame read ahead as IPv4 (`common`): its fields.
    common4: [CommonV4; BURST],
    /// Per frame read ahead as IPv6 (`common`): its fields.
    common6: [CommonV6; BURST],
    key_of: [Option<usize>; BURST],
    lookups: [uvs_conntrack::Prepared; BURST],
    nkeys: usize,
    /// Per lookup: the frame it is for (SCTP only: its tag record's key comes from it).
    frame_of: [u8; BURST],
    /// Bit `k` set where lookup `k`'s frame is SCTP, whose verification tag is checked
    /// against a tag record in the same table (`sctp::tags`), one more lookup a packet;
    /// 0 for a burst without SCTP, whose path then stays as it was.
    sctp: u32,
    /// Per SCTP lookup: its tag record's lookup, prepared once the association's index
    /// lane has said which direction the packet likely is ([`Self::prepare_tag`]).
    tags: [Option<uvs_conntrack::Prepared>; BURST],
}

/// Frames between an SCTP tag record's bucket prefetch and its entry's (the bucket must
/// have arrived: a miss takes about a frame's time at a million associations).
const TAG_LAG: usize = 4;

impl Default for BurstScratch {
    fn default() -> Self {
        Self {
            prepared: [Err(Verdict::SlowPath); BURST],
            common: [Replayable::No; BURST],
            lean_keys: 0,
            common4: [CommonV4::default(); BURST],
            common6: [CommonV6::default(); BURST],
            key_of: [None; BURST],
            lookups: [uvs_conntrack::Prepared::default(); BURST],
            nkeys: 0,
            frame_of: [0; BURST],
            sctp: 0,
            tags: [None; BURST],
        }
    }
}

impl BurstScratch {
    /// Parses a whole burst, hashing each frame's flow and prefetching its index bucket as
    /// it goes (the miss overlaps with the next frames' parse), then prefetches the
    /// entries; each lookup is finished when its frame is processed
    /// ([`ConnTable::finish`]), so an entry's miss overlaps with the frames before it.
    /// For a burst received ahead ([`BURSTS_PER_POLL`]) the two halves run apart:
    /// [`parse`](Self::parse) before the burst in front of it is processed, and each
    /// lookup's [`ConnTable::prefetch_entry`] while one of that burst's frames is.
    #[inline(always)]
    fn prepare<P: Port>(&mut self, port: &mut P, rx: &[Frame], conns: &ConnTable, lean: bool) {
        self.parse(port, rx, conns, lean);
        self.prefetch_entries(conns);
    }

    /// Parses a burst, hashing each frame's flow and prefetching its first index bucket.
    /// `lean`: class records are in use, and a frame they may forward is only read at its
    /// fixed offsets, not parsed (`common`).
    #[inline(always)]
    fn parse<P: Port>(&mut self, port: &mut P, rx: &[Frame], conns: &ConnTable, lean: bool) {
        let (mut nkeys, mut sctp, mut lean_keys) = (0, 0, 0);
        for (i, f) in rx.iter().enumerate() {
            let buf = port.buf_mut(f);
            let len = (f.len as usize).min(buf.len());
            if lean {
                let c = Replayable::read(&buf[..len], &mut self.common4[i], &mut self.common6[i]);
                self.common[i] = c;
                if c != Replayable::No {
                    let key = if c == Replayable::V4 {
                        crate::flowcache::common_key(&self.common4[i])
                    } else {
                        crate::flowcache::common_key6(&self.common6[i])
                    };
                    self.lookups[nkeys] = conns.prepare(&key);
                    self.key_of[i] = Some(nkeys);
                    self.frame_of[nkeys] = i as u8;
                    lean_keys |= 1 << nkeys;
                    nkeys += 1;
                    continue;
                }
            }
            self.common[i] = Replayable::No;
            // The key from the parse's own value, before it is stored: read back from
            // `prepared`, its ports (stored as two 16-bit fields) came as one 32-bit load
            // that could not be forwarded from the stores, a stall on every frame.
            let parsed = prepare(&buf[..len]);
            let key = parsed.as_ref().ok().and_then(lookup_key);
            self.prepared[i] = parsed;
            self.key_of[i] = None;
            if let Some(k) = key {
                self.lookups[nkeys] = conns.prepare(&k);
                self.key_of[i] = Some(nkeys);
                if k.proto == crate::pipeline::PROTO_SCTP {
                    self.frame_of[nkeys] = i as u8;
                    sctp |= 1 << nkeys;
                }
                nkeys += 1;
            }
        }
        self.nkeys = nkeys;
        self.sctp = sctp;
        self.lean_keys = lean_keys;
    }

    /// Starts loading the entries of the parsed burst's lookups (their buckets must have
    /// had time to arrive: [`ConnTable::prefetch_entry`] reads them, and keeps the lane it
    /// found so that the frame's `finish` need not probe the bucket again), and the SCTP
    /// tag records' buckets; then, those having had the other frames' time, the records.
    #[inline(always)]
    fn prefetch_entries(&mut self, conns: &ConnTable) {
        for k in 0..self.nkeys {
            self.prefetch_entry(k, conns);
        }
        if self.sctp != 0 {
            for k in 0..self.nkeys {
                self.prefetch_tag(k, conns);
            }
        }
    }

    /// After the burst in front was processed (each of this burst's entries prefetched,
    /// so each lookup knows its index lane): the frames read ahead at their fixed offsets
    /// (`common`) whose lane says they are no client → server packet of a known
    /// connection (`Prepared::likely_dir`: a reply, or a miss) are parsed now, as every
    /// frame of a burst received ahead was before class records, since only the full path
    /// will take them. Parsed later instead, at its turn, a reply cost ~15 % more at
    /// 100 000 and 1 000 000 flows. `rest` tallies the frames read so and those found
    /// client → server. Done here, once a burst on bit masks, rather than frame by frame
    /// where each entry's prefetch is started: there it took ~27 instructions a
    /// client → server packet, here ~11.
    #[inline(always)]
    fn parse_replies<P: Port>(&mut self, port: &mut P, rx: &[Frame], rest: &mut Rest) {
        let lean = self.lean_keys;
        let mut inbound = 0u32;
        for (k, l) in self.lookups[..self.nkeys].iter().enumerate() {
            inbound |= u32::from(l.likely_dir() == Some(Dir::Original)) << k;
        }
        let inbound = inbound & lean;
        rest.tally_many(lean.count_ones(), inbound.count_ones());
        let mut others = lean & !inbound;
        while others != 0 {
            let k = others.trailing_zeros() as usize;
            others &= others - 1;
            let f = usize::from(self.frame_of[k]);
            if let Some(frame) = rx.get(f) {
                let buf = port.buf_mut(frame);
                let len = (frame.len as usize).min(buf.len());
                self.prepared[f] = prepare(&buf[..len]);
                self.common[f] = Replayable::No;
            }
        }
    }

    /// Lookup `k`'s entry starts loading; for an SCTP frame, also its tag record's bucket.
    #[inline(always)]
    fn prefetch_entry(&mut self, k: usize, conns: &ConnTable) {
        conns.prefetch_entry(&mut self.lookups[k]);
        if self.is_sctp(k) {
            self.prepare_tag(k, conns);
        }
    }

    /// The tag record an SCTP frame's check will look up (`sctp::tags::own_key`), in the
    /// direction its association's index lane gives, prepared (its bucket prefetched).
    /// None when the lane was not found (a new association, a miss): its INIT has no
    /// record to check.
    #[cold]
    fn prepare_tag(&mut self, k: usize, conns: &ConnTable) {
        let frame = usize::from(self.frame_of[k]);
        self.tags[k] = match (self.lookups[k].likely_dir(), &self.prepared[frame]) {
            (Some(dir), Ok(p)) => Some(conns.prepare(&crate::sctp::tags::own_key(p, dir))),
            _ => None,
        };
    }

    #[inline(always)]
    fn is_sctp(&self, k: usize) -> bool {
        self.sctp & (1 << k) != 0
    }

    /// Lookup `k`'s tag record (if it is SCTP's and has one) starts loading.
    #[inline(always)]
    fn prefetch_tag(&mut self, k: usize, conns: &ConnTable) {
        if self.is_sctp(k) {
            if let Some(t) = self.tags[k].as_mut() {
                conns.prefetch_entry(t);
            }
        }
    }

    /// Whether the staged new flows must be stored before frame `i`: it may be one of
    /// their tuples, or it was not looked up here (ICMP, a later fragment, an SCTP
    /// fragment: they look the table up their own way). Frames that did not parse never
    /// touch the table.
    #[inline]
    fn needs_flush(&self, i: usize, staging: &Staging) -> bool {
        (self.common[i] != Replayable::No || self.prepared[i].is_ok())
            && self.key_of[i].is_none_or(|k| staging.may_hold(self.lookups[k].fingerprint()))
    }
}

/// The kernel fast path's housekeeping, once per poll (`crate::fastpath`): every line goes
/// when the worker loads a new snapshot; worker 0 takes the lines' counts once a second.
/// `state`: the worker's id, the snapshot the lines were last emptied for (its address)
/// and the second of the last harvest.
fn fast_sync(
    state: (usize, &mut usize, &mut u32),
    fast: &[Arc<dyn uvs_port::fast::FastTable>],
    tables: &Arc<Tables>,
    now_s: u32,
) {
    let (id, emptied_for, harvested) = state;
    let snapshot = Arc::as_ptr(tables) as usize;
    if *emptied_for != snapshot {
        *emptied_for = snapshot;
        crate::fastpath::clear_all(fast, tables, id);
    }
    if id == 0 && *harvested != now_s {
        *harvested = now_s;
        crate::fastpath::harvest(fast, tables, id);
    }
}

#[inline(always)]
fn pair_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    debug_assert_ne!(a, b);
    if a < b {
        let (x, y) = v.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = v.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}

impl<P: Port> Worker<P> {
    pub fn new(id: usize, ports: Vec<P>, shared: Arc<Shared>) -> Self {
        assert!(
            ports.len() <= usize::from(u8::MAX),
            "at most 255 ports per worker"
        );
        let batch_lookups = shared.conns.capacity() >= BATCH_LOOKUP_MIN_CAPACITY;
        let ports_len = ports.len();
        Self {
            id,
            ports,
            shared,
            pending: Pending::default(),
            fullnat_cursor: 0,
            frags: crate::frag::FragTable::default(),
            pieces: crate::frag::Pieces::default(),
            proxy_syns: Default::default(),
            batch_lookups,
            busy_poll: false,
            spin: DEFAULT_SPIN,
            idle_sleep_ms: IDLE_SLEEP_MAX_MS,
            burst: Box::default(),
            read_ahead: vec![Default::default(); ports_len],
            staging: Box::default(),
            scratch: vec![0; FRAME_CAPACITY].into_boxed_slice(),
            announcer: Default::default(),
            neigh_refresh: Default::default(),
            egress: Default::default(),
            flows: Default::default(),
            sctp_tags: Default::default(),
            errors: Default::default(),
            rx_lost: vec![0; ports_len],
            rx_lost_read: u32::MAX,
            fast_snapshot: 0,
            fast_harvested: u32::MAX,
        }
    }

    /// Looks connections up a burst at a time (`true`) or frame by frame. [`Worker::new`]
    /// chooses by the table's size ([`BATCH_LOOKUP_MIN_CAPACITY`]); the burst path gives the
    /// same answers on any table, and tests and the `bursts` fuzz target run it on small
    /// ones with this.
    pub fn set_burst_lookups(&mut self, on: bool) {
        self.batch_lookups = on;
    }

    /// The worker's ports, one per interface in the configuration's order.
    pub fn ports(&self) -> &[P] {
        &self.ports
    }

    /// Puts `port` in place of the worker's port `i` (the same interface, made again),
    /// between runs; the old one is closed. Frames held for a neighbour keep their port
    /// number.
    pub fn replace_port(&mut self, i: usize, port: P) {
        if let Some(p) = self.ports.get_mut(i) {
            *p = port;
        }
    }

    /// Runs bursts until `stop` is raised, or control asks for new ports
    /// (`Shared::reopen_ports`).
    ///
    /// Adaptive polling: while frames arrive the worker polls its rings without a syscall.
    /// After [`Worker::spin`] without a frame (with a zero spin: at the first empty poll) it
    /// sleeps in `poll(2)` on its ports' sockets, `stop`'s fd and its doorbell until one is
    /// readable, or [`SLEEP_MAX_MS`] while it has timed work (frames waiting for a
    /// neighbour, the SYN proxy's retransmissions, an announcement's rounds), or
    /// [`IDLE_SLEEP_MAX_MS`] without (an idle debug build of uvsd: 1.3–4 % of a core with a
    /// 50 ms sleep and the admin and metrics servers waking every 50 ms, 0.4–0.8 % with
    /// both woken by their fds instead).
    /// While spinning it uses a spin-loop hint for [`SPIN_POLLS_BEFORE_YIELD`] polls, then
    /// yields its core between polls (a spin without yields made the real server and
    /// client sharing the core wait it out); after a sleep that timed out it sleeps again
    /// at the next empty poll instead of spinning (an idle uvsd: 0.7 → 0.2–0.3 % of a core).
    ///
    /// The spin's price (bench/README.md, "Where a crossing's microseconds go"): a spinning
    /// worker keeps its core busy, so the scheduler wakes the client and real servers it
    /// sends to on another core, and on the test VMs a wake-up across cores (an IPI to the
    /// other vCPU) costs 15–50 µs, against 1–2 µs on the same core. With no spin and no
    /// pinning the worker is woken by its sender and can share its core, as the kernel
    /// path does (a warm UDP round trip ~40 → 19–27 µs), but only when the scheduler keeps
    /// it there: otherwise every frame crosses cores twice (66–100 µs), so the spin stays
    /// the default. With `busy_poll` (or ports that cannot be waited on) it never sleeps.
    pub fn run(&mut self, stop: &Stop) {
        let mut idle = 0u32;
        let mut idle_since = Instant::now();
        let can_sleep = !self.busy_poll && self.ports.iter().all(|p| p.wait_fd().is_some());
        let spin = self.spin;
        // After a sleep that timed out: sleep again at the next empty poll.
        let mut resleep = false;
        let shared = self.shared.clone();
        let reopen = &shared.reopen_ports[self.id];
        while !stop.is_raised() && !reopen.load(Ordering::Relaxed) {
            if self.poll() > 0 {
                idle = 0;
                resleep = false;
                continue;
            }
            idle = idle.saturating_add(1);
            if idle == 1 {
                if can_sleep && (resleep || spin.is_zero()) {
                    resleep = !self.sleep_until_readable(stop);
                    idle = 0;
                    continue;
                }
                idle_since = Instant::now();
            } else if can_sleep && idle_since.elapsed() >= spin {
                resleep = !self.sleep_until_readable(stop);
                idle = 0;
                continue;
            }
            if idle <= SPIN_POLLS_BEFORE_YIELD {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// True while the worker has work on a timer: frames waiting for a neighbour, the SYN
    /// proxy's SYNs and held segments, an announcement's rounds.
    fn has_timed_work(&self) -> bool {
        !self.pending.is_empty()
            || !self.proxy_syns.is_empty()
            || self.proxy_syns.held() > 0
            || !self.proxy_syns.heads.is_empty()
            || self.announcer.is_active()
    }

    /// Sleeps until one of the ports has frames to receive, `stop` is raised, the worker's
    /// doorbell rings, or [`SLEEP_MAX_MS`] when it has timed work ([`IDLE_SLEEP_MAX_MS`]
    /// otherwise); true when woken before the timeout. The cold path: its small allocation
    /// happens once per sleep, never per burst.
    #[cold]
    fn sleep_until_readable(&mut self, stop: &Stop) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let timeout = if self.has_timed_work() {
            SLEEP_MAX_MS.min(self.idle_sleep_ms)
        } else {
            self.idle_sleep_ms
        };
        let bell = self.shared.doorbells.get(self.id);
        // The doorbell first, so its readiness is found at index 0.
        let bell_fd = bell.and_then(|b| b.fd());
        let mut set: Vec<PollFd<'_>> = bell_fd
            .into_iter()
            .chain(stop.fd())
            .chain(self.ports.iter().filter_map(|p| p.wait_fd()))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        self.shared.counters[self.id].sleeps.add(1);
        // EINTR (a signal) just ends the sleep early, as readable, so the worker polls.
        let woke = !matches!(poll(&mut set, PollTimeout::from(timeout)), Ok(0));
        let rung = bell_fd.is_some()
            && set[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLIN));
        if rung {
            if let Some(b) = bell {
                b.clear();
            }
        }
        woke
    }

    /// Packets this worker forwarded from its flow cache (`crate::flowcache`).
    pub fn flow_cache_hits(&self) -> u64 {
        self.shared.counters[self.id].flow_cache.get()
    }

    /// Packets this worker forwarded from its class records (`crate::flowcache`).
    pub fn class_replays(&self) -> u64 {
        self.shared.counters[self.id].class_replays.get()
    }

    /// Uses per-flow records or only class records (`crate::flowcache`); see
    /// `FlowCache::set_flow_records`.
    pub fn set_flow_records(&mut self, on: bool) {
        self.flows.set_flow_records(on);
    }

    /// One burst on every port. Returns the frames received.
    pub fn poll(&mut self) -> usize {
        let shared = &*self.shared;
        let tables = shared.tables.load();
        let neigh = shared.neigh.load();
        let (now, ticks) = shared.clock.now();
        let counters = &shared.counters[self.id];
        self.egress.sync(&tables, &neigh);
        let flow_cache = shared.flow_cache.load(Ordering::Relaxed);
        self.flows.sync(&tables, &neigh, flow_cache);
        let fast = shared.fast.active();
        if let Some(fast) = fast {
            fast_sync(
                (self.id, &mut self.fast_snapshot, &mut self.fast_harvested),
                fast,
                &tables,
                now,
            );
        }
        let mut ctx = Ctx {
            tables: &tables,
            neigh: &neigh,
            worker: self.id,
            workers: shared.workers(),
            now: ticks,
            now_s: now,
            conns: &shared.conns,
            counters,
            settings: shared.settings.load(),
            sync: &shared.sync,
            verify_l4_checksums: shared.verify_l4_checksums.load(Ordering::Relaxed),
            fullnat_cursor: &mut self.fullnat_cursor,
            frags: &mut self.frags,
            pieces: &mut self.pieces,
            proxy: &shared.synproxy,
            proxy_syns: &mut self.proxy_syns,
            doorbells: &shared.doorbells,
            staging: &mut self.staging,
            egress: &mut self.egress,
            flows: &mut self.flows,
            sctp_tags: &mut self.sctp_tags,
            errors: &self.errors,
            sync_learning: shared.sync_learning.load(Ordering::Relaxed),
            fast,
        };
        let mut total = 0;
        let batch = self.batch_lookups;
        // Frames of a burst received ahead that class records may forward are not parsed
        // ahead (`BurstScratch::parse`), on ports that take such frames
        // (`flowcache::Rest`).
        let classes = crate::flowcache::classes_on(&ctx);
        let read_ahead = &mut self.read_ahead;
        let bursts = &mut *self.burst;
        // Loaded on the first frame of the burst that reaches the slow path.
        let mut silent = None;
        let mut rxs = [[Frame::default(); BURST]; 2];
        let mut tx = [Frame::default(); BURST];
        let mut done = [Frame::default(); BURST];
        let (ports, pending, scratch) = (&mut self.ports, &mut self.pending, &mut self.scratch);
        for pi in 0..ports.len() {
            // `c`: which of the two arrays holds the burst being processed (`n` frames); the
            // other receives the next one ahead of it (`m` frames).
            let mut c = 0;
            read_ahead[pi].poll();
            let lean = classes && read_ahead[pi].on();
            let mut n = ports[pi].rx_burst(&mut rxs[0]);
            total += n;
            if batch && n > 1 {
                bursts[0].prepare(&mut ports[pi], &rxs[0][..n], &shared.conns, lean);
            }
            let mut taken = 1;
            while n > 0 {
                let (rx, rx_next) = pair_mut(&mut rxs, c, 1 - c);
                let (burst, ahead) = pair_mut(&mut bursts[..], c, 1 - c);
                // A full burst (more frames are likely waiting): the port's next burst is
                // received before this one is processed, and in burst mode parsed, its
                // buckets' misses overlapping with this burst's work and its entries' with the
                // parse of the one after (`BURSTS_PER_POLL`). A burst that is not full is
                // processed at once: nothing waits for traffic that has not come.
                let mut m = 0;
                if n == BURST && taken < BURSTS_PER_POLL {
                    m = ports[pi].rx_burst(rx_next);
                    total += m;
                    taken += 1;
                    if batch && m > 1 {
                        ahead.parse(&mut ports[pi], &rx_next[..m], &shared.conns, lean);
                    }
                }
                let (mut ntx, mut ndone) = (0, 0);
                counters.rx_packets.add(n as u64);
                counters
                    .rx_bytes
                    .add(rx[..n].iter().map(|f| u64::from(f.len)).sum());
                // A frame's verdict: transmit it with the burst, copy it out, hold it, hand it
                // to the slow path or drop it. A macro, for the frames of the burst and for the
                // staged new flows stored before or after them (`pipeline/staged.rs`).
                macro_rules! dispatch {
                    ($i:expr, $len:expr, $verdict:expr) => {{
                        let f = &rx[$i];
                        let len: usize = $len;
                        let verdict = $verdict;
                        if !ctx.pieces.is_empty() {
                            // TUN cut this packet to fit its tunnel: the later fragments go
                            // where it goes (`frag::Pieces`).
                            let macs = ports[pi].buf_mut(f)[..12].try_into().unwrap_or([0; 12]);
                            match verdict {
                                Verdict::Forward(q) => {
                                    tx_pieces(ctx.pieces, ports, q, macs, counters)
                                }
                                Verdict::AwaitNeighbour { port, next_hop, v6 } => {
                                    // Its source MAC; the destination comes when known.
                                    set_macs(ctx.pieces, macs);
                                    let hop = IpKey { v6, addr: next_hop };
                                    for piece in ctx.pieces.drain() {
                                        let held = pending.hold(piece, port, hop, now);
                                        if held.unwrap_or_else(|ask| ask) {
                                            send_request(&tables, ports, scratch, port, &hop);
                                        }
                                        if held.is_err() {
                                            counters.drop(DropReason::NeighbourUnresolved);
                                        }
                                    }
                                }
                                _ => ctx.pieces.clear(),
                            }
                        }
                        match verdict {
                            // Staged: its verdict comes when it is stored.
                            Verdict::Deferred => {}
                            Verdict::Forward(q) if usize::from(q) == pi => {
                                tx[ntx] = Frame {
                                    addr: f.addr,
                                    len: len as u32,
                                };
                                ntx += 1;
                            }
                            Verdict::Forward(q) if usize::from(q) < ports.len() => {
                                let (src, dst) = pair_mut(ports, pi, usize::from(q));
                                if dst.tx_copy(&src.buf_mut(f)[..len]) {
                                    counters.tx_packets.add(1);
                                    counters.tx_bytes.add(len as u64);
                                } else {
                                    counters.drop(DropReason::TxFull);
                                }
                                done[ndone] = *f;
                                ndone += 1;
                            }
                            Verdict::Forward(_) => {
                                counters.drop(DropReason::NoRoute);
                                done[ndone] = *f;
                                ndone += 1;
                            }
                            Verdict::AwaitNeighbour { port, next_hop, v6 } => {
                                let hop = IpKey { v6, addr: next_hop };
                                let frame = &ports[pi].buf_mut(f)[..len];
                                let held = pending.hold(frame, port, hop, now);
                                if held.unwrap_or_else(|ask| ask) {
                                    send_request(&tables, ports, scratch, port, &hop);
                                }
                                if held.is_err() {
                                    counters.drop(DropReason::NeighbourUnresolved);
                                }
                                done[ndone] = *f;
                                ndone += 1;
                            }
                            Verdict::SlowPath => {
                                counters.slow_path.add(1);
                                let frame = &ports[pi].buf_mut(f)[..len];
                                let silent = silent.get_or_insert_with(|| shared.cluster.silent());
                                let owner = slowpath::Owner {
                                    tables: &tables,
                                    silent,
                                };
                                match slowpath::handle(
                                    frame,
                                    pi as u8,
                                    owner,
                                    &shared.neigh,
                                    now,
                                    scratch,
                                ) {
                                    Ok(0) => {}
                                    Ok(reply) => {
                                        if ports[pi].tx_copy(&scratch[..reply]) {
                                            counters.tx_packets.add(1);
                                            counters.tx_bytes.add(reply as u64);
                                        } else {
                                            counters.drop(DropReason::TxFull);
                                        }
                                    }
                                    Err(r) => counters.drop(r),
                                }
                                done[ndone] = *f;
                                ndone += 1;
                            }
                            Verdict::Drop(r) => {
                                counters.drop(r);
                                done[ndone] = *f;
                                ndone += 1;
                            }
                            Verdict::Held => {
                                done[ndone] = *f;
                                ndone += 1;
                            }
                        }
                    }};
                }
                // Burst mode: stores the staged new flows and sends their frames.
                macro_rules! store_staged {
                    () => {
                        ctx.staging.begin_flush();
                        while let Some(s) = ctx.staging.next_to_store() {
                            let i = usize::from(ctx.staging.get(s).frame);
                            let buf = ports[pi].buf_mut(&rx[i]);
                            let len = (rx[i].len as usize).min(buf.len());
                            // Only parsed frames are staged.
                            if let Ok(p) = burst.prepared[i] {
                                let mut pkt = Packet::new(buf, len, p);
                                let v = store(&mut ctx, &mut pkt, s);
                                dispatch!(i, pkt.len, v);
                            }
                        }
                    };
                }
                // Burst mode stages the burst's new flows and stores them at its end, or before a
                // frame that may concern one of them (`pipeline/staged.rs`).
                let staging = batch && n > 1;
                if staging {
                    counters.burst_lookups.add(burst.nkeys as u64);
                }
                // The burst received ahead has its entries' loads started one per frame of
                // this one, as it is processed: each load has the rest of this burst to
                // arrive. Started all after this burst, the ahead burst's first entries had
                // a frame's time and its first frames waited for them (bench/README.md,
                // "Eleventh pass"). Its lookups stay correct whatever this burst changes:
                // `finish` checks the lane kept here.
                let ahead_keys = if batch && m > 1 { ahead.nkeys } else { 0 };
                // Read once: the loop writes through `ahead`, so the compiler loaded it
                // again for every frame.
                let ahead_sctp = ahead.sctp != 0;
                for i in 0..n {
                    // Only in burst mode (a burst is received ahead only behind a full one): the
                    // per-frame path's loop stays as it was.
                    if staging {
                        if i < ahead_keys {
                            if !ahead_sctp {
                                shared.conns.prefetch_entry(&mut ahead.lookups[i]);
                            } else {
                                ahead.prefetch_entry(i, &shared.conns);
                            }
                        }
                        if ahead_sctp && i >= TAG_LAG && i - TAG_LAG < ahead_keys {
                            ahead.prefetch_tag(i - TAG_LAG, &shared.conns);
                        }
                        if !ctx.staging.is_empty() && burst.needs_flush(i, ctx.staging) {
                            store_staged!();
                        }
                    } else if ctx.flows.active() {
                        // The next frame's flow-cache record starts loading now, to be there
                        // when its turn comes (`crate::flowcache`). Only a frame of this
                        // burst: the array's other entries are not this port's to read.
                        if let Some(next) = rx[..n].get(i + 1) {
                            let next_len = next.len as usize;
                            let frame = ports[pi].buf_mut(next);
                            ctx.flows.prefetch(&frame[..next_len.min(frame.len())]);
                        }
                    }
                    let buf = ports[pi].buf_mut(&rx[i]);
                    let mut len = (rx[i].len as usize).min(buf.len());
                    let verdict = if staging {
                        // A frame read ahead at its fixed offsets: its flow's or its class's
                        // record (the class's from the lookup prepared with the burst);
                        // another parsed frame: its flow's record.
                        let prep = burst.key_of[i].map(|k| &burst.lookups[k]);
                        let quick = match burst.common[i] {
                            Replayable::V4 => crate::flowcache::forward_common(
                                &mut ctx,
                                &mut buf[..len],
                                &burst.common4[i],
                                |conns, _, now| conns.finish_lane(prep?, now),
                            ),
                            Replayable::V6 => crate::flowcache::forward_common(
                                &mut ctx,
                                &mut buf[..len],
                                &burst.common6[i],
                                |conns, _, now| conns.finish_lane(prep?, now),
                            ),
                            Replayable::No if burst.prepared[i].is_ok() => {
                                crate::flowcache::forward(&mut ctx, &mut buf[..len])
                            }
                            Replayable::No => None,
                        };
                        match quick {
                            Some(v) => v,
                            None => {
                                if burst.common[i] != Replayable::No {
                                    // Parsed only now that the full path takes it.
                                    burst.prepared[i] = prepare(&buf[..len]);
                                }
                                match burst.prepared[i] {
                                    Ok(p) => {
                                        ctx.staging.arm(burst.key_of[i].map(|_| i));
                                        if burst.sctp != 0 {
                                            if let Some(k) =
                                                burst.key_of[i].filter(|k| burst.is_sctp(*k))
                                            {
                                                ctx.sctp_tags.hint = burst.tags[k];
                                            }
                                        }
                                        let prepared = burst.key_of[i].map(|k| &burst.lookups[k]);
                                        let mut pkt = Packet::new(buf, len, p);
                                        let v = process_parsed(&mut ctx, &mut pkt, prepared);
                                        len = pkt.len;
                                        v
                                    }
                                    Err(v) => v,
                                }
                            }
                        }
                    } else {
                        // The flow cache inlined here: a forwarded frame's verdict is known
                        // to `dispatch!` where it is made (no call, no verdict in memory).
                        match crate::flowcache::forward_v4(&mut ctx, &mut buf[..len]) {
                            Some(v) => v,
                            None => process_rest(&mut ctx, buf, &mut len),
                        }
                    };
                    dispatch!(i, len, verdict);
                }
                if !ctx.staging.is_empty() {
                    store_staged!();
                }
                ctx.staging.arm(None);
                if lean && ahead_keys > 0 {
                    ahead.parse_replies(&mut ports[pi], &rx_next[..m], &mut read_ahead[pi]);
                }
                // The ahead burst's last tag records, which the loop's lag left.
                if ahead.sctp != 0 {
                    for k in n.saturating_sub(TAG_LAG)..ahead_keys {
                        ahead.prefetch_tag(k, &shared.conns);
                    }
                }
                // Every key of the burst ahead had its entry prefetched in the loop: a burst is
                // received ahead only behind a full one.
                debug_assert!(ahead_keys <= n);
                if ntx > 0 {
                    let sent = ports[pi].tx_burst(&tx[..ntx]);
                    let bytes: u64 = tx[..sent].iter().map(|f| u64::from(f.len)).sum();
                    counters.tx_packets.add(sent as u64);
                    counters.tx_bytes.add(bytes);
                    if sent < ntx {
                        for _ in sent..ntx {
                            counters.drop(DropReason::TxFull);
                        }
                        ports[pi].free(&tx[sent..ntx]);
                    }
                }
                if ndone > 0 {
                    ports[pi].free(&done[..ndone]);
                }
                if m > 0 {
                    // Another burst follows in this poll: transmit what this one queued now,
                    // as when a poll took one burst (an AF_XDP port's flush makes a syscall
                    // only while its ring holds frames the kernel has not taken, and
                    // reclaims its transmit buffers: as many as its ring, which may be 64).
                    for p in ports.iter_mut() {
                        p.flush();
                    }
                }
                c = 1 - c;
                n = m;
            }
            let oversized = ports[pi].take_oversized();
            if oversized > 0 {
                counters.drops[DropReason::FrameTooLarge.index()].add(oversized);
            }
        }
        if !self.pending.is_empty() {
            step_pending(
                &mut self.pending,
                &mut self.ports,
                &mut self.scratch,
                shared,
                &tables,
                now,
                counters,
            );
        }
        step_synproxy(&mut ctx, &mut self.ports, shared, ticks);
        // One worker speaks for the node: its announcements go out once, not once per worker.
        if self.id == 0 {
            refresh_neighbours(
                &mut self.neigh_refresh,
                &mut self.ports,
                &mut self.scratch,
                shared,
                &tables,
                now,
            );
            self.announcer.step(
                &shared.cluster,
                &tables,
                &mut self.ports,
                &mut self.scratch,
                counters,
                ticks,
            );
        }
        for p in self.ports.iter_mut() {
            p.flush();
        }
        // Once a second: what the ports lost before the worker took it (a syscall each).
        if now != self.rx_lost_read {
            self.rx_lost_read = now;
            for (p, seen) in self.ports.iter().zip(self.rx_lost.iter_mut()) {
                if let Some(lost) = p.rx_lost() {
                    counters.drops[DropReason::RxRingFull.index()].add(lost.saturating_sub(*seen));
                    *seen = lost;
                }
            }
        }
        counters.polls.add(1);
        if total == 0 {
            counters.empty_polls.add(1);
        }
        total
    }
}

/// Frames waiting for a neighbour: ask again, send those whose neighbour is now known, drop
/// the ones that waited too long (as the kernel's NUD does).
fn step_pending<P: Port>(
    pending: &mut Pending,
    ports: &mut [P],
    scratch: &mut [u8],
    shared: &Shared,
    tables: &Tables,
    now: u32,
    counters: &crate::counters::WorkerCounters,
) {
    // Fresh map: this burst's slow path may just have learned the neighbour.
    let neigh = shared.neigh.load();
    pending.step(&neigh, now, |a| match a {
        PendingAction::Request { port, next_hop } => {
            send_request(tables, ports, scratch, port, &next_hop)
        }
        PendingAction::Send { port, frame } => {
            tx_counted(ports, port, frame, counters);
        }
        PendingAction::Dropped(n) => {
            counters.drops[DropReason::NeighbourUnresolved.index()].add(n);
        }
    });
}

/// Asks again, once a second at most, for the stale neighbours on the links uvs reaches
/// directly (`neigh::Refresh`).
fn refresh_neighbours<P: Port>(
    refresh: &mut crate::neigh::Refresh,
    ports: &mut [P],
    scratch: &mut [u8],
    shared: &Shared,
    tables: &Tables,
    now: u32,
) {
    let neigh = shared.neigh.load();
    refresh.step(&neigh, now, |ip| {
        if let Some((port, hop)) = tables.route(ip) {
            if hop == *ip {
                send_request(tables, ports, scratch, port, ip);
            }
        }
    });
}

/// The SYN proxy's timers: SYNs to real servers retransmitted, and early client segments
/// whose connection was spliced since (on any worker) sent through the pipeline like any
/// client segment.
fn step_synproxy<P: Port>(ctx: &mut Ctx<'_>, ports: &mut [P], shared: &Shared, ticks: u32) {
    let counters = ctx.counters;
    if ctx.proxy.handovers.waiting(ctx.worker) {
        step_handovers(ctx, ports);
    }
    if !ctx.proxy_syns.heads.is_empty() {
        step_heads(ctx, ports, shared, ticks);
    }
    ctx.proxy_syns.heads.publish(counters);
    if !ctx.proxy_syns.is_empty() {
        let neigh = shared.neigh.load();
        ctx.proxy_syns.step(
            &shared.conns,
            ctx.tables,
            &neigh,
            ticks,
            counters,
            |port, frame| tx_counted(ports, port, frame, counters),
        );
    }
    if ctx.proxy_syns.held() == 0 {
        return;
    }
    let mut f = [0u8; crate::synproxy::retransmit::HOLD_MAX];
    while let Some(n) = ctx.proxy_syns.ready(&shared.conns, &mut f) {
        let mut len = n;
        let v = if n == 0 {
            Verdict::Drop(DropReason::SynProxyNotReady)
        } else {
            process(ctx, &mut f, &mut len)
        };
        match v {
            Verdict::Forward(q) => {
                tx_pieces(ctx.pieces, ports, q, macs_of(&f), counters);
                let sent = ports
                    .get_mut(usize::from(q))
                    .is_some_and(|p| p.tx_copy(&f[..len]));
                if sent {
                    counters.tx_packets.add(1);
                    counters.tx_bytes.add(len as u64);
                    counters.synproxy_held.add(1);
                } else {
                    counters.drop(DropReason::TxFull);
                }
            }
            Verdict::Drop(r) => counters.drop(r),
            _ => counters.drop(DropReason::SynProxyNotReady),
        }
        ctx.pieces.clear();
    }
}

/// Refusals of connections whose SYN this worker sent, received by another worker: run
/// through the pipeline as if received here (`synproxy::Handovers`).
#[cold]
fn step_handovers<P: Port>(ctx: &mut Ctx<'_>, ports: &mut [P]) {
    let mut f = [0u8; crate::synproxy::retransmit::HOLD_MAX];
    while let Some(n) = ctx.proxy.handovers.take(ctx.worker, &mut f) {
        reinject(ctx, ports, &mut f, n, None);
    }
}

/// Runs a frame the SYN proxy kept or was handed (`len` bytes of `f`) through the pipeline
/// and sends it where its verdict says; a verdict other than forward or drop is counted
/// as a drop for `other`, if given.
fn reinject<P: Port>(
    ctx: &mut Ctx<'_>,
    ports: &mut [P],
    f: &mut [u8],
    mut len: usize,
    other: Option<DropReason>,
) {
    let counters = ctx.counters;
    match process(ctx, f, &mut len) {
        Verdict::Forward(q) => {
            tx_pieces(ctx.pieces, ports, q, macs_of(f), counters);
            tx_counted(ports, q, &f[..len], counters);
        }
        Verdict::Drop(r) => counters.drop(r),
        _ => {
            if let Some(r) = other {
                counters.drop(r);
            }
        }
    }
    ctx.pieces.clear();
}

/// Layer 7's pending heads: slow clients answered 408, complete heads replayed to their
/// server (through the pipeline, as client segments) once it answered.
fn step_heads<P: Port>(ctx: &mut Ctx<'_>, ports: &mut [P], shared: &Shared, ticks: u32) {
    let counters = ctx.counters;
    let send = |ports: &mut [P], port: u8, frame: &[u8]| tx_counted(ports, port, frame, counters);
    {
        let neigh = shared.neigh.load();
        ctx.proxy_syns
            .heads
            .step(ctx.tables, &neigh, ticks, counters, |port, frame| {
                send(ports, port, frame)
            });
    }
    let splices = ctx.proxy.splices(ctx.conns);
    let mut f = [0u8; crate::synproxy::retransmit::HOLD_MAX];
    while let Some(n) =
        ctx.proxy_syns
            .heads
            .next_replay(&shared.conns, splices, ticks, &mut f, counters)
    {
        reinject(ctx, ports, &mut f, n, Some(DropReason::SynProxyNotReady));
    }
}

/// The later fragments TUN cut from a frame forwarded out of `port` (`frag::Pieces`):
/// sent after it, with its MACs `macs`.
fn tx_pieces<P: Port>(
    pieces: &mut crate::frag::Pieces,
    ports: &mut [P],
    port: u8,
    macs: [u8; 12],
    counters: &crate::counters::WorkerCounters,
) {
    set_macs(pieces, macs);
    for frame in pieces.drain() {
        tx_counted(ports, port, frame, counters);
    }
}

/// Sends a copy of `frame` on `port` (frames the worker makes or held: neighbour waits,
/// the SYN proxy's SYNs and heads, fragments), counted as transmitted or as `tx_full`.
fn tx_counted<P: Port>(
    ports: &mut [P],
    port: u8,
    frame: &[u8],
    counters: &crate::counters::WorkerCounters,
) -> bool {
    let sent = ports
        .get_mut(usize::from(port))
        .is_some_and(|p| p.tx_copy(frame));
    if sent {
        counters.tx_packets.add(1);
        counters.tx_bytes.add(frame.len() as u64);
    } else {
        counters.drop(DropReason::TxFull);
    }
    sent
}

/// Gives each piece of a cut packet the packet's MACs.
fn set_macs(pieces: &mut crate::frag::Pieces, macs: [u8; 12]) {
    let _ = pieces.for_each_mut(|piece, len| {
        piece[..12].copy_from_slice(&macs);
        Ok::<_, ()>(len)
    });
}

/// A frame's destination and source MACs.
fn macs_of(frame: &[u8]) -> [u8; 12] {
    frame
        .get(..12)
        .and_then(|m| m.try_into().ok())
        .unwrap_or([0; 12])
}

fn send_request<P: Port>(
    tables: &Tables,
    ports: &mut [P],
    scratch: &mut [u8],
    port: u8,
    hop: &IpKey,
) {
    let Some(iface) = tables.ifaces.get(usize::from(port)) else {
        return;
    };
    let n = slowpath::build_request(iface, hop, scratch);
    if n > 0 {
        if let Some(p) = ports.get_mut(usize::from(port)) {
            let _ = p.tx_copy(&scratch[..n]);
        }
    }
}
