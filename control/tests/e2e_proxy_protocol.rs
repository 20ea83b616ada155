//! End to end (as root): `proxy_protocol: v2` on SYN proxy services. Each real server runs a
//! second nginx listening with `proxy_protocol` on port 8080, whose access log and body
//! show `$proxy_protocol_addr:$proxy_protocol_port` beside `$remote_addr`. curl from the
//! client through NAT services (IPv4 and IPv6) gets its bodies, and nginx logs the
//! client's own address and the port curl reports as its local one; through a FullNAT
//! service nginx's peer is uvs's pool address while the PROXY header still names the
//! client. A header segment dropped on its way to the server (nftables) is sent again and
//! the request still served.

mod common;
use common::*;

const POOL4: &str = "198.18.1.100";

/// Three SYN proxy services with PROXY v2 headers on the real servers' port 8080: NAT over
/// IPv4 and IPv6 (VIP port 8080), FullNAT over IPv4 (VIP port 8081). No health checks: a
/// checker's connection carries no header, and nginx would refuse it.
fn config() -> String {
    let head = demo_config();
    let head = head.split("services:").next().unwrap().to_string();
    let svc = |name: &str, vip: &str, port: u16, fwd: &str, reals: &[&str]| {
        let mut s = format!(
            "  - name: {name}\n    vip: \"{vip}\"\n    protocol: tcp\n    port: {port}\n    \
             scheduler: rr\n    forwarding: {fwd}\n    syn_proxy: true\n    proxy_protocol: v2\n"
        );
        if fwd == "fullnat" {
            s += &format!("    fullnat_pool: [{POOL4}]\n");
        }
        s += "    real_servers:\n";
        for r in reals {
            s += &format!("      - {{ address: \"{r}\", port: 8080 }}\n");
        }
        s
    };
    let r4 = ["198.18.1.11", "198.18.1.12", "198.18.1.13"];
    let r6 = ["2001:2:0:1::11", "2001:2:0:1::12", "2001:2:0:1::13"];
    format!(
        "{head}services:\n{}{}{}",
        svc("pp4", "198.18.100.1", 8080, "nat", &r4),
        svc("pp6", "2001:2:0:100::1", 8080, "nat", &r6),
        svc("pp4full", "198.18.100.1", 8081, "fullnat", &r4),
    )
}

/// A second nginx in real server `i`'s namespace: PROXY protocol on 8080, the header's
/// addresses in its access log and in every body.
fn start_pp_nginx(tb: &Testbed, i: usize) {
    let dir = tb.state.join(format!("pp{i}"));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let conf = format!(
        "daemon on;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nworker_processes 1;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  client_body_temp_path {d};\n  proxy_temp_path {d};\n  fastcgi_temp_path {d};\n  \
         uwsgi_temp_path {d};\n  scgi_temp_path {d};\n  \
         log_format pp '$proxy_protocol_addr:$proxy_protocol_port $remote_addr';\n  \
         access_log {d}/access.log pp;\n  \
         server {{\n    listen 8080 proxy_protocol;\n    listen [::]:8080 proxy_protocol;\n    \
         location / {{ return 200 \"rs{i} $proxy_protocol_addr $proxy_protocol_port $remote_addr\\n\"; }}\n  }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let rs = format!("rs{i}");
    let out = tb.exec(
        &rs,
        &[
            "nginx",
            "-c",
            &format!("{d}/nginx.conf"),
            "-e",
            &format!("{d}/error.log"),
        ],
    );
    assert!(
        out.status.success(),
        "nginx with proxy_protocol in {rs}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn access_logs(tb: &Testbed) -> String {
    (1..=3)
        .map(|i| {
            std::fs::read_to_string(tb.state.join(format!("pp{i}/access.log"))).unwrap_or_default()
        })
        .collect()
}

/// Whether some real server's access log has `line`: nginx writes it when it finalizes the
/// request, which may be a moment after curl has the answer, so wait up to 3 s.
fn logged(tb: &Testbed, line: &str) -> bool {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(3) {
        if access_logs(tb).lines().any(|l| l == line) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// One GET from the client: (body, curl's local port).
fn get(tb: &Testbed, url: &str) -> (String, u16) {
    let o = tb.exec(
        "client",
        &[
            "curl",
            "-s",
            "-g",
            "--max-time",
            "3",
            "-w",
            "\n%{local_port}",
            url,
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "curl {url}: {text}\n{}", tb.uvsd_log());
    let (body, port) = text.trim_end().rsplit_once('\n').unwrap_or(("", ""));
    (
        body.trim().to_string(),
        port.trim()
            .parse()
            .unwrap_or_else(|_| panic!("curl port in {text:?}")),
    )
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn nginx_logs_the_true_client_over_proxy_protocol_v2() {
    require_root("nginx_logs_the_true_client_over_proxy_protocol_v2");
    let mut tb = Testbed::up("e2eppv2", "nat");
    for i in 1..=3 {
        start_pp_nginx(&tb, i);
    }
    tb.start_uvsd(&config());

    // NAT: nginx's peer and the PROXY header both name the client, and the header's port is
    // curl's own local port.
    for (url, client) in [
        ("http://198.18.100.1:8080/", "198.18.0.2"),
        ("http://[2001:2:0:100::1]:8080/", "2001:2::2"),
    ] {
        let mut servers = Vec::new();
        for _ in 0..6 {
            let (body, port) = get(&tb, url);
            let w: Vec<&str> = body.split_whitespace().collect();
            assert_eq!(w.len(), 4, "{url}: body {body:?}");
            assert!(w[0].starts_with("rs"), "{url}: {body:?}");
            assert_eq!(w[1], client, "{url}: $proxy_protocol_addr");
            assert_eq!(w[2], port.to_string(), "{url}: $proxy_protocol_port");
            assert_eq!(w[3], client, "{url}: NAT keeps the client as the peer");
            let line = format!("{client}:{port} {client}");
            assert!(
                logged(&tb, &line),
                "{url}: no access log line {line:?}:\n{}",
                access_logs(&tb)
            );
            servers.push(w[0].to_string());
        }
        servers.sort();
        servers.dedup();
        assert_eq!(servers.len(), 3, "{url}: round robin reaches all three");
    }

    // FullNAT: the peer is the pool address, the header still the client.
    for _ in 0..3 {
        let (body, port) = get(&tb, "http://198.18.100.1:8081/");
        let w: Vec<&str> = body.split_whitespace().collect();
        assert_eq!(w.len(), 4, "fullnat: body {body:?}");
        assert_eq!(w[1], "198.18.0.2", "fullnat: $proxy_protocol_addr");
        assert_eq!(w[2], port.to_string(), "fullnat: $proxy_protocol_port");
        assert_eq!(w[3], POOL4, "fullnat: $remote_addr is uvs's pool address");
        let line = format!("198.18.0.2:{port} {POOL4}");
        assert!(
            logged(&tb, &line),
            "fullnat: no access log line {line:?}:\n{}",
            access_logs(&tb)
        );
    }

    // A lost header is sent again: each real server drops the first IPv4 header segment
    // it receives (nftables, matching the signature at the payload of a segment with
    // timestamps; the 80-byte segment fits the 100-byte quota once). The server then
    // acknowledges only its SYN when the request arrives (or repeats its SYN-ACK), uvs
    // resends the header, and the request is served with the right client.
    for i in 1..=3 {
        let rs = format!("rs{i}");
        let rules = "add table inet uvspp\n\
             add chain inet uvspp in { type filter hook input priority 0; }\n\
             add rule inet uvspp in tcp dport 8080 @th,256,96 0x0d0a0d0a000d0a515549540a \
             quota until 100 bytes counter drop\n";
        let path = tb.state.join(format!("drop-header-{i}.nft"));
        std::fs::write(&path, rules).unwrap();
        let o = tb.exec(&rs, &["nft", "-f", path.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "nft in {rs}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    for _ in 0..3 {
        let (body, port) = get(&tb, "http://198.18.100.1:8080/");
        let w: Vec<&str> = body.split_whitespace().collect();
        assert_eq!(w.len(), 4, "after a lost header: body {body:?}");
        assert_eq!(
            (w[1], w[2]),
            ("198.18.0.2", port.to_string().as_str()),
            "{body:?}"
        );
    }
    for i in 1..=3 {
        let o = tb.exec(
            &format!("rs{i}"),
            &["nft", "list", "chain", "inet", "uvspp", "in"],
        );
        let list = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            list.contains("counter packets 1 "),
            "rs{i} dropped exactly one header segment:\n{list}"
        );
    }

    // Every connection went through the proxy and carried a header.
    let m = tb.metrics();
    let sum = |name: &str| -> f64 {
        m.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum()
    };
    assert!(
        sum("uvs_synproxy_proxy_headers_total") >= 15.0,
        "headers sent:\n{m}"
    );
    assert!(sum("uvs_synproxy_spliced_total") >= 18.0, "{m}");
    assert!(
        sum("uvs_synproxy_proxy_resent_total") >= 3.0,
        "the three lost headers were sent again:\n{m}"
    );
}
