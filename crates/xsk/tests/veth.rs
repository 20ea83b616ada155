//! End-to-end tests on a veth pair between two network namespaces: the XDP
//! program steers owned traffic to an `XskPort`, the port answers through
//! the kernel of the peer namespace, and everything else still reaches the
//! kernel. Needs root: `#[ignore]`d, scripts/test.sh runs them as root.

mod common;

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    time::{Duration, Instant},
};

use common::{require_root, TestNet, MAC_A, MAC_B};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use uvs_port::{Frame, Port};
use uvs_xsk::{
    XdpCounters, XdpMode, XdpProgram, XskConfig, XskError, XskPort, XskPortStats, ZeroCopy,
};

const OWNED4: &str = "198.18.0.10";
const OWNED6: &str = "2001:2::10";
const PORT: u16 = 7777;

/// An ARP reply from `MAC_A` for `ip` to the requester, if `frame` is an
/// ARP request for `ip`.
fn arp_reply(frame: &[u8], ip: [u8; 4]) -> Option<Vec<u8>> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x06] || frame[20..22] != [0, 1] {
        return None;
    }
    if frame[38..42] != ip {
        return None;
    }
    let (sha, spa) = (&frame[22..28], &frame[28..32]);
    let mut r = Vec::with_capacity(42);
    r.extend_from_slice(sha);
    r.extend_from_slice(&MAC_A);
    r.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    r.extend_from_slice(&MAC_A);
    r.extend_from_slice(&ip);
    r.extend_from_slice(sha);
    r.extend_from_slice(spa);
    Some(r)
}

/// The reply to a UDP datagram for PORT: addresses and ports swapped,
/// payload "<payload>-reply", checksums complete.
fn udp_reply(frame: &[u8]) -> Option<(Vec<u8>, bool)> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(TransportSlice::Udp(udp)) = &p.transport else {
        return None;
    };
    if udp.destination_port() != PORT {
        return None;
    }
    let mut payload = udp.payload().to_vec();
    let in_place = payload.starts_with(b"burst");
    payload.extend_from_slice(b"-reply");
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B);
    let b = match p.net.as_ref()? {
        NetSlice::Ipv4(ip) => b.ipv4(
            ip.header().destination_addr().octets(),
            ip.header().source_addr().octets(),
            64,
        ),
        NetSlice::Ipv6(ip) => b.ipv6(
            ip.header().destination_addr().octets(),
            ip.header().source_addr().octets(),
            64,
        ),
        NetSlice::Arp(_) => return None,
    };
    let b = b.udp(PORT, udp.source_port());
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).ok()?;
    Some((out, in_place))
}

/// Serves ARP for OWNED4 and UDP on PORT until `stop`: "burst*" datagrams
/// are answered in place (buf_mut + tx_burst), the rest by tx_copy.
fn serve(port: &mut XskPort, stop: &AtomicBool) -> (u64, u64) {
    let owned4: std::net::Ipv4Addr = OWNED4.parse().unwrap();
    let (mut arps, mut udps) = (0, 0);
    let mut burst = [Frame::default(); 64];
    let deadline = Instant::now() + Duration::from_secs(8);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let n = port.rx_burst(&mut burst);
        for f in &burst[..n] {
            let data = port.buf_mut(f)[..f.len as usize].to_vec();
            if let Some(r) = arp_reply(&data, owned4.octets()) {
                assert!(port.tx_copy(&r));
                arps += 1;
                port.free(&[*f]);
            } else if let Some((r, in_place)) = udp_reply(&data) {
                udps += 1;
                if in_place {
                    port.buf_mut(f)[..r.len()].copy_from_slice(&r);
                    let g = Frame {
                        addr: f.addr,
                        len: r.len() as u32,
                    };
                    assert_eq!(port.tx_burst(&[g]), 1);
                } else {
                    assert!(port.tx_copy(&r));
                    port.free(&[*f]);
                }
            } else {
                port.free(&[*f]);
            }
        }
        port.flush();
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    (arps, udps)
}

/// Sends `msg` to `to` and waits for "<msg>-reply" (resending once a second).
fn ask(sock: &UdpSocket, to: SocketAddr, msg: &str) -> Result<(), String> {
    let want = format!("{msg}-reply");
    let mut buf = [0u8; 256];
    for _ in 0..3 {
        sock.send_to(msg.as_bytes(), to)
            .map_err(|e| e.to_string())?;
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if &buf[..n] == want.as_bytes() && from == to => return Ok(()),
                Ok(_) => continue,
                // The socket's read timeout: keep waiting out the second.
                Err(_) => continue,
            }
        }
    }
    Err(format!("no reply to {msg:?} from {to}"))
}

struct Served {
    mode: XdpMode,
    counters: XdpCounters,
    stats: XskPortStats,
    arps: u64,
    udps: u64,
    pools: (usize, usize),
}

/// The whole exchange in one namespace pair, with the program in `mode`.
fn owned_traffic_reaches_the_socket_and_the_rest_the_kernel(tag: &str, mode: XdpMode) {
    let net = TestNet::new(tag);
    // IPv6 neighbour resolution of the owned address is not under test here
    // (NDP rules are covered by the program's unit tests).
    assert!(net.exec_ok(
        &net.peer,
        &[
            "ip",
            "neigh",
            "add",
            OWNED6,
            "lladdr",
            "02:00:00:00:00:01",
            "dev",
            &net.b,
            "nud",
            "permanent"
        ]
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let a = net.a.clone();
    let stop_lb = stop.clone();
    let lb = net.spawn_in(&net.lb, move || {
        let prog = XdpProgram::attach(&a, mode).expect("attach");
        prog.add_owned(OWNED4.parse().unwrap()).unwrap();
        prog.add_owned(OWNED6.parse().unwrap()).unwrap();
        prog.add_host("198.18.0.1".parse().unwrap()).unwrap();
        let cfg = XskConfig {
            ring_size: 256,
            zero_copy: ZeroCopy::Auto,
        };
        let mut port = XskPort::open(&a, 0, &cfg).expect("open port");
        assert!(!port.is_zero_copy(), "veth has no zero-copy");
        prog.register_socket(0, port.fd()).unwrap();
        ready_tx.send(()).unwrap();
        let (arps, udps) = serve(&mut port, &stop_lb);
        let served = Served {
            mode: prog.mode(),
            counters: prog.counters().unwrap(),
            stats: port.stats(),
            arps,
            udps,
            pools: port.pool_levels(),
        };
        drop(prog);
        served
    });
    if ready_rx.recv_timeout(Duration::from_secs(5)).is_err() {
        let e = lb.join().err().map(|p| format!("{p:?}"));
        panic!("balancer side did not start: {e:?}");
    }
    let peer = net.spawn_in(&net.peer, || -> Result<(), String> {
        let s4 = UdpSocket::bind("198.18.0.2:0").map_err(|e| e.to_string())?;
        s4.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let vip4 = SocketAddr::new(OWNED4.parse().unwrap(), PORT);
        ask(&s4, vip4, "copy4")?;
        ask(&s4, vip4, "burst4")?;
        let s6 = UdpSocket::bind("[2001:2::2]:0").map_err(|e| e.to_string())?;
        s6.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let vip6 = SocketAddr::new(OWNED6.parse::<IpAddr>().unwrap(), PORT);
        ask(&s6, vip6, "copy6")?;
        ask(&s6, vip6, "burst6")
    });
    let peer_result = peer.join().expect("peer thread");
    // The kernel of the balancer namespace still answers for its own
    // addresses (ARP/NDP for them pass too) while the program is attached.
    let ping4 = net.exec_ok(&net.peer, &["ping", "-c", "1", "-W", "2", "198.18.0.1"]);
    let ping6 = net.exec_ok(
        &net.peer,
        &["ping", "-6", "-c", "1", "-W", "2", "2001:2::1"],
    );
    stop.store(true, Ordering::Relaxed);
    let served = lb.join().expect("balancer thread");

    eprintln!(
        "{tag}: mode {:?} arps {} udps {} {:?} {:?} pools {:?}",
        served.mode, served.arps, served.udps, served.counters, served.stats, served.pools
    );
    peer_result.unwrap();
    assert!(
        ping4,
        "kernel stopped answering IPv4 ping with the program attached"
    );
    assert!(
        ping6,
        "kernel stopped answering IPv6 ping with the program attached"
    );
    if mode != XdpMode::Auto {
        assert_eq!(served.mode, mode);
    }
    assert!(
        served.arps >= 1,
        "ARP for the owned address reached the socket"
    );
    assert!(served.udps >= 4);
    let c = served.counters;
    assert!(c.redirected >= 5, "{c:?}");
    assert!(
        c.passed >= 4,
        "pings and their neighbour discovery passed: {c:?}"
    );
    assert_eq!(c.unclaimed, 0, "{c:?}");
    let s = served.stats;
    assert_eq!(s.misuse, 0);
    assert_eq!(s.tx_copy_refused, 0);
    assert_eq!(s.tx, s.tx_completed, "every transmission completed: {s:?}");
    assert_eq!(s.rx, c.redirected, "the socket got every redirected frame");
    // Every TX frame is back in its pool after the last flush.
    assert_eq!(served.pools.1, 256, "{:?}", served.pools);
}

#[test]
#[ignore = "needs root: network namespaces, AF_XDP and BPF (scripts/test.sh runs it as root)"]
fn native_mode_exchange() {
    require_root();
    owned_traffic_reaches_the_socket_and_the_rest_the_kernel("n", XdpMode::Native);
}

#[test]
#[ignore = "needs root: network namespaces, AF_XDP and BPF (scripts/test.sh runs it as root)"]
fn generic_mode_exchange() {
    require_root();
    owned_traffic_reaches_the_socket_and_the_rest_the_kernel("g", XdpMode::Generic);
}

/// Setup mistakes give the error that names the fix.
#[test]
#[ignore = "needs root: network namespaces, AF_XDP and BPF (scripts/test.sh runs it as root)"]
fn setup_errors_name_the_fix() {
    require_root();
    let net = TestNet::new("e");
    let (a, b, peer) = (net.a.clone(), net.b.clone(), net.peer.clone());
    // A jumbo MTU on the peer makes veth refuse native XDP.
    assert!(net.exec_ok(&peer, &["ip", "link", "set", "dev", &b, "mtu", "9000"]));
    let t = net.spawn_in(&net.lb, move || {
        let e = XdpProgram::attach("uvs-nothere", XdpMode::Auto)
            .err()
            .unwrap();
        assert!(matches!(e, XskError::NoSuchInterface(_)), "{e}");
        assert!(e.to_string().starts_with("no such interface 'uvs-nothere'"));

        let e = XdpProgram::attach(&a, XdpMode::Native).err().unwrap();
        assert!(matches!(e, XskError::MtuTooLarge { .. }), "{e}");
        assert!(e.to_string().contains("peer MTU must be ≤ 3506"));

        // Auto falls back to generic mode.
        let prog = XdpProgram::attach(&a, XdpMode::Auto).expect("auto attach");
        assert_eq!(prog.mode(), XdpMode::Generic);

        // A second program on the same interface is refused with the fix.
        let e = XdpProgram::attach(&a, XdpMode::Generic).err().unwrap();
        assert!(matches!(e, XskError::ProgramBusy { .. }), "{e}");
        assert!(e
            .to_string()
            .contains(&format!("ip link set dev {a} xdp off")));
        // Dropping the program detaches it: attaching works again.
        drop(prog);
        let prog = XdpProgram::attach(&a, XdpMode::Generic).expect("re-attach after drop");

        let cfg = XskConfig {
            ring_size: 64,
            zero_copy: ZeroCopy::Auto,
        };
        let e = XskPort::open(&a, 4, &cfg).err().unwrap();
        assert!(
            matches!(
                e,
                XskError::QueueOutOfRange {
                    queue: 4,
                    count: 1,
                    ..
                }
            ),
            "{e}"
        );
        let e = XskPort::open("uvs-nothere", 0, &cfg).err().unwrap();
        assert!(matches!(e, XskError::NoSuchInterface(_)), "{e}");
        let zc = XskConfig {
            zero_copy: ZeroCopy::On,
            ..cfg.clone()
        };
        let e = XskPort::open(&a, 0, &zc).err().unwrap();
        assert!(matches!(e, XskError::ZeroCopyUnsupported { .. }), "{e}");
        let bad = XskConfig {
            ring_size: 100,
            ..cfg.clone()
        };
        assert!(matches!(
            XskPort::open(&a, 0, &bad),
            Err(XskError::Config(_))
        ));

        let port = XskPort::open(&a, 0, &cfg).expect("open");
        let e = XskPort::open(&a, 0, &cfg).err().unwrap();
        assert!(matches!(e, XskError::QueueBusy { queue: 0, .. }), "{e}");
        let e = prog.register_socket(64, port.fd()).err().unwrap();
        assert!(matches!(e, XskError::QueueBeyondMap(64)));
        prog.register_socket(0, port.fd()).unwrap();
        prog.unregister_socket(0).unwrap();
    });
    t.join().expect("error checks");
}
