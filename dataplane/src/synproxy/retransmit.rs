//! Retransmission of the SYNs a worker sent to real servers for its proxied connections.
//!
//! The worker that turned a client's ACK into a SYN keeps a copy of the SYN in a slot of
//! its own bounded table (no locks: only it touches the table). Every
//! [`SCAN_EVERY_MS`] it looks at the slots that are due: a connection that left SYN_SENT
//! (its server answered, on whichever worker) or is gone frees its slot; otherwise the SYN
//! goes out again 1 s and 3 s after the first (RFC 6298's initial RTO of 1 s, doubled), and
//! when the last wait ends (7 s) the client gets a RST, the entry is removed and the failure
//! counted (`synproxy_failures`): a client is never left hanging on a server that does not
//! answer. A server that refuses the SYN (RST) makes the worker keeping it take the copy
//! back and send it to another server (`ProxySyns::take_refused`, `splice.rs`'s
//! redispatch), up to [`TRIES`] servers in all.
//!
//! The table has [`SLOTS`] entries per worker, open-addressed by connection slot: a SYN
//! takes the first free entry of the [`PROBE`] from its home (its slot index, scattered),
//! freeing on the way entries whose connection has left SYN_SENT on another worker. Only
//! when all of them hold SYNs still waiting does it go out without a retransmission copy
//! (`synproxy_untracked_syns`), so memory stays fixed whatever the rate of new
//! connections. (Direct-mapped, as it was, two connections pending at once
//! whose slots met lost the second's copy — and with it the request it sends right
//! behind its handshake, dropped and retransmitted by the client after its 200 ms RTO:
//! 0.2–0.4 % of connections at 20 000 new connections/s, the p99 of `uvs-bench http`.)
//!
//! The same worker holds the first data segment (or FIN) a client sends before its server
//! answered (an HTTP request right after the handshake), one per connection, in a pool of up to
//! [`HOLD_FRAMES`] frames of at most [`HOLD_MAX`] bytes, allocated as first needed: once
//! the connection is spliced it goes through the pipeline like any client segment
//! ([`ProxySyns::ready`]). Anything beyond that (a second segment, a full pool, a segment
//! on another worker) is dropped and counted (`synproxy_not_ready`) and the client
//! retransmits it; a held segment whose connection failed is dropped and counted the
//! same way.

use uvs_conntrack::{tcp::TcpState, ConnId, ConnTable};
use uvs_wire::tcp::flags;
use uvs_wire::{Segment, L3};

use crate::counters::WorkerCounters;
use crate::neigh::NeighMap;
use crate::pipeline::{conn_flags, l2_out};
use crate::tables::{IpKey, Tables};
use crate::verdict::Verdict;

/// Entries per worker (a power of two).
pub const SLOTS: usize = 2048;
/// Entries a SYN may take from its home on: with a few hundred SYNs pending per worker,
/// sixteen neighbours all taken is a chance below 10^-9.
pub const PROBE: usize = 16;
/// Waits after the first SYN and after each retransmission; when the last one ends the
/// client is reset (two retransmissions).
pub const BACKOFF_MS: [u32; 3] = [1000, 2000, 4000];
/// How often a worker looks for due retransmissions (the timers' granularity).
pub const SCAN_EVERY_MS: u32 = 10;
/// Largest frame kept: link header (with a VLAN tag), IPv6, TCP with 20 bytes of options.
const FRAME_MAX: usize = 128;
/// Early client segments held per worker at most (1.5 MiB when all are in use): as many as
/// half the SYNs a worker keeps, since nearly every connection-per-request client sends
/// its request within its server's round trip (20 000 new connections/s with a 10 ms
/// round trip keep 200 waiting).
pub const HOLD_FRAMES: usize = 1024;
/// Held segments [`ProxySyns::ready`] looks at per call at most.
pub const READY_SCAN: usize = 64;
/// Largest early segment held (an Ethernet frame of a 1500-byte MTU with a VLAN tag).
pub const HOLD_MAX: usize = 1536;

/// What a RST to the client needs (its half of the connection).
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientReset {
    pub v6: bool,
    pub client: [u8; 16],
    pub vip: [u8; 16],
    pub client_port: u16,
    pub vip_port: u16,
    /// uvs's next sequence number towards the client (cookie + 1).
    pub seq: u32,
    /// The client's next sequence number.
    pub ack: u32,
    /// Layer 7, a plain HTTP request ([`super::Opts::HTTP`]): where it ends, and uvs's
    /// TSval when the client uses timestamps. A server that never answers then gets the
    /// client `503 Service Unavailable` there instead of a RST.
    pub http: Option<(u32, Option<u32>)>,
}

#[derive(Clone, Copy)]
struct Pending {
    id: ConnId,
    frame: [u8; FRAME_MAX],
    len: u8,
    egress: u8,
    hop: IpKey,
    rst: ClientReset,
    due: u32,
    sent: u8,
    /// Pool index and length of a held early segment.
    held: Option<(u16, u16)>,
    /// Layer 7: the pool that took the connection (for another of its servers).
    pool: Option<u16>,
    /// Servers the SYN went to before this one, each of which refused it.
    refused: u8,
}

/// Servers a proxied connection is offered to, the first included, before a refusal (RST
/// to the SYN) reaches its client: HAProxy's `retries 3` with `option redispatch`.
pub const TRIES: u8 = 3;

/// A connection's kept SYN taken back after its server refused it, for another server
/// ([`ProxySyns::take_refused`], [`ProxySyns::put_back`]).
pub(super) struct Refused {
    pending: Pending,
}

impl Refused {
    /// The SYN as it went to the server that refused it (link header included).
    pub(super) fn frame_mut(&mut self) -> &mut [u8] {
        let n = usize::from(self.pending.len);
        &mut self.pending.frame[..n]
    }
}

/// One worker's pending SYNs.
pub struct ProxySyns {
    slots: Box<[Option<Pending>]>,
    /// The connection of each entry (beside `slots`, so a probe reads 16 bytes a step).
    ids: Box<[Option<ConnId>]>,
    live: usize,
    next_scan: u32,
    /// Early segments' frames, added as first needed (at most [`HOLD_FRAMES`], room for
    /// all reserved with the first: never moved; pages never written cost nothing).
    pool: Vec<[u8; HOLD_MAX]>,
    /// Free pool indices.
    free: Vec<u16>,
    /// Slots holding an early segment.
    holding: Vec<u16>,
    /// Where [`ProxySyns::ready`] goes on in `holding`.
    cursor: usize,
    /// Entries holding a segment whose server answered on this worker: sent at once.
    woken: Vec<u16>,
    /// Layer 7: request heads this worker is receiving or replaying ([`super::head`]).
    pub heads: super::head::Heads,
}

impl Default for ProxySyns {
    fn default() -> Self {
        Self {
            slots: vec![None; SLOTS].into_boxed_slice(),
            ids: vec![None; SLOTS].into_boxed_slice(),
            live: 0,
            next_scan: 0,
            pool: Vec::new(),
            free: Vec::new(),
            holding: Vec::new(),
            cursor: 0,
            woken: Vec::new(),
            heads: Default::default(),
        }
    }
}

fn due(deadline: u32, now: u32) -> bool {
    (now.wrapping_sub(deadline) as i32) >= 0
}

/// The entries a SYN of connection `id` may take, from its home on. The home is the
/// slot index scattered (Fibonacci hashing, Knuth 6.4): the connection table hands out
/// recently freed slots first, so the indices of connections pending at once often lie
/// close together, and their homes must not.
fn window(id: ConnId) -> impl Iterator<Item = usize> {
    let home =
        ((id.index() as u32).wrapping_mul(0x9e37_79b9) >> (32 - SLOTS.trailing_zeros())) as usize;
    (0..PROBE).map(move |k| (home + k) & (SLOTS - 1))
}

impl ProxySyns {
    /// The entry of connection `id`, if this worker keeps its SYN.
    fn find(&self, id: ConnId) -> Option<usize> {
        window(id).find(|&i| self.ids[i] == Some(id))
    }

    /// A free entry for connection `id`'s SYN: in its window, after freeing the entries
    /// there whose connection no longer waits (its server answered on another worker, or
    /// it is gone) and that hold no early segment.
    fn vacant(&mut self, id: ConnId, conns: &ConnTable) -> Option<usize> {
        if let Some(i) = window(id).find(|&i| self.ids[i].is_none()) {
            return Some(i);
        }
        for i in window(id) {
            let Some(p) = &self.slots[i] else { continue };
            let waits = conns.get(p.id).is_some_and(|(c, _)| {
                c.flags & conn_flags::SYNPROXY != 0 && c.state == TcpState::SynSent as u8
            });
            if !waits && p.held.is_none() {
                self.clear(i);
            }
        }
        window(id).find(|&i| self.ids[i].is_none())
    }

    fn clear(&mut self, i: usize) {
        if self.slots[i].take().is_some() {
            self.ids[i] = None;
            self.live -= 1;
        }
    }

    /// SYNs waiting for their server's answer on this worker.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Keeps a copy of the SYN just sent for connection `id`; false if it cannot (every
    /// entry of its window holds a SYN still waiting, frame too long): the SYN then goes
    /// out once, uncovered.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        id: ConnId,
        frame: &[u8],
        egress: u8,
        hop: IpKey,
        rst: ClientReset,
        pool: Option<u16>,
        now: u32,
        conns: &ConnTable,
        counters: &WorkerCounters,
    ) -> bool {
        if self.find(id).is_some() {
            // Kept already (an id names one connection: never twice in practice).
            return true;
        }
        let free = self.vacant(id, conns);
        let Some(i) = free.filter(|_| frame.len() <= FRAME_MAX) else {
            counters.synproxy_untracked_syns.add(1);
            return false;
        };
        let mut f = [0u8; FRAME_MAX];
        f[..frame.len()].copy_from_slice(frame);
        self.occupy(
            i,
            Pending {
                id,
                frame: f,
                len: frame.len() as u8,
                egress,
                hop,
                rst,
                due: now.wrapping_add(BACKOFF_MS[0]),
                sent: 0,
                held: None,
                pool,
                refused: 0,
            },
            now,
        );
        true
    }

    /// Puts `p` in the free entry `i` (its held segment, if any, among those held).
    fn occupy(&mut self, i: usize, p: Pending, now: u32) {
        if self.live == 0 {
            self.next_scan = now.wrapping_add(SCAN_EVERY_MS);
        }
        if p.held.is_some() {
            self.holding.push(i as u16);
        }
        self.ids[i] = Some(p.id);
        self.slots[i] = Some(p);
        self.live += 1;
    }

    /// Whether connection `id`, refused by its server, may go to another: this worker keeps
    /// its SYN (the one that sent it; another worker hands it the refusal) and it has been
    /// to fewer than [`TRIES`] servers. If so, the layer-7 pool that took
    /// it (`None` for a layer-4 service).
    pub(super) fn may_retry(&self, id: ConnId) -> Option<Option<u16>> {
        self.find(id)
            .and_then(|i| self.slots[i])
            .filter(|p| p.refused + 1 < TRIES)
            .map(|p| p.pool)
    }

    /// Gives up a SYN taken out for another server that it will not go to: its held
    /// segment is dropped and counted (`synproxy_not_ready`), as for any refused
    /// connection.
    pub(super) fn release(&mut self, r: Refused, counters: &WorkerCounters) {
        if let Some((b, _)) = r.pending.held {
            self.free.push(b);
            counters.drop(crate::verdict::DropReason::SynProxyNotReady);
        }
    }

    /// Takes connection `id`'s SYN (and its held early segment) out, for another server
    /// ([`put_back`](Self::put_back) under the new connection's id).
    pub(super) fn take_refused(&mut self, id: ConnId) -> Option<Refused> {
        let i = self.find(id)?;
        let pending = self.slots[i]?;
        self.clear(i);
        if pending.held.is_some() {
            let i = i as u16;
            if let Some(k) = self.holding.iter().position(|&h| h == i) {
                self.holding.swap_remove(k);
            }
            self.woken.retain(|&w| w != i);
        }
        Some(Refused { pending })
    }

    /// Keeps `r`'s SYN, just sent again to another server, for connection `id`: its
    /// retransmissions start over, its held segment stays held. When no entry of its
    /// window is free the SYN goes uncovered (`synproxy_untracked_syns`) and its held
    /// segment is dropped ([`release`](Self::release)).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn put_back(
        &mut self,
        id: ConnId,
        r: Refused,
        egress: u8,
        hop: IpKey,
        now: u32,
        conns: &ConnTable,
        counters: &WorkerCounters,
    ) {
        let Some(i) = self.vacant(id, conns) else {
            counters.synproxy_untracked_syns.add(1);
            self.release(r, counters);
            return;
        };
        let mut p = r.pending;
        p.id = id;
        p.egress = egress;
        p.hop = hop;
        p.due = now.wrapping_add(BACKOFF_MS[0]);
        p.sent = 0;
        p.refused += 1;
        self.occupy(i, p, now);
    }

    /// Frees the slot of `id` unless it holds an early segment (that goes when
    /// [`ready`](Self::ready) hands it out).
    pub fn forget(&mut self, id: ConnId) {
        if let Some(i) = self.find(id) {
            match self.slots[i] {
                Some(p) if p.held.is_none() => self.clear(i),
                // Its server answered here: [`ready`](Self::ready) sends it first.
                Some(_) => self.woken.push(i as u16),
                None => {}
            }
        }
    }

    /// Keeps a copy of an early client segment of connection `id`; false if this worker
    /// cannot (not its SYN, one already held, the pool full, the frame too long).
    pub fn hold(&mut self, id: ConnId, frame: &[u8]) -> bool {
        let Some(i) = self.find(id) else {
            return false;
        };
        if self.slots[i].is_none_or(|p| p.held.is_some()) || frame.len() > HOLD_MAX {
            return false;
        }
        let b = match self.free.pop() {
            Some(b) => b,
            None if self.pool.len() < HOLD_FRAMES => {
                self.pool.reserve_exact(HOLD_FRAMES - self.pool.len());
                self.pool.push([0u8; HOLD_MAX]);
                (self.pool.len() - 1) as u16
            }
            None => return false,
        };
        self.pool[usize::from(b)][..frame.len()].copy_from_slice(frame);
        if let Some(p) = self.slots[i].as_mut() {
            p.held = Some((b, frame.len() as u16));
        }
        self.holding.push(i as u16);
        true
    }

    /// Makes connection `id`'s SYN due at the next scan (within [`SCAN_EVERY_MS`]) instead
    /// of at its backoff: the server's TIME_WAIT that refused it was just reset. It counts
    /// as one of the retransmissions. Nothing when another worker keeps the SYN.
    pub fn resend_soon(&mut self, id: ConnId, now: u32) {
        if let Some(p) = self.find(id).and_then(|i| self.slots[i].as_mut()) {
            p.due = now;
        }
    }

    /// Early segments held on this worker.
    pub fn held(&self) -> usize {
        self.holding.len()
    }

    /// Hands out one held segment whose connection has left SYN_SENT, copied into `out`
    /// (its length), freeing its slot; `Some(0)` for one whose connection is gone (dropped:
    /// count it). `None` when no held segment is ready.
    ///
    /// A call looks at [`READY_SCAN`] held segments at most, going on where the last one
    /// stopped: a worker holding many pays no more per poll than it did for 64.
    pub fn ready(&mut self, conns: &ConnTable, out: &mut [u8]) -> Option<usize> {
        let mut budget = READY_SCAN.min(self.holding.len());
        while budget > 0 && !self.holding.is_empty() {
            // The segments whose server answered here first, then the scan.
            let woken = self
                .woken
                .pop()
                .and_then(|i| self.holding.iter().position(|&h| h == i));
            if woken.is_none() {
                budget -= 1;
            }
            if self.cursor >= self.holding.len() {
                self.cursor = 0;
            }
            let k = woken.unwrap_or(self.cursor);
            let i = usize::from(self.holding[k]);
            let Some(p) = self.slots[i] else {
                self.holding.swap_remove(k);
                continue;
            };
            let state = conns.get(p.id).map(|(c, _)| c.state);
            if state == Some(TcpState::SynSent as u8) {
                if woken.is_none() {
                    self.cursor += 1;
                }
                continue;
            }
            self.holding.swap_remove(k);
            self.clear(i);
            let (b, len) = p.held?;
            self.free.push(b);
            if state.is_none() {
                return Some(0);
            }
            let len = usize::from(len).min(out.len());
            out[..len].copy_from_slice(&self.pool[usize::from(b)][..len]);
            return Some(len);
        }
        if self.holding.is_empty() {
            self.woken.clear();
        }
        None
    }

    /// Retransmits due SYNs and gives up on servers that never answered. `send` transmits
    /// a frame on a port (true if it went out).
    pub fn step(
        &mut self,
        conns: &ConnTable,
        tables: &Tables,
        neigh: &NeighMap,
        now: u32,
        counters: &WorkerCounters,
        mut send: impl FnMut(u8, &[u8]) -> bool,
    ) {
        if self.live == 0 || !due(self.next_scan, now) {
            return;
        }
        self.next_scan = now.wrapping_add(SCAN_EVERY_MS);
        for (slot, owner) in self.slots.iter_mut().zip(self.ids.iter_mut()) {
            let Some(p) = slot else { continue };
            if !due(p.due, now) {
                continue;
            }
            let waiting = conns.get(p.id).filter(|(c, _)| {
                c.flags & conn_flags::SYNPROXY != 0 && c.state == TcpState::SynSent as u8
            });
            let Some((conn, _)) = waiting else {
                if p.held.is_none() {
                    (*slot, *owner) = (None, None);
                    self.live -= 1;
                }
                continue;
            };
            if usize::from(p.sent) < BACKOFF_MS.len() - 1 {
                let f = &mut p.frame[..usize::from(p.len)];
                if let Verdict::Forward(port) = l2_out(tables, neigh, f, p.egress, p.hop) {
                    send(port, f);
                }
                counters.synproxy_syn_retransmits.add(1);
                p.sent += 1;
                p.due = now.wrapping_add(BACKOFF_MS[usize::from(p.sent)]);
                continue;
            }
            // The server never answered: reset the client and let the entry go (a held
            // segment is then dropped and counted by `ready`).
            let (rst, id) = (p.rst, p.id);
            if p.held.is_none() {
                (*slot, *owner) = (None, None);
                self.live -= 1;
            } else {
                p.due = now.wrapping_add(BACKOFF_MS[BACKOFF_MS.len() - 1]);
            }
            if conns.remove(id) {
                crate::lifecycle::unbind(tables, &conn);
            }
            counters.synproxy_failures.add(1);
            let mut f = [0u8; 256];
            if let Some(n) = client_answer(&mut f, &rst) {
                let client = IpKey {
                    v6: rst.v6,
                    addr: rst.client,
                };
                if let Some((port, hop)) = tables.route(&client) {
                    if let Verdict::Forward(port) = l2_out(tables, neigh, &mut f[..n], port, hop) {
                        send(port, &f[..n]);
                    }
                }
            }
        }
    }
}

/// The client's answer when its server never answered: `503` and FIN for a layer-7 HTTP
/// request (as HAProxy answers when its connect attempts time out), else a RST
/// ([`client_reset`]).
fn client_answer(out: &mut [u8], r: &ClientReset) -> Option<usize> {
    let Some((end, ts)) = r.http else {
        return client_reset(out, r);
    };
    let eth = out.get_mut(..14)?;
    eth[12..14].copy_from_slice(if r.v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    let side = super::layer7::Side {
        seq: r.seq,
        ack: end,
        // The client's latest TSval is not kept: an echo of 0 (RFC 7323 §4.3).
        ts: ts.map(|ours| (0, ours)),
        wscale: None,
    };
    super::layer7::write_reply(
        out,
        14,
        if r.v6 { L3::V6 } else { L3::V4 },
        (r.client, r.client_port),
        (r.vip, r.vip_port),
        &side,
        super::layer7::Reply::Http(super::layer7::UNAVAILABLE),
    )
}

/// Writes an Ethernet frame carrying a RST|ACK from the VIP to the client (MACs are filled
/// in by `l2_out`). Its length, or `None` if `out` is too short.
pub fn client_reset(out: &mut [u8], r: &ClientReset) -> Option<usize> {
    let eth = out.get_mut(..14)?;
    eth[12..14].copy_from_slice(if r.v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    let seg = Segment {
        src: r.vip,
        dst: r.client,
        ttl: 64,
        sport: r.vip_port,
        dport: r.client_port,
        seq: r.seq,
        ack: r.ack,
        flags: flags::RST | flags::ACK,
        window: 0,
        options: &[],
    };
    uvs_wire::write_segment(out, 14, if r.v6 { L3::V6 } else { L3::V4 }, &seg)
}
