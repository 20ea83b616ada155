//! Shared support of the SYN proxy fixtures (`synproxy.rs`, `synproxy_proxy_protocol.rs`):
//! a lab of SYN-proxied services on a real `Worker` over in-memory ports (port 0 = clients,
//! port 1 = real servers), a segment builder and reader on etherparse (every checksum
//! recomputed independently of uvs's incremental updates), and the proxied handshake.
#![allow(dead_code)]

pub use std::net::IpAddr;
pub use std::sync::Arc;

pub use etherparse::{PacketBuilder, SlicedPacket, TcpOptionElement as Opt, TransportSlice};
pub use uvs_dataplane::lab::{self, ipk};
pub use uvs_dataplane::{DropReason, Method, Shared, TablesBuilder, Worker};
pub use uvs_port::MemPort;
pub use uvs_sched::SchedulerKind;
pub use uvs_testkit::check_frame;

pub fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub struct Lab {
    pub shared: Arc<Shared>,
    pub w: Worker<MemPort>,
    pub v6: bool,
    pub method: Method,
    /// The services keep a persistence template per client (one more table entry).
    pub persistent: bool,
}

impl Lab {
    /// SYN-proxied TCP services.
    pub fn new(method: Method, v6: bool) -> Lab {
        Lab::with(method, v6, false)
    }

    /// SYN-proxied TCP services that send a PROXY protocol v2 header to the real server.
    pub fn with_proxy_protocol(method: Method, v6: bool) -> Lab {
        Lab::with(method, v6, true)
    }

    /// SYN-proxied TCP services on a table large enough that the worker looks a whole
    /// burst's flows up before handling any of them (as uvsd's default table does).
    pub fn batched(method: Method, v6: bool) -> Lab {
        Lab::with_capacity(
            method,
            v6,
            false,
            uvs_dataplane::worker::BATCH_LOOKUP_MIN_CAPACITY,
        )
    }

    fn with(method: Method, v6: bool, proxy_protocol: bool) -> Lab {
        Lab::with_capacity(method, v6, proxy_protocol, 4096)
    }

    /// SYN-proxied TCP services with persistence per client (300 s).
    pub fn persistent(method: Method, v6: bool) -> Lab {
        Lab::build(method, v6, false, 4096, true)
    }

    fn with_capacity(method: Method, v6: bool, proxy_protocol: bool, capacity: usize) -> Lab {
        Lab::build(method, v6, proxy_protocol, capacity, false)
    }

    fn build(
        method: Method,
        v6: bool,
        proxy_protocol: bool,
        capacity: usize,
        persistent: bool,
    ) -> Lab {
        let mut spec = lab::spec(method, SchedulerKind::Rr, 1);
        for s in &mut spec.services {
            s.syn_proxy = s.key.proto == 6;
            s.proxy_protocol = s.syn_proxy && proxy_protocol;
            if persistent {
                s.persistence = Some(uvs_dataplane::tables::Persistence {
                    timeout_s: 300,
                    prefix_len: 128,
                });
            }
        }
        let tables = TablesBuilder::build(&spec, None).unwrap();
        let shared = Arc::new(Shared::new(tables, capacity, 1));
        lab::learn_neighbours(&shared.neigh, 0);
        let ports = vec![MemPort::new("client", 256), MemPort::new("server", 256)];
        let w = Worker::new(0, ports, shared.clone());
        Lab {
            shared,
            w,
            v6,
            method,
            persistent,
        }
    }

    pub fn send(&mut self, port: usize, frame: &[u8]) -> [Vec<Vec<u8>>; 2] {
        assert!(self.w.ports[port].push_rx(frame));
        self.w.poll();
        [self.w.ports[0].take_tx(), self.w.ports[1].take_tx()]
    }

    pub fn idle(&mut self) -> [Vec<Vec<u8>>; 2] {
        self.w.poll();
        [self.w.ports[0].take_tx(), self.w.ports[1].take_tx()]
    }

    pub fn advance(&mut self, secs: u64) {
        self.shared.clock.advance(secs);
        lab::learn_neighbours(&self.shared.neigh, self.shared.clock.now_s());
    }

    pub fn drops(&self, r: DropReason) -> u64 {
        self.shared.counters[0].dropped(r)
    }

    pub fn client(&self) -> IpAddr {
        a(if self.v6 { lab::CLIENT6 } else { lab::CLIENT4 })
    }
    pub fn vip(&self) -> IpAddr {
        a(if self.v6 { lab::VIP6 } else { lab::VIP4 })
    }
    pub fn real1(&self) -> IpAddr {
        lab::real(1, self.v6).to_ip()
    }
    /// Where the real server sees the client: the client itself (NAT) or the pool.
    pub fn seen_client(&self) -> IpAddr {
        match self.method {
            Method::FullNat => ipk(if self.v6 { lab::POOL6 } else { lab::POOL4 }).to_ip(),
            _ => self.client(),
        }
    }
}

#[derive(Default, Clone, Copy)]
pub struct F {
    pub syn: bool,
    pub ack: Option<u32>,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
}

#[allow(clippy::too_many_arguments)]
pub fn seg(
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
pub struct T {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub sport: u16,
    pub dport: u16,
    pub syn: bool,
    pub ack_flag: bool,
    pub rst: bool,
    pub fin: bool,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub mss: Option<u16>,
    pub ws: Option<u8>,
    pub sack_perm: bool,
    pub ts: Option<(u32, u32)>,
    pub sack: Vec<(u32, u32)>,
    pub payload: Vec<u8>,
}

pub fn read(frame: &[u8]) -> T {
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

pub fn only(out: &[Vec<u8>]) -> T {
    assert_eq!(out.len(), 1, "expected exactly one frame");
    read(&out[0])
}

pub const CPORT: u16 = 40000;
pub const CISN: u32 = 1000;
pub const SISN: u32 = 5_000_000;

/// What a proxied handshake left: uvs's ISN towards the client, its TSval, and the port
/// the real server sees the client on.
pub struct Opened {
    pub cookie: u32,
    pub our_ts: u32,
    pub sport_seen: u16,
}

pub fn client_frame(l: &Lab, seq: u32, f: F, opts: &[Opt], payload: &[u8]) -> Vec<u8> {
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

pub fn server_frame(l: &Lab, o: &Opened, seq: u32, f: F, opts: &[Opt], payload: &[u8]) -> Vec<u8> {
    server_frame_of(l, 1, o, seq, f, opts, payload)
}

/// [`server_frame`] from the lab's real server `n` (1 to 3).
pub fn server_frame_of(
    l: &Lab,
    n: u8,
    o: &Opened,
    seq: u32,
    f: F,
    opts: &[Opt],
    payload: &[u8],
) -> Vec<u8> {
    seg(
        (lab::real_mac(n), lab::LB1_MAC),
        lab::real(n, l.v6).to_ip(),
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

pub const CLIENT_SYN_OPTS: [Opt; 5] = [
    Opt::MaximumSegmentSize(1460),
    Opt::SelectiveAcknowledgementPermitted,
    Opt::Timestamp(111, 0),
    Opt::Noop,
    Opt::WindowScale(7),
];

/// SYN → cookie SYN-ACK → ACK → SYN to the server; checks each step.
pub fn open(l: &mut Lab) -> Opened {
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
    assert_eq!(l.shared.conns.len(), 1 + usize::from(l.persistent));
    assert_eq!(l.shared.counters[0].synproxy_cookies_valid.get(), 1);
    Opened {
        cookie: sa.seq,
        our_ts,
        sport_seen: s.sport,
    }
}

pub fn server_synack(l: &Lab, o: &Opened, ws: Option<u8>) -> Vec<u8> {
    server_synack_of(l, 1, o, ws)
}

/// [`server_synack`] from the lab's real server `n`.
pub fn server_synack_of(l: &Lab, n: u8, o: &Opened, ws: Option<u8>) -> Vec<u8> {
    let mut opts = vec![
        Opt::MaximumSegmentSize(1400),
        Opt::SelectiveAcknowledgementPermitted,
        Opt::Timestamp(9000, 112),
    ];
    if let Some(w) = ws {
        opts.push(Opt::Noop);
        opts.push(Opt::WindowScale(w));
    }
    server_frame_of(
        l,
        n,
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
