//! End to end (as root): HTTPS real servers checked over TLS, as keepalived's SSL_GET does.
//! Each real server runs a second nginx serving HTTPS on 443 with a self-signed certificate
//! that `openssl req` makes at test time; uvs balances 198.18.100.1:443 with an `https`
//! health check. When one server's HTTPS nginx stops (by its PID; its plain-HTTP nginx on 80
//! keeps running, so only a check over TLS on 443 can see it), the check takes it out and
//! requests avoid it; when that nginx starts again, the server comes back.

mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const NAME: &str = "www.uvs-test.example";

/// The https service, added to the demo configuration.
fn config() -> String {
    let mut cfg = demo_config();
    let web = "  - name: web4\n";
    let at = cfg.find(web).expect("the demo's web4 service");
    cfg.insert_str(
        at,
        &format!(
            "  - name: web4s\n    vip: 198.18.100.1\n    protocol: tcp\n    port: 443\n    \
             scheduler: rr\n    forwarding: nat\n    health_check:\n      type: https\n      \
             interval: 0.5\n      timeout: 0.4\n      rise: 2\n      fall: 2\n      \
             path: /healthz\n      expect_status: 200\n      expect_body: tls-ok\n      \
             sni: {NAME}\n    real_servers:\n      - address: 198.18.1.11\n      \
             - address: 198.18.1.12\n      - address: 198.18.1.13\n\n"
        ),
    );
    cfg
}

/// A self-signed certificate and its key, made by openssl now.
fn make_cert(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", &format!("/CN={NAME}")])
        .args(["-addext", &format!("subjectAltName=DNS:{NAME}")])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The HTTPS nginx of real server `i`: its configuration file, written once.
fn tls_conf(tb: &Testbed, i: u8) -> String {
    let dir = tb.state.join(format!("rs{i}"));
    let tls = tb.state.join("tls");
    let conf = dir.join("nginx-tls.conf");
    if !conf.exists() {
        let d = dir.display();
        let t = tls.display();
        std::fs::write(
            &conf,
            format!(
                "daemon on;\npid {d}/nginx-tls.pid;\nerror_log {d}/error-tls.log;\n\
                 worker_processes 1;\nevents {{ worker_connections 256; }}\nhttp {{\n  \
                 access_log off;\n  client_body_temp_path {d};\n  proxy_temp_path {d};\n  \
                 fastcgi_temp_path {d};\n  uwsgi_temp_path {d};\n  scgi_temp_path {d};\n  \
                 server {{\n    listen 443 ssl default_server;\n    \
                 ssl_certificate {t}/cert.pem;\n    ssl_certificate_key {t}/key.pem;\n    \
                 location = /healthz {{ return 200 \"tls-ok\\n\"; }}\n    \
                 location / {{ return 200 \"rs{i} tls\\n\"; }}\n  }}\n}}\n"
            ),
        )
        .unwrap();
    }
    conf.display().to_string()
}

fn start_tls_nginx(tb: &Testbed, i: u8) {
    let conf = tls_conf(tb, i);
    let out = tb.exec(&format!("rs{i}"), &["nginx", "-c", &conf]);
    assert!(
        out.status.success(),
        "nginx (TLS) on rs{i}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stops real server `i`'s HTTPS nginx by the PID it wrote (its master; the worker follows).
fn stop_tls_nginx(tb: &Testbed, i: u8) {
    let pid_file = tb.state.join(format!("rs{i}/nginx-tls.pid"));
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let pid = pid.trim();
    let out = std::process::Command::new("kill")
        .args(["-TERM", pid])
        .output()
        .unwrap();
    assert!(out.status.success(), "kill {pid}");
    // Stopped when the pid file is gone (nginx removes it on exit).
    let t = Instant::now();
    while pid_file.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "nginx {pid} did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the metrics say real server `real` of web4s is up; `None` if not listed.
fn https_real_up(tb: &Testbed, real: &str) -> Option<bool> {
    tb.metrics()
        .lines()
        .find(|l| {
            l.starts_with("uvs_real_up{")
                && l.contains("service=\"web4s\"")
                && l.contains(&format!("real=\"{real}\""))
        })
        .map(|l| l.ends_with(" 1"))
}

fn wait_state(tb: &Testbed, real: &str, up: bool) -> Duration {
    let t = Instant::now();
    while https_real_up(tb, real) != Some(up) {
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "{real} not {} over https; log:\n{}",
            if up { "up" } else { "down" },
            tb.uvsd_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t.elapsed()
}

/// `n` HTTPS GETs from the client through the VIP (certificate not verified: it is
/// self-signed); each answer's first word, or "failed".
fn curl_tls(tb: &Testbed, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let o = tb.exec(
                "client",
                &["curl", "-sk", "--max-time", "3", "https://198.18.100.1/"],
            );
            let body = String::from_utf8_lossy(&o.stdout).to_string();
            match (o.status.success(), body.split_whitespace().next()) {
                (true, Some(w)) => w.to_string(),
                _ => "failed".to_string(),
            }
        })
        .collect()
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn https_check_takes_a_stopped_tls_server_out_and_back() {
    require_root("https_check_takes_a_stopped_tls_server_out_and_back");
    let mut tb = Testbed::up("e2ehttps", "nat");
    make_cert(&tb.state.join("tls"));
    for i in 1..=3 {
        start_tls_nginx(&tb, i);
    }
    tb.start_uvsd(&config());
    for real in ["198.18.1.11:443", "198.18.1.12:443", "198.18.1.13:443"] {
        // Servers start up; a failing check would take one down within a second.
        wait_state(&tb, real, true);
    }
    std::thread::sleep(Duration::from_millis(1500));
    for real in ["198.18.1.11:443", "198.18.1.12:443", "198.18.1.13:443"] {
        assert_eq!(
            https_real_up(&tb, real),
            Some(true),
            "{real} passes its https check; log:\n{}",
            tb.uvsd_log()
        );
    }
    let before = curl_tls(&tb, 6);
    for rs in ["rs1", "rs2", "rs3"] {
        assert!(before.iter().any(|a| a == rs), "{rs} serves: {before:?}");
    }

    // rs2's HTTPS nginx stops; its plain nginx on 80 still answers.
    stop_tls_nginx(&tb, 2);
    let detect = wait_state(&tb, "198.18.1.12:443", false);
    let during = curl_tls(&tb, 8);
    assert!(
        !during.iter().any(|a| a == "failed" || a == "rs2"),
        "after detection every request succeeds elsewhere: {during:?}"
    );
    let plain = tb.curl_many("http://198.18.100.1/", 6);
    assert!(
        plain.iter().any(|a| a == "rs2"),
        "the http service still uses rs2, whose port 80 answers: {plain:?}"
    );

    // Back.
    start_tls_nginx(&tb, 2);
    let back = wait_state(&tb, "198.18.1.12:443", true);
    let after = curl_tls(&tb, 6);
    assert!(
        after.iter().any(|a| a == "rs2"),
        "rs2 takes https flows again: {after:?}"
    );
    let log = tb.uvsd_log();
    assert!(
        log.contains("198.18.1.12:443 is down"),
        "the reason is logged:\n{log}"
    );
    eprintln!("https: rs2 detected down in {detect:?}, back in {back:?}");
}
