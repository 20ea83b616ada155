//! End to end (as root): a `layer: 7` service on the test network. The three nginx real
//! servers form two pools (`a` = rs1, `b` = rs2 and rs3); curl's Host header, path and
//! cookie choose the pool (each body names its server), a kept-alive connection stays on
//! the server its first request chose, and a head httparse refuses is answered 400 by uvs.
//! A head of several segments is received by uvs and routed by a header in its last
//! segment; one over 8 KiB gets 431; a client that stops inside its head gets 408 after
//! the service's `head_timeout` (2 s here); after each of those answers the client's
//! closing FIN is acknowledged (no client socket left in LAST-ACK), and a client that
//! connects and closes without a request gets FIN and ACK (none left in FIN-WAIT-1).
//! An absolute-form request target (`curl --request-target http://host/path`) is routed
//! by its own path and authority.
//! A second test serves TLS from nginx (a certificate made by `openssl` at test time) and
//! routes `curl --resolve name:443:VIP https://name/ -k` by the ClientHello's server name,
//! also when a python client sends its ClientHello in two segments.

mod common;
use common::*;
use std::time::Instant;

/// The demo configuration with web4 turned into a layer-7 service.
fn config() -> String {
    let out = demo_config().replacen(
        "    forwarding: nat\n    health_check:",
        "    forwarding: nat
    layer: 7
    pools:
      - { name: a, real_servers: [198.18.1.11] }
      - { name: b, scheduler: rr, real_servers: [198.18.1.12, 198.18.1.13] }
    rules:
      - { host: '*.b.example', pool: b }
      - { path_prefix: /b/, pool: b }
      - { cookie: { name: pool, value: b }, pool: b }
      - { header: { name: X-Pool, value: b }, pool: b }
    default_pool: a
    head_timeout: 2
    health_check:",
        1,
    );
    assert!(out.contains("layer: 7"), "{out}");
    out
}

/// The first word of each body of one curl run (several URLs share its connection).
fn servers(tb: &Testbed, args: &[&str]) -> Vec<String> {
    let mut a = vec!["curl", "-s", "-g", "--max-time", "3"];
    a.extend_from_slice(args);
    let o = tb.exec("client", &a);
    assert!(
        o.status.success(),
        "curl {args:?} failed:\n{}",
        tb.uvsd_log()
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn layer7_rules_choose_the_pool_and_keep_alive_stays() {
    require_root("layer7_rules_choose_the_pool_and_keep_alive_stays");
    let t0 = Instant::now();
    let mut tb = Testbed::up("e2el7", "nat");
    tb.start_uvsd(&config());
    let vip = "http://198.18.100.1";
    let b = |s: &str| s == "rs2" || s == "rs3";

    // No rule matches: pool a, always rs1.
    for _ in 0..3 {
        assert_eq!(
            servers(&tb, &[&format!("{vip}/")]),
            ["rs1"],
            "{}",
            tb.uvsd_log()
        );
    }
    // Host, path and cookie rules: pool b, both of its servers in turn (rr).
    let mut seen = Vec::new();
    for args in [
        vec!["-H", "Host: www.b.example", "http://198.18.100.1/"],
        vec!["http://198.18.100.1/b/index"],
        vec!["-b", "x=1; pool=b", "http://198.18.100.1/"],
        vec!["-H", "Host: API.B.EXAMPLE:80", "http://198.18.100.1/"],
        // Absolute-form targets (RFC 9112 §3.2.2): their path and authority decide, as
        // nginx reads them, whatever the URL's path and Host header say.
        vec![
            "--request-target",
            "http://198.18.100.1/b/x",
            "http://198.18.100.1/",
        ],
        vec![
            "--request-target",
            "HTTP://www.b.example/",
            "http://198.18.100.1/",
        ],
    ] {
        let got = servers(&tb, &args);
        assert_eq!(got.len(), 1);
        assert!(b(&got[0]), "{args:?} went to {got:?}");
        seen.push(got[0].clone());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["rs2", "rs3"], "pool b's rr reaches both");
    // A host outside the suffix, a cookie with another value: pool a.
    assert_eq!(
        servers(&tb, &["-H", "Host: b.example", &format!("{vip}/")]),
        ["rs1"]
    );
    assert_eq!(
        servers(&tb, &["-b", "pool=a", &format!("{vip}/b")]),
        ["rs1"]
    );

    // Keep-alive: curl reuses one connection for the URLs of one run (`%{num_connects}`
    // shows 0 for the reused one); the first request (path /b/) binds it to pool b, and the
    // second, which alone would go to pool a, stays on the same server.
    let o = tb.exec(
        "client",
        &[
            "curl",
            "-s",
            "--max-time",
            "3",
            "-w",
            "connects=%{num_connects}\n",
            &format!("{vip}/b/first"),
            &format!("{vip}/second"),
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let (first, second) = (
        lines[0].split_whitespace().next().unwrap(),
        lines[2].split_whitespace().next().unwrap(),
    );
    assert!(b(first), "{text}");
    assert_eq!(first, second, "the kept-alive connection stays: {text}");
    assert_eq!((lines[1], lines[3]), ("connects=1", "connects=0"), "{text}");

    // A head of about 5 KB (several segments: the MSS is 1460) whose only routing header
    // comes last: uvs acknowledges and buffers the segments, reads the whole head, and
    // pool b gets it (replayed in full: nginx answers the request).
    let pad = format!("X-Pad: {}", "p".repeat(5000));
    let got = servers(
        &tb,
        &["-H", &pad, "-H", "X-Pool: b", &format!("{vip}/long")],
    );
    assert_eq!(got.len(), 1);
    assert!(
        b(&got[0]),
        "the last segment's header chose pool b: {got:?}"
    );

    // Over the 8 KiB head limit: uvs answers 431 itself.
    let huge = format!("X-Pad: {}", "p".repeat(9000));
    let o = tb.exec(
        "client",
        &[
            "curl",
            "-s",
            "--max-time",
            "3",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &huge,
            &format!("{vip}/"),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "431",
        "{}",
        tb.uvsd_log()
    );

    // Slowloris: a client that sends part of its head and waits is answered 408 and
    // closed after the 2 s `head_timeout` (the script prints the wait and the status line).
    let slow = r#"
import socket, time
s = socket.create_connection(('198.18.100.1', 80), timeout=8)
s.sendall(b'GET / HTTP/1.1\r\nHost: slow.example\r\nX-A: 1\r\n')
t = time.time()
d = b''
while True:
    c = s.recv(4096)
    if not c:
        break
    d += c
print('%.1f %s' % (time.time() - t, d.split(b'\r\n')[0].decode()))
"#;
    let o = tb.exec("client", &["python3", "-c", slow]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (waited, status) = out.trim().split_once(' ').unwrap_or(("", ""));
    let waited: f64 = waited.parse().unwrap_or(-1.0);
    assert_eq!(status, "HTTP/1.1 408 Request Timeout", "{out}");
    assert!(
        (1.5..6.0).contains(&waited),
        "closed after the timeout: {out}"
    );

    // A head httparse refuses (a space in a header name): uvs answers 400 itself.
    let o = tb.exec(
        "client",
        &[
            "curl",
            "-s",
            "--max-time",
            "3",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Bad Header: x",
            &format!("{vip}/"),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "400",
        "{}",
        tb.uvsd_log()
    );

    // A client that connects and closes without a request (a TCP health check) is
    // answered FIN and ACK: its socket leaves FIN-WAIT at once.
    let o = tb.exec(
        "client",
        &[
            "python3",
            "-c",
            "import socket; socket.create_connection(('198.18.100.1', 80), timeout=3).close()",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // After each of uvs's own answers (431, 408, 400) the client closed: uvs keeps nothing,
    // and its FIN is acknowledged statelessly, so no client socket is left in LAST-ACK
    // retransmitting its FIN.
    let mut last_ack = String::new();
    for _ in 0..20 {
        let o = tb.exec(
            "client",
            &[
                "ss",
                "-Htan",
                "state",
                "last-ack",
                "state",
                "fin-wait-1",
                "dst",
                "198.18.100.1",
            ],
        );
        last_ack = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if last_ack.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(last_ack.is_empty(), "clients left closing: {last_ack}");

    let m = tb.metrics();
    // The first sample (not a HELP or TYPE line) naming `needle`.
    let line = |needle: &str| {
        m.lines()
            .find(|l| !l.starts_with('#') && l.contains(needle))
            .unwrap_or("")
            .to_string()
    };
    let bad = line("reason=\"layer7_bad_http\"");
    assert!(bad.ends_with(" 1"), "one refused request: {bad:?}");
    let hits_a = line("uvs_layer7_pool_hits_total{service=\"web4\",pool=\"a\"}");
    let hits_b = line("uvs_layer7_pool_hits_total{service=\"web4\",pool=\"b\"}");
    assert!(hits_a.ends_with(" 5"), "{hits_a:?}\n{m}");
    // Pool b: four rule hits and the two absolute-form targets, the kept-alive run, the
    // long head.
    assert!(hits_b.ends_with(" 8"), "{hits_b:?}");
    // The long head was really received over several segments and replayed.
    let replayed = line("uvs_layer7_replayed_total");
    assert!(replayed.ends_with(" 1"), "{replayed:?}\n{m}");
    for reason in ["layer7_head_too_large", "layer7_head_timeout"] {
        let l = line(&format!("reason=\"{reason}\""));
        assert!(l.ends_with(" 1"), "{reason}: {l:?}");
    }
    // The four closing FINs were answered: one each, or a few more when a loaded machine
    // let a client's retransmission timer (200 ms at first) run out before the answer; FINs
    // left unanswered would be retransmitted with backoff for the rest of the test.
    let fins = line("reason=\"layer7_closed_fin\"");
    let fins_n: u64 = fins
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!((4..8).contains(&fins_n), "{fins:?}");
    // Nothing is left pending.
    let pending = line("uvs_layer7_pending_clients");
    assert!(pending.ends_with(" 0"), "{pending:?}");
    eprintln!("layer 7 end to end took {:?}", t0.elapsed());
}

/// The demo configuration plus a TLS service on port 443 routed by SNI.
fn tls_config() -> String {
    let out = demo_config().replacen(
        "  - name: dns4\n",
        "  - name: tls4
    vip: 198.18.100.1
    protocol: tcp
    port: 443
    forwarding: nat
    layer: 7
    pools:
      - { name: a, real_servers: [198.18.1.11] }
      - { name: b, scheduler: rr, real_servers: [198.18.1.12, 198.18.1.13] }
    rules:
      - { sni: '*.b.example', pool: b }
    default_pool: a
    real_servers:
      - address: 198.18.1.11
      - address: 198.18.1.12
      - address: 198.18.1.13

  - name: dns4
",
        1,
    );
    assert!(out.contains("name: tls4"), "{out}");
    out
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn layer7_routes_tls_by_sni() {
    require_root("layer7_routes_tls_by_sni");
    let mut tb = Testbed::up("e2el7tls", "nat");
    // A self-signed certificate (P-256: quick to make) and an nginx per real server
    // answering "tls-rsN" over TLS on 443; the testbed's teardown stops them with the
    // namespaces' other processes.
    let dir = tb.state.join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let (key, crt) = (dir.join("key.pem"), dir.join("crt.pem"));
    let o = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=uvs-test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for i in 1..=3 {
        let d = dir.join(format!("rs{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let d = d.display();
        let conf = format!(
            "daemon on;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nworker_processes 1;\n\
             events {{ worker_connections 256; }}\n\
             http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; \
             fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
             server {{ listen 443 ssl; ssl_certificate {}; ssl_certificate_key {};\n\
             location / {{ return 200 \"tls-rs{i}\\n\"; }} }} }}\n",
            crt.display(),
            key.display()
        );
        let path = format!("{d}/nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let o = tb.exec(
            &format!("rs{i}"),
            &["nginx", "-c", &path, "-e", &format!("{d}/error.log")],
        );
        assert!(
            o.status.success(),
            "nginx rs{i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    tb.start_uvsd(&tls_config());
    let get = |name: &str| -> String {
        let resolve = format!("{name}:443:198.18.100.1");
        let url = format!("https://{name}/");
        let o = tb.exec(
            "client",
            &[
                "curl",
                "-s",
                "-k",
                "--max-time",
                "3",
                "--resolve",
                &resolve,
                &url,
            ],
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let mut b = Vec::new();
    for _ in 0..4 {
        let got = get("www.b.example");
        assert!(
            got == "tls-rs2" || got == "tls-rs3",
            "{got:?}\n{}",
            tb.uvsd_log()
        );
        b.push(got);
    }
    b.sort();
    b.dedup();
    assert_eq!(b, ["tls-rs2", "tls-rs3"], "pool b's rr reaches both");
    for name in ["other.example", "b.example"] {
        assert_eq!(get(name), "tls-rs1", "{name}: the default pool");
    }
    // A ClientHello in two segments (the client writes 60 bytes, waits, then the rest,
    // Nagle off): uvs acknowledges the first part, reads the server name once the record
    // is whole, and pool b's nginx completes the handshake over the replayed bytes.
    let split = r#"
import socket, ssl, time
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname='www.b.example')
s = socket.create_connection(('198.18.100.1', 443), timeout=5)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = out.read()
s.sendall(hello[:60])
time.sleep(0.2)
s.sendall(hello[60:])
while True:
    c = s.recv(65536)
    if not c:
        raise SystemExit('closed during the handshake')
    inc.write(c)
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        d = out.read()
        if d:
            s.sendall(d)
d = out.read()
if d:
    s.sendall(d)
tls.write(b'GET / HTTP/1.1\r\nHost: www.b.example\r\nConnection: close\r\n\r\n')
s.sendall(out.read())
resp = b''
done = False
while not done:
    c = s.recv(65536)
    if not c:
        break
    inc.write(c)
    while True:
        try:
            r = tls.read(65536)
        except ssl.SSLWantReadError:
            break
        except ssl.SSLZeroReturnError:
            done = True
            break
        if not r:
            done = True
            break
        resp += r
print(resp.split(b'\r\n\r\n', 1)[-1].decode().strip())
"#;
    let o = tb.exec("client", &["python3", "-c", split]);
    let got = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(
        got == "tls-rs2" || got == "tls-rs3",
        "{got:?} {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        tb.uvsd_log()
    );

    let m = tb.metrics();
    let replayed = m
        .lines()
        .find(|l| l.starts_with("uvs_layer7_replayed_total"))
        .unwrap_or("")
        .to_string();
    assert!(
        replayed.ends_with(" 1"),
        "the split ClientHello: {replayed:?}"
    );
    let hits = |pool: &str| {
        let key = format!("uvs_layer7_pool_hits_total{{service=\"tls4\",pool=\"{pool}\"}}");
        m.lines()
            .find(|l| l.starts_with(&key))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        hits("a").ends_with(" 2") && hits("b").ends_with(" 5"),
        "{m}"
    );
}
