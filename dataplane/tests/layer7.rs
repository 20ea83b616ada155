//! Layer-7 scheduling through a real `Worker` on in-memory ports (port 0 = clients, port 1
//! = real servers), frames built and read back by etherparse: the first request's Host,
//! path, header, cookie or TLS server name chooses the pool; bad heads are refused.
//!
//! Pools: `a` = real server 1, `b` = real servers 2 and 3 (rr), `c` = 2 and 3 with 2 down
//! for `c`'s own check (rr); default `a`.

use std::net::IpAddr;
use std::sync::Arc;

use etherparse::{PacketBuilder, SlicedPacket, TcpOptionElement as Opt, TransportSlice};
use uvs_dataplane::lab::{self, ipk};
use uvs_dataplane::synproxy::layer7::{L7Match, Layer7Spec, PoolSpec, RuleSpec};
use uvs_dataplane::{DropReason, Method, Shared, TablesBuilder, Worker};
use uvs_port::MemPort;
use uvs_sched::{SchedConfig, SchedulerKind};
use uvs_testkit::check_frame;

const CPORT: u16 = 40000;
const CISN: u32 = 1000;
const SISN: u32 = 7_000_000;
/// The lab's `head_limit` (bytes).
const HEAD_LIMIT: u32 = 4096;

struct Lab {
    shared: Arc<Shared>,
    w: Worker<MemPort>,
    v6: bool,
    method: Method,
    cport: u16,
}

fn to_b(m: L7Match) -> RuleSpec {
    RuleSpec {
        all: vec![m],
        pool: 1,
    }
}

impl Lab {
    fn new(method: Method, v6: bool) -> Lab {
        Self::with(method, v6, false)
    }

    /// With `proxy_protocol: v2` too.
    fn with(method: Method, v6: bool, proxy_protocol: bool) -> Lab {
        Self::build(method, v6, proxy_protocol, 1)
    }

    /// `b_weight`: the weight of pool b's servers (0: the pool has none usable).
    fn build(method: Method, v6: bool, proxy_protocol: bool, b_weight: u32) -> Lab {
        let mut spec = lab::spec(method, SchedulerKind::Rr, 1);
        for s in &mut spec.services {
            if s.key.proto != 6 {
                continue;
            }
            for r in s.reals.iter_mut().skip(1) {
                r.weight = b_weight;
            }
            s.syn_proxy = true;
            s.proxy_protocol = proxy_protocol;
            let reals: Vec<_> = s.reals.iter().map(|r| r.addr).collect();
            s.layer7 = Some(Layer7Spec {
                pools: vec![
                    PoolSpec {
                        name: "a".into(),
                        sched: SchedConfig::new(SchedulerKind::Rr),
                        members: vec![reals[0]],
                        down: vec![],
                    },
                    PoolSpec {
                        name: "b".into(),
                        sched: SchedConfig::new(SchedulerKind::Rr),
                        members: vec![reals[1], reals[2]],
                        down: vec![],
                    },
                    // Servers 2 and 3 again, 2 failing this pool's own check.
                    PoolSpec {
                        name: "c".into(),
                        sched: SchedConfig::new(SchedulerKind::Rr),
                        members: vec![reals[1], reals[2]],
                        down: vec![(reals[1], 80)],
                    },
                ],
                rules: vec![
                    // Both conditions, or no match.
                    RuleSpec {
                        all: vec![
                            L7Match::Host("api.example".into()),
                            L7Match::PathPrefix("/v2/".into()),
                        ],
                        pool: 2,
                    },
                    to_b(L7Match::Host("*.b.example".into())),
                    to_b(L7Match::PathPrefix("/b/".into())),
                    to_b(L7Match::Header {
                        name: "x-pool".into(),
                        value: "b".into(),
                    }),
                    to_b(L7Match::Cookie {
                        name: "pool".into(),
                        value: "b".into(),
                    }),
                    to_b(L7Match::Sni("tls.b.example".into())),
                ],
                default_pool: 0,
                head_limit: HEAD_LIMIT,
                head_timeout_s: 10,
            });
        }
        let tables = TablesBuilder::build(&spec, None).unwrap();
        let shared = Arc::new(Shared::new(tables, 4096, 1));
        lab::learn_neighbours(&shared.neigh, 0);
        let ports = vec![MemPort::new("client", 256), MemPort::new("server", 256)];
        let w = Worker::new(0, ports, shared.clone());
        Lab {
            shared,
            w,
            v6,
            method,
            cport: CPORT,
        }
    }

    fn send(&mut self, port: usize, frame: &[u8]) -> [Vec<Vec<u8>>; 2] {
        assert!(self.w.ports[port].push_rx(frame));
        self.w.poll();
        [self.w.ports[0].take_tx(), self.w.ports[1].take_tx()]
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.shared.counters[0].dropped(r)
    }
    fn idle(&mut self) -> [Vec<Vec<u8>>; 2] {
        self.w.poll();
        [self.w.ports[0].take_tx(), self.w.ports[1].take_tx()]
    }
    fn advance(&mut self, secs: u64) {
        self.shared.clock.advance(secs);
        lab::learn_neighbours(&self.shared.neigh, self.shared.clock.now_s());
    }
    /// The pending-head gauges: clients, bytes.
    fn pending(&self) -> (u64, u64) {
        let c = &self.shared.counters[0];
        (c.layer7_pending.get(), c.layer7_pending_bytes.get())
    }
    fn client(&self) -> IpAddr {
        (if self.v6 { lab::CLIENT6 } else { lab::CLIENT4 })
            .parse()
            .unwrap()
    }
    fn vip(&self) -> IpAddr {
        (if self.v6 { lab::VIP6 } else { lab::VIP4 })
            .parse()
            .unwrap()
    }
    fn seen_client(&self) -> IpAddr {
        match self.method {
            Method::FullNat => ipk(if self.v6 { lab::POOL6 } else { lab::POOL4 }).to_ip(),
            _ => self.client(),
        }
    }
    /// The pool's hits (connections it took), over the lab's layer-7 services.
    fn hits(&self, pool: usize) -> u64 {
        let t = self.shared.tables.load();
        t.services
            .iter()
            .flatten()
            .filter_map(|s| s.layer7.as_ref())
            .map(|l| l.pools[pool].hits.totals().conns)
            .sum()
    }
}

#[allow(clippy::too_many_arguments)]
fn seg(
    macs: ([u8; 6], [u8; 6]),
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    seq: u32,
    syn: bool,
    ack: Option<u32>,
    opts: &[Opt],
    payload: &[u8],
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(macs.0, macs.1);
    let ip = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => unreachable!(),
    };
    let mut b = ip.tcp(sport, dport, seq, 1000);
    if syn {
        b = b.syn();
    }
    if let Some(n) = ack {
        b = b.ack(n);
    }
    if !payload.is_empty() {
        b = b.psh();
    }
    let b = b.options(opts).unwrap();
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

#[derive(Debug)]
struct T {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    syn: bool,
    ack_flag: bool,
    rst: bool,
    fin: bool,
    seq: u32,
    ack: u32,
    ts: Option<(u32, u32)>,
    payload: Vec<u8>,
}

fn read(frame: &[u8]) -> T {
    let seen = check_frame(frame).unwrap_or_else(|e| panic!("bad frame: {e}"));
    let s = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(TransportSlice::Tcp(t)) = s.transport else {
        panic!("not tcp")
    };
    let ts = t.options_iterator().find_map(|o| match o.unwrap() {
        Opt::Timestamp(v, e) => Some((v, e)),
        _ => None,
    });
    T {
        src: seen.src,
        dst: seen.dst,
        sport: t.source_port(),
        syn: t.syn(),
        ack_flag: t.ack(),
        rst: t.rst(),
        fin: t.fin(),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        ts,
        payload: t.payload().to_vec(),
    }
}

fn only(out: &[Vec<u8>]) -> T {
    assert_eq!(out.len(), 1, "expected exactly one frame");
    read(&out[0])
}

fn client_frame(l: &Lab, seq: u32, syn: bool, ack: Option<u32>, opts: &[Opt], p: &[u8]) -> Vec<u8> {
    let (c, v) = (l.client(), l.vip());
    seg(
        (lab::CLIENT_MAC, lab::LB0_MAC),
        c,
        l.cport,
        v,
        80,
        seq,
        syn,
        ack,
        opts,
        p,
    )
}

/// SYN → cookie SYN-ACK → bare ACK (absorbed, nothing stored). The cookie and uvs's TSval.
fn handshake(l: &mut Lab) -> (u32, u32) {
    let syn_opts = [
        Opt::MaximumSegmentSize(1460),
        Opt::SelectiveAcknowledgementPermitted,
        Opt::Timestamp(111, 0),
        Opt::Noop,
        Opt::WindowScale(7),
    ];
    let sa = only(&l.send(0, &client_frame(l, CISN, true, None, &syn_opts, b""))[0]);
    assert!(sa.syn && sa.ack_flag);
    let (our_ts, _) = sa.ts.unwrap();
    let waiting = l.drops(DropReason::Layer7AwaitRequest);
    let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(112, our_ts)];
    let ack = client_frame(l, CISN + 1, false, Some(sa.seq.wrapping_add(1)), &ts, b"");
    let [c, s] = l.send(0, &ack);
    assert!(
        c.is_empty() && s.is_empty(),
        "a bare ACK opens nothing on a layer-7 service"
    );
    assert_eq!(l.drops(DropReason::Layer7AwaitRequest), waiting + 1);
    (sa.seq, our_ts)
}

/// Real server `n`'s SYN-ACK to the SYN uvs sent it (`syn`): MSS `mss`, its TSval 9000
/// echoing `echo`.
fn synack_of(l: &Lab, n: u8, syn: &T, mss: u16, echo: u32) -> Vec<u8> {
    seg(
        (lab::real_mac(n), lab::LB1_MAC),
        syn.dst,
        80,
        l.seen_client(),
        syn.sport,
        SISN,
        true,
        Some(CISN + 1),
        &[Opt::MaximumSegmentSize(mss), Opt::Timestamp(9000, echo)],
        b"",
    )
}

/// The whole connection: handshake, request, SYN to a server of the chosen pool, its
/// SYN-ACK, the request replayed to it. Which real server (1..=3) got it.
fn route(l: &mut Lab, request: &[u8]) -> u8 {
    let conns = l.shared.conns.len();
    let (cookie, our_ts) = handshake(l);
    assert_eq!(l.shared.conns.len(), conns, "still nothing stored");
    let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
    let req = client_frame(
        l,
        CISN + 1,
        false,
        Some(cookie.wrapping_add(1)),
        &ts,
        request,
    );
    let [c, s] = l.send(0, &req);
    assert!(c.is_empty());
    let syn = only(&s);
    assert!(syn.syn && !syn.ack_flag && syn.payload.is_empty());
    assert_eq!(syn.seq, CISN, "the client's ISN");
    assert_eq!(syn.src, l.seen_client());
    assert_eq!(l.shared.conns.len(), conns + 1);
    let n = (1..=3)
        .find(|&n| lab::real(n, l.v6).to_ip() == syn.dst)
        .expect("a real server");
    // The server's SYN-ACK: uvs completes its handshake and replays the request.
    let sa = synack_of(l, n, &syn, 1460, 113);
    let [c, s] = l.send(1, &sa);
    assert!(c.is_empty());
    assert_eq!(s.len(), 2, "the ACK, then the held request");
    let d = read(&s[1]);
    assert_eq!(d.dst, syn.dst);
    assert_eq!(d.payload, request);
    assert_eq!((d.seq, d.ack), (CISN + 1, SISN + 1));
    // A second request on the kept-alive connection follows the first to that server.
    let next = b"GET /b/ HTTP/1.1\r\nHost: x.b.example\r\n\r\n";
    let seq2 = CISN + 1 + request.len() as u32;
    let again = client_frame(l, seq2, false, Some(cookie.wrapping_add(1)), &ts, next);
    let d2 = only(&l.send(0, &again)[1]);
    assert_eq!(d2.dst, syn.dst, "first-request binding");
    assert_eq!(d2.payload, next);
    l.cport += 1;
    n
}

#[test]
fn host_path_header_and_cookie_rules_choose_the_pool() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            let mut l = Lab::new(method, v6);
            let in_b = |n: u8| n == 2 || n == 3;
            assert_eq!(
                route(&mut l, b"GET / HTTP/1.1\r\nHost: www.a.example\r\n\r\n"),
                1
            );
            let b1 = route(&mut l, b"GET / HTTP/1.1\r\nHost: WWW.B.example:80\r\n\r\n");
            assert!(in_b(b1));
            // rr within pool b: the other of its two servers next.
            let b2 = route(&mut l, b"GET /b/x HTTP/1.1\r\nHost: a\r\n\r\n");
            assert!(in_b(b2) && b2 != b1, "{b1} then {b2}");
            assert!(in_b(route(&mut l, b"GET / HTTP/1.1\r\nX-Pool: b\r\n\r\n")));
            assert!(in_b(route(
                &mut l,
                b"GET / HTTP/1.1\r\nCookie: x=1; pool=b\r\n\r\n"
            )));
            // No rule matches: the default pool (a), whatever pool b's scheduler would do.
            assert_eq!(
                route(&mut l, b"GET /a/ HTTP/1.1\r\nCookie: pool=a\r\n\r\n"),
                1
            );
            assert_eq!((l.hits(0), l.hits(1)), (2, 4));
            // More headers than uvs reads: the default pool, counted.
            let mut many = b"GET /b/ HTTP/1.1\r\n".to_vec();
            for i in 0..70 {
                many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
            }
            many.extend_from_slice(b"\r\n");
            assert_eq!(route(&mut l, &many), 1);
            assert_eq!(l.shared.counters[0].layer7_incomplete.get(), 1);
        }
    }
}

#[test]
fn a_combined_rule_needs_every_condition_and_its_pool_skips_members_down_for_it() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            let mut l = Lab::new(method, v6);
            // Host and path: pool c, whose rr never picks server 2 (down for c only).
            for _ in 0..3 {
                assert_eq!(
                    route(
                        &mut l,
                        b"GET /v2/users HTTP/1.1\r\nHost: API.example\r\n\r\n"
                    ),
                    3
                );
            }
            assert_eq!(l.hits(2), 3);
            // One of the two only: not rule c; the default pool a.
            assert_eq!(
                route(
                    &mut l,
                    b"GET /v1/users HTTP/1.1\r\nHost: api.example\r\n\r\n"
                ),
                1
            );
            assert_eq!(
                route(
                    &mut l,
                    b"GET /v2/users HTTP/1.1\r\nHost: www.example\r\n\r\n"
                ),
                1
            );
            assert_eq!(l.hits(2), 3);
            // Pool b still has server 2: down for c is not down for b.
            let b: Vec<u8> = (0..2)
                .map(|_| route(&mut l, b"GET /b/ HTTP/1.1\r\nHost: a\r\n\r\n"))
                .collect();
            assert!(b.contains(&2) && b.contains(&3), "pool b picked {b:?}");
        }
    }
}

/// A ClientHello for `name` (TLS 1.3 shape: one suite, supported_versions, server_name).
fn client_hello(name: &[u8]) -> Vec<u8> {
    let mut sni = vec![0x00, 0x00];
    sni.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
    sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni.push(0x00);
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let mut exts = vec![0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04];
    exts.extend_from_slice(&sni);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x42; 32]);
    body.extend_from_slice(&[0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    rec.extend_from_slice(&[0x01, 0x00]);
    rec.extend_from_slice(&(body.len() as u16).to_be_bytes());
    rec.extend_from_slice(&body);
    rec
}

#[test]
fn sni_chooses_the_pool_for_tls() {
    for v6 in [false, true] {
        let mut l = Lab::new(Method::Nat, v6);
        assert!(matches!(
            route(&mut l, &client_hello(b"TLS.b.example")),
            2 | 3
        ));
        assert_eq!(route(&mut l, &client_hello(b"other.example")), 1);
        // The Host rule `*.b.example` does not apply to TLS: only `sni` rules do.
        assert_eq!(route(&mut l, &client_hello(b"x.b.example")), 1);
    }
}

#[test]
fn a_malformed_head_gets_400_and_fin_and_nothing_is_stored() {
    for v6 in [false, true] {
        let mut l = Lab::new(Method::Nat, v6);
        let (cookie, our_ts) = handshake(&mut l);
        let bad = b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n";
        let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
        let req = client_frame(&l, CISN + 1, false, Some(cookie.wrapping_add(1)), &ts, bad);
        let [c, s] = l.send(0, &req);
        assert!(s.is_empty(), "no server hears of it");
        let r = only(&c);
        assert_eq!((r.src, r.dst, r.sport), (l.vip(), l.client(), 80));
        assert!(r.fin && r.ack_flag && !r.rst);
        assert_eq!(r.seq, cookie.wrapping_add(1));
        assert_eq!(r.ack, CISN + 1 + bad.len() as u32);
        assert_eq!(r.ts, Some((our_ts, 113)));
        assert!(
            r.payload.starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
            "{:?}",
            r.payload
        );
        assert_eq!(l.shared.conns.len(), 0);
        assert_eq!(l.drops(DropReason::Layer7BadHttp), 1);

        // A TLS record that is not a ClientHello's: reset.
        l.cport += 1;
        let (cookie, our_ts) = handshake(&mut l);
        let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
        let junk = [0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00];
        let req = client_frame(
            &l,
            CISN + 1,
            false,
            Some(cookie.wrapping_add(1)),
            &ts,
            &junk,
        );
        let [c, s] = l.send(0, &req);
        assert!(s.is_empty());
        let r = only(&c);
        assert!(r.rst && r.payload.is_empty());
        assert_eq!(r.ack, CISN + 1 + junk.len() as u32);
        assert_eq!(l.drops(DropReason::Layer7BadTls), 1);
        assert_eq!(l.shared.conns.len(), 0);

        // A forged request (no valid cookie) gets nothing at all.
        l.cport += 1;
        let req = client_frame(
            &l,
            CISN + 1,
            false,
            Some(12345),
            &ts,
            b"GET / HTTP/1.1\r\n\r\n",
        );
        let [c, s] = l.send(0, &req);
        assert!(c.is_empty() && s.is_empty());
        assert_eq!(l.drops(DropReason::SynProxyCookieInvalid), 1);
    }
}

/// With `proxy_protocol: v2` the server's handshake ACK carries the PROXY header and the
/// held request follows it, shifted by the header's length.
#[test]
fn a_proxy_header_goes_before_the_replayed_request() {
    for v6 in [false, true] {
        let mut l = Lab::with(Method::Nat, v6, true);
        let (cookie, our_ts) = handshake(&mut l);
        let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
        let request = b"GET /b/ HTTP/1.1\r\nHost: a\r\n\r\n";
        let req = client_frame(
            &l,
            CISN + 1,
            false,
            Some(cookie.wrapping_add(1)),
            &ts,
            request,
        );
        let syn = only(&l.send(0, &req)[1]);
        let n = (1..=3)
            .find(|&n| lab::real(n, v6).to_ip() == syn.dst)
            .unwrap();
        assert!(n == 2 || n == 3, "the path rule's pool");
        let sa = seg(
            (lab::real_mac(n), lab::LB1_MAC),
            syn.dst,
            80,
            l.client(),
            syn.sport,
            SISN,
            true,
            Some(CISN + 1),
            &[Opt::MaximumSegmentSize(1460), Opt::Timestamp(9000, 113)],
            b"",
        );
        let [c, s] = l.send(1, &sa);
        assert!(c.is_empty());
        assert_eq!(s.len(), 2, "the ACK with the header, then the request");
        let (hdr, d) = (read(&s[0]), read(&s[1]));
        let len = if v6 { 52 } else { 28 };
        assert_eq!(hdr.payload.len(), len);
        assert_eq!(&hdr.payload[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(hdr.seq, CISN + 1);
        assert_eq!(d.payload, request);
        assert_eq!(d.seq, CISN + 1 + len as u32);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any first request on a valid cookie — random bytes, or a ClientHello or head with
    /// one byte changed and cut anywhere — gets exactly one answer: a SYN to a real
    /// server, a 400 with FIN, or a RST. Nothing panics.
    #[test]
    fn any_first_request_gets_one_answer(
        raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..1200),
        base in 0usize..3,
        at in 0usize..600,
        byte in proptest::prelude::any::<u8>(),
        cut in 1usize..600,
        use_raw in proptest::prelude::any::<bool>(),
    ) {
        let mut l = Lab::new(Method::Nat, false);
        let payload = if use_raw {
            raw
        } else {
            let mut p = match base {
                0 => client_hello(b"tls.b.example"),
                1 => b"GET /b/ HTTP/1.1\r\nHost: x.b.example\r\nCookie: pool=b\r\n\r\n".to_vec(),
                _ => b"POST / HTTP/1.0\r\nX-Pool: b\r\n\r\nbody".to_vec(),
            };
            let i = at % p.len();
            p[i] = byte;
            p.truncate(cut.min(p.len()));
            p
        };
        let (cookie, our_ts) = handshake(&mut l);
        let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
        let req = client_frame(&l, CISN + 1, false, Some(cookie.wrapping_add(1)), &ts, &payload);
        let [c, s] = l.send(0, &req);
        proptest::prop_assert_eq!(c.len() + s.len(), 1);
        if let Some(f) = s.first() {
            let t = read(f);
            proptest::prop_assert!(t.syn && !t.ack_flag);
            proptest::prop_assert_eq!(l.shared.conns.len(), 1);
        } else {
            let t = read(&c[0]);
            // A head that goes on is acknowledged and waited for.
            let waits = !t.rst && !t.fin && t.payload.is_empty()
                && t.ack == CISN + 1 + payload.len() as u32;
            proptest::prop_assert!(
                waits || t.rst || (t.fin && t.payload.starts_with(b"HTTP/1.1 400"))
            );
            proptest::prop_assert_eq!(l.pending().0, u64::from(waits));
            proptest::prop_assert_eq!(l.shared.conns.len(), 0);
        }
    }
}

/// A client whose head is being received: its cookie, uvs's TSval, and the next byte.
struct Pending {
    cookie: u32,
    our_ts: u32,
    next: u32,
}

impl Pending {
    /// The client's next segment (at `seq`, or at the next byte), with FIN if `fin`.
    fn frame(&self, l: &Lab, seq: Option<u32>, fin: bool, p: &[u8]) -> Vec<u8> {
        let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(114, self.our_ts)];
        let seq = seq.unwrap_or(self.next);
        client_flags(
            l,
            seq,
            Some(self.cookie.wrapping_add(1)),
            fin,
            false,
            &ts,
            p,
        )
    }
}

/// A client segment with FIN or RST as asked.
fn client_flags(
    l: &Lab,
    seq: u32,
    ack: Option<u32>,
    fin: bool,
    rst: bool,
    opts: &[Opt],
    p: &[u8],
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(lab::CLIENT_MAC, lab::LB0_MAC);
    let ip = match (l.client(), l.vip()) {
        (IpAddr::V4(c), IpAddr::V4(v)) => eth.ipv4(c.octets(), v.octets(), 64),
        (IpAddr::V6(c), IpAddr::V6(v)) => eth.ipv6(c.octets(), v.octets(), 64),
        _ => unreachable!(),
    };
    let mut b = ip.tcp(l.cport, 80, seq, 1000);
    if let Some(a) = ack {
        b = b.ack(a);
    }
    if !p.is_empty() {
        b = b.psh();
    }
    if fin {
        b = b.fin();
    }
    if rst {
        b = b.rst();
    }
    let b = b.options(opts).unwrap();
    let mut out = Vec::new();
    b.write(&mut out, p).unwrap();
    out
}

/// Handshake, then a first segment whose head goes on: uvs acknowledges it.
fn begin(l: &mut Lab, first: &[u8]) -> Pending {
    let (cookie, our_ts) = handshake(l);
    let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
    let req = client_frame(l, CISN + 1, false, Some(cookie.wrapping_add(1)), &ts, first);
    let [c, s] = l.send(0, &req);
    assert!(s.is_empty(), "no server yet");
    let a = only(&c);
    assert!(a.ack_flag && !a.fin && !a.rst && !a.syn && a.payload.is_empty());
    assert_eq!((a.src, a.dst), (l.vip(), l.client()));
    assert_eq!(a.seq, cookie.wrapping_add(1));
    let next = CISN + 1 + first.len() as u32;
    assert_eq!(a.ack, next, "the received bytes acknowledged");
    assert_eq!(a.ts, Some((our_ts, 113)));
    Pending {
        cookie,
        our_ts,
        next,
    }
}

/// The answer to a pending client's segment: one frame to the client, none to servers.
fn to_client(l: &mut Lab, f: &[u8]) -> T {
    let [c, s] = l.send(0, f);
    assert!(s.is_empty(), "nothing for the servers");
    only(&c)
}

/// A `size`-byte head: request line, Host, padding headers, then `last` (the routing
/// header, in the head's last bytes) and the blank line.
fn big_head(size: usize, last: &str) -> Vec<u8> {
    let mut h = b"GET / HTTP/1.1\r\nHost: www.example\r\n".to_vec();
    let tail = format!("{last}\r\n\r\n");
    let mut i = 0;
    while h.len() + tail.len() < size {
        let room = size - h.len() - tail.len();
        let line = format!("X-Pad-{i}: {}\r\n", "p".repeat(room.clamp(14, 900) - 14));
        if line.len() > room {
            h.extend_from_slice(&b"X: "[..]);
            h.extend(std::iter::repeat_n(b'q', room.saturating_sub(5)));
            h.extend_from_slice(b"\r\n");
            break;
        }
        h.extend_from_slice(line.as_bytes());
        i += 1;
    }
    h.extend_from_slice(tail.as_bytes());
    h
}

#[test]
fn a_head_in_three_segments_is_received_then_replayed_by_the_servers_mss() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            let mut l = Lab::new(method, v6);
            // The routing header is in the last segment only.
            let head = big_head(3000, "X-Pool: b");
            let (a, rest) = head.split_at(1200);
            let (b, c) = rest.split_at(1200);
            let mut p = begin(&mut l, a);
            assert_eq!(l.pending(), (1, 1200));
            assert_eq!(
                l.shared.conns.len(),
                0,
                "no entry while the head is pending"
            );

            // The third segment before the second: dropped, counted, a duplicate ACK.
            let ooo = p.frame(&l, Some(p.next + b.len() as u32), false, c);
            let d = to_client(&mut l, &ooo);
            assert_eq!(d.ack, p.next, "still waiting for the second");
            assert_eq!(l.drops(DropReason::Layer7OutOfOrder), 1);
            assert_eq!(l.pending(), (1, 1200));

            // The second, in order: acknowledged.
            let f = p.frame(&l, None, false, b);
            let d = to_client(&mut l, &f);
            p.next += b.len() as u32;
            assert_eq!(d.ack, p.next);
            assert_eq!(l.pending(), (1, 2400));
            // Its retransmission is acknowledged again and adds nothing.
            let again = p.frame(&l, Some(p.next - b.len() as u32), false, b);
            assert_eq!(to_client(&mut l, &again).ack, p.next);
            assert_eq!(l.pending(), (1, 2400));

            // The third completes the head: a SYN to pool b (the header rule).
            let f = p.frame(&l, None, false, c);
            let [cl, s] = l.send(0, &f);
            assert!(cl.is_empty());
            let syn = only(&s);
            assert!(syn.syn && !syn.ack_flag && syn.payload.is_empty());
            assert_eq!(syn.seq, CISN);
            let n = (1..=3)
                .find(|&n| lab::real(n, v6).to_ip() == syn.dst)
                .unwrap();
            assert!(
                n == 2 || n == 3,
                "pool b, chosen by the last segment's header"
            );
            assert_eq!(l.hits(1), 1);

            // The server's SYN-ACK with MSS 536: the ACK, then the head in pieces of 536
            // bytes less the 12 of the timestamps option.
            let sa = synack_of(&l, n, &syn, 536, 114);
            let [cl, s] = l.send(1, &sa);
            assert!(cl.is_empty());
            let pieces: Vec<T> = s.iter().map(|f| read(f)).collect();
            assert!(pieces[0].payload.is_empty(), "the handshake's ACK first");
            let data = &pieces[1..];
            assert_eq!(data.len(), head.len().div_ceil(524));
            let mut got = Vec::new();
            for d in data {
                assert_eq!(d.dst, syn.dst);
                assert!(d.payload.len() <= 524);
                assert_eq!(d.seq, CISN + 1 + got.len() as u32, "contiguous");
                assert_eq!(d.ack, SISN + 1);
                got.extend_from_slice(&d.payload);
            }
            assert_eq!(got, head, "every byte replayed, in order");
            assert_eq!(l.shared.counters[0].layer7_replayed.get(), 1);
            assert_eq!(
                l.pending(),
                (1, head.len() as u64),
                "kept until acknowledged"
            );

            // Not acknowledged within 1 s: sent again.
            l.advance(2);
            let [_, s] = l.idle();
            let resent: Vec<u8> = s.iter().flat_map(|f| read(f).payload).collect();
            assert_eq!(resent, head, "the whole head again");

            // The server acknowledges part, then all: freed.
            let ack_of = |l: &Lab, k: u32| {
                seg(
                    (lab::real_mac(n), lab::LB1_MAC),
                    syn.dst,
                    80,
                    l.seen_client(),
                    syn.sport,
                    SISN + 1,
                    false,
                    Some(CISN + 1 + k),
                    &[Opt::Noop, Opt::Noop, Opt::Timestamp(9001, 114)],
                    b"",
                )
            };
            let f = ack_of(&l, 1000);
            let [cl, _] = l.send(1, &f);
            let fwd = only(&cl);
            assert_eq!((fwd.src, fwd.dst), (l.vip(), l.client()));
            assert_eq!(l.pending(), (1, head.len() as u64));
            let f = ack_of(&l, head.len() as u32);
            l.send(1, &f);
            l.idle();
            assert_eq!(l.pending(), (0, 0), "the acknowledged head is freed");
            l.advance(5);
            let [_, s] = l.idle();
            assert!(s.is_empty(), "nothing sent again once acknowledged");
            assert_eq!(l.drops(DropReason::Layer7ReplayLost), 0);
        }
    }
}

#[test]
fn a_client_hello_over_two_segments_is_routed_by_its_sni() {
    for v6 in [false, true] {
        let mut l = Lab::new(Method::Nat, v6);
        // A ClientHello with ~1500 bytes of padding before the server name.
        let mut hello = client_hello(b"tls.b.example");
        // Grow it: a padding extension (RFC 7685) placed before server_name keeps it sound.
        let pad_len = 1500usize;
        let mut pad = vec![0x00, 0x15];
        pad.extend_from_slice(&(pad_len as u16).to_be_bytes());
        pad.extend(std::iter::repeat_n(0u8, pad_len));
        // Offsets in `client_hello`: record(5) handshake(4) version(2) random(32)
        // sid(1) suites(4) comp(2) = 50, then the extensions' length.
        let ext_len = u16::from_be_bytes([hello[50], hello[51]]) as usize + pad.len();
        hello.splice(52..52, pad);
        hello[50..52].copy_from_slice(&(ext_len as u16).to_be_bytes());
        let body = hello.len() - 9;
        hello[6..9].copy_from_slice(&(body as u32).to_be_bytes()[1..]);
        let rec = (hello.len() - 5) as u16;
        hello[3..5].copy_from_slice(&rec.to_be_bytes());
        let (a, b) = hello.split_at(1000);
        let p = begin(&mut l, a);
        let f = p.frame(&l, None, false, b);
        let [cl, s] = l.send(0, &f);
        assert!(cl.is_empty());
        let syn = only(&s);
        let n = (1..=3)
            .find(|&n| lab::real(n, v6).to_ip() == syn.dst)
            .unwrap();
        assert!(n == 2 || n == 3, "the sni rule's pool");
        assert_eq!(l.drops(DropReason::Layer7BadTls), 0);
    }
}

#[test]
fn a_head_over_the_limit_gets_431_and_fin() {
    for v6 in [false, true] {
        let mut l = Lab::new(Method::Nat, v6);
        let head = big_head(HEAD_LIMIT as usize + 1000, "X-Pool: b");
        let mut p = begin(&mut l, &head[..1400]);
        let mut off = 1400;
        let r = loop {
            let piece = &head[off..off + 1400];
            let r = {
                let f = p.frame(&l, None, false, piece);
                to_client(&mut l, &f)
            };
            off += piece.len();
            p.next += piece.len() as u32;
            if r.fin || r.rst {
                break r;
            }
            assert_eq!(r.ack, p.next);
        };
        assert!(off > HEAD_LIMIT as usize, "refused only past the limit");
        assert!(r.fin && !r.rst);
        assert!(
            r.payload
                .starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{:?}",
            String::from_utf8_lossy(&r.payload)
        );
        assert_eq!(r.ack, p.next);
        assert_eq!(l.drops(DropReason::Layer7HeadTooLarge), 1);
        assert_eq!(l.pending(), (0, 0));
        assert_eq!(l.shared.conns.len(), 0);
        // The client's next segment finds nothing (its SEQ fails the cookie).
        let f = p.frame(&l, None, false, b"more");
        let [c, s] = l.send(0, &f);
        assert!(c.is_empty() && s.is_empty());
    }
}

#[test]
fn a_slow_client_gets_408_after_the_timeout() {
    for v6 in [false, true] {
        let mut l = Lab::new(Method::Nat, v6);
        let p = begin(&mut l, b"GET / HTTP/1.1\r\nHost: slow.example\r\n");
        assert_eq!(l.pending().0, 1);
        l.advance(5);
        let [c, _] = l.idle();
        assert!(c.is_empty(), "still within the 10 s");
        assert_eq!(l.pending().0, 1);
        l.advance(6);
        let [c, s] = l.idle();
        assert!(s.is_empty());
        let r = only(&c);
        assert_eq!((r.src, r.dst), (l.vip(), l.client()));
        assert!(r.fin && !r.rst);
        assert!(r.payload.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"));
        assert_eq!((r.seq, r.ack), (p.cookie.wrapping_add(1), p.next));
        assert_eq!(l.drops(DropReason::Layer7HeadTimeout), 1);
        assert_eq!(l.pending(), (0, 0));
        assert_eq!(l.shared.conns.len(), 0);
    }
}

#[test]
fn a_pool_without_a_usable_server_answers_503() {
    for v6 in [false, true] {
        let mut l = Lab::build(Method::Nat, v6, false, 0);
        // One segment.
        let (cookie, our_ts) = handshake(&mut l);
        let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
        let req = b"GET /b/ HTTP/1.1\r\nHost: a\r\n\r\n";
        let f = client_frame(&l, CISN + 1, false, Some(cookie.wrapping_add(1)), &ts, req);
        let r = to_client(&mut l, &f);
        assert!(
            r.fin
                && r.payload
                    .starts_with(b"HTTP/1.1 503 Service Unavailable\r\n")
        );
        assert_eq!(r.ack, CISN + 1 + req.len() as u32);
        assert_eq!(l.drops(DropReason::Layer7NoServer), 1);
        // Over two segments.
        l.cport += 1;
        let p = begin(&mut l, b"GET / HTTP/1.1\r\nHost: a\r\n");
        let r = {
            let f = p.frame(&l, None, false, b"X-Pool: b\r\n\r\n");
            to_client(&mut l, &f)
        };
        assert!(r.fin && r.payload.starts_with(b"HTTP/1.1 503 "));
        assert_eq!(r.ack, p.next + 13);
        assert_eq!(l.drops(DropReason::Layer7NoServer), 2);
        assert_eq!((l.pending(), l.shared.conns.len()), ((0, 0), 0));
        // The default pool still works.
        l.cport += 1;
        assert_eq!(route(&mut l, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 1);
    }
}

#[test]
fn a_full_pending_table_refuses_with_503_and_a_reset_frees_a_place() {
    use uvs_dataplane::synproxy::head::MAX_PENDING;
    let mut l = Lab::new(Method::Nat, false);
    let partial = b"GET / HTTP/1.1\r\nHost: a\r\n";
    let mut first = None;
    for _ in 0..MAX_PENDING {
        let p = begin(&mut l, partial);
        first.get_or_insert((l.cport, p.next, p.cookie, p.our_ts));
        l.cport += 1;
    }
    assert_eq!(
        l.pending(),
        (MAX_PENDING as u64, (MAX_PENDING * partial.len()) as u64)
    );
    let (cookie, our_ts) = handshake(&mut l);
    let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
    let f = client_frame(
        &l,
        CISN + 1,
        false,
        Some(cookie.wrapping_add(1)),
        &ts,
        partial,
    );
    let r = to_client(&mut l, &f);
    assert!(r.fin && r.payload.starts_with(b"HTTP/1.1 503 "));
    assert_eq!(l.drops(DropReason::Layer7PendingFull), 1);
    assert_eq!(l.pending().0, MAX_PENDING as u64);
    // The first client resets: its place is freed, the next client is received.
    let (port, next, cookie, our_ts) = first.unwrap();
    let mine = l.cport;
    l.cport = port;
    let rst = client_flags(&l, next, None, false, true, &[], b"");
    let [c, s] = l.send(0, &rst);
    assert!(c.is_empty() && s.is_empty());
    assert_eq!(l.drops(DropReason::Layer7HeadAborted), 1);
    assert_eq!(l.pending().0, MAX_PENDING as u64 - 1);
    let _ = (cookie, our_ts);
    l.cport = mine + 1;
    begin(&mut l, partial);
    assert_eq!(l.pending().0, MAX_PENDING as u64);
}

#[test]
fn a_fin_inside_the_head_gets_400() {
    let mut l = Lab::new(Method::Nat, false);
    let p = begin(&mut l, b"GET / HTTP/1.1\r\nHost: a\r\n");
    let r = {
        let f = p.frame(&l, None, true, b"X-A: 1\r\n");
        to_client(&mut l, &f)
    };
    assert!(r.fin && r.payload.starts_with(b"HTTP/1.1 400 "));
    assert_eq!(r.ack, p.next + 8 + 1, "the data and the FIN");
    assert_eq!(l.drops(DropReason::Layer7BadHttp), 1);
    assert_eq!(l.pending(), (0, 0));
}

#[test]
fn a_pending_head_with_too_many_headers_goes_to_the_default_pool() {
    let mut l = Lab::new(Method::Nat, false);
    let lines = |from: usize| -> Vec<u8> {
        (from..from + 40)
            .flat_map(|i| format!("X-{i}: 1\r\n").into_bytes())
            .collect()
    };
    let mut first = b"GET /b/ HTTP/1.1\r\nHost: a\r\n".to_vec();
    first.extend(lines(0));
    let mut p = begin(&mut l, &first);
    // More lines: still waiting (the head is read again only once it may have ended).
    let more = lines(40);
    let f = p.frame(&l, None, false, &more);
    p.next += more.len() as u32;
    assert_eq!(to_client(&mut l, &f).ack, p.next);
    let f = p.frame(&l, None, false, b"\r\n");
    let [c, s] = l.send(0, &f);
    assert!(
        c.is_empty(),
        "{:?}",
        c.iter().map(|f| read(f)).collect::<Vec<_>>()
    );
    let syn = only(&s);
    assert!(syn.syn);
    assert_eq!(syn.dst, lab::real(1, false).to_ip(), "the default pool");
    assert_eq!(l.shared.counters[0].layer7_incomplete.get(), 1);
    // A later segment waits (held) for the server like any early segment.
    let f = p.frame(&l, Some(p.next + 2), false, b"GET / HTTP/1.1\r\n");
    let [c, s] = l.send(0, &f);
    assert!(c.is_empty() && s.is_empty());
}

/// With `proxy_protocol: v2` a head received over two segments is replayed after the
/// header, shifted by its length, and freed once the server acknowledges header and head.
#[test]
fn a_proxy_header_goes_before_a_replayed_multi_segment_head() {
    for v6 in [false, true] {
        let mut l = Lab::with(Method::Nat, v6, true);
        let head = big_head(2000, "Cookie: pool=b");
        let (a, b) = head.split_at(1000);
        let p = begin(&mut l, a);
        let f = p.frame(&l, None, false, b);
        let syn = only(&l.send(0, &f)[1]);
        let n = (1..=3)
            .find(|&n| lab::real(n, v6).to_ip() == syn.dst)
            .unwrap();
        assert!(n == 2 || n == 3, "the cookie rule's pool");
        let sa = seg(
            (lab::real_mac(n), lab::LB1_MAC),
            syn.dst,
            80,
            l.client(),
            syn.sport,
            SISN,
            true,
            Some(CISN + 1),
            // What a server on the lab's 1500-byte link says (an IPv6 header is 20 bytes
            // longer): a replayed segment of more would not fit the link, and uvs refuses
            // a packet larger than the link it leaves on.
            &[
                Opt::MaximumSegmentSize(if v6 { 1440 } else { 1460 }),
                Opt::Timestamp(9000, 114),
            ],
            b"",
        );
        let [_, s] = l.send(1, &sa);
        let len = if v6 { 52u32 } else { 28 };
        let hdr = read(&s[0]);
        assert_eq!(hdr.payload.len() as u32, len);
        let mut got = Vec::new();
        for f in &s[1..] {
            let d = read(f);
            assert_eq!(d.seq, CISN + 1 + len + got.len() as u32);
            got.extend_from_slice(&d.payload);
        }
        assert_eq!(got, head);
        // The server acknowledges the header and the whole head: freed.
        let ack = seg(
            (lab::real_mac(n), lab::LB1_MAC),
            syn.dst,
            80,
            l.client(),
            syn.sport,
            SISN + 1,
            false,
            Some(CISN + 1 + len + head.len() as u32),
            &[Opt::Noop, Opt::Noop, Opt::Timestamp(9001, 114)],
            b"",
        );
        let [c, _] = l.send(1, &ack);
        assert_eq!(
            only(&c).ack,
            CISN + 1 + head.len() as u32,
            "the client sees its own sequence space"
        );
        l.idle();
        assert_eq!(l.pending(), (0, 0));
    }
}

/// A replayed head the server never acknowledges is sent three times, then freed and
/// counted, and the server's side of the connection is reset.
#[test]
fn an_unacknowledged_replay_is_given_up_after_three_sends() {
    let mut l = Lab::new(Method::Nat, false);
    let head = big_head(1500, "X-Pool: b");
    let (a, b) = head.split_at(700);
    let p = begin(&mut l, a);
    let f = p.frame(&l, None, false, b);
    let syn = only(&l.send(0, &f)[1]);
    let n = (1..=3)
        .find(|&n| lab::real(n, false).to_ip() == syn.dst)
        .unwrap();
    let sa = seg(
        (lab::real_mac(n), lab::LB1_MAC),
        syn.dst,
        80,
        l.client(),
        syn.sport,
        SISN,
        true,
        Some(CISN + 1),
        &[Opt::MaximumSegmentSize(1460), Opt::Timestamp(9000, 114)],
        b"",
    );
    let [_, s] = l.send(1, &sa);
    assert_eq!(s.len(), 3, "the ACK and the head in two pieces");
    let (mut sends, mut resets) = (1, 0);
    for _ in 0..8 {
        l.advance(1);
        let [_, s] = l.idle();
        let rst = s.iter().filter(|f| read(f).rst).count();
        resets += rst;
        if s.len() > rst {
            sends += 1;
        }
    }
    assert_eq!(sends, 3, "sent at 0 s, 1 s and 3 s");
    assert_eq!(resets, 1, "then the server's side reset");
    assert_eq!(l.drops(DropReason::Layer7ReplayLost), 1);
    assert_eq!(l.pending(), (0, 0));
}

/// A head over several segments whose request line or a header line is malformed before
/// the head ends: answered 400 as soon as the bad line is complete (httparse refuses it
/// whatever follows), not 431 once the head reaches `head_limit`.
#[test]
fn a_malformed_line_in_a_multi_segment_head_gets_400_at_once() {
    for v6 in [false, true] {
        let mut l = Lab::new(Method::Nat, v6);
        // A bad header in the second segment, the head going on after it.
        let p = begin(&mut l, b"GET / HTTP/1.1\r\nHost: a\r\n");
        let bad = b"No colon here\r\nX-A: 1\r\n";
        let r = {
            let f = p.frame(&l, None, false, bad);
            to_client(&mut l, &f)
        };
        assert!(r.fin && !r.rst);
        assert!(
            r.payload.starts_with(b"HTTP/1.1 400 "),
            "{:?}",
            String::from_utf8_lossy(&r.payload)
        );
        assert_eq!(r.ack, p.next + bad.len() as u32);
        assert_eq!(l.drops(DropReason::Layer7BadHttp), 1);
        assert_eq!(l.drops(DropReason::Layer7HeadTooLarge), 0);
        assert_eq!((l.pending(), l.shared.conns.len()), ((0, 0), 0));

        // A request line split over two segments, its version bad.
        l.cport += 1;
        let p = begin(&mut l, b"GET /ind");
        let rest = b"ex.html HTTX/1.1\r\nHost: a\r\n";
        let r = {
            let f = p.frame(&l, None, false, rest);
            to_client(&mut l, &f)
        };
        assert!(r.fin && r.payload.starts_with(b"HTTP/1.1 400 "));
        assert_eq!(l.drops(DropReason::Layer7BadHttp), 2);
        assert_eq!(l.pending(), (0, 0));

        // A bad line starting in a segment, before its end: 400 at once.
        l.cport += 1;
        let p = begin(&mut l, b"GET / HTTP/1.1\r\nHost: a\r\n");
        let r = {
            let f = p.frame(&l, None, false, b"Bad header");
            to_client(&mut l, &f)
        };
        assert!(r.fin && r.payload.starts_with(b"HTTP/1.1 400 "));
        assert_eq!(l.drops(DropReason::Layer7BadHttp), 3);

        // A line whose fault shows only after the segment it starts in, and that never
        // ends: 400 (not 431) when the head reaches the limit.
        l.cport += 1;
        let mut p = begin(&mut l, b"GET / HTTP/1.1\r\nHost: a\r\n");
        let mut pieces = vec![b"Ba".to_vec(), b"d header ".to_vec()];
        pieces.extend((0..5).map(|_| vec![b'x'; 1000]));
        let mut sent = 0;
        let r = loop {
            let f = p.frame(&l, None, false, &pieces[sent]);
            let r = to_client(&mut l, &f);
            p.next += pieces[sent].len() as u32;
            sent += 1;
            if r.fin || r.rst {
                break r;
            }
            assert!(sent < pieces.len(), "never refused");
        };
        assert!(r.fin && r.payload.starts_with(b"HTTP/1.1 400 "));
        assert!(p.next - CISN > HEAD_LIMIT, "refused at the limit");
        assert_eq!(l.drops(DropReason::Layer7BadHttp), 4);
        assert_eq!(l.drops(DropReason::Layer7HeadTooLarge), 0);

        // Good lines over several segments are not refused: the head completes and goes
        // to its pool.
        l.cport += 1;
        let mut p = begin(&mut l, b"GET / HTTP/1.1\r\nHo");
        for piece in [&b"st: a\r\nX-Po"[..], b"ol: b\r\n", b"X-B: 2\r\n"] {
            let f = p.frame(&l, None, false, piece);
            p.next += piece.len() as u32;
            assert_eq!(to_client(&mut l, &f).ack, p.next);
        }
        let f = p.frame(&l, None, false, b"\r\n");
        let syn = only(&l.send(0, &f)[1]);
        assert!(syn.syn && syn.dst != lab::real(1, v6).to_ip(), "pool b");
        assert_eq!(l.drops(DropReason::Layer7BadHttp), 4);
    }
}

/// Past the headers uvs reads (`MAX_HEADERS`) a head goes to the default pool whatever
/// follows, as when it arrives in one piece: a bad line there is not refused.
#[test]
fn a_bad_line_past_the_headers_read_does_not_refuse_the_head() {
    let mut l = Lab::new(Method::Nat, false);
    let mut first = b"GET /b/ HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..30 {
        first.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
    }
    let mut p = begin(&mut l, &first);
    let mut more: Vec<u8> = (30..70)
        .flat_map(|i| format!("X-{i}: 1\r\n").into_bytes())
        .collect();
    more.extend_from_slice(b"No colon here\r\n");
    let f = p.frame(&l, None, false, &more);
    p.next += more.len() as u32;
    assert_eq!(to_client(&mut l, &f).ack, p.next);
    let f = p.frame(&l, None, false, b"\r\n");
    let syn = only(&l.send(0, &f)[1]);
    assert_eq!(syn.dst, lab::real(1, false).to_ip(), "the default pool");
    assert_eq!(l.drops(DropReason::Layer7BadHttp), 0);
}

/// After uvs's own answer and FIN (400 here) uvs holds nothing for the connection; the
/// client acknowledges the answer and closes. Its FIN fails the cookie check, yet must
/// not be left to retransmit until the client gives up: it is acknowledged, as a TCP in
/// TIME-WAIT acknowledges a FIN after its own (RFC 9293 §3.10.7.4; Linux re-ACKs from its
/// timewait socket), one answer per segment, counted; a FIN with data is reset (data
/// after close, as Linux aborts on it). A bare ACK gets nothing.
#[test]
fn a_clients_fin_after_uvss_own_answer_is_acknowledged() {
    for v6 in [false, true] {
        let mut l = Lab::new(Method::Nat, v6);
        let (cookie, our_ts) = handshake(&mut l);
        let bad = b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n";
        let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
        let req = client_frame(&l, CISN + 1, false, Some(cookie.wrapping_add(1)), &ts, bad);
        let r = to_client(&mut l, &req);
        assert!(r.fin && r.payload.starts_with(b"HTTP/1.1 400 "));
        let our_end = cookie
            .wrapping_add(1)
            .wrapping_add(r.payload.len() as u32)
            .wrapping_add(1);
        let cnext = CISN + 1 + bad.len() as u32;
        let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(120, our_ts)];
        // The client's ACK of the answer and its FIN: nothing to say.
        let ack = client_flags(&l, cnext, Some(our_end), false, false, &ts, b"");
        let [c, s] = l.send(0, &ack);
        assert!(c.is_empty() && s.is_empty());
        // Its FIN, and the retransmission of it: one ACK each.
        let fin = client_flags(&l, cnext, Some(our_end), true, false, &ts, b"");
        for n in 1..=2 {
            let a = to_client(&mut l, &fin);
            assert!(a.ack_flag && !a.fin && !a.rst && !a.syn && a.payload.is_empty());
            assert_eq!((a.src, a.dst, a.sport), (l.vip(), l.client(), 80));
            assert_eq!((a.seq, a.ack), (our_end, cnext + 1), "the FIN acknowledged");
            assert_eq!(a.ts, Some((our_ts, 120)), "the client's TSval echoed");
            assert_eq!(l.drops(DropReason::Layer7ClosedFin), n);
        }
        // A FIN with data: reset at its acknowledgement number.
        let fin = client_flags(&l, cnext, Some(our_end), true, false, &ts, b"late");
        let a = to_client(&mut l, &fin);
        assert!(a.rst && a.payload.is_empty());
        assert_eq!(a.seq, our_end);
        assert_eq!(l.drops(DropReason::Layer7ClosedFin), 3);
        assert_eq!((l.pending(), l.shared.conns.len()), ((0, 0), 0));
        assert_eq!(
            l.drops(DropReason::SynProxyCookieInvalid),
            1,
            "the bare ACK"
        );
    }
}

/// A client that connects and closes without a request (a TCP health check against a
/// layer-7 VIP): its FIN returns the cookie but brings nothing to decide on, and uvs
/// holds no state. It is answered FIN and ACK, closing uvs's side as a server would,
/// instead of being dropped while the client retransmits it; the client's last ACK is
/// absorbed. Nothing is stored.
#[test]
fn a_client_closing_without_a_request_gets_fin_and_ack() {
    for v6 in [false, true] {
        let mut l = Lab::new(Method::Nat, v6);
        let (cookie, our_ts) = handshake(&mut l);
        let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
        let fin = client_flags(
            &l,
            CISN + 1,
            Some(cookie.wrapping_add(1)),
            true,
            false,
            &ts,
            b"",
        );
        let r = to_client(&mut l, &fin);
        assert!(r.fin && r.ack_flag && !r.rst && r.payload.is_empty());
        assert_eq!((r.seq, r.ack), (cookie.wrapping_add(1), CISN + 2));
        assert_eq!(r.ts, Some((our_ts, 113)));
        assert_eq!(l.drops(DropReason::Layer7ClosedFin), 1);
        // The client's ACK of that FIN: nothing more.
        let ack = client_flags(
            &l,
            CISN + 2,
            Some(cookie.wrapping_add(2)),
            false,
            false,
            &ts,
            b"",
        );
        let [c, s] = l.send(0, &ack);
        assert!(c.is_empty() && s.is_empty());
        assert_eq!((l.pending(), l.shared.conns.len()), ((0, 0), 0));
    }
}

/// An absolute-form request target (RFC 9112 §3.2.2, `GET http://host/path`) is routed by
/// its own path and authority, as nginx and HAProxy route it and as the server will read
/// it: its authority replaces the Host header. A path rule or a host rule is not bypassed
/// by writing the target that way, and a target with no host is refused with 400.
#[test]
fn an_absolute_form_target_is_routed_by_its_path_and_authority() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            let mut l = Lab::new(method, v6);
            let in_b = |n: u8| n == 2 || n == 3;
            // The path rule `/b/` sees the target's path.
            assert!(in_b(route(
                &mut l,
                b"GET http://198.18.100.1/b/x HTTP/1.1\r\nHost: a\r\n\r\n"
            )));
            // The host rule `*.b.example` sees its authority (port stripped, any case of
            // scheme and host), not the Host header.
            assert!(in_b(route(
                &mut l,
                b"GET HTTPS://WWW.b.example:8443 HTTP/1.1\r\nHost: a\r\n\r\n"
            )));
            assert_eq!(
                route(
                    &mut l,
                    b"GET http://a.example/ HTTP/1.1\r\nHost: www.b.example\r\n\r\n"
                ),
                1
            );
            // Host and path of one target both hold for the combined rule (pool c).
            assert_eq!(
                route(
                    &mut l,
                    b"GET http://api.example/v2/users?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"
                ),
                3
            );
            // An origin-form target is as before.
            assert_eq!(route(&mut l, b"GET /a/b/ HTTP/1.1\r\nHost: a\r\n\r\n"), 1);
        }
    }
}

/// With pool b unusable, the path rule still sends an absolute-form request for `/b/` to
/// pool b, which answers 503 as it does for the origin form; a target with an empty host
/// gets 400 like any request uvs cannot read.
#[test]
fn an_absolute_form_target_does_not_bypass_an_unusable_pool() {
    for v6 in [false, true] {
        let mut l = Lab::build(Method::Nat, v6, false, 0);
        for (i, req) in [
            &b"GET /b/x HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET http://198.18.100.1/b/x HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET http://x.B.example HTTP/1.1\r\nHost: a\r\n\r\n",
        ]
        .into_iter()
        .enumerate()
        {
            let (cookie, our_ts) = handshake(&mut l);
            let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
            let f = client_frame(&l, CISN + 1, false, Some(cookie.wrapping_add(1)), &ts, req);
            let r = to_client(&mut l, &f);
            assert!(
                r.fin && r.payload.starts_with(b"HTTP/1.1 503 "),
                "{}: {:?}",
                String::from_utf8_lossy(req),
                String::from_utf8_lossy(&r.payload)
            );
            assert_eq!(l.drops(DropReason::Layer7NoServer), i as u64 + 1);
            l.cport += 1;
        }
        // A head over two segments is read the same way once complete.
        let p = begin(&mut l, b"GET http://198.18.100.1/b/x HTTP/1.1\r\n");
        let r = {
            let f = p.frame(&l, None, false, b"Host: a\r\n\r\n");
            to_client(&mut l, &f)
        };
        assert!(r.fin && r.payload.starts_with(b"HTTP/1.1 503 "));
        assert_eq!(l.drops(DropReason::Layer7NoServer), 4);
        l.cport += 1;
        for bad in [
            &b"GET http:///b/x HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET http://user@a.example/ HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            let before = l.drops(DropReason::Layer7BadHttp);
            let (cookie, our_ts) = handshake(&mut l);
            let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
            let f = client_frame(&l, CISN + 1, false, Some(cookie.wrapping_add(1)), &ts, bad);
            let r = to_client(&mut l, &f);
            assert!(
                r.fin && r.payload.starts_with(b"HTTP/1.1 400 "),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert_eq!(l.drops(DropReason::Layer7BadHttp), before + 1);
            l.cport += 1;
        }
        assert_eq!(l.shared.conns.len(), 0);
    }
}

/// The server's RST to the SYN uvs sent it (`syn`, the frame uvs sent).
fn server_refuses(l: &mut Lab, syn: &T) -> [Vec<Vec<u8>>; 2] {
    let n = (1..=3)
        .find(|&n| lab::real(n, l.v6).to_ip() == syn.dst)
        .expect("a real server");
    let eth = PacketBuilder::ethernet2(lab::real_mac(n), lab::LB1_MAC);
    let ip = match (syn.dst, syn.src) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => unreachable!(),
    };
    let b = ip
        .tcp(80, syn.sport, 0, 0)
        .ack(syn.seq.wrapping_add(1))
        .rst();
    let mut f = Vec::new();
    b.write(&mut f, b"").unwrap();
    l.send(1, &f)
}

/// Pool b's servers refusing in turn (RST to uvs's SYN; `syn` the first): uvs offers the
/// connection to the pool's other server, then to the first again (three tries in all,
/// `retransmit::TRIES`), never to pool a's server and nothing to the client meanwhile;
/// what uvs sends after the last refusal.
fn pool_b_refuses(l: &mut Lab, syn: &T) -> [Vec<Vec<u8>>; 2] {
    let mut out = server_refuses(l, syn);
    let mut last = syn.dst;
    for _ in 1..3 {
        let [c, s] = &out;
        assert!(c.is_empty(), "the client sees nothing of a refusal");
        let next = only(s);
        assert!(next.syn && !next.ack_flag);
        assert!(
            next.dst != last && next.dst != lab::real(1, l.v6).to_ip(),
            "pool b's other server: {next:?}"
        );
        last = next.dst;
        out = server_refuses(l, &next);
    }
    out
}

/// Servers that refuse the connection (RST to uvs's SYN: nothing listens, or it is
/// restarting before its check fails), every one of its pool in turn, leave an HTTP client
/// with `503 Service Unavailable` and FIN, its request acknowledged, as HAProxy answers when
/// it cannot connect (and as uvs answers for a pool without a usable server), where the
/// client used to get a reset. For a head in one segment and one received over two; a TLS
/// client still gets a RST. The entry goes.
#[test]
fn a_server_refusing_the_connection_gets_the_client_503() {
    for v6 in [false, true] {
        let mut l = Lab::new(Method::Nat, v6);
        // One segment.
        let (cookie, our_ts) = handshake(&mut l);
        let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
        let req = b"GET /b/x HTTP/1.1\r\nHost: a\r\n\r\n";
        let f = client_frame(&l, CISN + 1, false, Some(cookie.wrapping_add(1)), &ts, req);
        let syn = only(&l.send(0, &f)[1]);
        assert!(syn.syn);
        let [c, s] = pool_b_refuses(&mut l, &syn);
        assert!(s.is_empty());
        let r = only(&c);
        assert!(!r.rst, "v6={v6}: {r:?}");
        assert!(
            r.fin
                && r.payload
                    .starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"),
            "v6={v6}: {r:?}"
        );
        assert_eq!((r.src, r.dst), (l.vip(), l.client()));
        assert_eq!(r.seq, cookie.wrapping_add(1));
        assert_eq!(
            r.ack,
            CISN + 1 + req.len() as u32,
            "the request acknowledged"
        );
        assert_eq!(l.shared.conns.len(), 0);
        // Nothing more goes to the client for it (the held request is dropped).
        let [c, s] = l.idle();
        assert!(c.is_empty() && s.is_empty());

        // A head over two segments (uvs acknowledged the first).
        l.cport += 1;
        let p = begin(&mut l, b"GET /b/x HTTP/1.1\r\nHost: a\r\n");
        let last = b"X-Pad: 1\r\n\r\n";
        let f = p.frame(&l, None, false, last);
        let [c, s] = l.send(0, &f);
        let syn = only(&s);
        assert!(syn.syn);
        assert!(c.len() <= 1);
        let [c, _] = pool_b_refuses(&mut l, &syn);
        let [c2, _] = l.idle();
        let all: Vec<T> = c.iter().chain(c2.iter()).map(|f| read(f)).collect();
        assert_eq!(all.len(), 1, "v6={v6}: {all:?}");
        let r = &all[0];
        assert!(
            !r.rst && r.fin && r.payload.starts_with(b"HTTP/1.1 503 "),
            "v6={v6}: {r:?}"
        );
        assert_eq!(r.ack, p.next + last.len() as u32);
        assert_eq!((l.pending(), l.shared.conns.len()), ((0, 0), 0));

        // TLS: a RST, as for its other refusals.
        l.cport += 1;
        let (cookie, our_ts) = handshake(&mut l);
        let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
        let hello = client_hello(b"tls.b.example");
        let f = client_frame(
            &l,
            CISN + 1,
            false,
            Some(cookie.wrapping_add(1)),
            &ts,
            &hello,
        );
        let syn = only(&l.send(0, &f)[1]);
        let [c, _] = pool_b_refuses(&mut l, &syn);
        assert!(only(&c).rst, "v6={v6}");
    }
}

/// One of pool b's servers refusing: the connection goes to the pool's other server, and
/// the request reaches it whole — held (a head in one segment) or replayed (a head uvs
/// received over two segments and acknowledged) — then its answer reaches the client. For
/// NAT and FullNAT, IPv4 and IPv6.
#[test]
fn a_refused_request_goes_to_the_pools_other_server() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            let mut l = Lab::new(method, v6);
            let head = big_head(1300, "X-Pool: b");
            for two_segments in [false, true] {
                l.cport += 1;
                let (cookie, syn) = if two_segments {
                    let (a, b) = head.split_at(700);
                    let p = begin(&mut l, a);
                    let [c, s] = l.send(0, &p.frame(&l, None, false, b));
                    assert!(c.len() <= 1, "at most the ACK of the head's end");
                    (p.cookie, only(&s))
                } else {
                    let (cookie, our_ts) = handshake(&mut l);
                    let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
                    let ack = Some(cookie.wrapping_add(1));
                    let f = client_frame(&l, CISN + 1, false, ack, &ts, &head);
                    (cookie, only(&l.send(0, &f)[1]))
                };
                assert!(syn.syn);
                let real = |t: &T| (2..=3).find(|&n| lab::real(n, v6).to_ip() == t.dst);
                let first = real(&syn).expect("pool b");
                let [c, s] = server_refuses(&mut l, &syn);
                assert!(c.is_empty(), "the client sees nothing of the refusal");
                let syn = only(&s);
                assert!(syn.syn && syn.seq == CISN);
                let n = real(&syn).expect("pool b");
                assert_ne!(n, first, "the pool's other server");

                let [c, s] = l.send(1, &synack_of(&l, n, &syn, 1460, 114));
                assert!(c.is_empty());
                let mut to_server: Vec<T> = s.iter().map(|f| read(f)).collect();
                to_server.extend(l.idle()[1].iter().map(|f| read(f)));
                assert!(to_server[0].payload.is_empty(), "the handshake's ACK first");
                let got: Vec<u8> = to_server[1..]
                    .iter()
                    .inspect(|d| assert_eq!((d.dst, d.ack), (syn.dst, SISN + 1)))
                    .flat_map(|d| d.payload.clone())
                    .collect();
                assert_eq!(got, head, "two_segments={two_segments}: the request, whole");

                let answer = seg(
                    (lab::real_mac(n), lab::LB1_MAC),
                    syn.dst,
                    80,
                    l.seen_client(),
                    syn.sport,
                    SISN + 1,
                    false,
                    Some(CISN + 1 + head.len() as u32),
                    &[Opt::Noop, Opt::Noop, Opt::Timestamp(9001, 114)],
                    b"HTTP/1.1 200 OK\r\n\r\n",
                );
                let r = only(&l.send(1, &answer)[0]);
                assert_eq!((r.src, r.dst), (l.vip(), l.client()));
                assert_eq!(r.seq, cookie.wrapping_add(1));
                assert_eq!(r.payload, b"HTTP/1.1 200 OK\r\n\r\n");
            }
            let c = &l.shared.counters[0];
            assert_eq!(
                (c.synproxy_redispatched.get(), c.synproxy_failures.get()),
                (2, 0)
            );
            assert_eq!(l.drops(DropReason::SynProxyNotReady), 0);
            assert_eq!(l.drops(DropReason::Layer7ReplayLost), 0);
        }
    }
}

/// A server that never answers uvs's SYN (sent again at 1 s and 3 s) is given up at 7 s:
/// an HTTP client then gets `503 Service Unavailable` and FIN acknowledging its request,
/// as HAProxy answers once its connect timeout and retries are spent, instead of a reset;
/// with uvs's timestamp when the client uses them. A TLS client is still reset.
#[test]
fn a_server_that_never_answers_gets_the_client_503() {
    for v6 in [false, true] {
        let mut l = Lab::new(Method::Nat, v6);
        let (cookie, our_ts) = handshake(&mut l);
        let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
        let req = b"GET /b/x HTTP/1.1\r\nHost: a\r\n\r\n";
        let f = client_frame(&l, CISN + 1, false, Some(cookie.wrapping_add(1)), &ts, req);
        assert!(only(&l.send(0, &f)[1]).syn);
        let mut answers = Vec::new();
        for secs in [1, 2, 4] {
            l.advance(secs);
            let [c, _] = l.idle();
            answers.extend(c.iter().map(|f| read(f)));
        }
        assert_eq!(answers.len(), 1, "v6={v6}: {answers:?}");
        let r = &answers[0];
        assert!(
            !r.rst
                && r.fin
                && r.payload
                    .starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"),
            "v6={v6}: {r:?}"
        );
        assert_eq!((r.src, r.dst), (l.vip(), l.client()));
        assert_eq!(
            (r.seq, r.ack),
            (cookie.wrapping_add(1), CISN + 1 + req.len() as u32)
        );
        assert_eq!(r.ts.map(|(v, _)| v), Some(our_ts), "v6={v6}");
        assert_eq!(l.shared.conns.len(), 0);

        // TLS: reset.
        l.cport += 1;
        let (cookie, our_ts) = handshake(&mut l);
        let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
        let hello = client_hello(b"tls.b.example");
        let f = client_frame(
            &l,
            CISN + 1,
            false,
            Some(cookie.wrapping_add(1)),
            &ts,
            &hello,
        );
        l.send(0, &f);
        let mut answers = Vec::new();
        for secs in [1, 2, 4] {
            l.advance(secs);
            let [c, _] = l.idle();
            answers.extend(c.iter().map(|f| read(f)));
        }
        assert!(answers.len() == 1 && answers[0].rst, "v6={v6}: {answers:?}");
    }
}
