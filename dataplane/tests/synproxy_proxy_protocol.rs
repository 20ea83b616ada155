//! The SYN proxy's PROXY protocol v2 header (`proxy_protocol: v2`) through a real `Worker`
//! on in-memory ports (port 0 = clients, port 1 = real servers), frames built and read
//! back by etherparse: the header segment's bytes, the client's sequence space shifted by
//! the header's length both ways (SEQ, ACK, SACK blocks), and the header sent again when
//! the server shows it never got it. The helpers follow `tests/synproxy.rs`.

use std::net::IpAddr;
use std::sync::Arc;

use etherparse::{PacketBuilder, SlicedPacket, TcpOptionElement as Opt, TransportSlice};
use uvs_dataplane::lab::{self, ipk};
use uvs_dataplane::{Method, Shared, TablesBuilder, Worker};
use uvs_port::MemPort;
use uvs_sched::SchedulerKind;
use uvs_testkit::check_frame;

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Lab {
    shared: Arc<Shared>,
    w: Worker<MemPort>,
    v6: bool,
    method: Method,
}

impl Lab {
    fn new(method: Method, v6: bool) -> Lab {
        let mut spec = lab::spec(method, SchedulerKind::Rr, 1);
        for s in &mut spec.services {
            s.syn_proxy = s.key.proto == 6;
            s.proxy_protocol = s.syn_proxy;
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
        }
    }

    fn send(&mut self, port: usize, frame: &[u8]) -> [Vec<Vec<u8>>; 2] {
        assert!(self.w.ports[port].push_rx(frame));
        self.w.poll();
        [self.w.ports[0].take_tx(), self.w.ports[1].take_tx()]
    }

    fn client(&self) -> IpAddr {
        a(if self.v6 { lab::CLIENT6 } else { lab::CLIENT4 })
    }
    fn vip(&self) -> IpAddr {
        a(if self.v6 { lab::VIP6 } else { lab::VIP4 })
    }
    fn real1(&self) -> IpAddr {
        lab::real(1, self.v6).to_ip()
    }
    /// Where the real server sees the client: the client itself (NAT) or the pool.
    fn seen_client(&self) -> IpAddr {
        match self.method {
            Method::FullNat => ipk(if self.v6 { lab::POOL6 } else { lab::POOL4 }).to_ip(),
            _ => self.client(),
        }
    }
}

#[derive(Default, Clone, Copy)]
struct F {
    syn: bool,
    ack: Option<u32>,
    fin: bool,
    rst: bool,
    psh: bool,
}

#[allow(clippy::too_many_arguments)]
fn seg(
    macs: ([u8; 6], [u8; 6]),
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    seq: u32,
    window: u16,
    f: F,
    opts: &[Opt],
    payload: &[u8],
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(macs.0, macs.1);
    let ip = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => unreachable!(),
    };
    let mut b = ip.tcp(sport, dport, seq, window);
    if f.syn {
        b = b.syn();
    }
    if let Some(n) = f.ack {
        b = b.ack(n);
    }
    if f.fin {
        b = b.fin();
    }
    if f.rst {
        b = b.rst();
    }
    if f.psh {
        b = b.psh();
    }
    let b = b.options(opts).unwrap();
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// A TCP segment as etherparse reads it (after `check_frame` verified its checksums).
#[derive(Debug, Default)]
struct T {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: u16,
    dport: u16,
    syn: bool,
    ack_flag: bool,
    rst: bool,
    fin: bool,
    seq: u32,
    ack: u32,
    window: u16,
    mss: Option<u16>,
    ws: Option<u8>,
    sack_perm: bool,
    ts: Option<(u32, u32)>,
    sack: Vec<(u32, u32)>,
    payload: Vec<u8>,
}

fn read(frame: &[u8]) -> T {
    let seen = check_frame(frame).unwrap_or_else(|e| panic!("bad frame: {e}"));
    let s = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(TransportSlice::Tcp(t)) = s.transport else {
        panic!("not tcp")
    };
    let mut out = T {
        src: Some(seen.src),
        dst: Some(seen.dst),
        sport: t.source_port(),
        dport: t.destination_port(),
        syn: t.syn(),
        ack_flag: t.ack(),
        rst: t.rst(),
        fin: t.fin(),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        window: t.window_size(),
        payload: t.payload().to_vec(),
        ..T::default()
    };
    for o in t.options_iterator() {
        match o.unwrap() {
            Opt::MaximumSegmentSize(m) => out.mss = Some(m),
            Opt::WindowScale(w) => out.ws = Some(w),
            Opt::SelectiveAcknowledgementPermitted => out.sack_perm = true,
            Opt::Timestamp(v, e) => out.ts = Some((v, e)),
            Opt::SelectiveAcknowledgement(first, rest) => {
                out.sack.push(first);
                out.sack.extend(rest.iter().flatten());
            }
            _ => {}
        }
    }
    out
}

fn only(out: &[Vec<u8>]) -> T {
    assert_eq!(out.len(), 1, "expected exactly one frame");
    read(&out[0])
}

const CPORT: u16 = 40000;
const CISN: u32 = 1000;
const SISN: u32 = 5_000_000;

/// What a proxied handshake left: uvs's ISN towards the client, its TSval, and the port
/// the real server sees the client on.
struct Opened {
    cookie: u32,
    our_ts: u32,
    sport_seen: u16,
}

fn client_frame(l: &Lab, seq: u32, f: F, opts: &[Opt], payload: &[u8]) -> Vec<u8> {
    seg(
        (lab::CLIENT_MAC, lab::LB0_MAC),
        l.client(),
        CPORT,
        l.vip(),
        80,
        seq,
        1000,
        f,
        opts,
        payload,
    )
}

fn server_frame(l: &Lab, o: &Opened, seq: u32, f: F, opts: &[Opt], payload: &[u8]) -> Vec<u8> {
    seg(
        (lab::real_mac(1), lab::LB1_MAC),
        l.real1(),
        80,
        l.seen_client(),
        o.sport_seen,
        seq,
        100,
        f,
        opts,
        payload,
    )
}

const CLIENT_SYN_OPTS: [Opt; 5] = [
    Opt::MaximumSegmentSize(1460),
    Opt::SelectiveAcknowledgementPermitted,
    Opt::Timestamp(111, 0),
    Opt::Noop,
    Opt::WindowScale(7),
];

/// SYN → cookie SYN-ACK → ACK → SYN to the server; checks each step.
fn open(l: &mut Lab) -> Opened {
    let syn = client_frame(
        l,
        CISN,
        F {
            syn: true,
            ..F::default()
        },
        &CLIENT_SYN_OPTS,
        b"",
    );
    let [to_client, to_server] = l.send(0, &syn);
    assert!(to_server.is_empty(), "the SYN does not reach a server");
    let sa = only(&to_client);
    assert_eq!((sa.src, sa.dst), (Some(l.vip()), Some(l.client())));
    assert_eq!((sa.sport, sa.dport), (80, CPORT));
    assert!(sa.syn && sa.ack_flag);
    assert_eq!(sa.ack, CISN + 1);
    assert_eq!(sa.mss, Some(if l.v6 { 1440 } else { 1460 }));
    assert!(sa.sack_perm);
    assert_eq!(sa.ws, Some(7));
    let (our_ts, echo) = sa.ts.expect("timestamps offered back");
    assert_eq!(echo, 111);
    assert_eq!(l.shared.conns.len(), 0, "a cookie SYN-ACK stores nothing");
    assert_eq!(l.shared.counters[0].synproxy_cookies_sent.get(), 1);

    let ack = client_frame(
        l,
        CISN + 1,
        F {
            ack: Some(sa.seq.wrapping_add(1)),
            ..F::default()
        },
        &[Opt::Noop, Opt::Noop, Opt::Timestamp(112, our_ts)],
        b"",
    );
    let [to_client, to_server] = l.send(0, &ack);
    assert!(to_client.is_empty());
    let s = only(&to_server);
    assert_eq!(s.dst, Some(l.real1()));
    assert_eq!(s.src, Some(l.seen_client()));
    assert_eq!(s.dport, 80);
    if l.method == Method::Nat {
        assert_eq!(s.sport, CPORT);
    }
    assert!(s.syn && !s.ack_flag);
    assert_eq!(s.seq, CISN, "the client's ISN");
    // The MSS as the cookie kept it (rounded down to its table), the client's options.
    assert_eq!(s.mss, Some(if l.v6 { 1440 } else { 1460 }));
    assert!(s.sack_perm);
    assert_eq!(s.ws, Some(7));
    assert_eq!(s.ts, Some((112, 0)));
    assert_eq!(l.shared.conns.len(), 1);
    assert_eq!(l.shared.counters[0].synproxy_cookies_valid.get(), 1);
    Opened {
        cookie: sa.seq,
        our_ts,
        sport_seen: s.sport,
    }
}

fn server_synack(l: &Lab, o: &Opened, ws: Option<u8>) -> Vec<u8> {
    let mut opts = vec![
        Opt::MaximumSegmentSize(1400),
        Opt::SelectiveAcknowledgementPermitted,
        Opt::Timestamp(9000, 112),
    ];
    if let Some(w) = ws {
        opts.push(Opt::Noop);
        opts.push(Opt::WindowScale(w));
    }
    server_frame(
        l,
        o,
        SISN,
        F {
            syn: true,
            ack: Some(CISN + 1),
            ..F::default()
        },
        &opts,
        b"",
    )
}

/// The header as HAProxy's proxy-protocol.txt section 2.2 lays it out, byte by byte:
/// the client's address and port, the VIP and port 80.
fn expected_header(l: &Lab) -> Vec<u8> {
    let mut h = vec![
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
    ];
    h.push(0x21); // version 2, PROXY
    match (l.client(), l.vip()) {
        (IpAddr::V4(c), IpAddr::V4(v)) => {
            h.extend_from_slice(&[0x11, 0x00, 12]);
            h.extend_from_slice(&c.octets());
            h.extend_from_slice(&v.octets());
        }
        (IpAddr::V6(c), IpAddr::V6(v)) => {
            h.extend_from_slice(&[0x21, 0x00, 36]);
            h.extend_from_slice(&c.octets());
            h.extend_from_slice(&v.octets());
        }
        _ => unreachable!(),
    }
    h.extend_from_slice(&CPORT.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h
}

fn pure_ack(l: &Lab, o: &Opened, ack: u32, tsval: u32, sack: Option<(u32, u32)>) -> Vec<u8> {
    let mut opts = vec![Opt::Noop, Opt::Noop, Opt::Timestamp(tsval, 113)];
    if let Some(b) = sack {
        opts = vec![
            Opt::Timestamp(tsval, 113),
            Opt::SelectiveAcknowledgement(b, [None, None, None]),
        ];
    }
    server_frame(
        l,
        o,
        SISN + 1,
        F {
            ack: Some(ack),
            ..F::default()
        },
        &opts,
        b"",
    )
}

#[test]
fn the_header_goes_first_and_shifts_the_clients_sequence_space() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            let mut l = Lab::new(method, v6);
            let o = open(&mut l);
            let hdr = expected_header(&l);
            let n = hdr.len() as u32;
            assert_eq!(n, if v6 { 52 } else { 28 });

            // The client's request arrives before the server answered: held.
            let c1 = o.cookie.wrapping_add(1);
            let req = client_frame(
                &l,
                CISN + 1,
                F {
                    ack: Some(c1),
                    psh: true,
                    ..F::default()
                },
                &[Opt::Noop, Opt::Noop, Opt::Timestamp(113, o.our_ts)],
                b"GET / HTTP/1.1\r\n\r\n",
            );
            let [c, s] = l.send(0, &req);
            assert!(
                c.is_empty() && s.is_empty(),
                "held until the server answers"
            );

            // The server's SYN-ACK: the ACK completing its handshake carries the header at
            // the client's ISN + 1; the held request follows, L bytes further on.
            let [to_client, to_server] = l.send(1, &server_synack(&l, &o, Some(7)));
            assert!(to_client.is_empty());
            assert_eq!(
                to_server.len(),
                2,
                "the header segment, then the held request"
            );
            let h = read(&to_server[0]);
            assert_eq!((h.src, h.dst), (Some(l.seen_client()), Some(l.real1())));
            assert!(h.ack_flag && !h.syn && !h.fin && !h.rst);
            assert_eq!((h.seq, h.ack), (CISN + 1, SISN + 1));
            assert_eq!(h.ts, Some((112, 9000)));
            assert_eq!(h.payload, hdr, "PROXY v2 header bytes");
            let r = read(&to_server[1]);
            assert_eq!((r.seq, r.ack), (CISN + 1 + n, SISN + 1));
            assert_eq!(r.payload, b"GET / HTTP/1.1\r\n\r\n");
            let shared = l.shared.clone();
            let counters = &shared.counters[0];
            assert_eq!(counters.synproxy_proxy_headers.get(), 1);
            assert_eq!(counters.synproxy_proxy_resent.get(), 0);

            // The server's ACK of only its SYN: the header never arrived; it goes again
            // in that ACK's place (the client learns nothing from it).
            let [c, s] = l.send(1, &pure_ack(&l, &o, CISN + 1, 9001, None));
            assert!(c.is_empty(), "the duplicate ACK is not forwarded");
            let again = only(&s);
            assert_eq!((again.seq, again.ack), (CISN + 1, SISN + 1));
            assert_eq!(again.payload, hdr);
            assert_eq!(counters.synproxy_proxy_resent.get(), 1);

            // A repeated SYN-ACK (our ACK was lost) is answered with the header too.
            let s = only(&l.send(1, &server_synack(&l, &o, Some(7)))[1]);
            assert_eq!((s.seq, s.ack), (CISN + 1, SISN + 1));
            assert_eq!(s.payload, hdr);
            assert_eq!(counters.synproxy_proxy_resent.get(), 2);

            // The server acknowledges the header and the request, and SACKs a later block:
            // the client sees its own numbers (ACK − L, SACK − L).
            let got = CISN + 1 + n + 18;
            let reply = server_frame(
                &l,
                &o,
                SISN + 1,
                F {
                    ack: Some(got),
                    psh: true,
                    ..F::default()
                },
                &[
                    Opt::Timestamp(9005, 113),
                    Opt::SelectiveAcknowledgement((got + 100, got + 200), [None, None, None]),
                ],
                b"HTTP/1.1 200 OK\r\n\r\n",
            );
            let [to_client, to_server] = l.send(1, &reply);
            assert!(to_server.is_empty());
            let c = only(&to_client);
            assert_eq!((c.src, c.dst), (Some(l.vip()), Some(l.client())));
            assert_eq!((c.seq, c.ack), (c1, CISN + 19));
            assert_eq!(c.sack, vec![(CISN + 119, CISN + 219)]);
            assert_eq!(c.payload, b"HTTP/1.1 200 OK\r\n\r\n");

            // Client → server: SEQ + L, its ACK and SACK blocks + δ (the server's space).
            let more = client_frame(
                &l,
                CISN + 19,
                F {
                    ack: Some(c1.wrapping_add(19)),
                    fin: true,
                    ..F::default()
                },
                &[
                    Opt::Timestamp(114, o.our_ts + 5),
                    Opt::SelectiveAcknowledgement(
                        (c1.wrapping_add(50), c1.wrapping_add(60)),
                        [None, None, None],
                    ),
                ],
                b"",
            );
            let s = only(&l.send(0, &more)[1]);
            assert!(s.fin);
            assert_eq!((s.seq, s.ack), (CISN + 19 + n, SISN + 20));
            assert_eq!(s.sack, vec![(SISN + 51, SISN + 61)]);
            assert!(s.payload.is_empty());

            // Once acknowledged, the header is never sent again: an old ACK of only the
            // SYN (reordered) is translated like any segment.
            let c = only(&l.send(1, &pure_ack(&l, &o, CISN + 1, 9006, None))[0]);
            assert_eq!(c.ack, (CISN + 1).wrapping_sub(n));
            assert_eq!(counters.synproxy_proxy_resent.get(), 2);
            assert_eq!(counters.synproxy_proxy_headers.get(), 3);
        }
    }
}

#[test]
fn without_early_data_the_header_segment_is_alone_and_the_first_request_shifted() {
    let mut l = Lab::new(Method::Nat, false);
    let o = open(&mut l);
    let s = only(&l.send(1, &server_synack(&l, &o, None))[1]);
    assert_eq!(s.payload, expected_header(&l));
    // A server that does not scale reads uvs's window as it is.
    assert_eq!(s.window, 65535);
    let req = client_frame(
        &l,
        CISN + 1,
        F {
            ack: Some(o.cookie.wrapping_add(1)),
            ..F::default()
        },
        &[Opt::Noop, Opt::Noop, Opt::Timestamp(113, o.our_ts)],
        b"x",
    );
    let s = only(&l.send(0, &req)[1]);
    assert_eq!(s.seq, CISN + 1 + 28);
}
