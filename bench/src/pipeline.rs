//! `uvs-bench pipeline`: the in-memory pipeline on one core.
//!
//! Each scenario runs a real `Worker` over two in-memory ports (client side and server
//! side, as on the test network) fed by `MemPort::replay`, which copies each template
//! frame into a buffer as a NIC's DMA would. The baseline runs over the same ports and
//! templates and touches the same bytes a NAT rewrite touches (MACs, destination address,
//! both checksums) and forwards to the same egress port, with no parsing, lookup or
//! scheduling: the ratio shows what the pipeline itself costs.
//!
//! The checksum scenarios (`--checksum-frames`) measure what verifying TCP/UDP checksums
//! (and completing partial ones) costs per frame size: established flows with verification
//! off (the fast path before it existed), on with full checksums (frames from a NIC), and
//! on with partial checksums (frames from a veth with offload), in alternating short rounds
//! on the same table, each figure the best round's.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use uvs_dataplane::lab;
use uvs_dataplane::{Method, Shared, TablesBuilder, Worker, BURST};
use uvs_port::{Frame, MemPort, Port};
use uvs_sched::SchedulerKind;
use uvs_testkit as tk;

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Packets of flows that already have connection entries.
    Established,
    /// Every packet opens a new flow (scheduling + insert).
    NewFlows,
    /// No pipeline: touch the bytes a NAT rewrite touches and forward.
    Baseline,
    /// Established flows on several workers at once, sharing one connection table.
    Scaling,
    /// Established flows of one frame size with L4 checksum verification off or on
    /// (`Scenario::l4_checksum`).
    Checksum,
    /// Established flows run through the pipeline's stages cumulatively (`Scenario::stage`):
    /// where a packet's time goes.
    Stage,
    /// SYN proxy (`crate::synproxy`): SYNs answered with cookie SYN-ACKs.
    SynProxyCookies,
    /// SYN proxy: whole proxied openings (SYN, cookie ACK, server SYN-ACK) per connection.
    SynProxyNewFlows,
    /// SYN proxy: packets of spliced (translated) established flows.
    SynProxyEstablished,
    /// Packets of established flows from their real servers back to the clients (NAT and
    /// FullNAT, where replies pass through the balancer): the reply direction's rewrite,
    /// route and next hop.
    Replies,
}

#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    pub kind: Kind,
    pub method: String,
    pub family: &'static str,
    pub protocol: &'static str,
    pub flows: usize,
    pub frame_len: usize,
    /// Worker threads (one per core where the machine has enough).
    pub workers: usize,
    /// Checksum scenarios: `off` (not verified), `full` (verified, already full) or
    /// `partial` (verified and completed, every frame).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l4_checksum: Option<&'static str>,
    /// Stage scenarios: how far each packet goes (`io`, `parse`, `lookup`, `full`); new
    /// flows measured in short rounds: `best-round` ([`new_flows_best`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<&'static str>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub scenario: Scenario,
    pub packets: u64,
    pub seconds: f64,
    pub ns_per_packet: f64,
    pub mpps: f64,
    /// Frames the pipeline forwarded (must equal `packets` for a valid run).
    pub forwarded: u64,
    pub drops: u64,
    /// Connection-table memory per entry, where a table was used.
    pub bytes_per_conn: Option<f64>,
}

pub struct Options {
    pub flows: Vec<usize>,
    pub seconds: f64,
    pub methods: Vec<Method>,
    pub families: Vec<bool>,
    pub protocols: Vec<u8>,
    pub new_flows: usize,
    pub baseline: bool,
    /// Worker counts for the scaling scenarios (empty: none).
    pub workers: Vec<usize>,
    /// Frame lengths for the checksum scenarios (empty: none).
    pub checksum_frames: Vec<usize>,
    /// Run the stage-budget scenarios ([`stage_budget`]).
    pub stages: bool,
    /// Run the reply-direction scenarios ([`replies`]) after each NAT/FullNAT one.
    pub replies: bool,
    /// The workers' flow cache (`uvs_dataplane::flowcache`) on, as in uvsd.
    pub flow_cache: bool,
}

/// Whether the scenarios' workers use their flow cache ([`Options::flow_cache`], set by
/// [`run`] for the tables it sets up).
static FLOW_CACHE: AtomicBool = AtomicBool::new(true);

pub(crate) fn client_addr(i: usize, v6: bool) -> (IpAddr, u16) {
    // Up to 200 client addresses × 60 000 ports on the client-side network.
    let host = 10 + (i / 60_000) as u8;
    let port = 1024 + (i % 60_000) as u16;
    let ip: IpAddr = if v6 {
        format!("2001:2::{:x}", u16::from(host) + 0x100)
            .parse()
            .expect("v6")
    } else {
        format!("198.18.0.{host}").parse().expect("v4")
    };
    (ip, port)
}

/// SCTP: the port of the benchmark's SCTP service and each flow's verification tags.
const SCTP_PORT: u16 = 7;

fn sctp_tags(i: usize) -> (u32, u32) {
    (0x1000_0000 | i as u32, 0x2000_0000 | i as u32)
}

/// An SCTP packet of flow `i` from the client: INIT for a SYN, DATA (with the tag the
/// server chose) otherwise.
fn sctp_from_client(i: usize, v6: bool, first: bool) -> Vec<u8> {
    use tk::sctp;
    let (src, sport) = client_addr(i, v6);
    let vip: IpAddr = if v6 { lab::VIP6 } else { lab::VIP4 }.parse().expect("vip");
    let (client_tag, server_tag) = sctp_tags(i);
    let (vtag, chunk) = if first {
        (0, sctp::init_chunk(sctp::INIT, client_tag, &[]))
    } else {
        (server_tag, sctp::data_chunk(b"01234567"))
    };
    sctp::frame(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        src,
        sport,
        vip,
        SCTP_PORT,
        vtag,
        &[chunk],
    )
}

/// Opens `flows` SCTP associations through the worker: INIT, INIT-ACK from the real
/// server rr picked, COOKIE-ECHO, COOKIE-ACK (NAT: the real server answers the client).
fn open_sctp(shared: &Arc<Shared>, v6: bool, flows: usize) {
    use tk::sctp;
    let mut w = Worker::new(
        0,
        vec![
            MemPort::new("client", 4 * BURST),
            MemPort::new("server", 4 * BURST),
        ],
        shared.clone(),
    );
    let run = |w: &mut Worker<MemPort>, port: usize, frames: Vec<Vec<u8>>| {
        for f in frames {
            assert!(w.ports[port].push_rx(&f), "in-memory port full");
        }
        while w.poll() > 0 {}
        let _ = (w.ports[0].take_tx(), w.ports[1].take_tx());
    };
    let vip: IpAddr = if v6 { lab::VIP6 } else { lab::VIP4 }.parse().expect("vip");
    // The real server's answer, to where the association's reply tuple says (the client
    // under NAT, the local address under FullNAT).
    let reply = |i: usize, chunk: Vec<u8>| {
        let (src, sport, dst, dport) = reply_tuple(shared, v6, sctp_from_client(i, v6, true));
        let (client_tag, _) = sctp_tags(i);
        sctp::frame(
            lab::real_mac((i % 3) as u8 + 1),
            lab::LB1_MAC,
            src,
            sport,
            dst,
            dport,
            client_tag,
            &[chunk],
        )
    };
    for start in (0..flows).step_by(BURST) {
        let ids = start..(start + BURST).min(flows);
        run(
            &mut w,
            0,
            ids.clone().map(|i| sctp_from_client(i, v6, true)).collect(),
        );
        run(
            &mut w,
            1,
            ids.clone()
                .map(|i| {
                    reply(
                        i,
                        sctp::init_chunk(
                            sctp::INIT_ACK,
                            sctp_tags(i).1,
                            &[sctp::param(7, b"c00k1e")],
                        ),
                    )
                })
                .collect(),
        );
        run(
            &mut w,
            0,
            ids.clone()
                .map(|i| {
                    let (src, sport) = client_addr(i, v6);
                    let chunk = sctp::chunk(sctp::COOKIE_ECHO, 0, b"c00k1e");
                    sctp::frame(
                        lab::CLIENT_MAC,
                        lab::LB0_MAC,
                        src,
                        sport,
                        vip,
                        SCTP_PORT,
                        sctp_tags(i).1,
                        &[chunk],
                    )
                })
                .collect(),
        );
        run(
            &mut w,
            1,
            ids.map(|i| reply(i, sctp::chunk(sctp::COOKIE_ACK, 0, &[])))
                .collect(),
        );
    }
}

fn frame_for(i: usize, v6: bool, proto: u8, flags: tk::Flags) -> Vec<u8> {
    let (src, sport) = client_addr(i, v6);
    let vip: IpAddr = if v6 { lab::VIP6 } else { lab::VIP4 }.parse().expect("vip");
    if proto == 132 {
        return sctp_from_client(i, v6, flags.syn);
    }
    if proto == 6 {
        tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            src,
            sport,
            vip,
            80,
            flags,
            b"",
        )
    } else {
        tk::udp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            src,
            sport,
            vip,
            53,
            b"0123456789",
        )
    }
}

/// FullNAT local addresses in the benchmark's pools: each (local address, real server)
/// pair has about 64 000 ports, so a million flows over three servers need several.
const FULLNAT_POOL: u8 = 16;

fn setup(method: Method, v6: bool, capacity: usize) -> Arc<Shared> {
    setup_workers(method, v6, capacity, 1)
}

fn setup_workers(method: Method, v6: bool, capacity: usize, workers: usize) -> Arc<Shared> {
    let mut spec = lab::spec(method, SchedulerKind::Rr, workers);
    // SCTP services beside the lab's TCP ones, on the same VIPs and real servers.
    let sctp: Vec<_> = spec
        .services
        .iter()
        .filter(|s| s.key.proto == 6)
        .map(|s| {
            let mut x = s.clone();
            x.key.proto = 132;
            x.key.port = SCTP_PORT;
            x.name = format!("sctp/{}:{SCTP_PORT}", x.key.vip.to_ip());
            for r in &mut x.reals {
                r.port = SCTP_PORT;
            }
            x
        })
        .collect();
    spec.services.extend(sctp);
    if method == Method::FullNat {
        for s in &mut spec.services {
            s.fullnat_pool = (0..FULLNAT_POOL)
                .map(|i| {
                    lab::ipk(&if s.key.vip.v6 {
                        format!("2001:2:0:1::{:x}", 0x100 + u16::from(i))
                    } else {
                        format!("198.18.1.{}", 100 + i)
                    })
                })
                .collect();
        }
    }
    let tables = TablesBuilder::build(&spec, None).expect("lab tables");
    let shared = Arc::new(Shared::new(tables, capacity, workers));
    shared.flow_cache.store(FLOW_CACHE.load(Relaxed), Relaxed);
    lab::learn_neighbours(&shared.neigh, 0);
    // Clients beyond the lab's one: every benchmark client is on the client network.
    for i in (0..12_000_000).step_by(60_000) {
        let (ip, _) = client_addr(i, v6);
        shared
            .neigh
            .learn(uvs_dataplane::IpKey::from_ip(ip), lab::CLIENT_MAC, 0);
    }
    shared
}

fn worker(shared: &Arc<Shared>, templates: Vec<Vec<u8>>) -> Worker<MemPort> {
    worker_n(shared, templates, 0)
}

fn worker_n(shared: &Arc<Shared>, templates: Vec<Vec<u8>>, id: usize) -> Worker<MemPort> {
    worker_on(shared, MemPort::replay, templates, id)
}

/// Worker `id` whose client-side port is `replay` (round robin or once) of `templates`,
/// its server side a sink.
fn worker_on(
    shared: &Arc<Shared>,
    replay: fn(&str, usize, Vec<Vec<u8>>) -> MemPort,
    templates: Vec<Vec<u8>>,
    id: usize,
) -> Worker<MemPort> {
    let slots = 4 * BURST + 64;
    let client = replay("mem-client", slots, templates);
    let server = MemPort::sink("mem-server", slots);
    Worker::new(id, vec![client, server], shared.clone())
}

/// Opens `flows` flows (TCP: a SYN each; UDP: a first datagram; SCTP: a handshake).
fn open_flows(shared: &Arc<Shared>, v6: bool, proto: u8, flows: usize) {
    if proto == 132 {
        open_sctp(shared, v6, flows);
        return;
    }
    let syns: Vec<Vec<u8>> = (0..flows)
        .map(|i| frame_for(i, v6, proto, tk::SYN))
        .collect();
    let mut w = worker(shared, syns);
    let mut opened = 0;
    while opened < flows {
        opened += w.poll();
    }
}

/// Established flows on `workers` threads at once (worker i replays the flows i, i + n,
/// …, pinned to core i when the machine has one), all sharing one connection table and
/// one set of live counters: the workers-vs-Mpps curve of the in-memory pipeline.
pub fn scaling(
    method: Method,
    v6: bool,
    proto: u8,
    flows: usize,
    seconds: f64,
    workers: usize,
) -> Outcome {
    let shared = setup_workers(method, v6, 3 * flows + 1024, workers);
    open_flows(&shared, v6, proto, flows);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let start = std::sync::Barrier::new(workers);
    let results: Vec<(u64, f64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|id| {
                let shared = &shared;
                let start = &start;
                let core = cores.get(id).copied();
                scope.spawn(move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    let mine: Vec<Vec<u8>> = (id..flows)
                        .step_by(workers)
                        .map(|i| frame_for(i, v6, proto, tk::ACK))
                        .collect();
                    let mut w = worker_n(shared, mine, id);
                    start.wait();
                    measure(|| w.poll(), seconds, None)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread"))
            .collect()
    });
    let packets: u64 = results.iter().map(|r| r.0).sum();
    let secs = results.iter().map(|r| r.1).fold(0.0, f64::max);
    let forwarded: u64 = shared
        .counters
        .iter()
        .map(|c| c.tx_packets.get())
        .sum::<u64>()
        - flows as u64;
    let drops: u64 = shared.counters.iter().map(|c| c.total_drops()).sum();
    Outcome {
        scenario: Scenario {
            kind: Kind::Scaling,
            method: format!("{method:?}").to_lowercase(),
            family: family_name(v6),
            protocol: proto_name(proto),
            flows,
            frame_len: frame_for(0, v6, proto, tk::ACK).len(),
            workers,
            l4_checksum: None,
            stage: None,
        },
        packets,
        seconds: secs,
        ns_per_packet: secs * 1e9 * workers as f64 / packets.max(1) as f64,
        mpps: packets as f64 / secs / 1e6,
        forwarded,
        drops,
        bytes_per_conn: Some(shared.conns.bytes_per_entry(v6)),
    }
}

pub(crate) fn measure(
    mut step: impl FnMut() -> usize,
    seconds: f64,
    max_packets: Option<u64>,
) -> (u64, f64) {
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut packets = 0u64;
    loop {
        for _ in 0..64 {
            packets += step() as u64;
            if max_packets.is_some_and(|m| packets >= m) {
                return (packets, start.elapsed().as_secs_f64());
            }
        }
        if start.elapsed() >= budget {
            return (packets, start.elapsed().as_secs_f64());
        }
    }
}

/// Forwarded and dropped frames so far (the measured phase subtracts its start).
pub(crate) fn tallies(shared: &Shared) -> (u64, u64) {
    let c = &shared.counters[0];
    (c.tx_packets.get(), c.total_drops())
}

pub(crate) fn outcome(
    scenario: Scenario,
    packets: u64,
    secs: f64,
    shared: Option<(&Shared, (u64, u64))>,
) -> Outcome {
    let v6 = scenario.family == "ipv6";
    let (forwarded, drops) = shared.map_or((packets, 0), |(s, start)| {
        let now = tallies(s);
        (now.0 - start.0, now.1 - start.1)
    });
    Outcome {
        scenario,
        packets,
        seconds: secs,
        ns_per_packet: secs * 1e9 / packets.max(1) as f64,
        mpps: packets as f64 / secs / 1e6,
        forwarded,
        drops,
        bytes_per_conn: shared.map(|(s, _)| s.conns.bytes_per_entry(v6)),
    }
}

fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        132 => "sctp",
        _ => "udp",
    }
}

pub(crate) fn family_name(v6: bool) -> &'static str {
    if v6 {
        "ipv6"
    } else {
        "ipv4"
    }
}

/// Established flows: open `flows` connections, then replay one packet per flow round
/// robin for the time budget.
pub fn established(method: Method, v6: bool, proto: u8, flows: usize, seconds: f64) -> Outcome {
    established_with(method, v6, proto, flows, seconds, false)
}

/// The table for `flows` established flows: three times as many slots, so the scenario
/// measures lookups in a table a third full, as the new-flow scenarios leave theirs. An SCTP
/// association takes three entries (the flow and its two tag records), so its table has a
/// quarter more slots than that: filled to the last tenth, a table refuses a few inserts
/// (`ConnTable` docs), and 300 000 associations in 3 × 300 000 + 1 024 slots did not fit.
fn established_capacity(proto: u8, flows: usize) -> usize {
    if proto == uvs_wire::ip_proto::SCTP {
        4 * flows + 1024
    } else {
        3 * flows + 1024
    }
}

/// [`established`] with the sync tap on or off (`sync_tap`), as on a sync master.
pub fn established_with(
    method: Method,
    v6: bool,
    proto: u8,
    flows: usize,
    seconds: f64,
    sync_tap: bool,
) -> Outcome {
    let shared = setup(method, v6, established_capacity(proto, flows));
    shared.sync.set_enabled(sync_tap);
    open_flows(&shared, v6, proto, flows);
    // The table now holds `flows` connections; count from here.
    let new_conns = shared.counters[0].new_conns.get();
    if new_conns as usize != flows {
        let c = &shared.counters[0];
        let why: Vec<_> = (0..uvs_dataplane::DropReason::COUNT)
            .filter(|i| c.drops[*i].get() > 0)
            .map(|i| (uvs_dataplane::DropReason::name_of(i), c.drops[i].get()))
            .collect();
        panic!("only {new_conns} of {flows} SYNs opened a connection; drops: {why:?}");
    }
    let packets: Vec<Vec<u8>> = (0..flows)
        .map(|i| frame_for(i, v6, proto, tk::ACK))
        .collect();
    let row = Row {
        kind: Kind::Established,
        method,
        v6,
        proto,
    };
    replayed(&shared, packets, row, seconds)
}

/// What a scenario of established flows measures.
struct Row {
    kind: Kind,
    method: Method,
    v6: bool,
    proto: u8,
}

/// `packets` (one per flow) replayed round robin through one worker for `seconds`.
fn replayed(shared: &Arc<Shared>, packets: Vec<Vec<u8>>, row: Row, seconds: f64) -> Outcome {
    let (flows, frame_len) = (packets.len(), packets[0].len());
    let start = tallies(shared);
    let mut w = worker(shared, packets);
    let (n, secs) = measure(|| w.poll(), seconds, None);
    outcome(
        Scenario {
            kind: row.kind,
            method: format!("{:?}", row.method).to_lowercase(),
            family: family_name(row.v6),
            protocol: proto_name(row.proto),
            flows,
            frame_len,
            workers: 1,
            l4_checksum: None,
            stage: None,
        },
        n,
        secs,
        Some((shared, start)),
    )
}

/// Established flows' replies: `flows` flows opened from the client side, then each
/// flow's packets as its real server sends them (source the server, destination what the
/// entry's reply tuple holds: the client for NAT, the local address for FullNAT), replayed
/// round robin. NAT and FullNAT only: DR and TUN replies bypass the balancer.
pub fn replies(method: Method, v6: bool, proto: u8, flows: usize, seconds: f64) -> Outcome {
    let shared = setup(method, v6, established_capacity(proto, flows));
    open_flows(&shared, v6, proto, flows);
    let packets: Vec<Vec<u8>> = (0..flows)
        .map(|i| {
            let (src, sport, dst, dport) =
                reply_tuple(&shared, v6, frame_for(i, v6, proto, tk::ACK));
            match proto {
                6 => tk::tcp(
                    lab::real_mac(1),
                    lab::LB1_MAC,
                    src,
                    sport,
                    dst,
                    dport,
                    tk::ACK,
                    b"",
                ),
                132 => tk::sctp::frame(
                    lab::real_mac(1),
                    lab::LB1_MAC,
                    src,
                    sport,
                    dst,
                    dport,
                    sctp_tags(i).0,
                    &[tk::sctp::data_chunk(b"76543210")],
                ),
                _ => tk::udp(
                    lab::real_mac(1),
                    lab::LB1_MAC,
                    src,
                    sport,
                    dst,
                    dport,
                    b"0123456789",
                ),
            }
        })
        .collect();
    let row = Row {
        kind: Kind::Replies,
        method,
        v6,
        proto,
    };
    replayed(&shared, packets, row, seconds)
}

/// The reply tuple (source, source port, destination, destination port: what the real
/// server sends) of the connection a client's frame `f` belongs to.
fn reply_tuple(shared: &Shared, v6: bool, f: Vec<u8>) -> (IpAddr, u16, IpAddr, u16) {
    let p = uvs_dataplane::pipeline::prepare(&f).expect("a client frame parses");
    let key = uvs_dataplane::pipeline::lookup_key(&p).expect("TCP, UDP or SCTP");
    let hit = shared
        .conns
        .lookup(&key, shared.clock.now_ticks())
        .expect("every flow was opened");
    let r = uvs_conntrack::ConnView::conn(&hit).reply;
    let ip = |a: [u8; 16]| -> IpAddr {
        if v6 {
            a.into()
        } else {
            [a[0], a[1], a[2], a[3]].into()
        }
    };
    (ip(r.src), r.sport, ip(r.dst), r.dport)
}

/// New flows: `count` distinct SYNs (or UDP first packets), each processed once.
pub fn new_flows(method: Method, v6: bool, proto: u8, count: usize) -> Outcome {
    new_flows_with(method, v6, proto, count, false)
}

/// [`new_flows`] with the sync tap on (`sync_tap`): every new flow is queued for the sync
/// daemon, as on a sync master. Keep `count` within the tap's queue (65 536 per worker):
/// nothing drains it here.
pub fn new_flows_with(
    method: Method,
    v6: bool,
    proto: u8,
    count: usize,
    sync_tap: bool,
) -> Outcome {
    let mut rig = NewFlowsRig::new(method, v6, proto, count, sync_tap);
    let (n, secs) = measure(|| rig.w.poll(), 3600.0, Some(count as u64));
    outcome(
        rig.scenario(method, v6, proto, count, None),
        n,
        secs,
        Some((&rig.shared, rig.start)),
    )
}

/// What the new-flow scenarios run on: a table for `count` new flows (a third of its
/// capacity), a worker whose client port holds their `count` first packets, and the
/// counters before.
struct NewFlowsRig {
    shared: Arc<Shared>,
    w: Worker<MemPort>,
    frame_len: usize,
    start: (u64, u64),
}

impl NewFlowsRig {
    fn new(method: Method, v6: bool, proto: u8, count: usize, sync_tap: bool) -> Self {
        let shared = setup(method, v6, 3 * count + 1024);
        shared.sync.set_enabled(sync_tap);
        let frames: Vec<Vec<u8>> = (0..count)
            .map(|i| frame_for(i, v6, proto, tk::SYN))
            .collect();
        let frame_len = frames[0].len();
        let start = tallies(&shared);
        // Each SYN once: a round-robin replay would send the first ones again in the
        // last poll, to flows that exist by then.
        let w = worker_on(&shared, MemPort::replay_once, frames, 0);
        NewFlowsRig {
            shared,
            w,
            frame_len,
            start,
        }
    }

    fn scenario(
        &self,
        method: Method,
        v6: bool,
        proto: u8,
        count: usize,
        stage: Option<&'static str>,
    ) -> Scenario {
        Scenario {
            kind: Kind::NewFlows,
            method: format!("{method:?}").to_lowercase(),
            family: family_name(v6),
            protocol: proto_name(proto),
            flows: count,
            frame_len: self.frame_len,
            workers: 1,
            l4_checksum: None,
            stage,
        }
    }
}

/// New flows in rounds of 4 096 SYNs on one table (filled to a third of its capacity by
/// the end), reported as the best round: the single pass of [`new_flows`] moves with
/// whatever else the machine runs, a round of a millisecond or two mostly does not. The
/// counters of the whole pass still have to add up (`forwarded`).
pub fn new_flows_best(method: Method, v6: bool, proto: u8, count: usize) -> Outcome {
    let mut rig = NewFlowsRig::new(method, v6, proto, count, false);
    let (mut total, mut secs, mut best) = (0u64, 0f64, f64::MAX);
    while total < count as u64 {
        let left = count as u64 - total;
        let (n, s) = measure(
            || rig.w.poll(),
            3600.0,
            Some(CHECKSUM_ROUND_PACKETS.min(left)),
        );
        // A short last round says little; count it, do not rank it.
        if n >= CHECKSUM_ROUND_PACKETS {
            best = best.min(s * 1e9 / n as f64);
        }
        total += n;
        secs += s;
    }
    if best == f64::MAX {
        best = secs * 1e9 / total.max(1) as f64;
    }
    let mut o = outcome(
        rig.scenario(method, v6, proto, count, Some("best-round")),
        total,
        secs,
        Some((&rig.shared, rig.start)),
    );
    o.ns_per_packet = best;
    o.mpps = 1e3 / best;
    o
}

/// The baseline over the same ports: per frame, rewrite the destination MACs and address,
/// decrement the TTL / hop limit and patch the IPv4 header checksum and the L4 checksum
/// (SCTP: the CRC32c field) with constant deltas, then copy to the server-side port — the
/// bytes a NAT rewrite writes, without parsing, lookup or scheduling.
pub fn baseline(v6: bool, proto: u8, flows: usize, seconds: f64) -> Outcome {
    let packets: Vec<Vec<u8>> = (0..flows)
        .map(|i| frame_for(i, v6, proto, tk::ACK))
        .collect();
    let frame_len = packets[0].len();
    let slots = 4 * BURST + 64;
    let mut client = MemPort::replay("mem-client", slots, packets);
    let mut server = MemPort::sink("mem-server", slots);
    let real = lab::real(1, v6).addr;
    // What a NAT rewrite writes: the destination address, the TTL / hop limit, the IPv4
    // header checksum and the L4 checksum (TCP, UDP) or SCTP's CRC32c field.
    let (dst_off, ttl_off, l4_off) = if v6 {
        (14 + 24, 14 + 7, 14 + 40)
    } else {
        (14 + 16, 14 + 8, 14 + 20)
    };
    let (l4_csum, csum_len) = match proto {
        6 => (l4_off + 16, 2),
        132 => (l4_off + 8, 4),
        _ => (l4_off + 6, 2),
    };
    let alen = if v6 { 16 } else { 4 };
    let mut rx = [Frame::default(); BURST];
    let mut forwarded = 0u64;
    let (n, secs) = measure(
        || {
            let n = client.rx_burst(&mut rx);
            for f in &rx[..n] {
                let buf = client.buf_mut(f);
                buf[..6].copy_from_slice(&lab::real_mac(1));
                buf[6..12].copy_from_slice(&lab::LB1_MAC);
                buf[dst_off..dst_off + alen].copy_from_slice(&real[..alen]);
                buf[ttl_off] = buf[ttl_off].wrapping_sub(1);
                for b in &mut buf[l4_csum..l4_csum + csum_len] {
                    *b = b.wrapping_add(1);
                }
                if !v6 {
                    let c = u16::from_be_bytes([buf[24], buf[25]]).wrapping_add(1);
                    buf[24..26].copy_from_slice(&c.to_be_bytes());
                }
                if server.tx_copy(&buf[..f.len as usize]) {
                    forwarded += 1;
                }
            }
            client.free(&rx[..n]);
            server.flush();
            n
        },
        seconds,
        None,
    );
    let mut o = outcome(
        Scenario {
            kind: Kind::Baseline,
            method: "none".into(),
            family: family_name(v6),
            protocol: proto_name(proto),
            flows,
            frame_len,
            workers: 1,
            l4_checksum: None,
            stage: None,
        },
        n,
        secs,
        None,
    );
    o.forwarded = forwarded;
    o
}

/// A TCP ACK or UDP datagram of flow `i` carrying enough payload to make the frame `len`
/// bytes long (Ethernet header included, FCS not), checksums full.
fn sized_frame(i: usize, v6: bool, proto: u8, len: usize) -> Vec<u8> {
    let (src, sport) = client_addr(i, v6);
    let vip: IpAddr = if v6 { lab::VIP6 } else { lab::VIP4 }.parse().expect("vip");
    let headers = 14 + if v6 { 40 } else { 20 } + if proto == 6 { 20 } else { 8 };
    let payload: Vec<u8> = (0..len.saturating_sub(headers))
        .map(|b| (b * 31 + 7) as u8)
        .collect();
    if proto == 6 {
        tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            src,
            sport,
            vip,
            80,
            tk::ACK,
            &payload,
        )
    } else {
        tk::udp(lab::CLIENT_MAC, lab::LB0_MAC, src, sport, vip, 53, &payload)
    }
}

/// Packets per round of a checksum scenario: short enough (well under a millisecond) that
/// many rounds run untouched by anything else on a shared core.
const CHECKSUM_ROUND_PACKETS: u64 = 4096;

/// What verifying L4 checksums costs at one frame size: established flows on one table with
/// verification off (the fast path before it existed), on over full checksums (frames from
/// a NIC) and on over partial checksums (frames from a veth with transmit offload, each
/// completed as it passes). The three alternate in short rounds for `seconds` each; each
/// one's ns/packet is its best round, the one least disturbed by other work on the core,
/// so the ratios compare like with like. Packets, seconds and drops are over all rounds.
pub fn checksum_cost(
    method: Method,
    v6: bool,
    proto: u8,
    flows: usize,
    frame_len: usize,
    seconds: f64,
) -> Vec<Outcome> {
    use std::sync::atomic::Ordering::Relaxed;
    let shared = setup(method, v6, flows + 1024);
    open_flows(&shared, v6, proto, flows);
    let full: Vec<Vec<u8>> = (0..flows)
        .map(|i| sized_frame(i, v6, proto, frame_len))
        .collect();
    let partial: Vec<Vec<u8>> = full.iter().map(|f| tk::partial_checksum(f)).collect();
    let frame_len = full[0].len();
    // (name, verify, worker replaying its frames)
    let mut modes = [
        ("off", false, worker(&shared, full.clone())),
        ("full", true, worker(&shared, full)),
        ("partial", true, worker(&shared, partial)),
    ];
    let mut best = [f64::MAX; 3];
    let mut packets = [0u64; 3];
    let mut secs = [0f64; 3];
    let mut forwarded = [0u64; 3];
    let mut drops = [0u64; 3];
    let end = Instant::now() + Duration::from_secs_f64(3.0 * seconds);
    while Instant::now() < end {
        for (k, (_, verify, w)) in modes.iter_mut().enumerate() {
            shared.verify_l4_checksums.store(*verify, Relaxed);
            let before = tallies(&shared);
            let (n, s) = measure(|| w.poll(), 3600.0, Some(CHECKSUM_ROUND_PACKETS));
            let after = tallies(&shared);
            best[k] = best[k].min(s * 1e9 / n.max(1) as f64);
            packets[k] += n;
            secs[k] += s;
            forwarded[k] += after.0 - before.0;
            drops[k] += after.1 - before.1;
        }
    }
    shared.verify_l4_checksums.store(true, Relaxed);
    modes
        .iter()
        .enumerate()
        .map(|(k, (name, _, _))| Outcome {
            scenario: Scenario {
                kind: Kind::Checksum,
                method: format!("{method:?}").to_lowercase(),
                family: family_name(v6),
                protocol: proto_name(proto),
                flows,
                frame_len,
                workers: 1,
                l4_checksum: Some(name),
                stage: None,
            },
            packets: packets[k],
            seconds: secs[k],
            ns_per_packet: best[k],
            mpps: 1e3 / best[k],
            forwarded: forwarded[k],
            drops: drops[k],
            bytes_per_conn: Some(shared.conns.bytes_per_entry(v6)),
        })
        .collect()
}

/// The stages of [`stage_budget`], each including the ones before it.
pub const STAGES: [&str; 4] = ["io", "parse", "lookup", "full"];

/// Where an established packet's time goes: the same frames on one table, run as far as
/// each stage in turn — `io` (receive from the client-side port, copy to the server-side
/// port, free: what any forwarder pays here), `parse` (+ classify the frame), `lookup`
/// (+ the connection-table lookup of its flow), `full` (the whole pipeline: checksum
/// verification, state, rewrite, counters, through the worker's burst loop). The four
/// alternate in short rounds for three times `seconds`; each figure is its best round, so
/// the differences are each stage's cost under the same conditions.
pub fn stage_budget(
    method: Method,
    v6: bool,
    proto: u8,
    flows: usize,
    seconds: f64,
) -> Vec<Outcome> {
    use std::hint::black_box;
    let shared = setup(method, v6, 3 * flows + 1024);
    open_flows(&shared, v6, proto, flows);
    let frames: Vec<Vec<u8>> = (0..flows)
        .map(|i| frame_for(i, v6, proto, tk::ACK))
        .collect();
    let frame_len = frames[0].len();
    let slots = 4 * BURST + 64;
    let mut client = MemPort::replay("mem-client", slots, frames.clone());
    let mut server = MemPort::sink("mem-server", slots);
    let mut full = worker(&shared, frames);
    let mut rx = [Frame::default(); BURST];
    let mut partial = |stage: usize| -> usize {
        let n = client.rx_burst(&mut rx);
        let now = shared.clock.now_ticks();
        for f in &rx[..n] {
            let buf = client.buf_mut(f);
            if stage >= 1 {
                let p = black_box(uvs_dataplane::pipeline::prepare(&buf[..f.len as usize]));
                if stage >= 2 {
                    if let Some(key) = p
                        .as_ref()
                        .ok()
                        .and_then(uvs_dataplane::pipeline::lookup_key)
                    {
                        black_box(shared.conns.lookup(&key, now));
                    }
                }
            }
            server.tx_copy(&buf[..f.len as usize]);
        }
        client.free(&rx[..n]);
        server.flush();
        n
    };
    let mut best = [f64::MAX; 4];
    let mut packets = [0u64; 4];
    let mut secs = [0f64; 4];
    let end = Instant::now() + Duration::from_secs_f64(3.0 * seconds);
    while Instant::now() < end {
        for k in 0..STAGES.len() {
            let (n, s) = if k == 3 {
                measure(|| full.poll(), 3600.0, Some(CHECKSUM_ROUND_PACKETS))
            } else {
                measure(|| partial(k), 3600.0, Some(CHECKSUM_ROUND_PACKETS))
            };
            best[k] = best[k].min(s * 1e9 / n.max(1) as f64);
            packets[k] += n;
            secs[k] += s;
        }
    }
    (0..STAGES.len())
        .map(|k| Outcome {
            scenario: Scenario {
                kind: Kind::Stage,
                method: format!("{method:?}").to_lowercase(),
                family: family_name(v6),
                protocol: proto_name(proto),
                flows,
                frame_len,
                workers: 1,
                l4_checksum: None,
                stage: Some(STAGES[k]),
            },
            packets: packets[k],
            seconds: secs[k],
            ns_per_packet: best[k],
            mpps: 1e3 / best[k],
            forwarded: packets[k],
            drops: 0,
            bytes_per_conn: Some(shared.conns.bytes_per_entry(v6)),
        })
        .collect()
}

pub fn run(opts: &Options, mut progress: impl FnMut(&Outcome)) -> Vec<Outcome> {
    FLOW_CACHE.store(opts.flow_cache, Relaxed);
    let mut out = Vec::new();
    for &v6 in &opts.families {
        for &proto in &opts.protocols {
            for &flows in &opts.flows {
                if opts.baseline {
                    let o = baseline(v6, proto, flows, opts.seconds);
                    progress(&o);
                    out.push(o);
                }
                for &m in &opts.methods {
                    let o = established(m, v6, proto, flows, opts.seconds);
                    progress(&o);
                    out.push(o);
                    if opts.replies && matches!(m, Method::Nat | Method::FullNat) {
                        let o = replies(m, v6, proto, flows, opts.seconds);
                        progress(&o);
                        out.push(o);
                    }
                }
            }
            for &m in &opts.methods {
                let o = new_flows(m, v6, proto, opts.new_flows);
                progress(&o);
                out.push(o);
            }
            // SCTP's CRC32c is verified on every packet regardless; no checksum scenarios.
            if proto != 132 {
                let flows = opts.flows.iter().copied().min().unwrap_or(1000);
                for &m in &opts.methods {
                    for &len in &opts.checksum_frames {
                        for o in checksum_cost(m, v6, proto, flows, len, opts.seconds) {
                            progress(&o);
                            out.push(o);
                        }
                    }
                }
            }
            if opts.stages {
                let flows = opts.flows.iter().copied().min().unwrap_or(1000);
                for &m in &opts.methods {
                    for o in stage_budget(m, v6, proto, flows, opts.seconds) {
                        progress(&o);
                        out.push(o);
                    }
                    let o = new_flows_best(m, v6, proto, opts.new_flows);
                    progress(&o);
                    out.push(o);
                }
            }
            for &m in &opts.methods {
                for &w in &opts.workers {
                    let flows = opts.flows.iter().copied().max().unwrap_or(1000);
                    let o = scaling(m, v6, proto, flows, opts.seconds, w);
                    progress(&o);
                    out.push(o);
                }
            }
        }
    }
    out
}
