//! `XskPair` on real veths: frames received on one interface leave by another from the
//! same UMEM, by descriptor. A generator in the peer namespace sends windows of numbered
//! frames into link A (never more in flight than the rings hold, so none may be lost);
//! the pair in the balancer namespace receives them on A, rewrites the MACs in place and
//! queues the same frames on link C's TX ring; a receiver on C's far end (D) checks that
//! every frame arrives once, in order, rewritten, and the pair ends with every frame back
//! in its pool. Small rings wrap every ring many times. Needs root.

mod common;

use std::time::{Duration, Instant};

use common::{require_root, sh, TestNet, MAC_A, MAC_B};
use uvs_port::{Frame, Port};
use uvs_xsk::{XdpMode, XdpProgram, XskConfig, XskPair, XskPort, ZeroCopy};

const RING: u32 = 64;
/// IEEE 802 local experimental ethertype: nothing in either kernel acts on it.
const TEST_ETHERTYPE: [u8; 2] = [0x88, 0xb5];
const FRAMES: u64 = 20_000;
const WINDOW: u64 = 48;
const MAC_C: [u8; 6] = [2, 0, 0, 0, 0, 3];
const MAC_D: [u8; 6] = [2, 0, 0, 0, 0, 4];

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
fn a_shared_umem_forwards_frames_between_interfaces_by_descriptor() {
    require_root();
    let net = TestNet::new("s");
    // A second link between the same namespaces (removed with them): C in lb, D in peer.
    let pid = std::process::id() % 100_000;
    let (c, d) = (format!("uvs-{pid}sc"), format!("uvs-{pid}sd"));
    sh(&[
        "ip",
        "link",
        "add",
        &c,
        "address",
        "02:00:00:00:00:03",
        "netns",
        &net.lb,
        "type",
        "veth",
        "peer",
        "name",
        &d,
        "address",
        "02:00:00:00:00:04",
        "netns",
        &net.peer,
    ]);
    sh(&["ip", "-n", &net.lb, "link", "set", &c, "up"]);
    sh(&["ip", "-n", &net.peer, "link", "set", &d, "up"]);

    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (a, c2) = (net.a.clone(), c.clone());
    let fwd = net.spawn_in(&net.lb, move || {
        let prog = XdpProgram::attach(&a, XdpMode::Native).expect("attach A");
        prog.set_redirect_all(true).unwrap();
        let mut pair = XskPair::open((&a, 0), (&c2, 0), &config()).expect("open the pair");
        let full = pair.pool_level();
        prog.register_socket(0, pair.fd(0)).unwrap();
        ready_tx.send(()).unwrap();
        let mut burst = [Frame::default(); 32];
        let mut forwarded = 0u64;
        let deadline = Instant::now() + Duration::from_secs(9);
        while stop_rx.try_recv().is_err() && Instant::now() < deadline {
            let n = pair.rx_burst(0, &mut burst);
            let mut ours = [Frame::default(); 32];
            let mut m = 0;
            for f in &burst[..n] {
                let buf = pair.buf_mut(f);
                // The kernels' own chatter (MLD, router solicitations) is redirected
                // too in this mode: keep only test frames.
                if buf[12..14] != TEST_ETHERTYPE {
                    pair.free(&[*f]);
                    continue;
                }
                buf[..6].copy_from_slice(&MAC_D);
                buf[6..12].copy_from_slice(&MAC_C);
                ours[m] = *f;
                m += 1;
            }
            let q = pair.forward(1, &ours[..m]);
            assert_eq!(q, m, "C's TX ring has room for a window");
            forwarded += q as u64;
            pair.flush();
        }
        // Let the last completions land; late chatter is received and freed.
        for _ in 0..100 {
            let n = pair.rx_burst(0, &mut burst);
            pair.free(&burst[..n]);
            pair.flush();
            std::thread::sleep(Duration::from_millis(1));
        }
        let k = pair.kernel_stats(0).unwrap();
        (
            forwarded,
            pair.stats(0),
            pair.stats(1),
            k.rx_invalid_descs(),
            // Idle frames right after opening (both fill rings full) and now.
            (full, pair.pool_level()),
        )
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("forwarder started");

    let (b, d2) = (net.b.clone(), d.clone());
    let gen = net.spawn_in(&net.peer, move || {
        let prog = XdpProgram::attach(&d2, XdpMode::Native).expect("attach D");
        prog.set_redirect_all(true).unwrap();
        let mut rx = XskPort::open(&d2, 0, &config()).expect("open D");
        prog.register_socket(0, rx.fd()).unwrap();
        let mut tx = XskPort::open(&b, 0, &config()).expect("open B");
        let (mut sent, mut received, mut next) = (0u64, 0u64, 0u64);
        let mut gaps = Vec::new();
        let mut burst = [Frame::default(); 32];
        let deadline = Instant::now() + Duration::from_secs(8);
        while received < FRAMES && Instant::now() < deadline {
            while sent < FRAMES && sent - received < WINDOW {
                assert!(
                    tx.tx_copy(&frame(sent)),
                    "a TX frame is free within the window"
                );
                sent += 1;
            }
            tx.flush();
            let n = rx.rx_burst(&mut burst);
            for f in &burst[..n] {
                let buf = rx.buf_mut(f);
                if buf[12..14] != TEST_ETHERTYPE {
                    continue;
                }
                received += 1;
                assert_eq!(f.len, 60);
                assert_eq!(&buf[..12], &[MAC_D, MAC_C].concat()[..], "MACs rewritten");
                let seq = u64::from_be_bytes(buf[14..22].try_into().unwrap());
                if seq != next {
                    gaps.push((next, seq));
                }
                next = seq + 1;
            }
            rx.free(&burst[..n]);
        }
        (sent, received, gaps)
    });
    let (sent, received, gaps) = gen.join().expect("generator");
    stop_tx.send(()).unwrap();
    let (forwarded, s0, s1, invalid, (full, idle)) = fwd.join().expect("forwarder");
    eprintln!("pair A {s0:?}; C {s1:?}; pool {idle} of {full} idle after");
    assert_eq!(gaps, vec![], "no frame lost or reordered");
    assert_eq!((sent, received, forwarded), (FRAMES, FRAMES, FRAMES));
    assert_eq!(invalid, 0, "no invalid descriptors");
    assert_eq!(s1.tx, FRAMES, "every frame left by C");
    assert_eq!(
        s1.tx_completed, FRAMES,
        "and came back through C's completion ring"
    );
    assert_eq!((s0.misuse, s1.misuse), (0, 0));
    assert_eq!(idle, full, "every forwarded frame is back in the pool");
}
