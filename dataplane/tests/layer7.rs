//! Layer-7 scheduling through a real `Worker` on in-memory ports (port 0 = clients, port 1
//! = real servers), frames built and read back by etherparse: the first request's Host,
//! path, header, cookie or TLS server name chooses the pool; bad heads are refused.
//!
//! Pools: `a` = real server 1, `b` = real servers 2 and 3 (rr); default `a`.

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
        matcher: m,
        pool: 1,
    }
}

impl Lab {
    fn new(method: Method, v6: bool) -> Lab {
        Self::with(method, v6, false)
    }

    /// With `proxy_protocol: v2` too.
    fn with(method: Method, v6: bool, proxy_protocol: bool) -> Lab {
        let mut spec = lab::spec(method, SchedulerKind::Rr, 1);
        for s in &mut spec.services {
            if s.key.proto != 6 {
                continue;
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
                    },
                    PoolSpec {
                        name: "b".into(),
                        sched: SchedConfig::new(SchedulerKind::Rr),
                        members: vec![reals[1], reals[2]],
                    },
                ],
                rules: vec![
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
    let sa = seg(
        (lab::real_mac(n), lab::LB1_MAC),
        syn.dst,
        80,
        l.seen_client(),
        syn.sport,
        SISN,
        true,
        Some(CISN + 1),
        &[Opt::MaximumSegmentSize(1460), Opt::Timestamp(9000, 113)],
        b"",
    );
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
            // A head that does not end in its segment: the default pool, counted.
            assert_eq!(
                route(&mut l, b"GET /b/ HTTP/1.1\r\nHost: x.b.example\r\n"),
                1
            );
            assert_eq!(l.shared.counters[0].layer7_incomplete.get(), 1);
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
            proptest::prop_assert!(t.rst || (t.fin && t.payload.starts_with(b"HTTP/1.1 400")));
            proptest::prop_assert_eq!(l.shared.conns.len(), 0);
        }
    }
}
