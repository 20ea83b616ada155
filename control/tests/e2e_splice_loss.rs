//! End to end (as root): spliced connections of the SYN proxy under loss and reordering.
//! On the client's link, both directions (egress of the client's veth, and its ingress
//! through an ifb device), a tc classifier (scripts/impair.bpf.c: this kernel has no
//! netem) drops 1 % of packets and makes 10 % wait in a slow HTB class, so that they
//! leave after packets sent later; through
//! `syn_proxy: true` services — NAT over IPv4 and IPv6, FullNAT over IPv4 — curl uploads
//! (PUT, written by nginx's DAV module on the real server) and downloads of 1 KiB and
//! 1 MiB, and one 100 MB download, must arrive byte-exact (sha256), and a short wrk run
//! must see no failed request. Retransmissions then cross the splice's sequence,
//! acknowledgement, SACK and timestamp translation in both directions.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const PORT: u16 = 8080;

/// uvsd: three `syn_proxy` services on port 8080 of the real servers' second nginx.
fn config() -> String {
    let reals = |v6: bool| -> String {
        (11..=13)
            .map(|i| {
                let a = if v6 {
                    format!("\"2001:2:0:1::{i}\"")
                } else {
                    format!("198.18.1.{i}")
                };
                format!("      - {{ address: {a}, port: {PORT} }}\n")
            })
            .collect()
    };
    let svc = |name: &str, vip: &str, fwd: &str, pool: &str, v6: bool| {
        format!(
            "  - name: {name}\n    vip: {vip}\n    protocol: tcp\n    port: {PORT}\n    scheduler: rr\n    forwarding: {fwd}\n{pool}    syn_proxy: true\n    real_servers:\n{}",
            reals(v6)
        )
    };
    format!(
        "interfaces:\n  - name: uvs-lb0\n    queues: 1\n    local: [198.18.0.3, \"2001:2::3\"]\n    networks: [198.18.0.0/24, \"2001:2::/64\"]\n  - name: uvs-lb1\n    queues: 1\n    local: [198.18.1.3, \"2001:2:0:1::3\"]\n    networks: [198.18.1.0/24, \"2001:2:0:1::/64\"]\nworkers:\n  count: 1\nconn_table:\n  capacity: 65536\nmetrics:\n  listen: 127.0.0.1:9100\nservices:\n{}{}{}",
        svc("nat4", "198.18.100.1", "nat", "", false),
        svc("nat6", "\"2001:2:0:100::1\"", "nat", "", true),
        svc(
            "full4",
            "198.18.100.2",
            "fullnat",
            "    fullnat_pool: [198.18.1.100]\n",
            false
        ),
    )
}

/// A second nginx on each real server (port 8080): files under /files/, PUT under /up/.
fn nginx_config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon on;\nuser root;\npid {d}/n8080.pid;\nerror_log {d}/n8080.err;\nworker_processes 1;\nevents {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n  client_max_body_size 0;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n  server {{\n    listen {PORT};\n    listen [::]:{PORT};\n    root {d}/www;\n    location /up/ {{ dav_methods PUT; create_full_put_path on; }}\n    location /files/ {{ }}\n    location = / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
    )
}

fn sha256(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Drops of the root qdisc of DEV (`tc -s qdisc show dev DEV`: the classifier's).
fn drops(tb: &Testbed, role: &str, dev: &str) -> u64 {
    let o = tb.exec(role, &["tc", "-s", "qdisc", "show", "dev", dev]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    text.split("dropped ")
        .nth(1)
        .and_then(|s| s.split(',').next()?.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// Packets the slow class 1:2 of DEV sent (each one overtaken by later ones).
fn slow_sent(tb: &Testbed, dev: &str) -> u64 {
    let o = tb.exec("client", &["tc", "-s", "class", "show", "dev", dev]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let Some(at) = text.find("class htb 1:2") else {
        return 0;
    };
    text[at..]
        .split(" pkt")
        .next()
        .and_then(|s| s.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// A kernel SNMP counter of the client namespace since `nstat -n`.
fn nstat(tb: &Testbed, name: &str) -> u64 {
    let o = tb.exec("client", &["nstat", "-az", name]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "needs root: network namespaces, XDP, AF_XDP, tc and clang (scripts/test.sh runs it as root)"]
fn spliced_transfers_survive_loss_and_reordering() {
    require_root("spliced_transfers_survive_loss_and_reordering");
    let t0 = Instant::now();
    let mut tb = Testbed::up("e2eloss", "nat");

    // Files: the same bytes on every server (hard links), so any server's answer checks.
    let data = tb.state.join("loss-data");
    std::fs::create_dir_all(&data).unwrap();
    let sizes: [(&str, u64); 3] = [("1k", 1024), ("1m", 1 << 20), ("100m", 100_000_000)];
    for (name, n) in sizes {
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "head -c {n} /dev/urandom > {}",
                data.join(name).display()
            ))
            .status()
            .unwrap();
        assert!(st.success());
    }
    for i in 1..=3 {
        let dir = tb.state.join(format!("rs{i}/loss"));
        for sub in ["tmp", "www/files", "www/up"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for (name, _) in sizes {
            std::fs::hard_link(data.join(name), dir.join("www/files").join(name)).unwrap();
        }
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx_config(&dir)).unwrap();
        let o = tb.exec(&format!("rs{i}"), &["nginx", "-c", conf.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "nginx on rs{i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    tb.start_uvsd(&config());

    // Before the impairment: each service answers (neighbours resolved, the servers listening).
    let vips = [
        ("nat4", "http://198.18.100.1:8080"),
        ("nat6", "http://[2001:2:0:100::1]:8080"),
        ("full4", "http://198.18.100.2:8080"),
    ];
    for (name, vip) in vips {
        let ok = (0..20).any(|_| {
            let b = tb.curl_bodies(&format!("{vip}/"), 1);
            if b[0] == "ok" {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            false
        });
        assert!(ok, "{name} does not answer:\n{}", tb.uvsd_log());
    }

    // Loss and reordering on the client's link, both directions: on the egress of uvs-c0
    // (uploads, download ACKs) and on its ingress through an ifb (downloads). Class 1:2
    // is slow (20 Mbit/s, 20-packet queue): its packets wait behind its backlog while
    // class 1:1's overtake them.
    let obj = tb.state.join("impair.o");
    let cc = Command::new("clang")
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
        ])
        .args(["-DLOSS_PER_MILLE=10", "-DREORDER_PER_MILLE=100", "-c"])
        .arg(repo().join("scripts/impair.bpf.c"))
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("clang");
    assert!(
        cc.status.success(),
        "clang: {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let impair = |dev: &str| {
        format!(
            "tc qdisc add dev {dev} root handle 1: htb default 1 r2q 1000; \
             tc class add dev {dev} parent 1: classid 1:1 htb rate 10gbit; \
             tc class add dev {dev} parent 1: classid 1:2 htb rate 20mbit ceil 20mbit; \
             tc qdisc add dev {dev} parent 1:2 handle 2: pfifo limit 20; \
             tc filter add dev {dev} parent 1: pref 1 bpf obj {o} sec tc_loss da; \
             tc filter add dev {dev} parent 1: pref 2 bpf obj {o} sec tc_class; ",
            o = obj.display()
        )
    };
    let setup = tb.sh(
        "client",
        &format!(
            "set -e; {} ip link add uvs-ifbnet type ifb; ip link set uvs-ifbnet up; \
             tc qdisc add dev uvs-c0 handle ffff: ingress; \
             tc filter add dev uvs-c0 parent ffff: u32 match u32 0 0 action mirred egress redirect dev uvs-ifbnet; {}",
            impair("uvs-c0"),
            impair("uvs-ifbnet")
        ),
    );
    assert!(
        setup.status.success(),
        "impairment: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let _ = tb.exec("client", &["nstat", "-n"]);

    let client_dir = tb.state.join("loss-client");
    std::fs::create_dir_all(&client_dir).unwrap();
    let mut timings = Vec::new();
    let mut cases = Vec::new();
    for (name, vip) in vips {
        for (file, _) in &sizes[..2] {
            cases.push((name, vip, *file));
        }
    }
    for (name, vip, file) in &cases {
        // Download.
        let got = client_dir.join(format!("{name}-{file}"));
        let t = Instant::now();
        let o = tb.exec(
            "client",
            &[
                "curl",
                "-sf",
                "-g",
                "--max-time",
                "20",
                "-o",
                got.to_str().unwrap(),
                &format!("{vip}/files/{file}"),
            ],
        );
        assert!(
            o.status.success(),
            "{name}: download of {file} failed ({})\n{}",
            o.status,
            tb.uvsd_log()
        );
        assert_eq!(
            sha256(&got),
            sha256(&data.join(file)),
            "{name}: download of {file} is not byte-exact"
        );
        timings.push(format!(
            "{name} GET {file} {:.2}s",
            t.elapsed().as_secs_f64()
        ));
        // Upload: PUT, written by the server; found on whichever server took it.
        let up = format!("{name}-{file}");
        let t = Instant::now();
        let o = tb.exec(
            "client",
            &[
                "curl",
                "-sf",
                "-g",
                "--max-time",
                "20",
                "-T",
                data.join(file).to_str().unwrap(),
                &format!("{vip}/up/{up}"),
            ],
        );
        assert!(
            o.status.success(),
            "{name}: upload of {file} failed ({})\n{}",
            o.status,
            tb.uvsd_log()
        );
        let stored: Vec<PathBuf> = (1..=3)
            .map(|i| tb.state.join(format!("rs{i}/loss/www/up/{up}")))
            .filter(|p| p.exists())
            .collect();
        assert_eq!(stored.len(), 1, "{name}: {up} stored once: {stored:?}");
        assert_eq!(
            sha256(&stored[0]),
            sha256(&data.join(file)),
            "{name}: upload of {file} is not byte-exact"
        );
        timings.push(format!(
            "{name} PUT {file} {:.2}s",
            t.elapsed().as_secs_f64()
        ));
    }

    // One 100 MB download over NAT/IPv4.
    let got = client_dir.join("nat4-100m");
    let t = Instant::now();
    let o = tb.exec(
        "client",
        &[
            "curl",
            "-sf",
            "--max-time",
            "60",
            "-o",
            got.to_str().unwrap(),
            "http://198.18.100.1:8080/files/100m",
        ],
    );
    assert!(
        o.status.success(),
        "100 MB download failed ({})\n{}",
        o.status,
        tb.uvsd_log()
    );
    assert_eq!(
        sha256(&got),
        sha256(&data.join("100m")),
        "the 100 MB download is not byte-exact"
    );
    let _ = std::fs::remove_file(&got);
    timings.push(format!("nat4 GET 100m {:.2}s", t.elapsed().as_secs_f64()));

    // A short wrk run over kept-alive spliced connections: no failed request.
    let w = tb.sh(
        "client",
        "timeout 15 wrk -t1 -c8 -d3s http://198.18.100.1:8080/",
    );
    let report = String::from_utf8_lossy(&w.stdout).to_string();
    assert!(
        report.contains("requests in") && !report.contains("Socket errors"),
        "wrk under loss:\n{report}"
    );
    assert!(
        !report.contains("Non-2xx"),
        "wrk got failed answers:\n{report}"
    );

    // The impairment was real: packets dropped and overtaken both ways, the client's TCP
    // saw segments out of order, and the transfers went through the SYN proxy.
    let out_drops = drops(&tb, "client", "uvs-c0");
    let in_drops = drops(&tb, "client", "uvs-ifbnet");
    let (out_slow, in_slow) = (slow_sent(&tb, "uvs-c0"), slow_sent(&tb, "uvs-ifbnet"));
    let ofo = nstat(&tb, "TcpExtTCPOFOQueue");
    let retrans = nstat(&tb, "TcpRetransSegs");
    let m = tb.metrics();
    let spliced = common::metric_sum(&m, "uvs_synproxy_spliced_total");
    eprintln!(
        "dropped {out_drops} packets leaving the client, {in_drops} arriving; delayed \
         behind later ones {out_slow} leaving, {in_slow} arriving; client TCP: \
         {ofo} segments queued out of order, {retrans} retransmitted; \
         {spliced} connections spliced; {}; {:?} in all",
        timings.join(", "),
        t0.elapsed()
    );
    assert!(
        out_drops > 0 && in_drops > 0 && out_slow > 0 && in_slow > 0,
        "no impairment: dropped {out_drops} out, {in_drops} in; slow {out_slow}, {in_slow}"
    );
    assert!(
        ofo > 0 && retrans > 0,
        "out of order {ofo}, retransmitted {retrans}"
    );
    assert!(spliced >= 13.0, "spliced connections: {spliced}\n{m}");
}
