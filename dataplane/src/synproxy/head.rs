//! Layer 7: a request head (or TLS ClientHello) longer than the client's first segment,
//! received by uvs itself before it chooses the pool (delayed binding, as IPVS-era L7
//! switches and HAProxy's `mode http` do it).
//!
//! When the first data segment returns a valid cookie but the head does not end in it, the
//! worker creates a pending head for the client's tuple (the segments of one tuple reach
//! one worker) and acknowledges the bytes: the client sends on. Each later segment is
//! matched by its tuple (the cookie no longer checks: the client's SEQ moved on):
//!
//! - in order (SEQ = the next byte expected, or a retransmission overlapping it): its new
//!   bytes are appended and acknowledged; the head is read again over all of them;
//! - out of order (SEQ beyond the next byte): dropped and counted (`layer7_out_of_order`),
//!   the client is sent a duplicate ACK (RFC 9293 §3.10.7.4) and retransmits; never
//!   silently lost, as nothing past the acknowledged bytes is acknowledged;
//! - a RST or SYN frees the state (`layer7_head_aborted`); a FIN before the head ends is
//!   a truncated head, answered 400.
//!
//! Refusals: over `head_limit` bytes without the head's end, `431 Request Header Fields
//! Too Large` and FIN (`layer7_head_too_large`); not complete within `head_timeout` of the
//! first segment, `408 Request Timeout` and FIN (`layer7_head_timeout`), HAProxy's answer
//! on `timeout http-request`: the client learns why (a RST would look like a network
//! fault, and browsers retry it); no room on the worker ([`MAX_PENDING`] clients or
//! [`MAX_PENDING_BYTES`]), `503 Service Unavailable` (`layer7_pending_full`). A TLS client
//! gets a RST instead of any HTTP answer. Each refusal frees the state at once.
//!
//! Once the head is complete the pool is chosen and the SYN proxy goes on as for a
//! one-segment head (entry, SYN to the server), except that uvs owns the bytes: it
//! acknowledged them, so the client will not send them again. After the server's SYN-ACK
//! (on any worker) this worker replays all of them as client segments of the server's MSS
//! through the pipeline (spliced like any client segment, after a PROXY header if any),
//! keeps them until the server acknowledges their end (`Opts::REPLAY_ACKED`, set by the
//! worker that sees that ACK), and sends them again 1 s and 3 s later if not; at 7 s, or
//! when the connection is gone, they are freed and counted (`layer7_replay_lost`).
//!
//! Memory: a pending client costs its head's bytes (at most `head_limit` plus one segment)
//! and a fixed entry (see [`Heads::ENTRY_BYTES`]); both the count and the bytes are
//! bounded per worker and shown as gauges (`layer7_pending`, `layer7_pending_bytes`).

use std::collections::HashMap;

use uvs_conntrack::{tcp::TcpState, ConnId, ConnTable};
use uvs_wire::tcp::flags;
use uvs_wire::{tcp_options, Parsed, Segment, TcpFields, L3};

use super::cookie::SynOptions;
use super::layer7::{answer, write_reply, Decision, Layer7Rt, Reply, Side};
use super::{Opts, SpliceTable};
use crate::counters::WorkerCounters;
use crate::neigh::NeighMap;
use crate::pipeline::{ip, l2_out, Ctx};
use crate::tables::{ServiceRt, Tables};
use crate::verdict::{DropReason, Verdict};

/// Pending heads per worker (clients still sending, and heads waiting for their server's
/// acknowledgement).
pub const MAX_PENDING: usize = 1024;
/// Bytes of pending heads per worker.
pub const MAX_PENDING_BYTES: usize = 16 << 20;
/// Waits after the replay and after each retransmission of it; when the last one ends
/// it is given up (as the SYN retransmissions, `retransmit::BACKOFF_MS`).
pub const REPLAY_BACKOFF_MS: [u32; 3] = [1000, 2000, 4000];
/// How often pending heads are checked for their timeout.
const SCAN_EVERY_MS: u32 = 10;
/// Longest link header kept to write frames to the client later (Ethernet, two tags).
const LINK_MAX: usize = 22;

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

struct Head {
    key: HeadKey,
    cookie: Cookie,
    /// The client's next sequence number.
    nxt: u32,
    /// The client's latest window (as on the wire).
    window: u16,
    link: [u8; LINK_MAX],
    l3_off: u8,
    deadline: u32,
    tls: bool,
    bytes: Vec<u8>,
    replay: Option<Replay>,
}

impl Head {
    fn side(&self) -> Side {
        Side {
            seq: self.cookie.our_isn.wrapping_add(1),
            ack: self.nxt,
            ts: self.cookie.ts,
            wscale: self.cookie.opts.wscale,
        }
    }

    /// The answer to a refusal: HTTP `body`, or a RST for a TLS client.
    fn refusal(&self, body: &'static [u8]) -> Reply {
        if self.tls {
            Reply::Reset
        } else {
            Reply::Http(body)
        }
    }
}

#[derive(Clone, Copy)]
struct Replay {
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
    bytes: usize,
    next_scan: u32,
    /// The replay being written: slot and offset of its next segment.
    cursor: Option<(u16, usize)>,
    /// Next index into `replaying` for this round of [`Heads::next_replay`].
    scan: usize,
    dirty: bool,
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

    fn insert(&mut self, h: Head) -> Option<u16> {
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

    fn remove(&mut self, i: u16) {
        let Some(h) = self.slots.get_mut(usize::from(i)).and_then(Option::take) else {
            return;
        };
        self.bytes -= h.bytes.len();
        if h.replay.is_none() {
            self.by_key.remove(&h.key);
        } else if let Some(k) = self.replaying.iter().position(|&x| x == i) {
            self.replaying.swap_remove(k);
        }
        self.free.push(i);
        self.dirty = true;
    }

    fn get(&mut self, i: u16) -> Option<&mut Head> {
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

    fn replaying(&self, i: u16) -> bool {
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
                self.remove(i);
                continue;
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
                h.refusal(super::layer7::TIMEOUT),
            );
            let client = ip(h.key.v6, h.key.client);
            counters.drop(DropReason::Layer7HeadTimeout);
            self.remove(i);
            let Some(n) = written else { continue };
            if let Some((port, hop)) = tables.route(&client) {
                if let Verdict::Forward(port) = l2_out(tables, neigh, &mut f[..n], port, hop) {
                    send(port, &f[..n]);
                }
            }
        }
    }
}

/// The first data segment returned a valid cookie but its head goes on: keep its bytes
/// and acknowledge them (or refuse when there is no room).
#[allow(clippy::too_many_arguments)]
pub(crate) fn start(
    ctx: &mut Ctx<'_>,
    buf: &mut [u8],
    len: &mut usize,
    p: &Parsed,
    l7: &Layer7Rt,
    cookie: Cookie,
    t: &TcpFields,
) -> Verdict {
    let end = p.l3_end().min(*len);
    let data = &buf[end.saturating_sub(t.payload_len)..end];
    let l3_off = usize::from(p.l3_off);
    let mut head = Head {
        key: HeadKey::of(p),
        cookie,
        nxt: t.seq.wrapping_add(t.payload_len as u32),
        window: t.window,
        link: [0; LINK_MAX],
        l3_off: p.l3_off.min(255) as u8,
        deadline: ctx.now.wrapping_add(l7.head_timeout_ms),
        tls: data.first() == Some(&0x16),
        bytes: Vec::new(),
        replay: None,
    };
    let side = head.side();
    if data.len() > l7.head_limit {
        let r = head.refusal(super::layer7::TOO_LARGE);
        return answer(
            ctx,
            buf,
            len,
            p,
            &side,
            r,
            Some(DropReason::Layer7HeadTooLarge),
        );
    }
    if l3_off > LINK_MAX {
        let r = head.refusal(super::layer7::UNAVAILABLE);
        return answer(
            ctx,
            buf,
            len,
            p,
            &side,
            r,
            Some(DropReason::Layer7PendingFull),
        );
    }
    head.link[..l3_off].copy_from_slice(&buf[..l3_off]);
    head.bytes = Vec::with_capacity(l7.head_limit.min(4096).max(data.len()));
    head.bytes.extend_from_slice(data);
    let full = head.refusal(super::layer7::UNAVAILABLE);
    if ctx.proxy_syns.heads.insert(head).is_none() {
        return answer(
            ctx,
            buf,
            len,
            p,
            &side,
            full,
            Some(DropReason::Layer7PendingFull),
        );
    }
    answer(ctx, buf, len, p, &side, Reply::Ack, None)
}

/// A segment of a client whose head is pending in slot `i`.
pub(crate) fn segment(
    ctx: &mut Ctx<'_>,
    buf: &mut [u8],
    len: &mut usize,
    p: &mut Parsed,
    svc: &std::sync::Arc<ServiceRt>,
    i: u16,
) -> Verdict {
    let Ok(t) = uvs_wire::tcp_fields(&buf[..*len], p) else {
        return Verdict::Drop(DropReason::TcpBadOptions);
    };
    let f = p.tcp_flags;
    let heads = &mut ctx.proxy_syns.heads;
    if f & (flags::RST | flags::SYN) != 0 {
        heads.remove(i);
        return Verdict::Drop(DropReason::Layer7HeadAborted);
    }
    let Some(h) = heads.get(i) else {
        return Verdict::Drop(DropReason::SynProxyNotReady);
    };
    let end = p.l3_end().min(*len);
    let data = &buf[end.saturating_sub(t.payload_len)..end];
    let off = t.seq.wrapping_sub(h.nxt) as i32;
    if off > 0 {
        // A gap: not ours to fill. The duplicate ACK tells the client what is missing.
        let side = h.side();
        let r = Some(DropReason::Layer7OutOfOrder);
        return answer(ctx, buf, len, p, &side, Reply::Ack, r);
    }
    if let (Some((v, _)), Some(ts)) = (t.options.timestamp, h.cookie.ts.as_mut()) {
        ts.0 = v;
    }
    h.window = t.window;
    let skip = off.unsigned_abs() as usize;
    let fin = f & flags::FIN != 0;
    let new = data.get(skip..).unwrap_or(&[]);
    if new.is_empty() && !fin {
        if data.is_empty() {
            // A bare ACK or window update: nothing to answer.
            return Verdict::Drop(DropReason::Layer7AwaitRequest);
        }
        // A retransmission of bytes already acknowledged: acknowledge them again.
        let side = h.side();
        return answer(ctx, buf, len, p, &side, Reply::Ack, None);
    }
    if heads.bytes + new.len() > MAX_PENDING_BYTES {
        let h = heads.get(i).expect("found above");
        let (side, r) = (h.side(), h.refusal(super::layer7::UNAVAILABLE));
        heads.remove(i);
        return answer(
            ctx,
            buf,
            len,
            p,
            &side,
            r,
            Some(DropReason::Layer7PendingFull),
        );
    }
    let h = heads.get(i).expect("found above");
    h.bytes.extend_from_slice(new);
    h.nxt = h.nxt.wrapping_add(new.len() as u32);
    heads.bytes += new.len();
    heads.dirty = true;
    let Some(l7) = svc.layer7.as_ref() else {
        // The service stopped being layer 7 under the client: nothing to decide with.
        heads.remove(i);
        return Verdict::Drop(DropReason::Layer7HeadAborted);
    };
    let h = heads.get(i).expect("found above");
    // Read the head again only when these bytes may have ended it: re-reading all of it
    // on every segment costs O(head²) (measured: 13.6x NAT's per-segment cost with, about
    // 2.6x without, see ARCHITECTURE.md). A malformed head is then found at its end.
    let decision = if may_end(&h.bytes, new.len(), h.tls) || fin {
        l7.decide(&h.bytes)
    } else {
        Decision::Partial
    };
    let (held, tls, mut side) = (h.bytes.len(), h.tls, h.side());
    let refuse = |body| if tls { Reply::Reset } else { Reply::Http(body) };
    let (reply, reason) = match decision {
        Decision::Pool { pool, complete } => {
            if !complete {
                ctx.counters.layer7_incomplete.add(1);
            }
            return complete_head(ctx, buf, len, p, svc, i, pool);
        }
        Decision::Partial if held > l7.head_limit => (
            refuse(super::layer7::TOO_LARGE),
            DropReason::Layer7HeadTooLarge,
        ),
        Decision::Partial if !fin => {
            return answer(ctx, buf, len, p, &side, Reply::Ack, None);
        }
        // The client ended its side inside the head: a truncated request.
        Decision::Partial | Decision::BadHttp if !tls => (
            Reply::Http(super::layer7::BAD_REQUEST),
            DropReason::Layer7BadHttp,
        ),
        _ => (Reply::Reset, DropReason::Layer7BadTls),
    };
    if fin {
        side.ack = side.ack.wrapping_add(1);
    }
    ctx.proxy_syns.heads.remove(i);
    answer(ctx, buf, len, p, &side, reply, Some(reason))
}

/// Whether the last `new` bytes of `b` may end the head: an HTTP head's blank line
/// (RFC 9112 §2.2 accepts a bare LF as the line end) starting in them, or a TLS record's
/// declared length reached.
fn may_end(b: &[u8], new: usize, tls: bool) -> bool {
    if tls {
        return match b.get(3..5) {
            Some(l) => b.len() >= 5 + usize::from(u16::from_be_bytes([l[0], l[1]])),
            None => false,
        };
    }
    let from = b.len().saturating_sub(new + 2);
    let mut k = from;
    while let Some(at) = b[k..].iter().position(|&c| c == b'\n') {
        let lf = k + at;
        match (b.get(lf + 1), b.get(lf + 2)) {
            (Some(b'\n'), _) | (Some(b'\r'), Some(b'\n')) => return true,
            _ => k = lf + 1,
        }
    }
    false
}

/// The head in slot `i` chose `pool`: the pool's server gets the SYN (or the client a 503
/// when there is none), and the head waits to be replayed.
#[allow(clippy::too_many_arguments)]
fn complete_head(
    ctx: &mut Ctx<'_>,
    buf: &mut [u8],
    len: &mut usize,
    p: &mut Parsed,
    svc: &std::sync::Arc<ServiceRt>,
    i: u16,
    pool: usize,
) -> Verdict {
    let v6 = p.l3 == L3::V6;
    let Some(h) = ctx.proxy_syns.heads.get(i) else {
        return Verdict::Drop(DropReason::SynProxyNotReady);
    };
    let (side, cookie, window, nxt) = (h.side(), h.cookie, h.window, h.nxt);
    let unavailable = h.refusal(super::layer7::UNAVAILABLE);
    let Some(slot) = super::layer7::choose(ctx, svc, p, v6, pool) else {
        ctx.proxy_syns.heads.remove(i);
        let r = Some(DropReason::Layer7NoServer);
        return answer(ctx, buf, len, p, &side, unavailable, r);
    };
    let o = super::handshake::Opening {
        cookie,
        window,
        next: nxt,
        pool: Some(pool),
        early: false,
        replay: Some((i, nxt)),
    };
    let v = super::handshake::open(ctx, buf, len, p, svc, slot, o);
    if !ctx.proxy_syns.heads.replaying(i) {
        // The connection could not be opened (table full, no local port): the head goes.
        // uvs acknowledged its bytes, so the client must hear why rather than wait.
        ctx.proxy_syns.heads.remove(i);
        if let Verdict::Drop(r) = v {
            ctx.counters.drop(r);
            return answer(ctx, buf, len, p, &side, unavailable, None);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::may_end;

    #[test]
    fn the_end_of_a_head_is_seen_in_the_new_bytes_or_across_their_start() {
        let h = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(may_end(h, 2, false));
        assert!(
            may_end(h, 1, false),
            "the blank line began in the older bytes"
        );
        assert!(!may_end(&h[..h.len() - 2], 5, false));
        assert!(may_end(b"GET / HTTP/1.0\n\n", 1, false), "bare LFs");
        assert!(!may_end(b"GET / HTTP/1.1\r\nX: 1\r\n", 22, false));
        // TLS: the record's declared length.
        assert!(!may_end(&[0x16, 3, 1, 0, 4, 1, 2, 3], 8, true));
        assert!(may_end(&[0x16, 3, 1, 0, 3, 1, 2, 3], 1, true));
    }
}
