//! Sustained traffic through two `XskPort`s: a generator port in the peer
//! namespace sends windows of frames (never more in flight than the rings
//! hold, so nothing may be lost), an l2fwd port in the balancer namespace
//! swaps MACs and sends them back with `tx_burst`. Small rings make both
//! ports wrap their fill, RX, TX and completion rings many times; every
//! frame must come back, every descriptor must be valid, and every frame
//! must return to its pool. Needs root.

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    time::{Duration, Instant},
};

use common::{require_root, TestNet, MAC_A, MAC_B};
use uvs_port::{Frame, Port};
use uvs_xsk::{XdpMode, XdpProgram, XskConfig, XskPort, XskPortStats, ZeroCopy};

const RING: u32 = 64;
/// IEEE 802 local experimental ethertype: nothing in either kernel acts on it.
const TEST_ETHERTYPE: [u8; 2] = [0x88, 0xb5];
const FRAMES: u64 = 20_000;
/// Frames in flight at most: below every ring size, so no drop is legal.
const WINDOW: u64 = 48;

fn config() -> XskConfig {
    XskConfig {
        ring_size: RING,
        zero_copy: ZeroCopy::Off,
    }
}

fn frame(seq: u64) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&TEST_ETHERTYPE);
    f.extend_from_slice(&seq.to_be_bytes());
    f.resize(60, 0xab);
    f
}

#[test]
#[ignore = "needs root: network namespaces, AF_XDP and BPF (scripts/test.sh runs it as root)"]
fn windows_of_frames_round_trip_without_loss() {
    require_root();
    let net = TestNet::new("f");
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let (a, b) = (net.a.clone(), net.b.clone());
    let stop_fwd = stop.clone();
    let fwd = net.spawn_in(&net.lb, move || -> (XskPortStats, u64, u64) {
        let prog = XdpProgram::attach(&a, XdpMode::Native).expect("attach A");
        prog.set_redirect_all(true).unwrap();
        let mut port = XskPort::open(&a, 0, &config()).expect("open A");
        prog.register_socket(0, port.fd()).unwrap();
        ready_tx.send(()).unwrap();
        let mut burst = [Frame::default(); 32];
        let mut forwarded = 0u64;
        let deadline = Instant::now() + Duration::from_secs(9);
        while !stop_fwd.load(Ordering::Relaxed) && Instant::now() < deadline {
            let n = port.rx_burst(&mut burst);
            // The kernels' own chatter (MLD, router solicitations) is
            // redirected too in this mode: keep only test frames.
            let mut ours = [Frame::default(); 32];
            let mut m = 0;
            for f in &burst[..n] {
                let buf = port.buf_mut(f);
                if buf[12..14] != TEST_ETHERTYPE {
                    port.free(&[*f]);
                    continue;
                }
                assert_eq!(&buf[..6], &MAC_A);
                buf[..6].copy_from_slice(&MAC_B);
                buf[6..12].copy_from_slice(&MAC_A);
                ours[m] = *f;
                m += 1;
            }
            let q = port.tx_burst(&ours[..m]);
            assert_eq!(q, m, "the TX ring has room for a window");
            forwarded += q as u64;
            port.flush();
        }
        let k = port.kernel_stats().unwrap();
        (
            port.stats(),
            forwarded,
            k.rx_invalid_descs() + k.tx_invalid_descs(),
        )
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("forwarder started");

    let gen = net.spawn_in(&net.peer, move || {
        let prog = XdpProgram::attach(&b, XdpMode::Native).expect("attach B");
        prog.set_redirect_all(true).unwrap();
        let mut port = XskPort::open(&b, 0, &config()).expect("open B");
        prog.register_socket(0, port.fd()).unwrap();
        let (mut sent, mut received) = (0u64, 0u64);
        let mut next_expected = 0u64;
        let mut gaps = Vec::new();
        let mut burst = [Frame::default(); 32];
        let deadline = Instant::now() + Duration::from_secs(8);
        while received < FRAMES && Instant::now() < deadline {
            while sent < FRAMES && sent - received < WINDOW {
                assert!(
                    port.tx_copy(&frame(sent)),
                    "a TX frame is free within the window"
                );
                sent += 1;
            }
            port.flush();
            let n = port.rx_burst(&mut burst);
            for f in &burst[..n] {
                let buf = port.buf_mut(f);
                if buf[12..14] != TEST_ETHERTYPE {
                    continue;
                }
                received += 1;
                assert_eq!(f.len, 60);
                assert_eq!(&buf[..12], &[MAC_B, MAC_A].concat()[..], "MACs swapped");
                let seq = u64::from_be_bytes(buf[14..22].try_into().unwrap());
                if seq != next_expected {
                    gaps.push((next_expected, seq));
                }
                next_expected = seq + 1;
            }
            port.free(&burst[..n]);
        }
        // Let the last completions land.
        let settle = Instant::now() + Duration::from_millis(100);
        while Instant::now() < settle {
            port.flush();
        }
        let k = port.kernel_stats().unwrap();
        (
            sent,
            received,
            port.stats(),
            port.pool_levels(),
            k.rx_invalid_descs() + k.tx_invalid_descs(),
            (k.rx_dropped(), gaps),
        )
    });
    let (sent, received, gstats, gpools, ginvalid, (gdropped, gaps)) =
        gen.join().expect("generator");
    stop.store(true, Ordering::Relaxed);
    let (fstats, forwarded, finvalid) = fwd.join().expect("forwarder");

    eprintln!("gen {gstats:?} pools {gpools:?}; fwd {fstats:?} forwarded {forwarded}");
    assert_eq!(
        (gdropped, &gaps[..]),
        (0, &[][..]),
        "no frame lost (gaps in sequence)"
    );
    assert_eq!(sent, FRAMES);
    assert_eq!(received, FRAMES, "lossless within the window");
    assert_eq!(forwarded, FRAMES);
    assert_eq!((ginvalid, finvalid), (0, 0), "no invalid descriptors");
    assert_eq!(gstats.tx_completed, FRAMES);
    assert_eq!(gpools.1, RING as usize, "every TX frame back in its pool");
    assert_eq!(fstats.tx, fstats.tx_completed);
    assert_eq!((gstats.misuse, fstats.misuse), (0, 0));
    assert_eq!(gstats.tx_copy_refused, 0);
}

/// With an MTU above FRAME_CAPACITY a received frame could be longer than
/// `buf_mut`'s buffer: the port drops and counts it instead.
#[test]
#[ignore = "needs root: network namespaces, AF_XDP and BPF (scripts/test.sh runs it as root)"]
fn frames_beyond_frame_capacity_are_dropped_and_counted() {
    require_root();
    let net = TestNet::new("j");
    for (ns, dev) in [(&net.lb, &net.a), (&net.peer, &net.b)] {
        assert!(net.exec_ok(ns, &["ip", "link", "set", "dev", dev, "mtu", "3000"]));
    }
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let a = net.a.clone();
    let lb = net.spawn_in(&net.lb, move || {
        let prog = XdpProgram::attach(&a, XdpMode::Native).expect("attach");
        prog.add_owned("198.18.0.10".parse().unwrap()).unwrap();
        let mut port = XskPort::open(&a, 0, &config()).expect("open");
        prog.register_socket(0, port.fd()).unwrap();
        ready_tx.send(()).unwrap();
        let mut burst = [Frame::default(); 8];
        let mut lens = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while done_rx.try_recv().is_err() && Instant::now() < deadline {
            let n = port.rx_burst(&mut burst);
            lens.extend(burst[..n].iter().map(|f| f.len));
            port.free(&burst[..n]);
            port.flush();
        }
        // One more sweep for frames already on their way.
        for _ in 0..100 {
            let n = port.rx_burst(&mut burst);
            lens.extend(burst[..n].iter().map(|f| f.len));
            port.free(&burst[..n]);
        }
        (lens, port.stats())
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("ready");
    let b = net.b.clone();
    let peer = net.spawn_in(&net.peer, move || {
        // A static neighbour: this test is about sizes, not ARP.
        assert!(common::try_sh(&[
            "ip",
            "neigh",
            "add",
            "198.18.0.10",
            "lladdr",
            "02:00:00:00:00:01",
            "dev",
            &b,
            "nud",
            "permanent"
        ]));
        let s = std::net::UdpSocket::bind("198.18.0.2:0").unwrap();
        s.send_to(&[1u8; 100], "198.18.0.10:9").unwrap();
        s.send_to(&[2u8; 2500], "198.18.0.10:9").unwrap();
        s.send_to(&[3u8; 200], "198.18.0.10:9").unwrap();
    });
    peer.join().expect("peer");
    std::thread::sleep(Duration::from_millis(200));
    done_tx.send(()).unwrap();
    let (lens, stats) = lb.join().expect("balancer");
    assert_eq!(
        lens,
        vec![142, 242],
        "the small datagrams arrive (14+20+8+payload)"
    );
    assert_eq!(stats.rx_oversize, 1);
}
