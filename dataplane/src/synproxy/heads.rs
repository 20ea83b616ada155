//! One worker's pending layer-7 request heads ([`super::head`]): the table (an index by
//! the client's tuple over a slab of entries, bounded in count and bytes), the replays to
//! the servers, and the timeouts.

use std::collections::HashMap;

use uvs_conntrack::{tcp::TcpState, ConnId, ConnTable};
use uvs_wire::tcp::flags;
use uvs_wire::{tcp_options, Parsed, Segment, L3};

use super::cookie::SynOptions;
use super::layer7::{write_reply, Reply, Side};
use super::{Opts, SpliceTable};
use crate::counters::WorkerCounters;
use crate::neigh::NeighMap;
use crate::pipeline::{ip, l2_out};
use crate::tables::Tables;
use crate::verdict::{DropReason, Verdict};

/// Pending heads per worker (clients still sending, and heads waiting for their server's
/// acknowledgement).
pub const MAX_PENDING: usize = 1024;
/// Bytes of pending heads per worker.
pub const MAX_PENDING_BYTES: usize = 16 << 20;
/// Waits after the replay and after each retransmission of it; when the last one ends
/// it is given up and, the connection being open, both sides are reset (as the SYN
/// retransmissions, `retransmit::BACKOFF_MS`).
pub const REPLAY_BACKOFF_MS: [u32; 3] = [1000, 2000, 4000];
/// How often pending heads are checked for their timeout.
const SCAN_EVERY_MS: u32 = 10;
/// Longest link header kept to write frames to the client later (Ethernet, two tags).
pub(super) const LINK_MAX: usize = 22;

/// A client's tuple, as it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct HeadKey {
    v6: bool,
    client: [u8; 16],
    vip: [u8; 16],
    cport: u16,
    vport: u16,
}

impl HeadKey {
    pub(crate) fn of(p: &Parsed) -> Self {
        Self {
            v6: p.l3 == L3::V6,
            client: p.src,
            vip: p.dst,
            cport: p.sport,
            vport: p.dport,
        }
    }
}

/// What the cookie returned: the two ISNs, the client's SYN options, the timestamps
/// (the client's latest TSval, uvs's).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cookie {
    pub client_isn: u32,
    pub our_isn: u32,
    pub opts: SynOptions,
    pub ts: Option<(u32, u32)>,
}

pub(super) struct Head {
    pub(super) key: HeadKey,
    pub(super) cookie: Cookie,
    /// The client's next sequence number.
    pub(super) nxt: u32,
    /// The client's latest window (as on the wire).
    pub(super) window: u16,
    pub(super) link: [u8; LINK_MAX],
    pub(super) l3_off: u8,
    pub(super) deadline: u32,
    pub(super) tls: bool,
    pub(super) bytes: Vec<u8>,
    /// How much of an HTTP head is known to be sound, line by line ([`super::head`]).
    pub(super) lines: super::head::Lines,
    pub(super) replay: Option<Replay>,
}

impl Head {
    pub(super) fn side(&self) -> Side {
        Side {
            seq: self.cookie.our_isn.wrapping_add(1),
            ack: self.nxt,
            ts: self.cookie.ts,
            wscale: self.cookie.opts.wscale,
        }
    }

    /// The answer to a refusal: HTTP `body`, or a RST for a TLS client.
    pub(super) fn refusal(&self, body: &'static [u8]) -> Reply {
        if self.tls {
            Reply::Reset
        } else {
            Reply::Http(body)
        }
    }
}

#[derive(Clone, Copy)]
pub(super) struct Replay {
    id: ConnId,
    sent: u8,
    due: u32,
}

/// One worker's pending heads.
#[derive(Default)]
pub struct Heads {
    slots: Vec<Option<Head>>,
    free: Vec<u16>,
    by_key: HashMap<HeadKey, u16>,
    replaying: Vec<u16>,
    /// Replays given up on while their connection was open: the client is reset by
    /// [`Heads::step`] (it has nothing left to retransmit, uvs acknowledged its head).
    lost: Vec<u16>,
    pub(super) bytes: usize,
    next_scan: u32,
    /// The replay being written: slot and offset of its next segment.
    cursor: Option<(u16, usize)>,
    /// Next index into `replaying` for this round of [`Heads::next_replay`].
    scan: usize,
    pub(super) dirty: bool,
}

fn due(deadline: u32, now: u32) -> bool {
    (now.wrapping_sub(deadline) as i32) >= 0
}

impl Heads {
    /// The fixed bytes of one pending client (its entry, its slot in the index), besides
    /// the head's own bytes.
    pub const ENTRY_BYTES: usize = std::mem::size_of::<Option<Head>>()
        + std::mem::size_of::<(HeadKey, u16)>()
        + 2 * std::mem::size_of::<u16>();

    /// Pending heads on this worker.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes they hold.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Publishes the gauges if anything changed.
    pub fn publish(&mut self, c: &WorkerCounters) {
        if self.dirty {
            self.dirty = false;
            c.layer7_pending.set(self.len() as u64);
            c.layer7_pending_bytes.set(self.bytes as u64);
        }
    }

    pub(crate) fn find(&self, k: &HeadKey) -> Option<u16> {
        if self.by_key.is_empty() {
            return None;
        }
        self.by_key.get(k).copied()
    }

    pub(super) fn insert(&mut self, h: Head) -> Option<u16> {
        if self.len() >= MAX_PENDING || self.bytes + h.bytes.len() > MAX_PENDING_BYTES {
            return None;
        }
        if self.by_key.capacity() == 0 {
            // Once, so the index never rehashes on the packet path.
            self.by_key.reserve(MAX_PENDING);
        }
        self.bytes += h.bytes.len();
        let key = h.key;
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[usize::from(i)] = Some(h);
                i
            }
            None => {
                self.slots.push(Some(h));
                (self.slots.len() - 1) as u16
            }
        };
        self.by_key.insert(key, i);
        self.dirty = true;
        Some(i)
    }

    pub(super) fn remove(&mut self, i: u16) {
        let Some(h) = self.slots.get_mut(usize::from(i)).and_then(Option::take) else {
            return;
        };
        self.bytes -= h.bytes.len();
        if h.replay.is_none() {
            self.by_key.remove(&h.key);
        } else if let Some(k) = self.replaying.iter().position(|&x| x == i) {
            self.replaying.swap_remove(k);
        } else if let Some(k) = self.lost.iter().position(|&x| x == i) {
            self.lost.swap_remove(k);
        }
        self.free.push(i);
        self.dirty = true;
    }

    pub(super) fn get(&mut self, i: u16) -> Option<&mut Head> {
        self.slots.get_mut(usize::from(i)).and_then(Option::as_mut)
    }

    /// The head of slot `i` is complete and its connection `id` open: it leaves the index
    /// (later segments of the tuple are the connection's) and waits to be replayed.
    pub(crate) fn start_replay(&mut self, i: u16, id: ConnId, now: u32) {
        let Some(h) = self.get(i) else { return };
        if h.replay.is_some() {
            return;
        }
        h.replay = Some(Replay {
            id,
            sent: 0,
            due: now,
        });
        let key = h.key;
        self.by_key.remove(&key);
        self.replaying.push(i);
    }

    /// The head replaying for connection `old` goes to connection `new` instead (`old`'s
    /// server refused it and `new` is the same client's connection to another server):
    /// replayed from its start once `new`'s server answers.
    pub(super) fn redirect(&mut self, old: ConnId, new: ConnId, now: u32) {
        for &i in &self.replaying {
            let Some(Some(h)) = self.slots.get_mut(usize::from(i)) else {
                continue;
            };
            if let Some(r) = h.replay.as_mut().filter(|r| r.id == old) {
                *r = Replay {
                    id: new,
                    sent: 0,
                    due: now,
                };
                return;
            }
        }
    }

    pub(super) fn replaying(&self, i: u16) -> bool {
        self.slots
            .get(usize::from(i))
            .is_some_and(|h| h.as_ref().is_some_and(|h| h.replay.is_some()))
    }

    /// The next frame of a due replay, written into `out` (a client segment to the VIP,
    /// for the pipeline); its length. Frees heads whose server acknowledged them or
    /// whose connection is gone. `None` when nothing more is due this round.
    pub fn next_replay(
        &mut self,
        conns: &ConnTable,
        splices: &SpliceTable,
        now: u32,
        out: &mut [u8],
        counters: &WorkerCounters,
    ) -> Option<usize> {
        loop {
            if let Some((i, off)) = self.cursor.take() {
                let Some(h) = self.slots.get(usize::from(i)).and_then(Option::as_ref) else {
                    continue;
                };
                let Some(r) = h.replay else { continue };
                let (_, opts) = splices.load(r.id);
                // RFC 9293 §3.7.1: no MSS option means 536 (IPv4) / 1220 (IPv6).
                let mss = opts
                    .server_mss()
                    .unwrap_or(if h.key.v6 { 1220 } else { 536 });
                let l3_off = usize::from(h.l3_off);
                let ip_len = if h.key.v6 { 40 } else { 20 };
                let mut o = [0u8; 12];
                // The client's latest TSval; the echo of uvs's, as the client would send.
                let k = match h.cookie.ts {
                    Some((v, ours)) => tcp_options::write_ts_option(&mut o, (v, ours)),
                    None => 0,
                };
                // The MSS counts no options: the timestamps come out of it (RFC 9293
                // §3.7.1, RFC 6691).
                let room = out.len().saturating_sub(l3_off + ip_len + 20 + k);
                let n = usize::from(mss)
                    .saturating_sub(k)
                    .min(room)
                    .min(h.bytes.len() - off)
                    .max(1);
                out[..l3_off].copy_from_slice(&h.link[..l3_off]);
                let seg = Segment {
                    src: h.key.client,
                    dst: h.key.vip,
                    ttl: 64,
                    sport: h.key.cport,
                    dport: h.key.vport,
                    seq: h.cookie.client_isn.wrapping_add(1 + off as u32),
                    ack: h.cookie.our_isn.wrapping_add(1),
                    flags: flags::ACK | flags::PSH,
                    window: h.window,
                    options: &o[..k],
                };
                let l3 = if h.key.v6 { L3::V6 } else { L3::V4 };
                let written =
                    uvs_wire::write_data_segment(out, l3_off, l3, &seg, &h.bytes[off..off + n]);
                if off + n < h.bytes.len() {
                    self.cursor = Some((i, off + n));
                }
                match written {
                    Some(len) => return Some(len),
                    None => {
                        // Cannot happen (the piece was sized to fit); never skip bytes.
                        self.cursor = None;
                        counters.drop(DropReason::Layer7ReplayLost);
                        self.remove(i);
                        continue;
                    }
                }
            }
            let Some(&i) = self.replaying.get(self.scan) else {
                self.scan = 0;
                return None;
            };
            let (r, key) = match self.slots.get(usize::from(i)).and_then(Option::as_ref) {
                Some(Head {
                    replay: Some(r),
                    key,
                    ..
                }) => (*r, *key),
                _ => {
                    self.replaying.swap_remove(self.scan);
                    continue;
                }
            };
            // The entry must still be this client's (its slot may have been reused).
            let state = conns
                .get(r.id)
                .filter(|(c, _)| c.orig.src == key.client && c.orig.sport == key.cport)
                .map(|(c, _)| c.state);
            let give_up = match state {
                None => true,
                Some(s) if s == TcpState::SynSent as u8 => {
                    self.scan += 1;
                    continue;
                }
                Some(_) => {
                    let (_, opts) = splices.load(r.id);
                    if opts.has(Opts::REPLAY_ACKED) {
                        self.remove(i);
                        continue;
                    }
                    if !due(r.due, now) {
                        self.scan += 1;
                        continue;
                    }
                    usize::from(r.sent) >= REPLAY_BACKOFF_MS.len()
                }
            };
            if give_up {
                counters.drop(DropReason::Layer7ReplayLost);
                if state.is_none() {
                    self.remove(i);
                    continue;
                }
                // The server took the handshake but never the head: end the connection
                // as a SYN that is never answered ends (`retransmit`). A RST from the
                // client's side goes through the pipeline, which resets the server's half
                // and closes the entry; the client gets its own RST from `step` (uvs
                // acknowledged its head, so its TCP would otherwise wait for an answer
                // that cannot come).
                self.replaying.swap_remove(self.scan);
                self.lost.push(i);
                let Some(h) = self.slots.get(usize::from(i)).and_then(Option::as_ref) else {
                    continue;
                };
                let l3_off = usize::from(h.l3_off);
                out[..l3_off].copy_from_slice(&h.link[..l3_off]);
                let seg = Segment {
                    src: h.key.client,
                    dst: h.key.vip,
                    ttl: 64,
                    sport: h.key.cport,
                    dport: h.key.vport,
                    seq: h.cookie.client_isn.wrapping_add(1),
                    ack: h.cookie.our_isn.wrapping_add(1),
                    flags: flags::RST | flags::ACK,
                    window: 0,
                    options: &[],
                };
                let l3 = if h.key.v6 { L3::V6 } else { L3::V4 };
                match uvs_wire::write_segment(out, l3_off, l3, &seg) {
                    Some(len) => return Some(len),
                    None => continue,
                }
            }
            if let Some(h) = self.get(i) {
                if let Some(r) = h.replay.as_mut() {
                    r.due = now.wrapping_add(REPLAY_BACKOFF_MS[usize::from(r.sent)]);
                    r.sent += 1;
                }
            }
            self.scan += 1;
            self.cursor = Some((i, 0));
        }
    }

    /// Sends slot `i`'s client the answer `reply` makes of its head (a reset, or an HTTP
    /// refusal and FIN), out of the port towards the client with the head's link header,
    /// and frees the slot.
    fn answer_and_free(
        &mut self,
        i: u16,
        reply: impl FnOnce(&Head) -> Reply,
        tables: &Tables,
        neigh: &NeighMap,
        send: &mut impl FnMut(u8, &[u8]) -> bool,
    ) {
        let Some(h) = self.slots[usize::from(i)].as_ref() else {
            return;
        };
        let mut f = [0u8; 256];
        let l3_off = usize::from(h.l3_off);
        f[..l3_off].copy_from_slice(&h.link[..l3_off]);
        let written = write_reply(
            &mut f,
            l3_off,
            if h.key.v6 { L3::V6 } else { L3::V4 },
            (h.key.client, h.key.cport),
            (h.key.vip, h.key.vport),
            &h.side(),
            reply(h),
        );
        let client = ip(h.key.v6, h.key.client);
        self.remove(i);
        let Some(n) = written else { return };
        if let Some((port, hop)) = tables.route(&client) {
            if let Verdict::Forward(port) = l2_out(tables, neigh, &mut f[..n], port, hop) {
                send(port, &f[..n]);
            }
        }
    }

    /// Answers and frees heads not complete within their timeout (408 and FIN, a RST for
    /// TLS). `send` transmits a frame on a port.
    pub fn step(
        &mut self,
        tables: &Tables,
        neigh: &NeighMap,
        now: u32,
        counters: &WorkerCounters,
        mut send: impl FnMut(u8, &[u8]) -> bool,
    ) {
        while let Some(i) = self.lost.pop() {
            self.answer_and_free(i, |_| Reply::Reset, tables, neigh, &mut send);
        }
        if self.by_key.is_empty() || !due(self.next_scan, now) {
            return;
        }
        self.next_scan = now.wrapping_add(SCAN_EVERY_MS);
        for i in 0..self.slots.len() as u16 {
            let Some(h) = self.slots[usize::from(i)].as_ref() else {
                continue;
            };
            if h.replay.is_some() || !due(h.deadline, now) {
                continue;
            }
            counters.drop(DropReason::Layer7HeadTimeout);
            self.answer_and_free(
                i,
                |h| h.refusal(super::layer7::TIMEOUT),
                tables,
                neigh,
                &mut send,
            );
        }
    }
}
