//! End to end (as root): a NAT64 virtual service. The IPv6 VIP 2001:2:0:100::64 is served
//! by the testbed's IPv4 nginx real servers (198.18.1.11-13) through FullNAT with the IPv4
//! pool 198.18.1.100: curl -6 from the client gets every server's body, the servers see the
//! pool address as the client, a 20 MiB download arrives intact; UDP to the servers'
//! responder is answered; a datagram to a port nobody listens on comes back to the client
//! as ICMPv6 port unreachable (translated from the server kernel's ICMPv4 error), which its
//! connected socket reports as refused. The veths keep their default offloads: the client's
//! partial checksums must be completed before translation or the servers would drop every
//! segment.

mod common;
use common::*;
use std::collections::BTreeMap;

const INTERFACES: &str = r#"interfaces:
  - name: uvs-lb0
    queues: 1
    local: [198.18.0.3, "2001:2::3"]
    networks: [198.18.0.0/24, "2001:2::/64"]
  - name: uvs-lb1
    queues: 1
    local: [198.18.1.3, "2001:2:0:1::3"]
    networks: [198.18.1.0/24, "2001:2:0:1::/64"]
workers:
  count: 1
conn_table:
  capacity: 65536
"#;

fn config() -> String {
    let mut c = INTERFACES.to_string();
    c.push_str("services:\n");
    for (name, proto, port) in [
        ("web64", "tcp", 80),
        ("dns64", "udp", 53),
        ("closed64", "udp", 54),
    ] {
        c.push_str(&format!(
            "  - name: {name}\n    vip: \"2001:2:0:100::64\"\n    protocol: {proto}\n    \
             port: {port}\n    scheduler: rr\n    forwarding: fullnat\n    \
             fullnat_pool: [198.18.1.100]\n    real_servers:\n      - address: 198.18.1.11\n      \
             - address: 198.18.1.12\n      - address: 198.18.1.13\n"
        ));
    }
    c
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn an_ipv6_vip_is_served_by_ipv4_nginx_servers() {
    require_root("an_ipv6_vip_is_served_by_ipv4_nginx_servers");
    let mut tb = Testbed::up("e2enat64", "nat");
    tb.start_uvsd(&config());

    let bodies = tb.curl_bodies("http://[2001:2:0:100::64]/", 6);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for b in &bodies {
        *seen.entry(b.clone()).or_default() += 1;
    }
    let want: BTreeMap<String, usize> = (1..=3)
        .map(|i| (format!("rs{i} 198.18.1.1{i} 198.18.1.100"), 2))
        .collect();
    assert_eq!(
        seen,
        want,
        "each IPv4 server answers twice (rr) and sees the pool address\n{}",
        tb.uvsd_log()
    );

    // Full-sized segments both ways: a 20 MiB download, byte for byte one server's file
    // (1480-byte IPv4 segments from the server become 1500-byte IPv6 ones).
    let dl = tb.exec(
        "client",
        &[
            "bash",
            "-c",
            "curl -s -g --max-time 30 http://[2001:2:0:100::64]/big | sha256sum",
        ],
    );
    let got = String::from_utf8_lossy(&dl.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    let files: Vec<String> = (1..=3)
        .map(|i| {
            let o = std::process::Command::new("sha256sum")
                .arg(tb.state.join(format!("rs{i}/big")))
                .output()
                .expect("sha256sum");
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(
        files.contains(&got),
        "the download ({got}) is none of the servers' files {files:?}\n{}",
        tb.uvsd_log()
    );

    // UDP through the same VIP, then a port without a listener: the server kernel's ICMPv4
    // port unreachable must reach the client as ICMPv6 (its socket says refused).
    let udp = tb.sh(
        "client",
        r#"python3 -c "
import socket
for port in (53, 53, 53, 54):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect(('2001:2:0:100::64', port))
    s.send(b'q')
    try:
        print(s.recv(200).decode().strip())
    except ConnectionRefusedError:
        print('refused')
    except socket.timeout:
        print('timeout')
""#,
    );
    let out = String::from_utf8_lossy(&udp.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        4,
        "UDP: {out} {}",
        String::from_utf8_lossy(&udp.stderr)
    );
    // "<server> <its bound address> <payload>".
    let mut answers: Vec<(&str, &str)> = lines[..3]
        .iter()
        .map(|l| {
            (
                l.split(' ').next().unwrap_or(""),
                l.rsplit(' ').next().unwrap_or(""),
            )
        })
        .collect();
    answers.sort();
    assert_eq!(
        answers,
        [("rs1", "q"), ("rs2", "q"), ("rs3", "q")],
        "UDP answered by every server: {out}"
    );
    assert_eq!(
        lines[3], "refused",
        "ICMPv4 port unreachable translated to ICMPv6"
    );

    // The connection listing shows the IPv4 side as IPv4.
    let l = tb.uvsadm(&["-L", "-n", "-c"]);
    let text = String::from_utf8_lossy(&l.stdout);
    assert!(
        text.contains("198.18.1.100") && !text.contains("::ffff:"),
        "connection listing:\n{text}"
    );
}
