//! Table-driven tests of the XDP program's rules, run in the kernel with
//! BPF_PROG_TEST_RUN on literal frames (Katran-style fixtures). No interface
//! is involved: with no socket registered every claimed frame takes the
//! XDP_PASS fallback and is counted as `unclaimed`, which is how a test tells
//! "the balancer's" from "the kernel's". Needs root (loading BPF).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

const XDP_PASS: u32 = 2;

const VIP4: [u8; 4] = [198, 18, 100, 1];
const REAL4: [u8; 4] = [198, 18, 1, 11];
const HOST4: [u8; 4] = [198, 18, 1, 1];
const CLIENT4: [u8; 4] = [198, 18, 0, 2];

fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

fn eth(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for (i, tpid) in tags.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    // UDP from port 53 (the lab's real servers' service port) to 12345.
    ipv4_l4(src, dst, 17, &[0, 53, 0x30, 0x39, 0, 8, 0, 0])
}

/// IPv4 with protocol `proto` and L4 bytes `l4`; checksums irrelevant to the program.
fn ipv4_l4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![
        0x45,
        0,
        0,
        20 + l4.len() as u8,
        0,
        0,
        0x40,
        0,
        64,
        proto,
        0,
        0,
    ];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(l4);
    p
}

fn arp(target: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2];
    p.extend_from_slice(&CLIENT4);
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&target);
    p
}

fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 255]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(l4);
    p
}

/// ICMPv6 with a 16-byte target after the 4 reserved bytes (NS/NA layout).
fn icmp6(kind: u8, target: [u8; 16]) -> Vec<u8> {
    let mut p = vec![kind, 0, 0, 0, 0, 0, 0, 0];
    p.extend_from_slice(&target);
    p
}

/// The tests that load the program are `#[ignore]`d (listed as ignored, not passed);
/// `scripts/test.sh` runs them as root with `--include-ignored`. Run without root anyway,
/// one fails here, saying why.
fn loaded() -> LoadedObject {
    assert!(
        sys::is_root(),
        "loading BPF needs root: run it as root, e.g. scripts/test.sh under sudo"
    );
    let o = LoadedObject::load("test", &[]).expect("program loads");
    let set = |fds: (RawFd, RawFd), a: IpAddr| o.set_addr(fds, a, true, "test").unwrap();
    set((o.owned4, o.owned6), IpAddr::V4(Ipv4Addr::from(VIP4)));
    set((o.reals4, o.reals6), IpAddr::V4(Ipv4Addr::from(REAL4)));
    set((o.host4, o.host6), IpAddr::V4(Ipv4Addr::from(HOST4)));
    set(
        (o.owned4, o.owned6),
        IpAddr::V6(Ipv6Addr::from(v6("2001:2:0:100::1"))),
    );
    set(
        (o.reals4, o.reals6),
        IpAddr::V6(Ipv6Addr::from(v6("2001:2:0:1::11"))),
    );
    set(
        (o.host4, o.host6),
        IpAddr::V6(Ipv6Addr::from(v6("2001:2:0:1::1"))),
    );
    // The real servers serve UDP 53; the IPv4 one also a port-0 TCP service.
    o.set_real_port(IpAddr::V4(Ipv4Addr::from(REAL4)), 17, 53, true)
        .unwrap();
    o.set_real_port(IpAddr::V4(Ipv4Addr::from(REAL4)), 6, 0, true)
        .unwrap();
    o.set_real_port(
        IpAddr::V6(Ipv6Addr::from(v6("2001:2:0:1::11"))),
        17,
        53,
        true,
    )
    .unwrap();
    o
}

/// True when the program claimed the frame for the balancer.
fn claimed(o: &LoadedObject, frame: &[u8]) -> bool {
    let before = o.counters().unwrap();
    let act = o.test_run(frame).expect("test run");
    // No socket is registered, so even a claimed frame falls back to PASS.
    assert_eq!(act, XDP_PASS);
    let after = o.counters().unwrap();
    let took = after.unclaimed - before.unclaimed;
    let passed = after.passed - before.passed;
    assert_eq!(took + passed, 1, "exactly one counter per frame");
    assert_eq!(after.redirected, before.redirected);
    took == 1
}

#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn ipv4_and_arp_rules() {
    let o = loaded();
    let ip = 0x0800;
    let cases: &[(&str, Vec<u8>, bool)] = &[
        ("to VIP", eth(&[], ip, &ipv4(CLIENT4, VIP4)), true),
        (
            "to VIP, 802.1Q",
            eth(&[0x8100], ip, &ipv4(CLIENT4, VIP4)),
            true,
        ),
        (
            "to VIP, QinQ",
            eth(&[0x88a8, 0x8100], ip, &ipv4(CLIENT4, VIP4)),
            true,
        ),
        (
            "to VIP, three tags",
            eth(&[0x8100, 0x8100, 0x8100], ip, &ipv4(CLIENT4, VIP4)),
            false,
        ),
        ("to host", eth(&[], ip, &ipv4(CLIENT4, HOST4)), false),
        (
            "real to client (NAT reply)",
            eth(&[], ip, &ipv4(REAL4, CLIENT4)),
            true,
        ),
        (
            "real to client, 802.1Q",
            eth(&[0x8100], ip, &ipv4(REAL4, CLIENT4)),
            true,
        ),
        (
            "real's own DNS lookup (UDP from an ephemeral port)",
            eth(
                &[],
                ip,
                &ipv4_l4(REAL4, [198, 19, 5, 5], 17, &[0xa0, 0, 0, 53, 0, 8, 0, 0]),
            ),
            false,
        ),
        (
            "real's TCP from any port (port-0 service)",
            eth(
                &[],
                ip,
                &ipv4_l4(REAL4, CLIENT4, 6, &[0xa0, 0, 0x30, 0x39, 0, 0, 0, 0]),
            ),
            true,
        ),
        (
            "real's ICMP port unreachable (about a flow)",
            eth(
                &[],
                ip,
                &ipv4_l4(REAL4, CLIENT4, 1, &[3, 3, 0, 0, 0, 0, 0, 0]),
            ),
            true,
        ),
        (
            "real's own ping",
            eth(
                &[],
                ip,
                &ipv4_l4(REAL4, [198, 19, 5, 5], 1, &[8, 0, 0, 0, 0, 1, 0, 1]),
            ),
            false,
        ),
        (
            "later fragment from real",
            eth(&[], ip, &{
                let mut p = ipv4(REAL4, CLIENT4);
                p[6] = 0;
                p[7] = 0x10;
                p
            }),
            true,
        ),
        (
            "truncated L4 from real",
            eth(&[], ip, &ipv4_l4(REAL4, CLIENT4, 17, &[0])),
            false,
        ),
        (
            "real to host (health check)",
            eth(&[], ip, &ipv4(REAL4, HOST4)),
            false,
        ),
        (
            "real to multicast (VRRP)",
            eth(&[], ip, &ipv4(REAL4, [224, 0, 0, 18])),
            false,
        ),
        (
            "real to broadcast",
            eth(&[], ip, &ipv4(REAL4, [255; 4])),
            false,
        ),
        (
            "client to client",
            eth(&[], ip, &ipv4(CLIENT4, [198, 18, 0, 3])),
            false,
        ),
        (
            "truncated IPv4",
            eth(&[], ip, &ipv4(CLIENT4, VIP4)[..16]),
            false,
        ),
        (
            "IPv4 ethertype, version 6",
            eth(&[], ip, &{
                let mut p = ipv4(CLIENT4, VIP4);
                p[0] = 0x65;
                p
            }),
            false,
        ),
        ("ARP for VIP", eth(&[], 0x0806, &arp(VIP4)), true),
        (
            "ARP for VIP, 802.1Q",
            eth(&[0x8100], 0x0806, &arp(VIP4)),
            true,
        ),
        ("ARP for host", eth(&[], 0x0806, &arp(HOST4)), false),
        ("truncated ARP", eth(&[], 0x0806, &arp(VIP4)[..20]), false),
        ("LLDP", eth(&[], 0x88cc, &[0; 46]), false),
        ("bare Ethernet header", eth(&[], ip, &[]), false),
    ];
    for (name, frame, want) in cases {
        assert_eq!(claimed(&o, frame), *want, "{name}");
    }
}

#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn ipv6_and_ndp_rules() {
    let o = loaded();
    let vip = v6("2001:2:0:100::1");
    let real = v6("2001:2:0:1::11");
    let host = v6("2001:2:0:1::1");
    let client = v6("2001:2::2");
    let udp = [0, 53, 0x30, 0x39, 0, 8, 0, 0];
    let e6 = |p: Vec<u8>| eth(&[], 0x86dd, &p);
    let cases: &[(&str, Vec<u8>, bool)] = &[
        ("UDP to VIP", e6(ipv6(client, vip, 17, &udp)), true),
        (
            "UDP to VIP, QinQ",
            eth(&[0x88a8, 0x8100], 0x86dd, &ipv6(client, vip, 17, &udp)),
            true,
        ),
        (
            "echo to VIP",
            e6(ipv6(client, vip, 58, &[128, 0, 0, 0, 0, 1, 0, 1])),
            true,
        ),
        ("UDP to host", e6(ipv6(client, host, 17, &udp)), false),
        (
            "real to client (NAT reply)",
            e6(ipv6(real, client, 17, &udp)),
            true,
        ),
        ("real to host", e6(ipv6(real, host, 17, &udp)), false),
        (
            "real's own traffic from another port",
            e6(ipv6(real, client, 17, &[0xa0, 0, 0, 53, 0, 8, 0, 0])),
            false,
        ),
        (
            "real's packet too big (about a flow)",
            e6(ipv6(real, client, 58, &[2, 0, 0, 0, 0, 0, 5, 0])),
            true,
        ),
        (
            "real's own echo request",
            e6(ipv6(real, client, 58, &[128, 0, 0, 0, 0, 1, 0, 1])),
            false,
        ),
        (
            "real to link-local",
            e6(ipv6(real, v6("fe80::1"), 17, &udp)),
            false,
        ),
        (
            "real to multicast",
            e6(ipv6(real, v6("ff02::1"), 17, &udp)),
            false,
        ),
        (
            "NS for VIP (multicast)",
            e6(ipv6(client, v6("ff02::1:ff00:1"), 58, &icmp6(135, vip))),
            true,
        ),
        (
            "NS for VIP (unicast NUD)",
            e6(ipv6(real, vip, 58, &icmp6(135, vip))),
            true,
        ),
        (
            "NS for host from real",
            e6(ipv6(real, v6("ff02::1:ff00:1"), 58, &icmp6(135, host))),
            false,
        ),
        (
            "NS for host, unicast from real",
            e6(ipv6(real, host, 58, &icmp6(135, host))),
            false,
        ),
        (
            "NS for a client from real",
            e6(ipv6(real, client, 58, &icmp6(135, client))),
            false,
        ),
        (
            "NA to VIP",
            e6(ipv6(real, vip, 58, &icmp6(136, real))),
            true,
        ),
        (
            "NA about VIP (DAD clash)",
            e6(ipv6(client, v6("ff02::1"), 58, &icmp6(136, vip))),
            true,
        ),
        (
            "NA from real to client",
            e6(ipv6(real, client, 58, &icmp6(136, real))),
            false,
        ),
        (
            "RS from real",
            e6(ipv6(real, v6("ff02::2"), 58, &[133, 0, 0, 0, 0, 0, 0, 0])),
            false,
        ),
        (
            "RA from real",
            e6(ipv6(real, client, 58, &[134; 16])),
            false,
        ),
        (
            "redirect from real",
            e6(ipv6(real, client, 58, &icmp6(137, client))),
            false,
        ),
        (
            "truncated NS for VIP",
            e6(ipv6(client, vip, 58, &icmp6(135, vip)[..12])),
            false,
        ),
        (
            "truncated IPv6",
            eth(&[], 0x86dd, &ipv6(client, vip, 17, &udp)[..30]),
            false,
        ),
    ];
    for (name, frame, want) in cases {
        assert_eq!(claimed(&o, frame), *want, "{name}");
    }
}

#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn removal_and_redirect_all() {
    let o = loaded();
    let to_vip = eth(&[], 0x0800, &ipv4(CLIENT4, VIP4));
    let to_host = eth(&[], 0x0800, &ipv4(CLIENT4, HOST4));
    assert!(claimed(&o, &to_vip));
    o.set_addr(
        (o.owned4, o.owned6),
        IpAddr::V4(Ipv4Addr::from(VIP4)),
        false,
        "t",
    )
    .unwrap();
    assert!(!claimed(&o, &to_vip));
    // Removing twice is not an error.
    o.set_addr(
        (o.owned4, o.owned6),
        IpAddr::V4(Ipv4Addr::from(VIP4)),
        false,
        "t",
    )
    .unwrap();

    o.update(o.settings, &0u32, &SETTING_REDIRECT_ALL, "t")
        .unwrap();
    assert!(claimed(&o, &to_host));
    assert!(claimed(&o, &eth(&[], 0x88cc, &[0; 46])));
    o.update(o.settings, &0u32, &0u32, "t").unwrap();
    assert!(!claimed(&o, &to_host));
}

#[test]
fn attach_to_a_missing_interface_names_it() {
    let e = XdpProgram::attach("uvs-missing0", XdpMode::Auto)
        .err()
        .expect("no such interface");
    assert!(
        e.to_string()
            .starts_with("no such interface 'uvs-missing0'"),
        "{e}"
    );
}

/// Firewall marks: a destination inside a mark's prefix goes to the balancer when its
/// protocol and destination port are in the mark's ranges; anything else, the host's own
/// addresses and a real server's own traffic stay with the kernel. The most specific prefix
/// decides (uvsd merges the outer marks' ranges into it).
#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn firewall_mark_rules() {
    let o = loaded();
    let tcp80 = MarkRange {
        first: 80,
        last: 80,
        protos: MARK_TCP,
    };
    let udp_any = MarkRange {
        first: 1,
        last: u16::MAX,
        protos: MARK_UDP,
    };
    let web = IpAddr::V4(Ipv4Addr::new(198, 18, 128, 0));
    o.set_mark(web, 17, Some(&[tcp80])).unwrap();
    o.set_mark(
        IpAddr::V4(Ipv4Addr::new(198, 18, 200, 0)),
        24,
        Some(&[tcp80, udp_any]),
    )
    .unwrap();
    o.set_mark(
        IpAddr::V6(Ipv6Addr::from(v6("2001:2:0:8000::"))),
        49,
        Some(&[tcp80]),
    )
    .unwrap();
    let tcp_to = |port: u16| {
        let mut l4 = vec![0x9c, 0x40];
        l4.extend_from_slice(&port.to_be_bytes());
        l4.extend_from_slice(&[0; 16]);
        l4
    };
    let udp_to = |port: u16| {
        let mut l4 = vec![0x9c, 0x40];
        l4.extend_from_slice(&port.to_be_bytes());
        l4.extend_from_slice(&[0, 8, 0, 0]);
        l4
    };
    let dst = [198, 18, 130, 7];
    let inner = [198, 18, 200, 9];
    let ip = 0x0800;
    let cases: &[(&str, Vec<u8>, bool)] = &[
        (
            "tcp 80 in the prefix",
            eth(&[], ip, &ipv4_l4(CLIENT4, dst, 6, &tcp_to(80))),
            true,
        ),
        (
            "tcp 443 in the prefix",
            eth(&[], ip, &ipv4_l4(CLIENT4, dst, 6, &tcp_to(443))),
            false,
        ),
        (
            "udp 80 in the prefix",
            eth(&[], ip, &ipv4_l4(CLIENT4, dst, 17, &udp_to(80))),
            false,
        ),
        (
            "outside the prefix",
            eth(
                &[],
                ip,
                &ipv4_l4(CLIENT4, [198, 18, 127, 7], 6, &tcp_to(80)),
            ),
            false,
        ),
        (
            "nested prefix: its own udp",
            eth(&[], ip, &ipv4_l4(CLIENT4, inner, 17, &udp_to(5353))),
            true,
        ),
        (
            "nested prefix: the outer tcp 80",
            eth(&[], ip, &ipv4_l4(CLIENT4, inner, 6, &tcp_to(80))),
            true,
        ),
        (
            "a real server's own traffic to a marked destination",
            eth(&[], ip, &ipv4_l4(REAL4, dst, 17, &udp_to(80))),
            false,
        ),
        (
            "ICMP to a marked destination",
            eth(
                &[],
                ip,
                &ipv4_l4(CLIENT4, dst, 1, &[8, 0, 0, 0, 0, 0, 0, 0]),
            ),
            false,
        ),
        (
            "IPv6 tcp 80 in the prefix",
            eth(
                &[],
                0x86dd,
                &ipv6(v6("2001:2::2"), v6("2001:2:0:8000::5"), 6, &tcp_to(80)),
            ),
            true,
        ),
        (
            "IPv6 tcp 22 in the prefix",
            eth(
                &[],
                0x86dd,
                &ipv6(v6("2001:2::2"), v6("2001:2:0:8000::5"), 6, &tcp_to(22)),
            ),
            false,
        ),
    ];
    for (what, frame, want) in cases {
        assert_eq!(claimed(&o, frame), *want, "{what}");
    }
    // A host address inside a mark's prefix stays the kernel's.
    o.set_addr(
        (o.host4, o.host6),
        IpAddr::V4(Ipv4Addr::from(dst)),
        true,
        "test",
    )
    .unwrap();
    assert!(!claimed(
        &o,
        &eth(&[], ip, &ipv4_l4(CLIENT4, dst, 6, &tcp_to(80)))
    ));
    // Removed: back to the kernel.
    o.set_mark(web, 17, None).unwrap();
    assert!(!claimed(
        &o,
        &eth(
            &[],
            ip,
            &ipv4_l4(CLIENT4, [198, 18, 131, 1], 6, &tcp_to(80))
        )
    ));
}

/// The kernel fast path (`fast_path` in uvs_xdp.c) against etherparse: a frame of a flow
/// written into the mapped table leaves rewritten, every checksum right (a full L4 one
/// recomputed by etherparse; a partial one still partial, for the new addresses), the TTL
/// left to the kernel's forwarding, and counted on its line; frames the workers must see
/// (SYN/FIN/RST, other flows, lines past their time, the setting off) are left alone.
/// A fast-path line of the client's flow 40000 → VIP:80, NAT to the real server's 8080
/// (service 4, real server 2), holding for ever.
fn client_line() -> uvs_port::fast::FastEntry {
    use uvs_port::fast::{FastEntry, FastKey};
    FastEntry {
        key: FastKey::new(CLIENT4, VIP4, 40000, 80, 6),
        to: FastKey::new(CLIENT4, REAL4, 40000, 8080, 6),
        inbound: true,
        data_only: false,
        syn_ack: false,
        weak: false,
        until_ns: u64::MAX,
        service: 4,
        real: 2,
    }
}

#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn fast_path_rewrites_the_flows_of_its_table() {
    use uvs_port::fast::{FastEntry, FastKey};
    use uvs_testkit as tk;
    let o = loaded();
    let table = o.map_fast().expect("the table maps");
    let ip = |a: [u8; 4]| IpAddr::V4(Ipv4Addr::from(a));
    let (mac_a, mac_b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let payload = b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n";
    let fast = |frame: &[u8]| -> Option<Vec<u8>> {
        let before = o.counters().unwrap();
        let (act, out) = o.test_run_out(frame).expect("test run");
        assert_eq!(act, XDP_PASS);
        let after = o.counters().unwrap();
        (after.fast > before.fast).then_some(out)
    };
    let tcp = |flags: tk::Flags, p: &[u8]| {
        tk::tcp(mac_a, mac_b, ip(CLIENT4), 40000, ip(VIP4), 80, flags, p)
    };
    let ack = tcp(tk::ACK, payload);
    // NAT with a port change, towards the real server.
    let line = client_line();
    assert_eq!(fast(&ack), None, "setting off");
    o.set_setting(SETTING_FAST_PATH, true, "t").unwrap();
    assert_eq!(fast(&ack), None, "empty table");
    table.line(&line.key).install(&line).unwrap();

    let out = fast(&ack).expect("forwarded by the fast path");
    let seen = tk::check_frame(&out).expect("checksums right");
    assert_eq!((seen.src, seen.dst), (ip(CLIENT4), ip(REAL4)));
    assert_eq!((seen.sport, seen.dport, seen.ttl), (40000, 8080, 64));
    assert_eq!(seen.payload, payload);
    assert_eq!(&out[..12], &ack[..12], "MACs are the kernel's to write");

    // A partial checksum stays partial, for the new pseudo-header.
    let out = fast(&tk::partial_checksum(&ack)).expect("partial forwarded");
    assert_eq!(out, tk::partial_checksum(&fast(&ack).unwrap()));

    let taken = table.line(&line.key).take().expect("counted");
    assert_eq!((taken.packets, taken.bytes), (3, 3 * ack.len() as u64));
    assert_eq!((taken.service, taken.real, taken.inbound), (4, 2, true));

    for flags in [tk::SYN, tk::RST, tk::FIN_ACK] {
        assert_eq!(fast(&tcp(flags, b"")), None, "{flags:?} is the workers'");
    }
    let other = tk::tcp(mac_a, mac_b, ip(CLIENT4), 40001, ip(VIP4), 80, tk::ACK, b"");
    assert_eq!(fast(&other), None, "another flow");

    // UDP, full and zero checksums, with the reply direction's rewrite.
    let reply = FastEntry {
        key: FastKey::new(REAL4, CLIENT4, 53, 5353, 17),
        to: FastKey::new(VIP4, CLIENT4, 53, 5353, 17),
        inbound: false,
        ..line
    };
    table.line(&reply.key).install(&reply).unwrap();
    let dgram = tk::udp(mac_a, mac_b, ip(REAL4), 53, ip(CLIENT4), 5353, b"answer");
    let out = fast(&dgram).expect("udp forwarded");
    let seen = tk::check_frame(&out).expect("udp checksums right");
    assert_eq!(
        (seen.src, seen.sport, seen.dst),
        (ip(VIP4), 53, ip(CLIENT4))
    );
    let mut zero = dgram.clone();
    zero[40..42].copy_from_slice(&[0, 0]);
    let out = fast(&zero).expect("udp without checksum forwarded");
    assert_eq!(&out[40..42], &[0, 0], "no checksum stays none");
    tk::check_frame(&out).expect("ip checksum right");

    // A line written at the SYN-ACK takes segments with data, not the bare ACK.
    table
        .line(&line.key)
        .install(&FastEntry {
            data_only: true,
            ..line
        })
        .unwrap();
    assert_eq!(fast(&tcp(tk::ACK, b"")), None, "the handshake's ACK");
    tk::check_frame(&fast(&ack).expect("data passes")).unwrap();

    // The line towards the client written at the client's SYN takes the real server's
    // SYN-ACK too, rewritten from the VIP; no other segment with SYN, FIN or RST.
    let towards_client = FastEntry {
        key: FastKey::new(REAL4, CLIENT4, 8080, 40000, 6),
        to: FastKey::new(VIP4, CLIENT4, 80, 40000, 6),
        inbound: false,
        data_only: true,
        ..line
    };
    let from_real = |flags: tk::Flags, p: &[u8]| {
        tk::tcp(mac_a, mac_b, ip(REAL4), 8080, ip(CLIENT4), 40000, flags, p)
    };
    let syn_ack = from_real(tk::SYN_ACK, b"");
    table
        .line(&towards_client.key)
        .install(&towards_client)
        .unwrap();
    assert_eq!(fast(&syn_ack), None, "a line written at the SYN-ACK");
    table
        .line(&towards_client.key)
        .install(&FastEntry {
            syn_ack: true,
            ..towards_client
        })
        .unwrap();
    let out = fast(&syn_ack).expect("the SYN-ACK takes the line");
    let seen = tk::check_frame(&out).expect("SYN-ACK checksums right");
    assert_eq!((seen.src, seen.sport), (ip(VIP4), 80));
    assert_eq!((seen.dst, seen.dport), (ip(CLIENT4), 40000));
    for flags in [tk::SYN, tk::RST, tk::FIN_ACK, tk::ACK] {
        assert_eq!(fast(&from_real(flags, b"")), None, "{flags:?}");
    }
    tk::check_frame(&fast(&from_real(tk::ACK, payload)).expect("data passes")).unwrap();

    // Past its time: the workers see the packet (and refresh the line).
    table
        .line(&line.key)
        .install(&FastEntry {
            until_ns: 1,
            ..line
        })
        .unwrap();
    assert_eq!(fast(&ack), None, "expired");
    table.line(&line.key).clear(&line.key).unwrap();
    assert_eq!(fast(&ack), None, "cleared");
    table.line(&line.key).install(&line).unwrap();
    o.set_setting(SETTING_FAST_PATH, false, "t").unwrap();
    assert_eq!(fast(&ack), None, "setting off again");
}

const CLIENT6: &str = "2001:2::2";
const VIP6: &str = "2001:2:0:100::1";
const REAL6: &str = "2001:2:0:1::11";

/// The IPv6 line of the client's flow [CLIENT6]:40000 → [VIP6]:80, NAT to the real
/// server's 8080 (service 4, real server 2), holding for ever.
fn client_line6() -> uvs_port::fast::FastEntry6 {
    use uvs_port::fast::{FastEntry6, FastKey6};
    FastEntry6 {
        key: FastKey6::new(v6(CLIENT6), v6(VIP6), 40000, 80, 6),
        to: FastKey6::new(v6(CLIENT6), v6(REAL6), 40000, 8080, 6),
        inbound: true,
        data_only: false,
        syn_ack: false,
        weak: false,
        until_ns: u64::MAX,
        service: 4,
        real: 2,
    }
}

/// The kernel fast path for IPv6 (`fast_path6` in uvs_xdp.c) against etherparse, as
/// `fast_path_rewrites_the_flows_of_its_table` for IPv4: a frame of a flow written into the
/// mapped IPv6 table leaves rewritten (addresses and ports; the hop limit left to the
/// kernel's forwarding), its L4 checksum right (a full one checked by etherparse; a partial
/// one still partial, for the new addresses), counted on its line; frames the workers must
/// see (SYN/FIN/RST, other flows, lines past their time or being written, a hop limit of 1,
/// an extension header, UDP without a checksum, the setting off) are left alone; with the
/// TC program's routes on, what it rewrote is marked for that program.
#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn fast_path_rewrites_the_ipv6_flows_of_its_table() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use uvs_port::fast::{FastEntry6, FastKey6, FastLine6, FastTable};
    use uvs_testkit as tk;
    let o = loaded();
    let table = o.map_fast().expect("the tables map");
    let ip = |s: &str| IpAddr::V6(s.parse().unwrap());
    let (mac_a, mac_b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let payload = b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n";
    let fast = |frame: &[u8]| -> Option<Vec<u8>> {
        let before = o.counters().unwrap();
        let (act, out) = o.test_run_out(frame).expect("test run");
        assert_eq!(act, XDP_PASS);
        let after = o.counters().unwrap();
        (after.fast > before.fast).then_some(out)
    };
    let tcp = |flags: tk::Flags, p: &[u8]| {
        tk::tcp(mac_a, mac_b, ip(CLIENT6), 40000, ip(VIP6), 80, flags, p)
    };
    let ack = tcp(tk::ACK, payload);
    let line = client_line6();
    assert_eq!(fast(&ack), None, "setting off");
    o.set_setting(SETTING_FAST_PATH, true, "t").unwrap();
    o.set_setting(SETTING_FAST_PATH6, true, "t").unwrap();
    assert_eq!(fast(&ack), None, "empty table");
    table.line6(&line.key).install(&line).unwrap();
    // An IPv4 frame of the same ports is not the IPv6 line's.
    let v4 = tk::tcp(
        mac_a,
        mac_b,
        IpAddr::V4(Ipv4Addr::from(CLIENT4)),
        40000,
        IpAddr::V4(Ipv4Addr::from(VIP4)),
        80,
        tk::ACK,
        payload,
    );
    assert_eq!(fast(&v4), None, "the IPv4 table is another");

    let out = fast(&ack).expect("forwarded by the fast path");
    let seen = tk::check_frame(&out).expect("checksums right");
    assert_eq!((seen.src, seen.dst), (ip(CLIENT6), ip(REAL6)));
    assert_eq!((seen.sport, seen.dport, seen.ttl), (40000, 8080, 64));
    assert_eq!(seen.payload, payload);
    assert_eq!(&out[..12], &ack[..12], "MACs are the kernel's to write");

    // A partial checksum stays partial, for the new pseudo-header.
    let out = fast(&tk::partial_checksum(&ack)).expect("partial forwarded");
    assert_eq!(out, tk::partial_checksum(&fast(&ack).unwrap()));

    let taken = table.line6(&line.key).take().expect("counted");
    assert_eq!((taken.packets, taken.bytes), (3, 3 * ack.len() as u64));
    assert_eq!((taken.service, taken.real, taken.inbound), (4, 2, true));

    for flags in [tk::SYN, tk::RST, tk::FIN_ACK] {
        assert_eq!(fast(&tcp(flags, b"")), None, "{flags:?} is the workers'");
    }
    let other = tk::tcp(mac_a, mac_b, ip(CLIENT6), 40001, ip(VIP6), 80, tk::ACK, b"");
    assert_eq!(fast(&other), None, "another flow");
    let mut last_hop = ack.clone();
    last_hop[14 + 7] = 1;
    assert_eq!(fast(&last_hop), None, "hop limit 1: the kernel answers it");
    let mut ext = ack.clone();
    ext[14 + 6] = 0;
    assert_eq!(fast(&ext), None, "an extension header (hop-by-hop)");

    // A line being written (odd sequence) is not read.
    let i = uvs_port::fast::index(&line.key);
    let l: &FastLine6 = &table.lines6()[i];
    // SAFETY: the sequence word is the line's first field (`struct fast_line6`), an
    // AtomicU32 in shared memory.
    let seq = unsafe { &*(l as *const FastLine6).cast::<AtomicU32>() };
    seq.fetch_add(1, Ordering::SeqCst);
    assert_eq!(fast(&ack), None, "a line being written");
    seq.fetch_add(1, Ordering::SeqCst);
    tk::check_frame(&fast(&ack).expect("written: read again")).unwrap();

    // UDP, full checksums and partial ones, with the reply direction's rewrite; without a
    // checksum (not allowed in IPv6) it goes to the workers.
    let reply = FastEntry6 {
        key: FastKey6::new(v6(REAL6), v6(CLIENT6), 53, 5353, 17),
        to: FastKey6::new(v6(VIP6), v6(CLIENT6), 53, 5353, 17),
        inbound: false,
        ..line
    };
    table.line6(&reply.key).install(&reply).unwrap();
    let dgram = tk::udp(mac_a, mac_b, ip(REAL6), 53, ip(CLIENT6), 5353, b"answer");
    let out = fast(&dgram).expect("udp forwarded");
    let seen = tk::check_frame(&out).expect("udp checksums right");
    assert_eq!(
        (seen.src, seen.sport, seen.dst, seen.dport),
        (ip(VIP6), 53, ip(CLIENT6), 5353)
    );
    let out = fast(&tk::partial_checksum(&dgram)).expect("partial udp forwarded");
    assert_eq!(out, tk::partial_checksum(&fast(&dgram).unwrap()));
    let mut zero = dgram.clone();
    zero[14 + 40 + 6..14 + 40 + 8].copy_from_slice(&[0, 0]);
    assert_eq!(fast(&zero), None, "udp without checksum: the workers'");

    // A line written at the SYN-ACK takes segments with data, not the bare ACK.
    table
        .line6(&line.key)
        .install(&FastEntry6 {
            data_only: true,
            ..line
        })
        .unwrap();
    assert_eq!(fast(&tcp(tk::ACK, b"")), None, "the handshake's ACK");
    tk::check_frame(&fast(&ack).expect("data passes")).unwrap();

    // The line towards the client written at the client's SYN takes the SYN-ACK too.
    let towards_client = FastEntry6 {
        key: FastKey6::new(v6(REAL6), v6(CLIENT6), 8080, 40000, 6),
        to: FastKey6::new(v6(VIP6), v6(CLIENT6), 80, 40000, 6),
        inbound: false,
        data_only: true,
        ..line
    };
    let from_real = |flags: tk::Flags, p: &[u8]| {
        tk::tcp(mac_a, mac_b, ip(REAL6), 8080, ip(CLIENT6), 40000, flags, p)
    };
    let syn_ack = from_real(tk::SYN_ACK, b"");
    table
        .line6(&towards_client.key)
        .install(&towards_client)
        .unwrap();
    assert_eq!(fast(&syn_ack), None, "a line written at the SYN-ACK");
    table
        .line6(&towards_client.key)
        .install(&FastEntry6 {
            syn_ack: true,
            ..towards_client
        })
        .unwrap();
    let out = fast(&syn_ack).expect("the SYN-ACK takes the line");
    let seen = tk::check_frame(&out).expect("SYN-ACK checksums right");
    assert_eq!((seen.src, seen.sport), (ip(VIP6), 80));
    assert_eq!((seen.dst, seen.dport), (ip(CLIENT6), 40000));
    for flags in [tk::SYN, tk::RST, tk::FIN_ACK, tk::ACK] {
        assert_eq!(fast(&from_real(flags, b"")), None, "{flags:?}");
    }
    tk::check_frame(&fast(&from_real(tk::ACK, payload)).expect("data passes")).unwrap();

    // Past its time, ended, cleared: the workers see the packet.
    table
        .line6(&line.key)
        .install(&FastEntry6 {
            until_ns: 1,
            ..line
        })
        .unwrap();
    assert_eq!(fast(&ack), None, "expired");
    table.line6(&line.key).install(&line).unwrap();
    assert_eq!(table.line6(&line.key).expire(&line.key), Ok(true));
    assert_eq!(fast(&ack), None, "ended by the control thread");
    table.line6(&line.key).clear(&line.key).unwrap();
    assert_eq!(fast(&ack), None, "cleared");
    table.line6(&line.key).install(&line).unwrap();
    o.set_setting(SETTING_FAST_PATH6, false, "t").unwrap();
    assert_eq!(fast(&ack), None, "IPv6 off (no IPv6 forwarding)");
    o.set_setting(SETTING_FAST_PATH6, true, "t").unwrap();
    o.set_setting(SETTING_FAST_PATH, false, "t").unwrap();
    assert_eq!(fast(&ack), None, "setting off again");
    // With the TC program's routes on, a rewritten IPv6 frame is marked for it too (its
    // source MAC), the rewrite the same.
    o.set_setting(SETTING_FAST_PATH, true, "t").unwrap();
    let plain = fast(&ack).expect("forwarded");
    o.set_setting(SETTING_FAST_SEND, true, "t").unwrap();
    let out = fast(&ack).expect("forwarded");
    assert_eq!(
        out[6..12],
        [0x02, 0x75, 0x76, 0x73, 0x66, 0x00],
        "the mark: {out:?}"
    );
    assert_eq!((&out[..6], &out[12..]), (&plain[..6], &plain[12..]));
    // A frame the fast path does not take keeps its source.
    let (_, out) = o.test_run_out(&other).unwrap();
    assert_eq!(out, other, "not the fast path's: no mark");
}

/// With the TC program's routes set (`SETTING_FAST_SEND`), a frame the fast path rewrote
/// leaves the XDP program with the fast path's mark as its source MAC (what `uvs_fast_tc`
/// looks for); a frame the fast path did not take keeps its own, and one that arrives with
/// the mark as its source loses it.
#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn fast_path_marks_its_frames_for_the_tc_program() {
    use uvs_testkit as tk;
    const FAST_MARK: [u8; 6] = [0x02, 0x75, 0x76, 0x73, 0x66, 0x00];
    let o = loaded();
    let table = o.map_fast().expect("the table maps");
    let ip = |a: [u8; 4]| IpAddr::V4(Ipv4Addr::from(a));
    let (mac_a, mac_b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let segment = |src_mac: [u8; 6], sport: u16| {
        tk::tcp(
            src_mac,
            mac_b,
            ip(CLIENT4),
            sport,
            ip(VIP4),
            80,
            tk::ACK,
            b"x",
        )
    };
    let ack = segment(mac_a, 40000);
    let line = client_line();
    table.line(&line.key).install(&line).unwrap();
    o.set_setting(SETTING_FAST_PATH, true, "t").unwrap();
    let (_, plain) = o.test_run_out(&ack).unwrap();
    assert_ne!(plain, ack, "rewritten by the fast path");
    assert_eq!(plain[..12], ack[..12], "no mark without the routes");
    o.set_setting(SETTING_FAST_SEND, true, "t").unwrap();
    let (act, out) = o.test_run_out(&ack).unwrap();
    assert_eq!(act, XDP_PASS);
    assert_eq!(out.len(), ack.len());
    assert_eq!(out[6..12], FAST_MARK, "the mark as the source MAC: {out:?}");
    assert_eq!(out[..6], plain[..6], "the destination MAC as it came");
    assert_eq!(out[12..], plain[12..], "the same rewrite");
    let other = segment(mac_a, 40001);
    let (_, out) = o.test_run_out(&other).unwrap();
    assert_eq!(out, other, "not the fast path's: no mark");
    // A frame from the wire that claims the mark: passed with its last byte flipped.
    let forged = segment(FAST_MARK, 40001);
    let (act, out) = o.test_run_out(&forged).unwrap();
    assert_eq!(act, XDP_PASS);
    assert_eq!(out[6..11], FAST_MARK[..5]);
    assert_eq!(out[11], FAST_MARK[5] ^ 0xff, "the mark undone: {out:?}");
    assert_eq!(out[12..], forged[12..], "nothing else changed");
}

/// A program loaded in place of another (an interface made again) takes over its counters
/// and its fast path's table: a line written through the old one's mapping is the new
/// one's, and a line written through the new one's is seen through the old mapping.
#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn a_program_in_place_of_another_takes_over_its_fast_table() {
    use uvs_testkit as tk;
    let old = loaded();
    let old_table = old.map_fast().expect("the table maps");
    let line = client_line();
    old_table.line(&line.key).install(&line).unwrap();
    let line6 = client_line6();
    old_table.line6(&line6.key).install(&line6).unwrap();
    let new = LoadedObject::load(
        "test",
        &[
            ("stats", old.stats),
            ("fast4", old.fast4),
            ("fast6", old.fast6),
        ],
    )
    .expect("loads reusing");
    assert_ne!(new.fast6, old.fast6, "its own fd, for the same map");
    assert_ne!(new.fast4, old.fast4, "its own fd, for the same map");
    let ip = |a: [u8; 4]| IpAddr::V4(Ipv4Addr::from(a));
    let ack = tk::tcp(
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        ip(CLIENT4),
        40000,
        ip(VIP4),
        80,
        tk::ACK,
        b"x",
    );
    new.set_setting(SETTING_FAST_PATH, true, "t").unwrap();
    new.set_setting(SETTING_FAST_PATH6, true, "t").unwrap();
    let before = new.counters().unwrap().fast;
    let (_, out) = new.test_run_out(&ack).unwrap();
    assert_eq!(
        new.counters().unwrap().fast,
        before + 1,
        "the old line forwards"
    );
    assert_eq!(
        old.counters().unwrap(),
        new.counters().unwrap(),
        "one set of counters"
    );
    let seen = tk::check_frame(&out).expect("checksums right");
    assert_eq!((seen.dst, seen.dport), (ip(REAL4), 8080));
    // The new program's count is read through the old mapping, and what the new mapping
    // clears the old one sees cleared: one table.
    let taken = old_table.line(&line.key).take().expect("counted");
    assert_eq!(taken.packets, 1);
    // The IPv6 table too.
    let ip6 = |s: &str| IpAddr::V6(s.parse().unwrap());
    let ack6 = tk::tcp(
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        ip6(CLIENT6),
        40000,
        ip6(VIP6),
        80,
        tk::ACK,
        b"x",
    );
    let (_, out) = new.test_run_out(&ack6).unwrap();
    let seen = tk::check_frame(&out).expect("checksums right");
    assert_eq!(
        (seen.dst, seen.dport),
        (ip6(REAL6), 8080),
        "the old IPv6 line forwards"
    );
    assert_eq!(
        old_table.line6(&line6.key).take().map(|t| t.packets),
        Some(1)
    );
    let new_table = new.map_fast().expect("the table maps");
    new_table.line(&line.key).clear(&line.key).unwrap();
    assert!(!old_table.line(&line.key).is_used(), "cleared for both");
    // A map of another shape is refused (by the verifier, at the program's first access).
    assert!(
        LoadedObject::load("test", &[("fast4", old.stats)]).is_err(),
        "a per-CPU counter array is not a fast path table"
    );
}

#[test]
fn fast_routes6_are_lpm_keys_in_network_order() {
    let bytes = |w: &[u32]| -> Vec<u8> { w.iter().flat_map(|w| w.to_ne_bytes()).collect() };
    let r = FastRoute6 {
        prefix: "2001:2:0:1::77".parse().unwrap(),
        len: 64,
        ifindex: 7,
        via: Some("2001:2:0:1::fe".parse().unwrap()),
        mtu: 1500,
    };
    let (k, v) = r.entry();
    assert_eq!(k[0], 64);
    assert_eq!(bytes(&k[1..]), v6("2001:2:0:1::"), "masked to the prefix");
    assert_eq!(v[0], 7);
    assert_eq!(bytes(&v[1..5]), v6("2001:2:0:1::fe"));
    assert_eq!(v[5], 1500);
    let (k, v) = FastRoute6 {
        len: 0,
        via: None,
        ..r
    }
    .entry();
    assert_eq!(
        (k[0], bytes(&k[1..]), bytes(&v[1..5])),
        (0, vec![0; 16], vec![0; 16])
    );
    let (k, _) = FastRoute6 { len: 128, ..r }.entry();
    assert_eq!(bytes(&k[1..]), v6("2001:2:0:1::77"), "a host route");
}

#[test]
fn fast_routes_are_lpm_keys_in_network_order() {
    let r = FastRoute {
        prefix: Ipv4Addr::new(198, 18, 1, 77),
        len: 24,
        ifindex: 7,
        via: Some(Ipv4Addr::new(198, 18, 1, 254)),
        mtu: 1500,
    };
    let (k, v) = r.entry();
    assert_eq!(k[0], 24);
    assert_eq!(k[1].to_ne_bytes(), [198, 18, 1, 0], "masked to the prefix");
    assert_eq!(v[0], 7);
    assert_eq!(v[1].to_ne_bytes(), [198, 18, 1, 254]);
    assert_eq!(v[2], 1500);
    let (k, v) = FastRoute {
        len: 0,
        via: None,
        ..r
    }
    .entry();
    assert_eq!((k[0], k[1], v[1]), (0, 0, 0), "a default route; on link");
}

/// Where a kernel refuses the fast path's TC program (an older kernel), the object loads
/// without it: the XDP program is there, the TC program's fd is not.
#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn the_object_loads_without_its_tc_program() {
    let obj = load_object(&PROGRAM_ELF.0, "uvs_xdp", "t", Some(TC_PROGRAM), &[]).unwrap();
    let (xdp, tc) = (program_fd(obj, "uvs_xdp"), program_fd(obj, TC_PROGRAM));
    // SAFETY: `obj` came from `load_object` and is closed once, here.
    unsafe { bpf::bpf_object__close(obj.as_ptr()) };
    assert!(xdp.unwrap() >= 0, "the XDP program loaded");
    assert!(tc.unwrap() < 0, "the TC program left out");
}
