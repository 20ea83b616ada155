//! `uvs-bench l7head`: what receiving a layer-7 request head over several segments costs,
//! uvs's in-place receiver (`synproxy::head`: a worker's pending heads) against smoltcp's
//! TCP socket doing the same job (the endpoint issue #12 suggested), and plain NAT's
//! established flows over frames of the same size as the baseline, all in one run.
//!
//! Each of `--clients` clients sends a head that does not end: its first segment opens the
//! pending state (uvs: cookie handshake, then the first data segment; smoltcp: the
//! handshake with a listening socket, then the first data segment), then `--segments`
//! more in-order segments of `--payload` bytes, each acknowledged. Timed: those later
//! segments only, per segment, best of `--rounds` rounds (the machine is shared). Memory:
//! per pending client, the fixed state plus what the head's bytes need (smoltcp's receive
//! buffer is allocated whole, at the head limit, when the socket is made).
//!
//! The smoltcp side leaves out what an integration would add (the ISN translation between
//! smoltcp's own ISN and the cookie on every segment, the head parse); uvs's side includes
//! its parse (`httparse` over the buffered head on every segment).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use etherparse::{PacketBuilder, SlicedPacket, TcpOptionElement as Opt, TransportSlice};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use uvs_dataplane::lab;
use uvs_dataplane::synproxy::head::Heads;
use uvs_dataplane::synproxy::layer7::{Layer7Spec, PoolSpec};
use uvs_dataplane::{Method, Shared, TablesBuilder, Worker};
use uvs_port::MemPort;
use uvs_sched::{SchedConfig, SchedulerKind};

#[derive(clap::Args)]
pub struct L7headArgs {
    /// Pending clients (at most 1024: a worker's bound).
    #[arg(long, default_value_t = 1000, value_parser = crate::args::count)]
    clients: usize,
    /// Segments after the first, per client.
    #[arg(long, default_value_t = 4, value_parser = crate::args::count)]
    segments: usize,
    /// Payload bytes per segment.
    #[arg(long, default_value_t = 1400, value_parser = crate::args::count)]
    payload: usize,
    /// The head limit (smoltcp's receive buffer per socket).
    #[arg(long, default_value_t = 8192)]
    head_limit: usize,
    /// Rounds; each scenario reports its best.
    #[arg(long, default_value_t = 5, value_parser = crate::args::count)]
    rounds: usize,
    /// Write the figures here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

const CISN: u32 = 1000;

fn client(i: usize) -> (IpAddr, u16) {
    crate::pipeline::client_addr(i, false)
}

fn vip() -> IpAddr {
    lab::VIP4.parse().expect("vip")
}

/// A client TCP frame: Ethernet (for uvs) or bare IP (for smoltcp's IP medium).
#[allow(clippy::too_many_arguments)]
fn frame(
    eth: bool,
    c: (IpAddr, u16),
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    opts: &[Opt],
    payload: &[u8],
) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (c.0, vip()) else {
        unreachable!("IPv4 only")
    };
    let ip = if eth {
        PacketBuilder::ethernet2(lab::CLIENT_MAC, lab::LB0_MAC).ipv4(s.octets(), d.octets(), 64)
    } else {
        PacketBuilder::ipv4(s.octets(), d.octets(), 64)
    };
    let mut b = ip.tcp(c.1, 80, seq, 65535);
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    let b = b.options(opts).expect("options");
    let mut out = Vec::with_capacity(payload.len() + 80);
    b.write(&mut out, payload).expect("frame");
    out
}

/// The (seq, TSval) of a SYN-ACK.
fn synack(f: &[u8], eth: bool) -> (u32, Option<u32>) {
    let s = if eth {
        SlicedPacket::from_ethernet(f)
    } else {
        SlicedPacket::from_ip(f)
    }
    .expect("a frame");
    let Some(TransportSlice::Tcp(t)) = s.transport else {
        panic!("not TCP")
    };
    let ts = t.options_iterator().find_map(|o| match o {
        Ok(Opt::Timestamp(v, _)) => Some(v),
        _ => None,
    });
    (t.sequence_number(), ts)
}

/// A head that never ends: header lines of ~350 bytes filling `n` bytes (few enough
/// headers for `httparse`'s 64 over the whole head).
fn padding(n: usize, k: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    if k == 0 {
        v.extend_from_slice(b"GET / HTTP/1.1\r\nHost: bench.example\r\n");
    }
    while v.len() < n {
        v.extend_from_slice(b"X-Pad: ");
        v.extend(std::iter::repeat_n(b'p', 341));
        v.extend_from_slice(b"\r\n");
    }
    v.truncate(n);
    // Never a blank line, whatever the cut.
    if v.ends_with(b"\r") {
        *v.last_mut().expect("non-empty") = b'p';
    }
    v
}

struct Figures {
    ns_per_segment: f64,
    bytes_per_client: f64,
    fixed_per_client: usize,
}

/// uvs: a worker with one layer-7 service; `layer4`: the same frames through plain NAT's
/// established flows (the baseline).
fn uvs(a: &L7headArgs, layer4: bool) -> Figures {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    for s in &mut spec.services {
        if s.key.proto != 6 || layer4 {
            continue;
        }
        s.syn_proxy = true;
        let reals: Vec<_> = s.reals.iter().map(|r| r.addr).collect();
        s.layer7 = Some(Layer7Spec {
            pools: vec![PoolSpec {
                name: "a".into(),
                sched: SchedConfig::new(SchedulerKind::Rr),
                members: reals,
                down: vec![],
            }],
            rules: vec![],
            default_pool: 0,
            head_limit: 65536,
            head_timeout_s: 3600,
        });
    }
    let tables = TablesBuilder::build(&spec, None).expect("lab tables");
    let shared = Arc::new(Shared::new(tables, 65536, 1));
    lab::learn_neighbours(&shared.neigh, 0);
    for i in 0..a.clients {
        let ip = uvs_dataplane::IpKey::from_ip(client(i).0);
        shared.neigh.learn(ip, lab::CLIENT_MAC, 0);
    }
    let ports = vec![MemPort::new("client", 4096), MemPort::new("server", 4096)];
    let mut w = Worker::new(0, ports, shared.clone());
    let send = |w: &mut Worker<MemPort>, f: &[u8]| -> Vec<Vec<u8>> {
        assert!(w.ports[0].push_rx(f));
        w.poll();
        let mut out = w.ports[0].take_tx();
        out.extend(w.ports[1].take_tx());
        out
    };
    // Open: the handshake (a cookie, or a NAT flow) and the first segment.
    let mut next = Vec::with_capacity(a.clients);
    for i in 0..a.clients {
        let c = client(i);
        let syn_opts = [
            Opt::MaximumSegmentSize(1460),
            Opt::Timestamp(1, 0),
            Opt::Noop,
            Opt::Noop,
        ];
        let out = send(&mut w, &frame(true, c, CISN, None, true, &syn_opts, b""));
        let (ack, ts) = if layer4 {
            (1, 0)
        } else {
            let (seq, ts) = synack(&out[0], true);
            let ts = ts.expect("timestamps");
            let ack = seq.wrapping_add(1);
            let o = [Opt::Noop, Opt::Noop, Opt::Timestamp(2, ts)];
            send(&mut w, &frame(true, c, CISN + 1, Some(ack), false, &o, b""));
            (ack, ts)
        };
        let o = [Opt::Noop, Opt::Noop, Opt::Timestamp(3, ts)];
        let first = padding(a.payload, 0);
        let out = send(
            &mut w,
            &frame(true, c, CISN + 1, Some(ack), false, &o, &first),
        );
        assert_eq!(out.len(), 1, "one answer to the first segment");
        next.push((ack, ts, CISN + 1 + a.payload as u32));
    }
    if !layer4 {
        let pending = shared.counters[0].layer7_pending.get();
        assert_eq!(pending, a.clients as u64, "every client pending");
    }
    let mut frames = Vec::with_capacity(a.clients * a.segments);
    for k in 1..=a.segments {
        for (i, (ack, ts, seq)) in next.iter_mut().enumerate() {
            let o = [Opt::Noop, Opt::Noop, Opt::Timestamp(4, *ts)];
            let p = padding(a.payload, k);
            frames.push(frame(true, client(i), *seq, Some(*ack), false, &o, &p));
            *seq = seq.wrapping_add(a.payload as u32);
        }
    }
    let t = Instant::now();
    let mut answers = 0;
    for chunk in frames.chunks(uvs_dataplane::BURST) {
        for f in chunk {
            assert!(w.ports[0].push_rx(f));
        }
        w.poll();
        answers += w.ports[0].take_tx().len() + w.ports[1].take_tx().len();
    }
    let best = t.elapsed().as_nanos() as f64 / frames.len() as f64;
    let c = &shared.counters[0];
    let drops: Vec<String> = (0..uvs_dataplane::DropReason::COUNT)
        .filter(|&i| c.drops[i].get() > 0)
        .map(|i| {
            format!(
                "{}={}",
                uvs_dataplane::DropReason::name_of(i),
                c.drops[i].get()
            )
        })
        .collect();
    assert_eq!(
        answers,
        frames.len(),
        "every segment answered or forwarded: {drops:?}"
    );
    let c = &shared.counters[0];
    Figures {
        ns_per_segment: best,
        bytes_per_client: if layer4 {
            0.0
        } else {
            c.layer7_pending_bytes.get() as f64 / a.clients as f64
        },
        fixed_per_client: if layer4 { 0 } else { Heads::ENTRY_BYTES },
    }
}

/// An in-memory IP device: frames in, frames out.
#[derive(Default)]
struct Mem {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut Vec<Vec<u8>>);

impl smoltcp::phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl smoltcp::phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut v = vec![0; len];
        let r = f(&mut v);
        self.0.push(v);
        r
    }
}

impl Device for Mem {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(
        &mut self,
        _: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let f = self.rx.pop_front()?;
        Some((Rx(f), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = 1500;
        c
    }
}

fn smol(a: &L7headArgs) -> Figures {
    let mut dev = Mem::default();
    let now = smoltcp::time::Instant::from_millis(1);
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut dev, now);
    iface.update_ip_addrs(|ips| {
        ips.push(IpCidr::new(IpAddress::v4(198, 18, 100, 1), 24))
            .expect("an address");
    });
    iface
        .routes_mut()
        .add_default_ipv4_route(smoltcp::wire::Ipv4Address::new(198, 18, 100, 254))
        .expect("a route");
    let mut sockets = SocketSet::new(Vec::new());
    let mut handles: Vec<SocketHandle> = Vec::with_capacity(a.clients);
    for _ in 0..a.clients {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; a.head_limit]),
            tcp::SocketBuffer::new(vec![0; 256]),
        );
        s.set_ack_delay(None);
        s.listen(80).expect("listen");
        handles.push(sockets.add(s));
    }
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); a.clients];
    let mut next = Vec::with_capacity(a.clients);
    for i in 0..a.clients {
        let c = client(i);
        let syn_opts = [
            Opt::MaximumSegmentSize(1460),
            Opt::Noop,
            Opt::Noop,
            Opt::Noop,
            Opt::Noop,
        ];
        dev.rx
            .push_back(frame(false, c, CISN, None, true, &syn_opts[..1], b""));
        let _ = iface.poll(now, &mut dev, &mut sockets);
        let sa = dev.tx.pop().expect("a SYN-ACK");
        let (seq, _) = synack(&sa, false);
        let ack = seq.wrapping_add(1);
        let first = padding(a.payload, 0);
        dev.rx
            .push_back(frame(false, c, CISN + 1, Some(ack), false, &[], b""));
        dev.rx
            .push_back(frame(false, c, CISN + 1, Some(ack), false, &[], &first));
        let _ = iface.poll(now, &mut dev, &mut sockets);
        dev.tx.clear();
        let s = sockets.get_mut::<tcp::Socket>(handles[i]);
        let _ = s.recv(|d| {
            bufs[i].extend_from_slice(d);
            (d.len(), ())
        });
        next.push((ack, CISN + 1 + a.payload as u32));
    }
    assert!(
        bufs.iter().all(|b| b.len() == a.payload),
        "every socket received its first segment"
    );
    let mut frames = Vec::with_capacity(a.clients * a.segments);
    let mut who = Vec::with_capacity(a.clients * a.segments);
    for k in 1..=a.segments {
        for (i, (ack, seq)) in next.iter_mut().enumerate() {
            let p = padding(a.payload, k);
            frames.push(frame(false, client(i), *seq, Some(*ack), false, &[], &p));
            who.push(i);
            *seq = seq.wrapping_add(a.payload as u32);
        }
    }
    let t = Instant::now();
    let mut acks = 0;
    for (chunk, ids) in frames
        .chunks(uvs_dataplane::BURST)
        .zip(who.chunks(uvs_dataplane::BURST))
    {
        dev.rx.extend(chunk.iter().cloned());
        let _ = iface.poll(now, &mut dev, &mut sockets);
        acks += dev.tx.len();
        dev.tx.clear();
        // The application side: each receiving client's new bytes into its head.
        for &i in ids {
            let s = sockets.get_mut::<tcp::Socket>(handles[i]);
            let _ = s.recv(|d| {
                bufs[i].extend_from_slice(d);
                (d.len(), ())
            });
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / frames.len() as f64;
    let want = a.payload * (a.segments + 1);
    assert!(
        bufs.iter()
            .all(|b| b.len() == want.min(a.head_limit) || b.len() == want),
        "every byte received"
    );
    assert!(acks > 0, "smoltcp acknowledged");
    Figures {
        ns_per_segment: ns,
        // The whole receive buffer, allocated when the socket is made, plus the send
        // buffer for the answer.
        bytes_per_client: (a.head_limit + 256) as f64,
        fixed_per_client: std::mem::size_of::<tcp::Socket>()
            + std::mem::size_of::<smoltcp::iface::SocketStorage>(),
    }
}

pub fn l7head_main(a: L7headArgs) -> Result<()> {
    anyhow::ensure!(
        a.clients <= uvs_dataplane::synproxy::head::MAX_PENDING,
        "at most {} clients (a worker's bound)",
        uvs_dataplane::synproxy::head::MAX_PENDING
    );
    anyhow::ensure!(
        a.payload * (a.segments + 1) <= a.head_limit,
        "--payload x (--segments + 1) must fit --head-limit (smoltcp's buffer)"
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let best = |f: &dyn Fn() -> Figures| {
        let mut b = f();
        for _ in 1..a.rounds {
            let n = f();
            if n.ns_per_segment < b.ns_per_segment {
                b = n;
            }
        }
        b
    };
    let nat = best(&|| uvs(&a, true));
    let ours = best(&|| uvs(&a, false));
    let smo = best(&|| smol(&a));
    println!(
        "{} clients x {} segments of {} B (head limit {} B), best of {} rounds; load {}",
        a.clients,
        a.segments,
        a.payload,
        a.head_limit,
        a.rounds,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "{:<28} {:>12} {:>10} {:>16} {:>14}",
        "receiver", "ns/segment", "x NAT", "fixed B/client", "head B/client"
    );
    for (name, f) in [
        ("NAT established (baseline)", &nat),
        ("uvs pending heads", &ours),
        ("smoltcp tcp::Socket", &smo),
    ] {
        println!(
            "{:<28} {:>12.0} {:>10.2} {:>16} {:>14.0}",
            name,
            f.ns_per_segment,
            f.ns_per_segment / nat.ns_per_segment,
            f.fixed_per_client,
            f.bytes_per_client
        );
    }
    if let Some(path) = &a.json {
        let row = |f: &Figures| {
            serde_json::json!({
                "ns_per_segment": f.ns_per_segment,
                "ratio_to_nat": f.ns_per_segment / nat.ns_per_segment,
                "fixed_bytes_per_client": f.fixed_per_client,
                "head_bytes_per_client": f.bytes_per_client,
            })
        };
        let doc = serde_json::json!({
            "benchmark": "l7head",
            "environment": crate::environment::record(None, &[]),
            "settings": {
                "clients": a.clients, "segments": a.segments, "payload": a.payload,
                "head_limit": a.head_limit, "rounds": a.rounds, "loadavg": load.trim(),
            },
            "nat": row(&nat), "uvs": row(&ours), "smoltcp": row(&smo),
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
