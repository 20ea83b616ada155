//! End to end (as root): packets at the edges, under failure, as a network engineer meets
//! them through a real uvsd, nginx and the kernels of the namespaces:
//! - TUN behind 1500-byte links: a UDP request the client had to fragment no longer fits
//!   the tunnel; uvs cuts it into fragments that do, and the real server (the tc BPF
//!   decapsulator, then its kernel) puts it back together;
//! - a real server that dies under a kept-alive connection with `expire_nodest_conn`: the
//!   client is reset (as the IPVS director's stack resets it), not left hanging;
//! - a packet whose TTL runs out at uvs is answered with ICMP time exceeded from the VIP
//!   (what traceroute shows), as IPVS answers it.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// A UDP answerer on every real server, bound to the VIPs (a DR/TUN server answers from
/// the address it was asked at): "<name> <bytes received>".
const VIP_RESPONDER: &str = r#"
import selectors, socket, sys
sel = selectors.DefaultSelector()
for fam, a in ((socket.AF_INET, "198.18.100.1"), (socket.AF_INET6, "2001:2:0:100::1")):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((a, 54))
    sel.register(s, selectors.EVENT_READ)
while True:
    for k, _ in sel.select():
        d, peer = k.fileobj.recvfrom(65535)
        k.fileobj.sendto(("%s %d" % (sys.argv[1], len(d))).encode(), peer)
"#;

/// Sends one datagram of `size` bytes to `vip`:54 from a fresh socket, without DF (IPv4:
/// IP_MTU_DISCOVER = IP_PMTUDISC_DONT, so routers may fragment it, as many DNS and RADIUS
/// clients send); its answer or "ERR".
const UDP_ASK: &str = r#"
import socket, sys
vip, size = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in vip else socket.AF_INET, socket.SOCK_DGRAM)
if ":" not in vip:
    s.setsockopt(socket.IPPROTO_IP, 10, 0)
s.settimeout(2)
s.sendto(b"x" * size, (vip, 54))
try:
    print(s.recv(2048).decode())
except OSError as e:
    print("ERR", e)
"#;

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn tun_fragments_a_datagram_that_no_longer_fits_the_tunnel() {
    require_root("tun_fragments_a_datagram_that_no_longer_fits_the_tunnel");
    let mut tb = Testbed::up("edgtun", "tun");
    // 1500 bytes everywhere, as most networks are (the testbed gives TUN 1600 behind uvs):
    // a 1500-byte packet no longer fits once IPIP adds its 20.
    tb.sh(
        "sw",
        "for d in uvs-sw0 uvs-sw1 uvs-sw2 uvs-sw3; do ip link set $d mtu 1500; done",
    );
    tb.sh("lb", "ip link set uvs-lb1 mtu 1500");
    for n in 1..=3 {
        let rs = format!("rs{n}");
        tb.sh(&rs, "ip link set uvs-r0 mtu 1500");
        let script = tb.state.join("vip_responder.py");
        std::fs::write(&script, VIP_RESPONDER).unwrap();
        tb.sh(
            &rs,
            &format!("python3 {} {rs} >/dev/null 2>&1 &", script.display()),
        );
    }
    let config = demo_config()
        .replace("forwarding: nat", "forwarding: tun")
        .replace("port: 53", "port: 54");
    tb.start_uvsd(&config);
    let ask = tb.state.join("udp_ask.py");
    std::fs::write(&ask, UDP_ASK).unwrap();
    let ask = |vip: &str, size: usize| {
        let o = tb.exec(
            "client",
            &["python3", ask.to_str().unwrap(), vip, &size.to_string()],
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    // The responders bind; small datagrams go through first.
    let start = Instant::now();
    while !ask("198.18.100.1", 100).starts_with("rs") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no answer to a small datagram:\n{}",
            tb.uvsd_log()
        );
    }
    // Each request from a fresh socket, so each is a new flow: every real server gets some.
    // 1472 bytes is one 1500-byte packet without DF; 3000 the client cuts into two.
    for size in [1472, 3000, 1472, 3000, 1472, 3000] {
        let got = ask("198.18.100.1", size);
        assert!(
            got.starts_with("rs") && got.ends_with(&format!(" {size}")),
            "a {size}-byte request through the tunnel: {got}\n{}",
            tb.metrics()
        );
    }
    let m = tb.metrics();
    assert_eq!(
        metric_sum(&m, "uvs_drops_total{reason=\"too_big\"}"),
        0.0,
        "{m}"
    );
}

/// A client asking every 0.3 s over one kept-alive connection (at most 40 s); prints each
/// answer's first word, and how it ended.
const KEEPALIVE: &str = r#"
import socket, sys, time
s = socket.create_connection(("198.18.100.1", 80), timeout=60)
t0 = time.time()
while time.time() - t0 < 40:
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
        d = s.recv(4096)
        if not d:
            print("closed", round(time.time() - t0, 1), flush=True)
            break
        print(d.split(b"\r\n\r\n", 1)[-1].split()[0].decode(), flush=True)
    except OSError as e:
        print("error", type(e).__name__, round(time.time() - t0, 1), flush=True)
        break
    time.sleep(0.3)
"#;

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_client_is_reset_when_its_server_dies_and_told_when_its_ttl_runs_out() {
    require_root("a_client_is_reset_when_its_server_dies_and_told_when_its_ttl_runs_out");
    let mut tb = Testbed::up("edgrst", "nat");
    tb.start_uvsd(&format!("expire_nodest_conn: true\n{}", demo_config()));
    let start = Instant::now();
    while real_up(&tb, "198.18.1.11:80") != Some(true) {
        assert!(start.elapsed() < Duration::from_secs(15), "rs1 never up");
        std::thread::sleep(Duration::from_millis(200));
    }

    // TTL 1 towards the VIP: ICMP time exceeded from the VIP, as a router (and IPVS)
    // answers; the kernel hands it to the socket's error queue.
    let probe = r#"
import socket, struct, time
for fam, vip, lvl, hops, recverr in ((socket.AF_INET, "198.18.100.1", socket.IPPROTO_IP, 2, 11),
                                     (socket.AF_INET6, "2001:2:0:100::1", socket.IPPROTO_IPV6, 16, 25)):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(lvl, hops, 1)
    s.setsockopt(lvl, recverr, 1)
    s.connect((vip, 53))
    s.send(b"probe")
    time.sleep(0.5)
    try:
        _, anc, _, _ = s.recvmsg(512, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        for _, _, d in anc:
            _, origin, typ, code = struct.unpack_from("=IBBB", d)
            off = d[16:]
            who = socket.inet_ntop(fam, off[4:8] if fam == socket.AF_INET else off[8:24])
            print(typ, code, who)
    except BlockingIOError:
        print("nothing")
"#;
    let o = tb.exec("client", &["python3", "-c", probe]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["11 0 198.18.100.1", "3 0 2001:2:0:100::1"],
        "time exceeded from the VIP: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A kept-alive client; its real server's link goes down under it.
    let script = tb.state.join("keepalive.py");
    std::fs::write(&script, KEEPALIVE).unwrap();
    let log = tb.state.join("keepalive.out");
    tb.sh(
        "client",
        &format!("python3 {} > {} 2>&1 &", script.display(), log.display()),
    );
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let start = Instant::now();
    let server = loop {
        if let Some(first) = read().lines().next() {
            break first.to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no answer");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(server.starts_with("rs"), "{server}");
    tb.sh(&server, "ip link set uvs-r0 down");
    let down = Instant::now();
    // The check fails within interval × fall (2 s × 3) plus its timeout; uvs expires the
    // connection and answers the client's next segment with a RST.
    let end = loop {
        let text = read();
        if let Some(l) = text
            .lines()
            .find(|l| l.starts_with("error") || l.starts_with("closed"))
        {
            break l.to_string();
        }
        assert!(
            down.elapsed() < Duration::from_secs(25),
            "the client was not told within 25 s:\n{text}\n{}",
            tb.metrics()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        end.starts_with("error ConnectionResetError"),
        "the client is reset: {end}"
    );
    let m = tb.metrics();
    assert!(
        metric_sum(&m, "uvs_drops_total{reason=\"tcp_not_syn\"}") >= 1.0,
        "{m}"
    );
}
