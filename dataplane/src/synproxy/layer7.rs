//! Content-based scheduling (`layer: 7` services): the SYN proxy's handshake, but the real
//! server is chosen from the first request instead of the addresses.
//!
//! The client's bare ACK that returns the cookie creates nothing (it is counted as
//! `layer7_await_request` and dropped): the connection exists only in the cookie until the
//! client's first data segment arrives. That segment carries the same cookie (its ACK is
//! still cookie + 1, its SEQ the client's ISN + 1), so it is checked like the ACK, and its
//! payload is read here:
//!
//! - a TLS record (first byte 0x16): the ClientHello's server name (`uvs_wire::tls_sni`)
//!   against the `sni` rules;
//! - otherwise an HTTP/1.x request head (`httparse`) against the `host`, `path_prefix`,
//!   `header` and `cookie` rules; an absolute-form target (`GET http://host/path`) is read
//!   for its path, and its authority stands for the Host header (`target`).
//!
//! - the HTTP/2 connection preface (prior knowledge, h2c): the default pool, its headers
//!   unread (HPACK), as a head with too many headers (`layer7_incomplete`).
//!
//! The first rule whose conditions all hold names the pool, no match the default pool; the
//! pool's own scheduler (over the service's real servers, those outside the pool or down
//! for its own health check weighted 0) picks the server. Then the SYN proxy goes on as for any connection: entry, SYN to the server,
//! the request held and replayed after its SYN-ACK, splice. Later requests on the same
//! connection go to the same server (first-request binding).
//!
//! A head (or ClientHello) that does not end in that first segment is received by uvs
//! ([`super::head`]): bounded per-worker state, acknowledged segments, a size limit (`431
//! Request Header Fields Too Large`) and a timeout (`408 Request Timeout`); once complete
//! it is decided here and replayed to the server. A head with over [`MAX_HEADERS`] headers
//! goes to the default pool (`layer7_incomplete`). A head `httparse` refuses is answered
//! `400 Bad Request` with FIN, a TLS record that is not a sound ClientHello with a RST
//! (`layer7_bad_http`, `layer7_bad_tls`); a pool without a usable server (and no sorry
//! server) `503 Service Unavailable` (`layer7_no_server`). Nothing is stored for any of
//! them.

use std::sync::Arc;

use uvs_sched::{SchedConfig, Scheduler};
use uvs_wire::tls_sni::{client_hello_sni, Sni};

use uvs_wire::tcp::flags;
use uvs_wire::{tcp_options, Parsed, Segment, TcpFields, L3};

use crate::counters::PerWorkerStats;
use crate::pipeline::{ip, l2_out, sched_key, Ctx, Packet};
use crate::tables::{IpKey, ServiceRt, SORRY_SLOT};
use crate::verdict::{DropReason, Verdict};

/// Headers read from a request head; a head with more goes to the default pool.
pub const MAX_HEADERS: usize = 64;

/// How a request head is read (here and line by line in `head.rs`): httparse's defaults,
/// but for more than one space between the request line's parts, which nginx and HAProxy
/// accept (RFC 9112 §3 allows a recipient to).
pub(crate) fn http_config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_multiple_spaces_in_request_line_delimiters(true);
    c
}

/// The client connection preface of HTTP/2 with prior knowledge (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether `b` starts with the HTTP/2 preface, or is the start of one.
pub(crate) fn is_h2_preface(b: &[u8]) -> bool {
    !b.is_empty() && (b.starts_with(H2_PREFACE) || H2_PREFACE.starts_with(b))
}

/// What control says about a `layer: 7` service.
#[derive(Clone, Debug)]
pub struct Layer7Spec {
    pub pools: Vec<PoolSpec>,
    pub rules: Vec<RuleSpec>,
    /// Index into `pools`.
    pub default_pool: usize,
    /// Longest request head (or ClientHello) read, in bytes (`head_limit`).
    pub head_limit: u32,
    /// Seconds a client has to complete its head (`head_timeout`).
    pub head_timeout_s: u32,
}

/// Default `head_limit`: 8 KiB, as HAProxy's `tune.bufsize` leaves for a head and nginx's
/// `large_client_header_buffers` line.
pub const DEFAULT_HEAD_LIMIT: u32 = 8192;
/// Default `head_timeout`: HAProxy's documented `timeout http-request` example (10 s).
pub const DEFAULT_HEAD_TIMEOUT_S: u32 = 10;

/// A pool: the service's real servers at `members`, scheduled by `sched`.
#[derive(Clone, Debug)]
pub struct PoolSpec {
    pub name: String,
    pub sched: SchedConfig,
    pub members: Vec<IpKey>,
    /// Real servers (address, port) that fail this pool's own health check: unavailable
    /// to this pool only (weighted 0 in its scheduler, as non-members are); the other
    /// pools and the service's own state are unaffected.
    pub down: Vec<(IpKey, u16)>,
}

/// A rule: conditions that must all hold, and its pool (index into `pools`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    /// All of these (an empty list matches nothing: control never sends one).
    pub all: Vec<L7Match>,
    pub pool: usize,
}

impl RuleSpec {
    /// Whether a ClientHello with server name `name` meets every condition (only a rule
    /// of `Sni` conditions can).
    fn matches_sni(&self, name: &[u8]) -> bool {
        !self.all.is_empty()
            && self.all.iter().all(|m| match m {
                L7Match::Sni(pat) => host_matches(pat, name),
                _ => false,
            })
    }

    /// Whether a request head meets every condition: its `path`, its `host` (the
    /// target's authority or the Host header, without the port), its `headers`.
    fn matches_http(
        &self,
        path: ReqPath<'_>,
        host: Option<&[u8]>,
        headers: &[httparse::Header],
    ) -> bool {
        !self.all.is_empty()
            && self.all.iter().all(|m| match m {
                L7Match::Host(pat) => host.is_some_and(|h| host_matches(pat, h)),
                L7Match::PathPrefix(pre) => path.starts_with(pre),
                L7Match::Header { name, value } => {
                    header_values(headers, name).any(|v| v == value.as_bytes())
                }
                L7Match::Cookie { name, value } => header_values(headers, "cookie")
                    .any(|v| cookie_has(v, name.as_bytes(), value.as_bytes())),
                L7Match::Sni(_) => false,
            })
    }
}

/// What a rule compares (names and hosts lowercase, as the configuration stores them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L7Match {
    /// Host header without its port (an absolute-form target's authority instead):
    /// exact, or `*.suffix`.
    Host(String),
    PathPrefix(String),
    Header {
        name: String,
        value: String,
    },
    Cookie {
        name: String,
        value: String,
    },
    /// TLS server name: exact, or `*.suffix`.
    Sni(String),
}

/// A pool as workers see it.
pub struct PoolRt {
    pub name: String,
    pub sched: Scheduler,
    /// `conns` counts the connections the pool took (rule hits, default included).
    pub hits: Arc<PerWorkerStats>,
    /// As in the spec (for status).
    pub members: Vec<IpKey>,
    pub down: Vec<(IpKey, u16)>,
}

/// A `layer: 7` service's pools and rules as workers see them.
pub struct Layer7Rt {
    pub pools: Vec<PoolRt>,
    pub rules: Vec<RuleSpec>,
    pub default_pool: usize,
    pub head_limit: usize,
    pub head_timeout_ms: u32,
}

/// What the first request decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// This pool; `complete` is false for a head with too many headers to read (the
    /// default pool then).
    Pool { pool: usize, complete: bool },
    /// The head (or ClientHello) does not end in these bytes: wait for more.
    Partial,
    /// An HTTP head `httparse` refuses: answer 400.
    BadHttp,
    /// A TLS handshake record that is not a sound ClientHello: reset.
    BadTls,
}

impl Layer7Rt {
    /// Reads the first request's bytes and picks the pool.
    pub fn decide(&self, payload: &[u8]) -> Decision {
        let default = |complete| Decision::Pool {
            pool: self.default_pool,
            complete,
        };
        if payload.first() == Some(&0x16) {
            return match client_hello_sni(payload) {
                Sni::Name(n) => {
                    let pool = self.rules.iter().find(|r| r.matches_sni(n)).map(|r| r.pool);
                    pool.map_or(default(true), |pool| Decision::Pool {
                        pool,
                        complete: true,
                    })
                }
                Sni::None => default(true),
                Sni::Truncated => Decision::Partial,
                Sni::Malformed | Sni::NotTls => Decision::BadTls,
            };
        }
        // HTTP/2 with prior knowledge (h2c, gRPC without TLS): its headers come in HPACK
        // frames uvs does not read, so the default pool, as for a head too long to read.
        if is_h2_preface(payload) {
            return if payload.len() >= H2_PREFACE.len() {
                default(false)
            } else {
                Decision::Partial
            };
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match http_config().parse_request(&mut req, payload) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Decision::Partial,
            Err(httparse::Error::TooManyHeaders) => return default(false),
            Err(_) => return Decision::BadHttp,
        }
        let Some((path, authority)) = target(req.path.unwrap_or("")) else {
            return Decision::BadHttp;
        };
        let host = match authority {
            // RFC 9112 §3.2.2: the target's authority, not the Host header.
            Some(a) => Some(a),
            None => header_values(req.headers, "host").next().map(host_of),
        };
        let hit = self
            .rules
            .iter()
            .find(|r| r.matches_http(path, host, req.headers));
        match hit {
            Some(r) => Decision::Pool {
                pool: r.pool,
                complete: true,
            },
            None => default(true),
        }
    }
}

/// A request's path as `path_prefix` rules compare it: an origin-form target as it is;
/// the path (and query) of an absolute-form target, "/" in front when its path is empty
/// (RFC 9112 §3.2.1: `http://h?q` is `/?q` in origin form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ReqPath<'a> {
    /// A "/" goes before `rest`.
    slash: bool,
    rest: &'a str,
}

impl ReqPath<'_> {
    fn starts_with(&self, pre: &str) -> bool {
        match (self.slash, pre.strip_prefix('/')) {
            (false, _) => self.rest.starts_with(pre),
            (true, Some(p)) => self.rest.starts_with(p),
            (true, None) => pre.is_empty(),
        }
    }
}

/// What rules read from a request target: its path, and for an absolute-form target
/// (RFC 9112 §3.2.2: `scheme "://" authority path`, any scheme of RFC 3986 §3.1 in any
/// case, as nginx and HAProxy read one) its authority's host without the port, which takes
/// the Host header's place. The origin form (and any other) is the path as it is, with no
/// authority. `None` for an absolute-form target a server must refuse: an empty host (RFC
/// 9110 §4.2.1) or user information (§4.2.4).
fn target(t: &str) -> Option<(ReqPath<'_>, Option<&[u8]>)> {
    let as_is = ReqPath {
        slash: false,
        rest: t,
    };
    let scheme_len = t
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
        .unwrap_or(t.len());
    let after = match t.get(scheme_len..).and_then(|r| r.strip_prefix("://")) {
        Some(after) if t.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) => after,
        _ => return Some((as_is, None)),
    };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let host = host_of(authority.as_bytes());
    if host.is_empty() || authority.contains('@') {
        return None;
    }
    let path = ReqPath {
        slash: !rest.starts_with('/'),
        rest,
    };
    Some((path, Some(host)))
}

/// The values of the headers called `name` (case-insensitively, RFC 9110 §5.1).
fn header_values<'h, 'b>(
    headers: &'h [httparse::Header<'b>],
    name: &'h str,
) -> impl Iterator<Item = &'b [u8]> + 'h {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The host of a Host header value: without the port (RFC 9110 §7.2: `uri-host [":"
/// port]`; an IPv6 literal keeps its brackets) and a trailing dot.
fn host_of(v: &[u8]) -> &[u8] {
    let h = if v.first() == Some(&b'[') {
        match v.iter().position(|&b| b == b']') {
            Some(i) => &v[..=i],
            None => v,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => &v[..i],
            None => v,
        }
    };
    h.strip_suffix(b".").unwrap_or(h)
}

/// `pat` (lowercase; exact or `*.suffix`) against a name, case-insensitively (RFC 4343).
fn host_matches(pat: &str, name: &[u8]) -> bool {
    match pat.strip_prefix("*.") {
        Some(suffix) => {
            let s = suffix.as_bytes();
            name.len() > s.len() + 1
                && name[name.len() - s.len() - 1] == b'.'
                && name[name.len() - s.len()..].eq_ignore_ascii_case(s)
        }
        None => name.eq_ignore_ascii_case(pat.as_bytes()),
    }
}

/// Whether a Cookie header value (RFC 6265 §4.2.1: `name=value` pairs separated by `; `)
/// holds `name` with exactly `value`.
fn cookie_has(header: &[u8], name: &[u8], value: &[u8]) -> bool {
    header.split(|&b| b == b';').any(|pair| {
        let pair = pair.trim_ascii();
        match pair.iter().position(|&b| b == b'=') {
            Some(i) => {
                let v = pair[i + 1..].trim_ascii();
                // RFC 6265 §4.1.1: a value may be quoted.
                let v = v
                    .strip_prefix(b"\"")
                    .and_then(|x| x.strip_suffix(b"\""))
                    .unwrap_or(v);
                pair[..i].trim_ascii() == name && v == value
            }
            None => false,
        }
    })
}

/// The response to a head `httparse` refuses (RFC 9110 §15.5.1), closing the connection.
pub const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// The response to a head over `head_limit` (RFC 6585 §5).
pub const TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// The response to a head not complete within `head_timeout` (RFC 9110 §15.5.9), as
/// HAProxy answers on `timeout http-request`.
pub const TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// The response when the chosen pool has no usable server, or uvs has no room to read the
/// head (RFC 9110 §15.6.4).
pub const UNAVAILABLE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The pool's scheduler picks a slot of the service (the sorry server when the pool has no
/// usable server and the service has one).
pub(crate) fn choose(
    ctx: &mut Ctx<'_>,
    svc: &ServiceRt,
    p: &Parsed,
    v6: bool,
    pool: usize,
) -> Option<u16> {
    let l7 = svc.layer7.as_ref()?;
    let pool = l7.pools.get(pool)?;
    match pool.sched.pick(&sched_key(p, v6), &svc.live, ctx.now_s) {
        Some(i) => Some(i as u16),
        None if svc.sorry.is_some() => Some(SORRY_SLOT),
        None => None,
    }
}

/// What uvs says to a client whose connection exists only in its cookie (or in a pending
/// head): an ACK of what it received, an HTTP response with FIN, or a RST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    Ack,
    Http(&'static [u8]),
    /// FIN and ACK, no data: the client closed without a request.
    Fin,
    Reset,
}

/// uvs's side of such a connection: its next sequence number (cookie + 1), the client's
/// next one, the timestamps (client's latest TSval, uvs's), the client's window shift.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Side {
    pub seq: u32,
    pub ack: u32,
    pub ts: Option<(u32, u32)>,
    pub wscale: Option<u8>,
}

/// Writes `reply` over the client's frame (from `l3_off` on) and its length; `None` if it
/// does not fit.
pub(crate) fn write_reply(
    buf: &mut [u8],
    l3_off: usize,
    l3: L3,
    client: ([u8; 16], u16),
    vip: ([u8; 16], u16),
    side: &Side,
    reply: Reply,
) -> Option<usize> {
    let mut o = [0u8; 12];
    // Echo the client's TSval; ours goes on from the cookie's (RFC 7323 §3.2). A RST
    // carries none (RFC 7323 §3.2 allows either).
    let n = match side.ts {
        Some((tsval, ours)) if reply != Reply::Reset => {
            tcp_options::write_ts_option(&mut o, (ours, tsval))
        }
        _ => 0,
    };
    let (flags, window) = match reply {
        // The window the SYN-ACK offered (65535, or the same in the client's view of the
        // shift uvs offered): never shrunk, so a head over the limit is seen, not stalled.
        Reply::Ack => (
            flags::ACK,
            match side.wscale {
                Some(_) => ((65535u32 >> super::OFFERED_WSCALE) + 1) as u16,
                None => 65535,
            },
        ),
        Reply::Http(_) => (flags::ACK | flags::PSH | flags::FIN, 512),
        Reply::Fin => (flags::ACK | flags::FIN, 512),
        Reply::Reset => (flags::RST | flags::ACK, 0),
    };
    let seg = Segment {
        src: vip.0,
        dst: client.0,
        ttl: 64,
        sport: vip.1,
        dport: client.1,
        seq: side.seq,
        ack: side.ack,
        flags,
        window,
        options: &o[..n],
    };
    match reply {
        Reply::Http(body) => uvs_wire::write_data_segment(buf, l3_off, l3, &seg, body),
        _ => uvs_wire::write_segment(buf, l3_off, l3, &seg),
    }
}

/// Answers the client over its own frame and sends it back; `reason` is counted (the
/// frame became the answer). Nothing is stored: the client's later segments of this
/// connection fail the cookie check and are dropped.
pub(crate) fn answer(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    side: &Side,
    reply: Reply,
    reason: Option<DropReason>,
) -> Verdict {
    let Packet { buf, len, p } = pkt;
    let tables = ctx.tables;
    let neigh = ctx.neigh;
    if let Some(r) = reason {
        ctx.counters.drop(r);
    }
    let written = write_reply(
        buf,
        usize::from(p.l3_off),
        p.l3,
        (p.src, p.sport),
        (p.dst, p.dport),
        side,
        reply,
    );
    let Some(n) = written else {
        return Verdict::Drop(reason.unwrap_or(DropReason::TcpBadOptions));
    };
    *len = n;
    let Some((port, hop)) = tables.route(&ip(p.l3 == L3::V6, p.src)) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    l2_out(tables, neigh, buf, port, hop)
}

/// Answers a refused first request: `400 Bad Request` with FIN for a bad HTTP head
/// (`http`), a RST for a bad ClientHello.
pub(crate) fn refuse(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    t: &TcpFields,
    our_isn: u32,
    our_ts: Option<(u32, u32)>,
    http: bool,
) -> Verdict {
    let side = Side {
        seq: our_isn.wrapping_add(1),
        ack: t.seq.wrapping_add(t.payload_len as u32),
        ts: our_ts,
        wscale: None,
    };
    if http {
        answer(
            ctx,
            pkt,
            &side,
            Reply::Http(BAD_REQUEST),
            Some(DropReason::Layer7BadHttp),
        )
    } else {
        answer(
            ctx,
            pkt,
            &side,
            Reply::Reset,
            Some(DropReason::Layer7BadTls),
        )
    }
}

/// A client's FIN that fails the cookie check on a `layer: 7` service: most likely the
/// close that follows uvs's own answer and FIN (uvs kept nothing, so the FIN's SEQ and ACK,
/// past the request and the answer, no longer check). uvs answers as a TCP in TIME-WAIT
/// answers a FIN after its own (RFC 9293 §3.10.7.4; Linux re-ACKs it from its timewait
/// socket): an ACK of the FIN at the FIN's acknowledgement number, the client's TSval
/// echoed and its TSecr (uvs's latest TSval as the client saw it) as uvs's, so the
/// client's LAST-ACK ends instead of retransmitting until it gives up. A FIN carrying data
/// gets a RST there instead (data after the close: Linux aborts on it). Nothing is stored
/// and there is exactly one reply per received segment, no larger than it (a forged FIN
/// cannot make uvs send more than it receives); counted as `layer7_closed_fin`.
pub(crate) fn closed_fin(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>, t: &TcpFields) -> Verdict {
    let side = Side {
        seq: t.ack,
        ack: t.seq.wrapping_add(t.payload_len as u32).wrapping_add(1),
        ts: t.options.timestamp,
        wscale: None,
    };
    let reply = if t.payload_len == 0 {
        Reply::Ack
    } else {
        Reply::Reset
    };
    answer(ctx, pkt, &side, reply, Some(DropReason::Layer7ClosedFin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(rules: Vec<RuleSpec>) -> Layer7Rt {
        let pool = |name: &str| PoolRt {
            name: name.into(),
            sched: Scheduler::build(
                &SchedConfig::new(uvs_sched::SchedulerKind::Rr),
                &[uvs_sched::ServerSpec::new(1, 0)],
            )
            .unwrap(),
            hits: Arc::new(PerWorkerStats::new(1)),
            members: vec![],
            down: vec![],
        };
        Layer7Rt {
            pools: vec![pool("web"), pool("api")],
            rules,
            default_pool: 0,
            head_limit: DEFAULT_HEAD_LIMIT as usize,
            head_timeout_ms: DEFAULT_HEAD_TIMEOUT_S * 1000,
        }
    }

    fn to_api(m: L7Match) -> RuleSpec {
        RuleSpec {
            all: vec![m],
            pool: 1,
        }
    }

    fn api() -> Decision {
        Decision::Pool {
            pool: 1,
            complete: true,
        }
    }

    fn web() -> Decision {
        Decision::Pool {
            pool: 0,
            complete: true,
        }
    }

    #[test]
    fn host_rules_exact_and_suffix_ignore_case_and_port() {
        let l = rt(vec![
            to_api(L7Match::Host("api.example".into())),
            to_api(L7Match::Host("*.svc.example".into())),
        ]);
        assert_eq!(
            l.decide(b"GET / HTTP/1.1\r\nHost: API.example:8080\r\n\r\n"),
            api()
        );
        assert_eq!(
            l.decide(b"GET / HTTP/1.1\r\nHost: a.b.svc.example\r\n\r\n"),
            api()
        );
        // `*.suffix` wants at least one label before the suffix.
        assert_eq!(
            l.decide(b"GET / HTTP/1.1\r\nHost: svc.example\r\n\r\n"),
            web()
        );
        assert_eq!(
            l.decide(b"GET / HTTP/1.1\r\nHost: xsvc.example\r\n\r\n"),
            web()
        );
        assert_eq!(l.decide(b"GET / HTTP/1.1\r\n\r\n"), web());
    }

    #[test]
    fn path_header_and_cookie_rules() {
        let l = rt(vec![
            to_api(L7Match::PathPrefix("/api/".into())),
            to_api(L7Match::Header {
                name: "x-pool".into(),
                value: "api".into(),
            }),
            to_api(L7Match::Cookie {
                name: "pool".into(),
                value: "api".into(),
            }),
        ]);
        assert_eq!(l.decide(b"GET /api/v1 HTTP/1.1\r\nHost: a\r\n\r\n"), api());
        assert_eq!(l.decide(b"GET /apix HTTP/1.1\r\nHost: a\r\n\r\n"), web());
        assert_eq!(l.decide(b"GET / HTTP/1.1\r\nX-Pool: api\r\n\r\n"), api());
        assert_eq!(l.decide(b"GET / HTTP/1.1\r\nX-Pool: apis\r\n\r\n"), web());
        assert_eq!(
            l.decide(b"GET / HTTP/1.1\r\nCookie: a=1; pool=api; b=2\r\n\r\n"),
            api()
        );
        assert_eq!(
            l.decide(b"GET / HTTP/1.1\r\nCookie: pool=\"api\"\r\n\r\n"),
            api()
        );
        assert_eq!(
            l.decide(b"GET / HTTP/1.1\r\nCookie: xpool=api\r\n\r\n"),
            web()
        );
    }

    /// A request line with more than one space between its parts (`GET  /api/v1
    /// HTTP/1.1`) is read as nginx and HAProxy read it (both accept it; HAProxy sends it on
    /// with single spaces): its path is matched, where httparse's default refused it and
    /// the client got 400.
    #[test]
    fn extra_spaces_in_the_request_line_are_read_as_nginx_and_haproxy_read_them() {
        let l = rt(vec![to_api(L7Match::PathPrefix("/api/".into()))]);
        for head in [
            &b"GET  /api/v1 HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET /api/v1  HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET   /api/v1   HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(l.decide(head), api(), "{}", String::from_utf8_lossy(head));
        }
        assert_eq!(l.decide(b"GET  /x HTTP/1.1\r\nHost: a\r\n\r\n"), web());
        let mut lines = super::super::head::Lines::default();
        assert!(lines.check(b"GET  /api/v1  HTTP/1.1\r\nHost: a\r\n"));
    }

    #[test]
    fn combined_rules_need_every_condition() {
        let l = rt(vec![RuleSpec {
            all: vec![
                L7Match::Host("api.example".into()),
                L7Match::PathPrefix("/v2".into()),
                L7Match::Cookie {
                    name: "beta".into(),
                    value: "1".into(),
                },
            ],
            pool: 1,
        }]);
        let all = b"GET /v2/x HTTP/1.1\r\nHost: api.example\r\nCookie: beta=1\r\n\r\n";
        assert_eq!(l.decide(all), api());
        // Any one missing: the default pool.
        for head in [
            &b"GET /v1/x HTTP/1.1\r\nHost: api.example\r\nCookie: beta=1\r\n\r\n"[..],
            b"GET /v2/x HTTP/1.1\r\nHost: www.example\r\nCookie: beta=1\r\n\r\n",
            b"GET /v2/x HTTP/1.1\r\nHost: api.example\r\nCookie: beta=0\r\n\r\n",
            b"GET /v2/x HTTP/1.1\r\nHost: api.example\r\n\r\n",
        ] {
            assert_eq!(l.decide(head), web(), "{}", String::from_utf8_lossy(head));
        }
        // A rule with no condition matches nothing (control never builds one).
        let l = rt(vec![RuleSpec {
            all: vec![],
            pool: 1,
        }]);
        assert_eq!(l.decide(all), web());
    }

    #[test]
    fn incomplete_and_malformed_heads() {
        let l = rt(vec![to_api(L7Match::PathPrefix("/".into()))]);
        assert_eq!(
            l.decide(b"GET / HTTP/1.1\r\nHost: a\r\n"),
            Decision::Partial
        );
        assert_eq!(
            l.decide(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]),
            Decision::Partial
        );
        assert_eq!(
            l.decide(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
            Decision::BadHttp
        );
        assert_eq!(l.decide(b"\x00\x01binary"), Decision::BadHttp);
        assert_eq!(
            l.decide(&[0x16, 0x03, 0x01, 0x00, 0x01, 0x02]),
            Decision::BadTls
        );
    }

    #[test]
    fn an_absolute_form_target_is_read_for_its_path_and_authority() {
        let l = rt(vec![
            to_api(L7Match::PathPrefix("/api/".into())),
            to_api(L7Match::Host("api.example".into())),
        ]);
        // The target's path, whatever the Host header; any scheme's case.
        for head in [
            &b"GET http://www.example/api/x HTTP/1.1\r\nHost: www.example\r\n\r\n"[..],
            b"GET HTTP://www.example/api/x HTTP/1.1\r\n\r\n",
            b"GET hTtPs://[2001:2::1]:8443/api/ HTTP/1.1\r\n\r\n",
            // Its authority replaces the Host header (RFC 9112 §3.2.2), port stripped.
            b"GET http://API.example:8080/ HTTP/1.1\r\nHost: www.example\r\n\r\n",
            b"GET https://api.example. HTTP/1.1\r\n\r\n",
            b"GET http://api.example?q=1 HTTP/1.1\r\n\r\n",
            // Another scheme: nginx and HAProxy read its authority and path the same way.
            b"GET ftp://api.example/x HTTP/1.1\r\nHost: www.example\r\n\r\n",
            b"GET a+b.c-1://www.example/api/ HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(l.decide(head), api(), "{}", String::from_utf8_lossy(head));
        }
        for head in [
            &b"GET http://www.example/apix HTTP/1.1\r\nHost: api.example\r\n\r\n"[..],
            b"GET http://www.example HTTP/1.1\r\nHost: api.example\r\n\r\n",
            // Not absolute-form: the target as it is (no rule's path), and the Host header.
            b"GET /http://x/api/ HTTP/1.1\r\nHost: www.example\r\n\r\n",
            b"GET http:/api/x HTTP/1.1\r\nHost: www.example\r\n\r\n",
        ] {
            assert_eq!(l.decide(head), web(), "{}", String::from_utf8_lossy(head));
        }
        assert_eq!(
            l.decide(b"GET /api/x HTTP/1.1\r\nHost: www.example\r\n\r\n"),
            api()
        );
        // An empty path reads as "/" (RFC 9112 §3.2.1), a query-only one as "/?...".
        let root = rt(vec![to_api(L7Match::PathPrefix("/".into()))]);
        assert_eq!(root.decide(b"GET http://a HTTP/1.1\r\n\r\n"), api());
        let q = rt(vec![to_api(L7Match::PathPrefix("/?a".into()))]);
        assert_eq!(q.decide(b"GET http://h?a=1 HTTP/1.1\r\n\r\n"), api());
        assert_eq!(q.decide(b"GET http://h/x?a=1 HTTP/1.1\r\n\r\n"), web());
        // No host, or user information (RFC 9110 §4.2.1, §4.2.4): refused as a bad head.
        for head in [
            &b"GET http:///api/ HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET http://:80/api/ HTTP/1.1\r\n\r\n",
            b"GET http:// HTTP/1.1\r\n\r\n",
            b"GET http://u:p@api.example/ HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                l.decide(head),
                Decision::BadHttp,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn an_http2_prior_knowledge_connection_goes_to_the_default_pool() {
        // h2c with prior knowledge (RFC 9113 §3.3; gRPC without TLS): the preface, then
        // frames whose HPACK-coded headers uvs does not read. Not a bad HTTP/1 head: the
        // default pool, as a head uvs cannot read whole (`layer7_incomplete`).
        let l = rt(vec![to_api(L7Match::PathPrefix("/".into()))]);
        let settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00";
        let mut first = H2_PREFACE.to_vec();
        first.extend_from_slice(settings);
        let default = Decision::Pool {
            pool: 0,
            complete: false,
        };
        assert_eq!(l.decide(&first), default);
        assert_eq!(l.decide(H2_PREFACE), default);
        // Part of the preface: wait for the rest.
        for n in 1..H2_PREFACE.len() {
            assert_eq!(l.decide(&H2_PREFACE[..n]), Decision::Partial, "{n} bytes");
        }
        // HTTP/2.0 in an HTTP/1 request line is still refused.
        assert_eq!(
            l.decide(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
            Decision::BadHttp
        );
        assert_eq!(
            l.decide(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"),
            Decision::BadHttp
        );
    }

    #[test]
    fn host_of_strips_port_and_dot() {
        assert_eq!(host_of(b"a.example:80"), b"a.example");
        assert_eq!(host_of(b"a.example."), b"a.example");
        assert_eq!(host_of(b"[2001:2::1]:80"), b"[2001:2::1]");
    }
}
