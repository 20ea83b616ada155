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
//! and a fixed entry (see [`Heads::ENTRY_BYTES`]; the table is `heads`); both the count and the bytes are
//! bounded per worker and shown as gauges (`layer7_pending`, `layer7_pending_bytes`).

use uvs_wire::tcp::flags;
use uvs_wire::{TcpFields, L3};

pub(crate) use super::heads::{Cookie, HeadKey};
use super::heads::{Head, LINK_MAX};
pub use super::heads::{Heads, MAX_PENDING, MAX_PENDING_BYTES, REPLAY_BACKOFF_MS};
use super::layer7::{answer, Decision, Layer7Rt, Reply};
use crate::pipeline::{Ctx, Packet};
use crate::tables::ServiceRt;
use crate::verdict::{DropReason, Verdict};

/// The first data segment returned a valid cookie but its head goes on: keep its bytes
/// and acknowledge them (or refuse when there is no room).
pub(crate) fn start(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    l7: &Layer7Rt,
    cookie: Cookie,
    t: &TcpFields,
) -> Verdict {
    let p = &pkt.p;
    let end = p.l3_end().min(pkt.len);
    let data = &pkt.buf[end.saturating_sub(t.payload_len)..end];
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
        lines: Lines::default(),
        replay: None,
    };
    let side = head.side();
    if data.len() > l7.head_limit {
        let r = head.refusal(super::layer7::TOO_LARGE);
        return answer(ctx, pkt, &side, r, Some(DropReason::Layer7HeadTooLarge));
    }
    if l3_off > LINK_MAX {
        let r = head.refusal(super::layer7::UNAVAILABLE);
        return answer(ctx, pkt, &side, r, Some(DropReason::Layer7PendingFull));
    }
    head.link[..l3_off].copy_from_slice(&pkt.buf[..l3_off]);
    head.bytes = Vec::with_capacity(l7.head_limit.min(4096).max(data.len()));
    head.bytes.extend_from_slice(data);
    let full = head.refusal(super::layer7::UNAVAILABLE);
    if ctx.proxy_syns.heads.insert(head).is_none() {
        return answer(ctx, pkt, &side, full, Some(DropReason::Layer7PendingFull));
    }
    answer(ctx, pkt, &side, Reply::Ack, None)
}

/// A segment of a client whose head is pending in slot `i`.
pub(crate) fn segment(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    svc: &std::sync::Arc<ServiceRt>,
    i: u16,
) -> Verdict {
    let p = &pkt.p;
    let Ok(t) = uvs_wire::tcp_fields(pkt.frame(), p) else {
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
    let end = p.l3_end().min(pkt.len);
    let data = &pkt.buf[end.saturating_sub(t.payload_len)..end];
    let off = t.seq.wrapping_sub(h.nxt) as i32;
    if off > 0 {
        // A gap: not ours to fill. The duplicate ACK tells the client what is missing.
        let side = h.side();
        let r = Some(DropReason::Layer7OutOfOrder);
        return answer(ctx, pkt, &side, Reply::Ack, r);
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
        return answer(ctx, pkt, &side, Reply::Ack, None);
    }
    if heads.bytes + new.len() > MAX_PENDING_BYTES {
        let h = heads.get(i).expect("found above");
        let (side, r) = (h.side(), h.refusal(super::layer7::UNAVAILABLE));
        heads.remove(i);
        return answer(ctx, pkt, &side, r, Some(DropReason::Layer7PendingFull));
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
    // Read the head again only when these bytes may have ended it (or end the client's
    // side, or pass the limit): re-reading all of it on every segment costs O(head²)
    // (`uvs-bench l7head`: 13.6x NAT's per-segment cost re-reading, 8-10x not;
    // ARCHITECTURE.md). In between, each line is checked once as it completes
    // ([`Lines`]), so a malformed head is refused when its first bad line is complete.
    // An HTTP/2 preface (prior knowledge) is not an HTTP/1 head: `decide` reads it whole.
    let sound = h.tls || super::layer7::is_h2_preface(&h.bytes) || h.lines.check(&h.bytes);
    let decision = if !sound {
        Decision::BadHttp
    } else if may_end(&h.bytes, new.len(), h.tls) || fin || h.bytes.len() > l7.head_limit {
        l7.decide(&h.bytes)
    } else {
        Decision::Partial
    };
    let (held, tls, mut side) = (h.bytes.len(), h.tls, h.side());
    let refuse = |body| if tls { Reply::Reset } else { Reply::Http(body) };
    let (reply, reason) = match decision {
        // A FIN with the head's end is left unacknowledged: the client sends it again,
        // and it then reaches the server behind the replayed head.
        Decision::Pool { pool, complete } => {
            if !complete {
                ctx.counters.layer7_incomplete.add(1);
            }
            return complete_head(ctx, pkt, svc, i, pool);
        }
        Decision::Partial if held > l7.head_limit => (
            refuse(super::layer7::TOO_LARGE),
            DropReason::Layer7HeadTooLarge,
        ),
        Decision::Partial if !fin => {
            return answer(ctx, pkt, &side, Reply::Ack, None);
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
    answer(ctx, pkt, &side, reply, Some(reason))
}

/// How far a pending HTTP head is known to be sound: httparse read its complete lines one
/// by one as they arrived — the request line as a request with no headers yet, each header
/// line as a header block of one — each `Partial` (sound so far) or an error. httparse
/// reads a head line by line with no state between lines, so a line it refuses alone it
/// refuses in the whole head: the head is malformed and answered 400 at once, not 431
/// when it reaches the limit. Only the lines the whole read would reach are checked: past
/// [`MAX_HEADERS`](super::layer7::MAX_HEADERS) + 1 header lines it stops with
/// `TooManyHeaders` (the head goes to the default pool), and at the blank line the head
/// ends and is read whole. A line still incomplete is read as far as it goes once, in the
/// segment it starts in (httparse refuses a bad byte without waiting for the line's end),
/// then again when it ends (or the head is read whole at the limit): each byte is read
/// here at most twice, never O(head²).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Lines {
    /// Bytes of complete lines checked.
    sound: u32,
    /// Non-empty lines checked (the request line first).
    lines: u16,
    /// Where the incomplete line last read as far as it went starts (`sound + 1`; 0: none).
    tail: u32,
}

impl Lines {
    /// Checks the lines of `b` completed since the last call, and the start of a line begun
    /// since; false if one is malformed.
    pub(crate) fn check(&mut self, b: &[u8]) -> bool {
        loop {
            if usize::from(self.lines) > super::layer7::MAX_HEADERS + 1 {
                return true;
            }
            let from = self.sound as usize;
            let rest = b.get(from..).unwrap_or(&[]);
            let Some(lf) = rest.iter().position(|&c| c == b'\n') else {
                // A line begun: read it as far as it goes, once.
                if rest.is_empty() || self.tail == self.sound + 1 {
                    return true;
                }
                self.tail = self.sound + 1;
                return self.read(rest).is_ok();
            };
            let line = &rest[..=lf];
            let empty = line == b"\n" || line == b"\r\n";
            if empty && self.lines > 0 {
                // The blank line: the head ends here and is read whole.
                return true;
            }
            // Empty lines before the request line are skipped (RFC 9112 §2.2), as httparse
            // skips them.
            if !empty {
                if self.read(line).is_err() {
                    return false;
                }
                self.lines += 1;
            }
            self.sound = (from + lf + 1) as u32;
        }
    }

    /// httparse's reading of one line (or the start of one): the request line as a request
    /// with no headers yet, a header line as a header block of one.
    fn read(&self, line: &[u8]) -> Result<(), httparse::Error> {
        if self.lines == 0 {
            super::layer7::http_config()
                .parse_request(&mut httparse::Request::new(&mut []), line)
                .map(|_| ())
        } else {
            httparse::parse_headers(line, &mut [httparse::EMPTY_HEADER; 1]).map(|_| ())
        }
    }
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
fn complete_head(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    svc: &std::sync::Arc<ServiceRt>,
    i: u16,
    pool: usize,
) -> Verdict {
    let v6 = pkt.p.l3 == L3::V6;
    let Some(h) = ctx.proxy_syns.heads.get(i) else {
        return Verdict::Drop(DropReason::SynProxyNotReady);
    };
    let (side, cookie, window, nxt) = (h.side(), h.cookie, h.window, h.nxt);
    let unavailable = h.refusal(super::layer7::UNAVAILABLE);
    let http = !h.tls && !super::layer7::is_h2_preface(&h.bytes);
    let Some(slot) = super::layer7::choose(ctx, svc, &pkt.p, v6, pool) else {
        ctx.proxy_syns.heads.remove(i);
        let r = Some(DropReason::Layer7NoServer);
        return answer(ctx, pkt, &side, unavailable, r);
    };
    let o = super::handshake::Opening {
        cookie,
        window,
        next: nxt,
        pool: Some(pool),
        early: false,
        replay: Some((i, nxt)),
        http_end: http.then_some(nxt),
    };
    let v = super::handshake::open(ctx, pkt, svc, slot, o);
    if !ctx.proxy_syns.heads.replaying(i) {
        // The connection could not be opened (table full, no local port): the head goes.
        // uvs acknowledged its bytes, so the client must hear why rather than wait.
        ctx.proxy_syns.heads.remove(i);
        if let Verdict::Drop(r) = v {
            ctx.counters.drop(r);
            return answer(ctx, pkt, &side, unavailable, None);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::{may_end, Lines};

    #[test]
    fn lines_are_checked_once_complete_and_a_bad_one_is_found() {
        let mut l = Lines::default();
        assert!(l.check(b"GET / HT"), "nothing complete yet");
        assert!(l.check(b"GET / HTTP/1.1\r\nHost: a\r\nX-Pa"));
        assert!(l.check(b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 1\r\nBad"));
        // The line was read as far as it went when it began; its fault shows at its end.
        assert!(l.check(b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 1\r\nBad line"));
        assert!(!l.check(b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 1\r\nBad line\r\n"));
        // A fault in the part of a line that came with its start shows at once.
        let mut l = Lines::default();
        assert!(l.check(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!l.check(b"GET / HTTP/1.1\r\nHost: a\r\nBad line"));
        // A bad request line, after empty lines httparse skips.
        assert!(!Lines::default().check(b"\r\nGET / HTTX/1.1\r\n"));
        assert!(Lines::default().check(b"\r\nGET / HTTP/1.1\r\n"));
        // A bare LF ends a line too; a CR alone does not.
        assert!(Lines::default().check(b"GET / HTTP/1.0\nA: 1\n"));
        assert!(!Lines::default().check(b"GET / HTTP/1.1\r\nA: 1\rB: 2\r\n"));
        // Past the blank line nothing is checked: the head is read whole there.
        assert!(Lines::default().check(b"GET / HTTP/1.1\r\n\r\nnot a header\r\n"));
    }

    #[test]
    fn lines_past_the_headers_read_are_not_checked() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=crate::synproxy::layer7::MAX_HEADERS {
            head.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        let mut l = Lines::default();
        assert!(l.check(&head));
        head.extend_from_slice(b"No colon here\r\n");
        assert!(
            l.check(&head),
            "httparse stops with TooManyHeaders before it"
        );
        // The line just before that is still checked.
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..crate::synproxy::layer7::MAX_HEADERS {
            head.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        head.extend_from_slice(b"No colon here\r\n");
        assert!(!Lines::default().check(&head));
    }

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
