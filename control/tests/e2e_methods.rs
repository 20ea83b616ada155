//! End to end (as root) for every forwarding method on the namespace test network, IPv4
//! and IPv6, with curl to nginx real servers: DR (real servers hold the VIPs on loopback),
//! TUN (real servers decapsulate IPIP / IPv6-in-IPv6 with the tc BPF program in
//! scripts/decap.bpf.c and see the inner packet addressed to the VIP), and FullNAT (real
//! servers have no route to the clients at all; they answer uvs's local pool address).
//! TUN is walked with each of IPVS's encapsulations (ipip, gue, gre; the decapsulator strips
//! all three), and for gue and gre the frames a real server received are captured with
//! tcpdump and taken apart with etherparse: outer headers, the GUE/GRE header bytes, their
//! checksums, and the client's packet inside. ICMP errors about DR and TUN connections go
//! where IPVS's ip_vs_in_icmp sends them: from the client's side on to the DR real server
//! (captured there), and from a TUN real server that refuses the tunnel packet back to the
//! client about its own SYN (curl is refused at once rather than timing out).
//! One test walks the methods in turn so only one uvsd busy-polls at a time.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

fn config_for(method: &str) -> String {
    with_method(&demo_config(), method)
}

fn check_method(method: &str) {
    // A tag of this test's own (other tests' testbeds may be up at the same time).
    let mut tb = Testbed::up(&format!("e2m{}", &method[..method.len().min(4)]), method);
    tb.start_uvsd(&config_for(method));
    check_answers(&tb, method);
    if method == "dr" {
        client_errors_reach_the_real_server(&tb);
    }
    if method == "tun" {
        for tunnel in [Tunnel::Gue, Tunnel::Gre] {
            tb.stop_uvsd("TERM");
            tb.start_uvsd(&tunnel.config());
            tunnel.check(&tb);
        }
        tb.stop_uvsd("TERM");
        tb.start_uvsd(&Tunnel::Gue.config().replace(
            &format!("tun_port: {GUE_PORT}"),
            &format!("tun_port: {}", GUE_PORT + 1),
        ));
        tunnel_errors_reach_the_client(&tb);
    }
}

/// Spawns a bounded tcpdump (`count` frames, at most `secs` s) in `role`'s namespace and
/// returns once it captures.
fn tcpdump(tb: &Testbed, role: &str, pcap: &str, filter: &str, count: u32, secs: u32) -> Child {
    let mut dump = Command::new("ip")
        .args([
            "netns",
            "exec",
            &tb.ns(role),
            "timeout",
            &secs.to_string(),
            "tcpdump",
        ])
        .args([
            "-i",
            "uvs-r0",
            "-nn",
            "-U",
            "-c",
            &count.to_string(),
            "-w",
            pcap,
            filter,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    let mut line = String::new();
    BufReader::new(dump.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening"), "{role}: tcpdump: {line}");
    dump
}

/// Sends, from the client's namespace, ICMP port unreachable from the client to the VIP
/// quoting a TCP segment VIP:80 → client:PORT (what a router or the client's host sends
/// about a reply that reached it): argv VIP CLIENT PORT; the kernel adds the outer header
/// (and the ICMPv6 checksum).
const SEND_UNREACH: &str = r#"
import socket, struct, sys
vip, client, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
tcp = struct.pack("!HHIIBBHHH", 80, port, 1, 1, 0x50, 0x10, 65535, 0, 0)
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
if ":" in vip:
    ip = struct.pack("!IHBB", 0x60000000, len(tcp), 6, 64)
    ip += socket.inet_pton(socket.AF_INET6, vip) + socket.inet_pton(socket.AF_INET6, client)
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.sendto(struct.pack("!BBHI", 1, 4, 0, 0) + ip + tcp, (vip, 0))
else:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0,
                     socket.inet_aton(vip), socket.inet_aton(client))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    body = ip + tcp
    icmp = struct.pack("!BBHI", 3, 3, 0, 0) + body
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.sendto(icmp, (vip, 0))
"#;

/// DR, as IPVS's ip_vs_in_icmp: an error from the client's side about a reply the real
/// server sent straight to the client (port unreachable, addressed to the VIP, quoting
/// VIP:80 → client) is sent on to that real server, which receives it (captured on all
/// three; exactly the one that served the connection has it).
fn client_errors_reach_the_real_server(tb: &Testbed) {
    for v6 in [false, true] {
        let (vip, client, url, filter) = if v6 {
            (
                "2001:2:0:100::1",
                "2001:2::2",
                "http://[2001:2:0:100::1]/",
                "icmp6 and ip6[40] == 1",
            )
        } else {
            (
                "198.18.100.1",
                "198.18.0.2",
                "http://198.18.100.1/",
                "icmp and icmp[0] == 3",
            )
        };
        // A connection from a known port; its entry outlives it (FIN_WAIT/TIME_WAIT).
        let port = if v6 { "40124" } else { "40123" };
        let o = tb.exec(
            "client",
            &[
                "curl",
                "-s",
                "-g",
                "--max-time",
                "3",
                "--local-port",
                port,
                url,
            ],
        );
        assert!(o.status.success(), "v6={v6}: {o:?}");
        let served = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        let dumps: Vec<(String, String, Child)> = (1..=3)
            .map(|i| {
                let rs = format!("rs{i}");
                let pcap = format!("/run/uvs-testbed/{}/unreach-{rs}-{v6}.pcap", tb.tag);
                let d = tcpdump(tb, &rs, &pcap, filter, 1, 4);
                (rs, pcap, d)
            })
            .collect();
        let o = tb.exec(
            "client",
            &["python3", "-c", SEND_UNREACH, vip, client, port],
        );
        assert!(o.status.success(), "v6={v6}: {o:?}");
        let mut seen = Vec::new();
        for (rs, pcap, mut d) in dumps {
            if d.wait().unwrap().success() {
                seen.push(rs);
                let frames = read_pcap(&std::fs::read(&pcap).unwrap());
                let s = etherparse::SlicedPacket::from_ethernet(&frames[0]).unwrap();
                let (src, dst) = match &s.net {
                    Some(etherparse::NetSlice::Ipv4(h)) => (
                        h.header().source_addr().to_string(),
                        h.header().destination_addr().to_string(),
                    ),
                    Some(etherparse::NetSlice::Ipv6(h)) => (
                        h.header().source_addr().to_string(),
                        h.header().destination_addr().to_string(),
                    ),
                    other => panic!("v6={v6}: {other:?}"),
                };
                assert_eq!((src.as_str(), dst.as_str()), (client, vip), "v6={v6}");
            }
        }
        assert_eq!(
            seen,
            vec![served],
            "v6={v6}: the server of the connection gets the error\n{}",
            tb.uvsd_log()
        );
    }
}

/// TUN, as IPVS's ip_vs_in_icmp for its tunnels: real servers told to expect GUE on a port
/// their decapsulator does not take answer each tunnel packet with port unreachable, to
/// uvs's local address and quoting the tunnel packet; uvs turns it into an error about the
/// client's own SYN, from the VIP, so curl is refused at once (exit 7) instead of timing
/// out (exit 28).
fn tunnel_errors_reach_the_client(tb: &Testbed) {
    for url in ["http://198.18.100.1/", "http://[2001:2:0:100::1]/"] {
        for _ in 0..3 {
            let o = tb.exec(
                "client",
                &[
                    "curl",
                    "-s",
                    "-g",
                    "--max-time",
                    "5",
                    "-o",
                    "/dev/null",
                    url,
                ],
            );
            assert_eq!(
                o.status.code(),
                Some(7),
                "{url}: curl must be refused by the relayed ICMP error: {o:?}\n{}",
                tb.uvsd_log()
            );
        }
    }
}

fn check_answers(tb: &Testbed, method: &str) {
    for (fam, url) in [
        ("IPv4", "http://198.18.100.1/"),
        ("IPv6", "http://[2001:2:0:100::1]/"),
    ] {
        let answers = tb.curl_many(url, 9);
        assert!(
            !answers.iter().any(|a| a == "failed"),
            "{method} {fam}: requests failed: {answers:?}\n{}",
            tb.uvsd_log()
        );
        let servers: BTreeSet<_> = answers.iter().collect();
        assert_eq!(
            servers.len(),
            3,
            "{method} {fam}: all three real servers must answer: {answers:?}"
        );
        // What the real server saw as the client (nginx answers "rsN server_addr remote_addr"):
        // with DR and TUN the client itself and the VIP as its own address (they reply
        // directly); with FullNAT uvs's pool address (they have no route to clients).
        let body = tb.curl_bodies(url, 1).remove(0);
        let words: Vec<&str> = body.split_whitespace().collect();
        assert_eq!(words.len(), 3, "{method} {fam}: unexpected answer {body:?}");
        let (server_addr, remote) = (words[1], words[2]);
        let v6 = fam == "IPv6";
        match method {
            "fullnat" => assert_eq!(
                remote,
                if v6 {
                    "2001:2:0:1::100"
                } else {
                    "198.18.1.100"
                },
                "{method} {fam}"
            ),
            _ => {
                assert_eq!(
                    remote,
                    if v6 { "2001:2::2" } else { "198.18.0.2" },
                    "{method} {fam}"
                );
                assert_eq!(
                    server_addr,
                    if v6 {
                        "2001:2:0:100::1"
                    } else {
                        "198.18.100.1"
                    },
                    "{method} {fam}: the inner packet is addressed to the VIP"
                );
            }
        }
    }
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn every_forwarding_method_over_ipv4_and_ipv6() {
    require_root("every_forwarding_method_over_ipv4_and_ipv6");
    for method in ["dr", "tun", "fullnat"] {
        check_method(method);
    }
}

/// The port the test network's decapsulator takes GUE on (`GUE_PORT` in decap.bpf.c).
const GUE_PORT: u16 = 6080;

#[derive(Clone, Copy, Debug)]
enum Tunnel {
    Gue,
    Gre,
}

impl Tunnel {
    /// The tun configuration with every real server on this tunnel, checksums on (GUE's
    /// UDP checksum, GRE's optional checksum), so the capture can verify them.
    fn config(self) -> String {
        let opts = match self {
            Tunnel::Gue => format!("tunnel: gue, tun_port: {GUE_PORT}, tun_csum: csum"),
            Tunnel::Gre => "tunnel: gre, tun_csum: csum".to_string(),
        };
        let mut cfg = config_for("tun");
        for n in 1..=3 {
            for addr in [format!("198.18.1.1{n}"), format!("\"2001:2:0:1::1{n}\"")] {
                cfg = cfg.replace(
                    &format!("      - address: {addr}\n"),
                    &format!("      - {{ address: {addr}, {opts} }}\n"),
                );
            }
        }
        assert_eq!(
            cfg.matches(&opts).count(),
            12,
            "every real server tunnels:\n{cfg}"
        );
        cfg
    }

    fn name(self) -> &'static str {
        match self {
            Tunnel::Gue => "tun-gue",
            Tunnel::Gre => "tun-gre",
        }
    }

    /// curl through the tunnel over both families while rs1 captures what it receives;
    /// then every captured frame is checked.
    fn check(self, tb: &Testbed) {
        // uvsadm lists the running tunnels as ipvsadm 1.31 does.
        let info = match self {
            Tunnel::Gue => format!("gue:{GUE_PORT}:+c"),
            Tunnel::Gre => "gre:+c".to_string(),
        };
        let o = tb.uvsadm(&["-L", "-n", "--tun-info"]);
        let listing = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{o:?}");
        assert_eq!(
            listing.lines().filter(|l| l.contains(&info)).count(),
            12,
            "{}: every real server's TunnelInfo:\n{listing}",
            self.name()
        );
        for v6 in [false, true] {
            let case = format!("{} v6={v6}", self.name());
            let pcap = format!("/run/uvs-testbed/{}/{}-{v6}.pcap", tb.tag, self.name());
            let filter = match (self, v6) {
                (Tunnel::Gue, false) => format!("ip and udp dst port {GUE_PORT}"),
                (Tunnel::Gue, true) => format!("ip6 and udp dst port {GUE_PORT}"),
                (Tunnel::Gre, false) => "ip proto 47".to_string(),
                (Tunnel::Gre, true) => "ip6 proto 47".to_string(),
            };
            // Bounded: at most 6 frames, at most 20 s.
            let mut dump = tcpdump(tb, "rs1", &pcap, &filter, 6, 20);
            check_answers_of(tb, self.name(), v6);
            let status = dump.wait().unwrap();
            assert!(
                status.success(),
                "{case}: tcpdump saw fewer than 6 frames ({status})"
            );
            let frames = read_pcap(&std::fs::read(&pcap).unwrap());
            assert_eq!(frames.len(), 6, "{case}");
            for f in &frames {
                self.check_frame(f, v6)
                    .unwrap_or_else(|e| panic!("{case}: {e}"));
            }
        }
    }

    /// One frame as rs1 received it: from uvs's local address to rs1, the tunnel header
    /// IPVS writes with a checksum that verifies, and inside a TCP segment of a client to
    /// the VIP's port 80 whose own checksum verifies.
    fn check_frame(self, frame: &[u8], v6: bool) -> Result<(), String> {
        let (local, rs1, client, vip) = if v6 {
            (
                "2001:2:0:1::3",
                "2001:2:0:1::11",
                "2001:2::2",
                "2001:2:0:100::1",
            )
        } else {
            ("198.18.1.3", "198.18.1.11", "198.18.0.2", "198.18.100.1")
        };
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let sliced = etherparse::SlicedPacket::from_ethernet(frame).map_err(|e| e.to_string())?;
        let (src, dst, outer_payload) = match &sliced.net {
            Some(etherparse::NetSlice::Ipv4(h)) => {
                let hdr = h.header().to_header();
                if hdr.calc_header_checksum() != hdr.header_checksum {
                    return Err("bad outer IPv4 header checksum".into());
                }
                (
                    std::net::IpAddr::V4(h.header().source_addr()),
                    std::net::IpAddr::V4(h.header().destination_addr()),
                    h.payload().payload,
                )
            }
            Some(etherparse::NetSlice::Ipv6(h)) => (
                std::net::IpAddr::V6(h.header().source_addr()),
                std::net::IpAddr::V6(h.header().destination_addr()),
                h.payload().payload,
            ),
            other => return Err(format!("no outer IP header: {other:?}")),
        };
        if (src, dst) != (ip(local), ip(rs1)) {
            return Err(format!("outer {src} -> {dst}, want {local} -> {rs1}"));
        }
        let inner = match self {
            Tunnel::Gue => {
                // etherparse verifies the UDP checksum against the outer pseudo-header.
                let seen = uvs_testkit::check_frame(frame)?;
                let udp_csum = u16::from_be_bytes([outer_payload[6], outer_payload[7]]);
                if udp_csum == 0 || seen.dport != GUE_PORT {
                    return Err(format!("UDP port {} checksum {udp_csum:#06x}", seen.dport));
                }
                let gue = &seen.payload;
                if gue[..4] != [0, if v6 { 41 } else { 4 }, 0, 0] {
                    return Err(format!("GUE header {:02x?}", &gue[..4]));
                }
                gue[4..].to_vec()
            }
            Tunnel::Gre => {
                let g = outer_payload;
                let proto: [u8; 2] = if v6 { [0x86, 0xdd] } else { [0x08, 0x00] };
                if g[..4] != [0x80, 0, proto[0], proto[1]] || g[6..8] != [0, 0] {
                    return Err(format!("GRE header {:02x?}", &g[..8]));
                }
                if ones_complement(g) != 0 {
                    return Err("GRE checksum does not verify".into());
                }
                g[8..].to_vec()
            }
        };
        let mut eth = frame[..12].to_vec();
        eth.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        eth.extend_from_slice(&inner);
        let seen = uvs_testkit::check_frame(&eth).map_err(|e| format!("inner: {e}"))?;
        if (seen.src, seen.dst, seen.proto, seen.dport) != (ip(client), ip(vip), 6, 80) {
            return Err(format!(
                "inner {}:{} -> {}:{} proto {}",
                seen.src, seen.sport, seen.dst, seen.dport, seen.proto
            ));
        }
        Ok(())
    }
}

/// What check_answers checks, for one family.
fn check_answers_of(tb: &Testbed, name: &str, v6: bool) {
    let url = if v6 {
        "http://[2001:2:0:100::1]/"
    } else {
        "http://198.18.100.1/"
    };
    let answers = tb.curl_many(url, 9);
    assert!(
        !answers.iter().any(|a| a == "failed"),
        "{name} v6={v6}: requests failed: {answers:?}\n{}",
        tb.uvsd_log()
    );
    let servers: BTreeSet<_> = answers.iter().collect();
    assert_eq!(servers.len(), 3, "{name} v6={v6}: {answers:?}");
}

/// The frames of a classic pcap file (tcpdump -w; either byte order, micro- or nanosecond).
fn read_pcap(b: &[u8]) -> Vec<Vec<u8>> {
    assert!(b.len() >= 24, "pcap too short");
    let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let le = matches!(magic, 0xa1b2_c3d4 | 0xa1b2_3c4d);
    let u32_at = |o: usize| {
        let w = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    assert_eq!(u32_at(20), 1, "link type Ethernet");
    let mut out = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let n = u32_at(o + 8) as usize;
        assert_eq!(n, u32_at(o + 12) as usize, "a whole frame was captured");
        out.push(b[o + 16..o + 16 + n].to_vec());
        o += 16 + n;
    }
    out
}

/// RFC 1071 sum, folded and complemented: 0 over data whose checksum is right.
fn ones_complement(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
