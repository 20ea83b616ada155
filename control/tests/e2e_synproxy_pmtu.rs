//! End to end (as root): path MTU discovery through the SYN proxy. A client holds a
//! kept-alive connection to a `syn_proxy` service (NAT, IPv4 and IPv6) after a request;
//! then, as a router on the client's side would, it sends the VIP fragmentation needed
//! (IPv6: packet too big) with MTU 1280, quoting a full-sized data segment from the VIP at
//! the next sequence number it expects (in the client's numbering: the cookie's). uvs
//! must hand it to the real server with the quote in the server's numbering (SEQ + δ), or
//! the server's TCP counts it in `TcpExtOutOfWindowIcmps` and ignores it. The real server
//! that served the connection must then hold a route exception with `mtu 1280` for the
//! client, and its out-of-window counter must not move.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// The demo configuration with `syn_proxy: true` on both web services.
fn config() -> String {
    let out = demo_config().replace(
        "    forwarding: nat\n    health_check:",
        "    forwarding: nat\n    syn_proxy: true\n    health_check:",
    );
    assert_eq!(out.matches("syn_proxy: true").count(), 2, "{out}");
    out
}

/// Run in the client's namespace: argv VIP CLIENT PORT IFACE. Opens a connection from
/// CLIENT:PORT to VIP:80 and reads one response, watching the link (AF_PACKET) for the
/// SYN and the SYN-ACK; then sends the VIP a fragmentation-needed / packet-too-big (MTU
/// 1280) quoting a 1 240-byte data segment VIP:80 → CLIENT:PORT at the sequence number the
/// client expects next, acknowledging what it sent. Prints the body's first word (the real
/// server), then keeps the connection a second so the server still has it.
const PMTU_CLIENT: &str = r#"
import socket, struct, sys, time
vip, client, port, ifname = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
v6 = ":" in vip
fam = socket.AF_INET6 if v6 else socket.AF_INET
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
cap.bind((ifname, 0))
cap.setblocking(False)
s = socket.socket(fam, socket.SOCK_STREAM)
s.bind((client, port))
s.settimeout(5)
s.connect((vip, 80))
req = b"GET / HTTP/1.1\r\nHost: pmtu\r\n\r\n"
s.sendall(req)
got = b""
while True:
    got += s.recv(65536)
    head, sep, body = got.partition(b"\r\n\r\n")
    if sep:
        clen = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
                if l.lower().startswith(b"content-length:")][0]
        if len(body) >= clen:
            break
time.sleep(0.2)
synack = isn = None
while True:
    try:
        f = cap.recv(65536)
    except BlockingIOError:
        break
    et = struct.unpack("!H", f[12:14])[0]
    if et == 0x0800 and f[23] == 6:
        l4 = 14 + (f[14] & 0x0f) * 4
    elif et == 0x86dd and f[20] == 6:
        l4 = 54
    else:
        continue
    sport, dport, seq = struct.unpack("!HHI", f[l4:l4 + 8])
    flags = f[l4 + 13]
    if sport == 80 and dport == port and flags & 0x12 == 0x12:
        synack = seq
    if sport == port and dport == 80 and flags & 0x12 == 0x02:
        isn = seq
assert synack is not None and isn is not None, (synack, isn)
rcv_nxt = (synack + 1 + len(got)) & 0xffffffff
snd_nxt = (isn + 1 + len(req)) & 0xffffffff
def csum(b):
    if len(b) % 2:
        b += b"\0"
    x = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while x >> 16:
        x = (x & 0xffff) + (x >> 16)
    return ~x & 0xffff
data = 1240
tcp = struct.pack("!HHIIBBHHH", 80, port, rcv_nxt, snd_nxt, 0x50, 0x18, 500, 0, 0)
tcp += b"\x42" * 100  # the router's quote stops here; the segment carried 1 240 bytes
if v6:
    ip = struct.pack("!IHBB", 0x60000000, 20 + data, 6, 64)
    ip += socket.inet_pton(socket.AF_INET6, vip) + socket.inet_pton(socket.AF_INET6, client)
    e = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    e.sendto(struct.pack("!BBHI", 2, 0, 0, 1280) + ip + tcp, (vip, 0))
else:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 20 + data, 1, 0x4000, 64, 6, 0,
                     socket.inet_aton(vip), socket.inet_aton(client))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    icmp = struct.pack("!BBHHH", 3, 4, 0, 0, 1280) + ip + tcp
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    e = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    e.sendto(icmp, (vip, 0))
print(body.split()[0].decode())
sys.stdout.flush()
time.sleep(1)
s.close()
"#;

/// `TcpExtOutOfWindowIcmps` in a namespace (both families count there).
fn out_of_window_icmps(tb: &Testbed, role: &str) -> u64 {
    let o = tb.exec(role, &["cat", "/proc/net/netstat"]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let i = names
        .split_whitespace()
        .position(|n| n == "OutOfWindowIcmps")
        .expect("OutOfWindowIcmps in /proc/net/netstat");
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

fn route_to(tb: &Testbed, role: &str, client: &str) -> String {
    let fam = if client.contains(':') { "-6" } else { "-4" };
    let o = tb.exec(role, &["ip", fam, "route", "get", client]);
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn path_mtu_discovery_works_through_the_syn_proxy() {
    require_root("path_mtu_discovery_works_through_the_syn_proxy");
    let mut tb = Testbed::up("e2epmtu", "nat");
    tb.start_uvsd(&config());
    // The services answer (through the proxy) before the test starts.
    let start = Instant::now();
    while tb.curl_many("http://198.18.100.1/", 1)[0] == "failed" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no answer:\n{}",
            tb.uvsd_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for (vip, client, port) in [
        ("198.18.100.1", "198.18.0.2", "40571"),
        ("2001:2:0:100::1", "2001:2::2", "40572"),
    ] {
        let reals = ["rs1", "rs2", "rs3"];
        for rs in reals {
            assert!(
                !route_to(&tb, rs, client).contains("mtu"),
                "{rs} knows no path MTU to {client} yet"
            );
        }
        let before: Vec<u64> = reals
            .iter()
            .map(|rs| out_of_window_icmps(&tb, rs))
            .collect();
        let o = tb.exec(
            "client",
            &["python3", "-c", PMTU_CLIENT, vip, client, port, "uvs-c0"],
        );
        assert!(
            o.status.success(),
            "{vip}: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            tb.uvsd_log()
        );
        let served = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(
            reals.contains(&served.as_str()),
            "{vip}: served by {served:?}"
        );
        let after: Vec<u64> = reals
            .iter()
            .map(|rs| out_of_window_icmps(&tb, rs))
            .collect();
        let route = route_to(&tb, &served, client);
        eprintln!(
            "{vip}: served by {served}; OutOfWindowIcmps before {before:?} after {after:?}; \
             route: {}",
            route.trim()
        );
        assert_eq!(
            after, before,
            "{vip}: a real server found the quoted segment out of its window"
        );
        assert!(
            route.contains("mtu 1280"),
            "{vip}: {served} learnt no path MTU to the client: {route}"
        );
    }
    let m = tb.metrics();
    assert_eq!(
        common::metric_sum(&m, "uvs_drops_total{reason=\"icmp_no_flow\"}"),
        0.0,
        "{m}"
    );
}
