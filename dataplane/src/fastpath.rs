//! The kernel fast path, the workers' side (`workers.kernel_fast_path`).
//!
//! A worker that forwards a packet of an IPv4 or IPv6 TCP or UDP flow of a NAT or FullNAT
//! connection (no flags on the entry, so not NAT64) writes both directions of the flow into
//! each interface's fast-path table of the flow's family ([`uvs_port::fast`]: `fast4`,
//! `fast6`): the tuple as it arrives, the tuple it
//! leaves with, and which segments the lines take (`Lines`, `wanted`, `opening`):
//! - the client's SYN: segments with data, and the real server's SYN-ACK towards the client;
//! - the client's ACK that completes the handshake, every later segment without SYN or RST
//!   (data, ACKs, each FIN) and any UDP datagram: every segment without SYN, FIN or RST.
//!
//! The XDP program in front of the interfaces then rewrites the flow's next packets itself
//! and gives them to the kernel, which forwards them (IPv4 and IPv6 forwarding on, routes
//! to the clients and real servers: what an IPVS NAT director has): they no longer cross to a
//! worker thread, the one cost that kept uvs's request latency above the kernel paths' on
//! small machines (bench/README.md, "The kernel fast path"). Of a connection-per-request
//! connection's packets only the SYN, the handshake's ACK and the two FINs reach a worker.
//!
//! What keeps a line right:
//! - State: only the workers move a connection's state. The program hands every TCP
//!   segment with SYN, FIN or RST to the workers (but a SYN-ACK on a line written at the
//!   SYN, which leaves SYN_RECV as it is), and a worker that sees one clears both lines of
//!   its flow (`clear_flow`) before the segment is forwarded, and writes them again after
//!   it only where the segments the lines take cannot move the new state: data-only
//!   lines before the handshake's ACK; after it, in ESTABLISHED and the closing states,
//!   ACKs and data leave the state as it is. A connection retired for a new one on its
//!   tuple loses its lines first.
//! - Time: a line holds for [`WINDOW_NS`] after it was written. The flow's first packet
//!   after that goes to a worker, which refreshes the connection's deadline, checks its
//!   real server (expire_nodest_conn) and writes the line again. So an active flow's entry
//!   is refreshed at least once per window. A connection the control thread removes (its
//!   real server went down under expire_nodest_conn) has its lines ended at once
//!   ([`expire_conn`]); one a worker is rewriting at that moment runs out within a window.
//! - Snapshot: a worker that loads a new tables snapshot (a reload, an admin change)
//!   empties every line first ([`clear_all`]).
//! - Counts: the program counts each line's packets and bytes; a worker takes them when
//!   it overwrites or empties the line, and worker 0 takes the rest once a second
//!   ([`harvest`]), crediting the service and real server in its own counter slots.
//!   A packet the program counts on a line while a worker replaces it may be credited to
//!   the new flow: the only inexactness.
//!
//! No syscall: the tables are mapped memory, a line write is a few stores under a
//! sequence word.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use uvs_conntrack::Dir;
use uvs_port::fast::{
    Family, FastEntryOf, FastKey, FastKey6, FastKeyOf, FastLineOf, FastTable, Taken,
};
use uvs_wire::{Frag, Parsed};

use crate::counters::TrafficStats;
use crate::pipeline::{PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::tables::Tables;

/// How long a line holds once written (see the module documentation).
pub const WINDOW_NS: u64 = 1_000_000_000;

/// The fast-path tables of a uvsd's interfaces and whether they are in use.
#[derive(Default)]
pub struct FastPath {
    on: AtomicBool,
    tables: OnceLock<Box<[Arc<dyn FastTable>]>>,
}

impl FastPath {
    /// Gives the workers the interfaces' tables (once; later calls are ignored and
    /// return false).
    pub fn set_tables(&self, tables: Vec<Arc<dyn FastTable>>) -> bool {
        self.tables.set(tables.into()).is_ok()
    }

    /// Turns the workers' side on or off (the XDP programs' setting is control's). Off,
    /// the workers stop writing lines; the lines they wrote run out within a window.
    pub fn set_on(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// The tables, while the fast path is on.
    pub fn active(&self) -> Option<&[Arc<dyn FastTable>]> {
        if !self.on.load(Ordering::Relaxed) {
            return None;
        }
        self.tables.get().map(|t| &t[..])
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the XDP program's `bpf_ktime_get_ns`.
pub fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Which segments a flow's lines take (UDP lines take every datagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lines {
    /// Every TCP segment without SYN, FIN or RST: a connection's in ESTABLISHED, where
    /// such a segment leaves the state as it is (IPVS's state table).
    All,
    /// [`Lines::All`] for a connection in a closing state (FIN_WAIT, CLOSE_WAIT,
    /// TIME_WAIT; such segments leave those as they are too), written weak: they give way
    /// to other flows' handshakes, so connections that closed within the window cannot
    /// keep new ones off the fast path.
    Closing,
    /// Written at the real server's SYN-ACK: the client's segments with data only, so the
    /// client's ACK that completes the handshake still reaches a worker (it makes the
    /// connection ESTABLISHED) and its first request, sent right after, does not; the real
    /// server's every segment without SYN, FIN or RST (its ACK of that request may pass
    /// before a worker has taken the client's ACK: the state waits for the client's).
    Data,
    /// Written at the client's SYN: [`Lines::Data`], and the real server's SYN-ACK takes
    /// the line towards the client too (it leaves a SYN_RECV connection as it is, IPVS's
    /// state table; a server's segment does not refresh a SYN_RECV deadline either).
    Handshake,
}

/// Whether a forwarded packet of an established connection (its `flags`, its `state`
/// before the packet, the packet's direction) leaves lines, and which: a packet (IPv4 or
/// IPv6) of an entry without flags that is UDP, or a TCP segment with ACK and neither SYN nor RST
/// after which the connection is ESTABLISHED or closing — the flow cache's packets, the
/// client's ACK that completes the handshake, each FIN (so the ACKs of a close pass by
/// the lines; the other side's FIN still reaches a worker) — or, [`Lines::Data`], the
/// real server's SYN-ACK, when it reached a worker. (The client's SYN: [`opening`].)
#[inline]
pub(crate) fn wanted(p: &Parsed, flags: u8, state: u8, dir: Dir) -> Option<Lines> {
    use uvs_conntrack::tcp::{transition, PacketDir, TcpState};
    if flags != 0 || p.frag != Frag::None {
        return None;
    }
    match p.l4_proto {
        PROTO_UDP => Some(Lines::All),
        PROTO_TCP => {
            let f = p.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK);
            let state = TcpState::from_u8(state)?;
            if f & (TCP_SYN | TCP_RST) == 0 && f & TCP_ACK != 0 {
                // NAT and FullNAT see both directions (no NOOUTPUT).
                let d = PacketDir::for_packet(dir, false);
                match transition(state, d, f) {
                    TcpState::Established => Some(Lines::All),
                    TcpState::FinWait | TcpState::CloseWait | TcpState::TimeWait => {
                        Some(Lines::Closing)
                    }
                    _ => None,
                }
            } else {
                (f == TCP_SYN | TCP_ACK && dir == Dir::Reply && state == TcpState::SynRecv)
                    .then_some(Lines::Data)
            }
        }
        _ => None,
    }
}

/// Whether the first packet of a new connection (its entry's `flags` and `state`) leaves
/// lines: a client's SYN (no ACK) of a TCP connection (IPv4 or IPv6) in SYN_RECV, entry without
/// flags, not a fragment — [`Lines::Handshake`], so that neither the real server's
/// SYN-ACK nor the client's first request crosses to a worker.
#[inline]
pub(crate) fn opening(p: &Parsed, flags: u8, state: u8) -> Option<Lines> {
    use uvs_conntrack::tcp::TcpState;
    let syn = p.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK) == TCP_SYN;
    (p.l4_proto == PROTO_TCP
        && syn
        && flags == 0
        && p.frag == Frag::None
        && state == TcpState::SynRecv as u8)
        .then_some(Lines::Handshake)
}

/// Whether a packet may move its connection's state (so its flow's lines go): TCP with
/// SYN, FIN or RST.
#[inline]
pub(crate) fn moves_state(p: &Parsed) -> bool {
    p.l4_proto == PROTO_TCP && p.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0
}

/// The two tuples of a TCP/UDP connection as its packets arrive, the client's (`orig`)
/// and the real server's (`reply`), in the connection's family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlowKeys {
    V4([FastKey; 2]),
    V6([FastKey6; 2]),
}

/// The [`FlowKeys`] of a TCP/UDP connection (not NAT64, whose two sides are of two
/// families and which the fast path does not take).
pub(crate) fn conn_keys<C: uvs_conntrack::ConnView>(c: &C) -> Option<FlowKeys> {
    if !matches!(c.proto(), PROTO_TCP | PROTO_UDP)
        || c.flags() & crate::pipeline::conn_flags::NAT64 != 0
    {
        return None;
    }
    if c.v6() {
        return Some(FlowKeys::V6([
            FastKey6::new(
                *c.orig_src(),
                *c.orig_dst(),
                c.orig_sport(),
                c.orig_dport(),
                c.proto(),
            ),
            FastKey6::new(
                *c.reply_src(),
                *c.reply_dst(),
                c.reply_sport(),
                c.reply_dport(),
                c.proto(),
            ),
        ]));
    }
    let v4 = |a: &[u8; 16]| [a[0], a[1], a[2], a[3]];
    Some(FlowKeys::V4([
        FastKey::new(
            v4(c.orig_src()),
            v4(c.orig_dst()),
            c.orig_sport(),
            c.orig_dport(),
            c.proto(),
        ),
        FastKey::new(
            v4(c.reply_src()),
            v4(c.reply_dst()),
            c.reply_sport(),
            c.reply_dport(),
            c.proto(),
        ),
    ]))
}

/// Writes both directions of a NAT or FullNAT connection (`keys`: [`conn_keys`]) into
/// every table of its family, taking the segments `lines` says. A direction leaves with
/// the other's tuple reversed: the client's packets go from (NAT) the client or (FullNAT)
/// the local address to the real server, the server's from the VIP to the client, which
/// is the rewrite NAT and FullNAT make.
pub(crate) fn install(
    fast: &[Arc<dyn FastTable>],
    tables: &Tables,
    worker: usize,
    keys: FlowKeys,
    service: u16,
    real: u16,
    lines: Lines,
) {
    match keys {
        FlowKeys::V4(k) => install_in(fast, tables, worker, k, service, real, lines),
        FlowKeys::V6(k) => install_in(fast, tables, worker, k, service, real, lines),
    }
}

fn install_in<const N: usize>(
    fast: &[Arc<dyn FastTable>],
    tables: &Tables,
    worker: usize,
    keys: [FastKeyOf<N>; 2],
    service: u16,
    real: u16,
    lines: Lines,
) where
    dyn FastTable: Family<N>,
{
    let [orig, reply] = keys;
    let handshake = matches!(lines, Lines::Data | Lines::Handshake);
    let weak = lines != Lines::All;
    let now = now_ns();
    let to_real = FastEntryOf {
        key: orig,
        to: reply.reversed(),
        inbound: true,
        data_only: handshake,
        syn_ack: false,
        weak,
        until_ns: now.saturating_add(WINDOW_NS),
        service: service.into(),
        real: real.into(),
    };
    let to_client = FastEntryOf {
        key: reply,
        to: orig.reversed(),
        inbound: false,
        data_only: false,
        syn_ack: lines == Lines::Handshake,
        ..to_real
    };
    for t in fast {
        for e in [&to_real, &to_client] {
            let line = Family::<N>::line_of(&**t, &e.key);
            // Weak lines stand aside for established flows' (a SYN flood, closed flows).
            let written = if weak {
                line.offer(e, now)
            } else {
                line.install(e)
            };
            if let Ok(Some(taken)) = written {
                credit(tables, worker, taken);
            }
        }
    }
}

/// Empties the lines of a flow (both directions, `keys`) in every table.
pub(crate) fn clear_flow(
    fast: &[Arc<dyn FastTable>],
    tables: &Tables,
    worker: usize,
    keys: FlowKeys,
) {
    match keys {
        FlowKeys::V4(k) => clear_in(fast, tables, worker, k),
        FlowKeys::V6(k) => clear_in(fast, tables, worker, k),
    }
}

fn clear_in<const N: usize>(
    fast: &[Arc<dyn FastTable>],
    tables: &Tables,
    worker: usize,
    keys: [FastKeyOf<N>; 2],
) where
    dyn FastTable: Family<N>,
{
    for t in fast {
        for k in &keys {
            // A line another writer holds is being rewritten for its own flow: this
            // flow is not in it any more.
            if let Ok(Some(taken)) = Family::<N>::line_of(&**t, k).clear(k) {
                credit(tables, worker, taken);
            }
        }
    }
}

/// Ends the lines of a connection the control thread removed from the table
/// (`expire_nodest_conn`, a real server gone down), so its packets cross to the workers,
/// which no longer find it, at once rather than within a window. The counts stay in the
/// lines for worker 0's harvest (the control thread writes no worker's counter slot). A
/// line a worker is writing at that moment is left to it: such a line runs out within a
/// window, as before. Returns how many lines it ended.
pub fn expire_conn<C: uvs_conntrack::ConnView>(fast: &[Arc<dyn FastTable>], c: &C) -> usize {
    match conn_keys(c) {
        Some(FlowKeys::V4(k)) => expire_in(fast, k),
        Some(FlowKeys::V6(k)) => expire_in(fast, k),
        None => 0,
    }
}

fn expire_in<const N: usize>(fast: &[Arc<dyn FastTable>], keys: [FastKeyOf<N>; 2]) -> usize
where
    dyn FastTable: Family<N>,
{
    let mut n = 0;
    for t in fast {
        for k in &keys {
            if Family::<N>::line_of(&**t, k).expire(k) == Ok(true) {
                n += 1;
            }
        }
    }
    n
}

/// Empties every line of both families (a new snapshot: the lines' slots and rewrites may
/// be stale), crediting their counts to `tables`' services where the slot still holds one.
pub fn clear_all(fast: &[Arc<dyn FastTable>], tables: &Tables, worker: usize) {
    fn clear<const N: usize>(lines: &[FastLineOf<N>], tables: &Tables, worker: usize) {
        for line in lines {
            if line.is_used() {
                if let Ok(Some(taken)) = line.clear_any() {
                    credit(tables, worker, taken);
                }
            }
        }
    }
    for t in fast {
        clear(t.lines(), tables, worker);
        clear(t.lines6(), tables, worker);
    }
}

/// Takes the counts of every line of both families and credits them (worker 0, once a
/// second).
pub fn harvest(fast: &[Arc<dyn FastTable>], tables: &Tables, worker: usize) {
    fn take<const N: usize>(lines: &[FastLineOf<N>], tables: &Tables, worker: usize) {
        for line in lines {
            if let Some(taken) = line.take() {
                credit(tables, worker, taken);
            }
        }
    }
    for t in fast {
        take(t.lines(), tables, worker);
        take(t.lines6(), tables, worker);
    }
}

/// Adds counts taken from a line to its service's and real server's counters (this
/// worker's slots), if the snapshot still has them.
fn credit(tables: &Tables, worker: usize, t: Taken) {
    let Ok(service) = u16::try_from(t.service) else {
        return;
    };
    let Some(svc) = tables.service(service) else {
        return;
    };
    add(svc.stats.worker(worker), &t);
    if let Some(r) = u16::try_from(t.real).ok().and_then(|slot| svc.real(slot)) {
        add(r.stats.worker(worker), &t);
    }
}

fn add(s: &TrafficStats, t: &Taken) {
    if t.inbound {
        s.packets_in.add(t.packets);
        s.bytes_in.add(t.bytes);
    } else {
        s.packets_out.add(t.packets);
        s.bytes_out.add(t.bytes);
    }
}
