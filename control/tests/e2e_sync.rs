//! End to end (as root): connection sync between two uvsd nodes over IPVS's sync protocol
//! (multicast 224.0.0.81:8848 on the real servers' network). Long-lived connections
//! through node A appear on node B with the same real servers; B restarted mid-way
//! catches up from A's periodic refresh; with authentication on, a forged message (right
//! format, wrong key) changes nothing on B and is counted.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The second balancer: namespace `uvs-<tag>-lb2`, its server-side link on the testbed's
/// switch (198.18.1.2), its client-side link to an empty namespace. Removed on drop.
struct NodeB {
    tag: String,
    uvsd: Option<Child>,
}

impl NodeB {
    fn ns(&self, role: &str) -> String {
        format!("uvs-{}-{role}", self.tag)
    }

    fn up(tb: &Testbed) -> NodeB {
        let b = NodeB {
            tag: tb.tag.clone(),
            uvsd: None,
        };
        // A run killed before its teardown left these behind (the testbed's own `down`
        // does not know them): gone first, or `ip netns add` fails on them.
        b.remove_namespaces();
        let (lb2, c2, sw) = (b.ns("lb2"), b.ns("c2"), tb.ns("sw"));
        let script = format!(
            "set -e
             for n in {lb2} {c2}; do ip netns add $n
               ip netns exec $n sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
               ip -n $n link set lo up; done
             ip -n {lb2} link add uvs-lb1 type veth peer name uvs-sw9 netns {sw}
             ip -n {sw} link set uvs-sw9 master uvs-br0
             ip -n {sw} link set uvs-sw9 up
             ip -n {lb2} link add uvs-lb0 type veth peer name uvs-c2 netns {c2}
             ip -n {lb2} link set uvs-lb1 up; ip -n {lb2} link set uvs-lb0 up
             ip -n {c2} link set uvs-c2 up
             ip -n {lb2} addr add 198.18.1.2/24 dev uvs-lb1
             ip -n {lb2} addr add 198.18.0.9/24 dev uvs-lb0"
        );
        let out = Command::new("bash").args(["-c", &script]).output().unwrap();
        assert!(
            out.status.success(),
            "node B: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        b
    }

    fn dir(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/run/uvs-testbed/{}/lb2", self.tag))
    }

    fn start(&mut self, config: &str) {
        let dir = self.dir();
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("uvs.yaml");
        std::fs::write(&cfg, config).unwrap();
        let sock = dir.join("uvsadm.sock");
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::File::create(dir.join("uvsd.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("lb2"), env!("CARGO_BIN_EXE_uvsd")])
            .arg("--config")
            .arg(&cfg)
            .arg("--admin-socket")
            .arg(&sock)
            .args(["--run-for", "300"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.uvsd = Some(child);
        let t0 = Instant::now();
        while !sock.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "node B's uvsd did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.uvsd.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("uvsd.log")).unwrap_or_default()
    }

    fn uvsadm(&self, args: &[&str]) -> String {
        let sock = self.dir().join("uvsadm.sock");
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("lb2"),
                env!("CARGO_BIN_EXE_uvsadm"),
            ])
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn metric(&self, name: &str) -> f64 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns("lb2")])
            .args([
                "curl",
                "-s",
                "--max-time",
                "2",
                "http://127.0.0.1:9100/metrics",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum()
    }
}

impl NodeB {
    /// Node B's two namespaces, after whatever still runs in them.
    fn remove_namespaces(&self) {
        for n in [self.ns("lb2"), self.ns("c2")] {
            if let Ok(o) = Command::new("ip")
                .args(["netns", "pids", &n])
                .stderr(Stdio::null())
                .output()
            {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip")
                .args(["netns", "del", &n])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for NodeB {
    fn drop(&mut self) {
        self.stop();
        self.remove_namespaces();
    }
}

/// (client port, real server) of every TCP connection to the web VIP in a `-L -n -c` listing.
fn flows(listing: &str) -> BTreeSet<(String, String)> {
    listing
        .lines()
        .filter(|l| l.starts_with("TCP") && l.contains("198.18.100.1:80"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6 && f[2] == "ESTABLISHED").then(|| (f[3].to_string(), f[5].to_string()))
        })
        .collect()
}

fn with_sync(cfg: &str, sync: &str) -> String {
    format!("{cfg}\nsync:\n{sync}")
}

/// Node B's configuration: A's, with B's own local addresses.
fn node_b(cfg: &str) -> String {
    cfg.replace(
        "local: [198.18.0.3, \"2001:2::3\"]",
        "local: [198.18.0.4, \"2001:2::4\"]",
    )
    .replace(
        "local: [198.18.1.3, \"2001:2:0:1::3\"]",
        "local: [198.18.1.4, \"2001:2:0:1::4\"]",
    )
}

/// Rate-limited downloads from the client through A: long-lived established flows.
fn downloads(tb: &Testbed, n: usize) -> Vec<Child> {
    (0..n)
        .map(|_| {
            Command::new("ip")
                .args(["netns", "exec", &tb.ns("client")])
                .args([
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "--limit-rate",
                    "200k",
                    "--max-time",
                    "40",
                    "http://198.18.100.1/big",
                ])
                .spawn()
                .unwrap()
        })
        .collect()
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < Duration::from_secs(secs), "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn connections_on_one_node_appear_on_the_other() {
    require_root("connections_on_one_node_appear_on_the_other");
    let mut tb = Testbed::up("e2esync", "nat");
    let key = "auth_key: \"0123456789abcdef0123456789abcdef\"";
    let base = demo_config();
    let cfg_a = with_sync(
        &base,
        &format!(
            "  mode: master\n  interface: uvs-lb1\n  syncid: 9\n  refresh_period: 2\n  {key}\n"
        ),
    );
    let cfg_b = node_b(&with_sync(
        &base,
        &format!("  mode: backup\n  interface: uvs-lb1\n  syncid: 9\n  {key}\n"),
    ));
    let mut b = NodeB::up(&tb);
    b.start(&cfg_b);
    tb.start_uvsd(&cfg_a);

    let mut dl = downloads(&tb, 6);
    let on_a = || {
        flows(&String::from_utf8_lossy(
            &tb.uvsadm(&["-L", "-n", "-c"]).stdout,
        ))
    };
    wait_for("6 downloads established on A", 10, || on_a().len() >= 6);
    let a_flows = on_a();
    wait_for(
        &format!("A's flows {a_flows:?} on B:\n{}", b.log()),
        10,
        || a_flows.is_subset(&flows(&b.uvsadm(&["-L", "-n", "-c"]))),
    );
    assert!(
        b.uvsadm(&["-L", "-n", "--daemon"])
            .starts_with("backup sync daemon (mcast=uvs-lb1, syncid=9"),
        "{}",
        b.uvsadm(&["-L", "-n", "--daemon"])
    );

    // B restarts: its table is empty, A's refresh fills it again.
    b.stop();
    b.start(&cfg_b);
    wait_for("B caught up after its restart", 10, || {
        a_flows.is_subset(&flows(&b.uvsadm(&["-L", "-n", "-c"])))
    });

    // A forged message: IPVS's format, a connection to a real server, but not signed with
    // the key (a random trailer): refused and counted; nothing installed.
    let before = flows(&b.uvsadm(&["-L", "-n", "-c"])).len();
    let forge = r#"
import socket, struct, os
rec = struct.pack("!BBHIHHHHII4s4s4s", 0, 6, 36, 0, 1, 50000, 80, 80, 0, 300,
    socket.inet_aton("198.18.0.2"), socket.inet_aton("198.18.100.1"), socket.inet_aton("198.18.1.11"))
body = struct.pack("!BBHBBH", 0, 9, 8 + 36 + 40, 1, 1, 0) + rec
msg = body + os.urandom(40)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for _ in range(5):
    s.sendto(msg, ("224.0.0.81", 8848))
"#;
    let sent = tb.exec("rs1", &["python3", "-c", forge]);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    wait_for("the forged messages were counted", 5, || {
        b.metric("uvs_sync_bad_messages_total{reason=\"auth\"}") >= 5.0
    });
    let listing = b.uvsadm(&["-L", "-n", "-c"]);
    assert!(
        !listing.contains(":50000"),
        "a forged connection was installed:\n{listing}"
    );
    assert!(flows(&listing).len() >= before);

    for d in &mut dl {
        let _ = d.kill();
        let _ = d.wait();
    }
}

impl NodeB {
    /// The `Sync:` line of `uvsadm cluster`.
    fn sync_line(&self) -> String {
        self.uvsadm(&["cluster"])
            .lines()
            .find(|l| l.starts_with("Sync:"))
            .unwrap_or_default()
            .to_string()
    }
}

/// The `Sync:` line of `uvsadm cluster` on node A.
fn sync_line(tb: &Testbed) -> String {
    String::from_utf8_lossy(&tb.uvsadm(&["cluster"]).stdout)
        .lines()
        .find(|l| l.starts_with("Sync:"))
        .unwrap_or_default()
        .to_string()
}

/// The addresses after "peers heard" in a `Sync:` line.
fn peers_heard(line: &str) -> Vec<String> {
    line.split("peers heard ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .map(|p| p.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Unicast sync over IPv6 (`peers` without `group`, the operator's configuration) and over
/// both families at once: the master sends from a socket of each peer's family, the
/// backup listens on both families it has peers of. A peer is heard once by its address,
/// however often it restarts (a new source port each time).
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn ipv6_and_mixed_unicast_peers_carry_connections() {
    require_root("ipv6_and_mixed_unicast_peers_carry_connections");
    let mut tb = Testbed::up("e2esy6", "nat");
    let base = demo_config();
    let cfg_a = |peers: &str| {
        with_sync(
            &base,
            &format!(
                "  mode: both\n  interface: uvs-lb1\n  syncid: 7\n  refresh_period: 2\n  peers: [{peers}]\n"
            ),
        )
    };
    let cfg_b = node_b(&with_sync(
        &base,
        "  mode: both\n  interface: uvs-lb1\n  syncid: 7\n  peers: [\"2001:2:0:1::1\", 198.18.1.1]\n",
    ));
    let mut b = NodeB::up(&tb);
    // The testbed's kernel holds 2001:2:0:1::1 on A's uvs-lb1; B's kernel gets ::2.
    let st = Command::new("ip")
        .args(["-n", &b.ns("lb2"), "addr", "add", "2001:2:0:1::2/64"])
        .args(["dev", "uvs-lb1", "nodad"])
        .status()
        .unwrap();
    assert!(st.success());
    b.start(&cfg_b);

    let mut dl: Vec<Child> = Vec::new();
    let on_a = |tb: &Testbed| {
        flows(&String::from_utf8_lossy(
            &tb.uvsadm(&["-L", "-n", "-c"]).stdout,
        ))
    };
    for (round, peers) in [
        "\"2001:2:0:1::2\"",
        "198.18.1.2, \"2001:2:0:1::2\"",
        "198.18.1.2, \"2001:2:0:1::2\"",
    ]
    .into_iter()
    .enumerate()
    {
        // A (re)starts: its table is empty, the clients' next segments recreate nothing
        // (a stray ACK schedules nothing), so each round opens new downloads.
        tb.stop_uvsd("TERM");
        for d in &mut dl {
            let _ = d.kill();
            let _ = d.wait();
        }
        tb.start_uvsd(&cfg_a(peers));
        dl = downloads(&tb, 4);
        wait_for("4 downloads established on A", 15, || on_a(&tb).len() >= 4);
        let a_flows = on_a(&tb);
        wait_for(
            &format!(
                "round {round} (peers {peers}): A's flows {a_flows:?} on B\nA: {}\nA's log:\n{}",
                sync_line(&tb),
                tb.uvsd_log()
            ),
            10,
            || a_flows.is_subset(&flows(&b.uvsadm(&["-L", "-n", "-c"]))),
        );
        let m = tb.metrics();
        let (sent, errors) = (
            metric_sum(&m, "uvs_sync_sent_conns_total"),
            metric_sum(&m, "uvs_sync_send_errors_total"),
        );
        assert!(
            sent >= 4.0 && errors == 0.0,
            "round {round}: sent {sent} records, {errors} send errors\n{}",
            tb.uvsd_log()
        );
    }
    // A was heard from its IPv6 address through three restarts, and from its IPv4
    // address through two: once each.
    let mut heard = peers_heard(&b.sync_line());
    heard.sort();
    assert_eq!(
        heard,
        vec!["198.18.1.1".to_string(), "2001:2:0:1::1".to_string()],
        "{}",
        b.sync_line()
    );
    assert_eq!(b.metric("uvs_sync_peers{mode=\"both\"}"), 2.0);

    for d in &mut dl {
        let _ = d.kill();
        let _ = d.wait();
    }
}

/// (client port, real server, local address) of every ESTABLISHED FullNAT connection to
/// the web VIP in a `-L -n -c` listing.
fn fullnat_flows(listing: &str) -> BTreeSet<(String, String, String)> {
    listing
        .lines()
        .filter(|l| l.starts_with("TCP") && l.contains("198.18.100.1:80"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[2] == "ESTABLISHED").then(|| {
                (
                    f[3].to_string(),
                    f[5].to_string(),
                    f[7].trim_end_matches(')').to_string(),
                )
            })
        })
        .collect()
}

/// The operator's failover bug: A (master) gives B FullNAT connections that end (TIME_WAIT
/// on B, pool ports from 1024); A's uvsd restarts, its pool-port allocator begins again at
/// 1024, and a new download on A takes a port one of B's stale entries holds with the
/// same real server. B replaces the stale entry with A's connection (the master is
/// authoritative for its own connections) instead of refusing it. Then: starting a sync
/// daemon that runs already is refused and changes nothing.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_restarted_masters_connections_replace_stale_entries_on_the_backup() {
    require_root("a_restarted_masters_connections_replace_stale_entries_on_the_backup");
    let mut tb = Testbed::up("e2esyfn", "fullnat");
    // One real server for web4, so that a reused pool port is the same reply tuple.
    let base = with_method(&demo_config(), "fullnat").replacen(
        "      - address: 198.18.1.12\n      - address: 198.18.1.13\n",
        "",
        1,
    );
    let cfg_a = with_sync(
        &base,
        "  mode: master\n  interface: uvs-lb1\n  syncid: 9\n  refresh_period: 2\n",
    );
    // B is backup for the VIPs (and so silent for their pool addresses, which A holds).
    let cfg_b = node_b(&format!(
        "{}\ncluster:\n  groups:\n    - {{ name: web, vips: [198.18.100.1, \"2001:2:0:100::1\"], role: backup }}\n",
        with_sync(&base, "  mode: backup\n  interface: uvs-lb1\n  syncid: 9\n")
    ));
    let mut b = NodeB::up(&tb);
    b.start(&cfg_b);
    tb.start_uvsd(&cfg_a);
    wait_for("A's web4 real server up", 15, || {
        real_up(&tb, "198.18.1.11:80") == Some(true)
    });

    // Three requests through A: three connections that end, synced to B.
    for _ in 0..3 {
        let o = tb.exec(
            "client",
            &["curl", "-sS", "--max-time", "3", "http://198.18.100.1/"],
        );
        assert!(
            o.status.success(),
            "a request through A: {}\nA's log:\n{}",
            String::from_utf8_lossy(&o.stderr),
            tb.uvsd_log()
        );
    }
    let stale = |l: &str| {
        l.starts_with("TCP")
            && l.contains("198.18.100.1:80")
            && !l.contains("ESTABLISHED")
            && l.contains("(local 198.18.1.100:")
    };
    wait_for("B has the three ended connections", 10, || {
        b.uvsadm(&["-L", "-n", "-c"])
            .lines()
            .filter(|l| stale(l))
            .count()
            >= 3
    });
    let before = b.uvsadm(&["-L", "-n", "-c"]);

    // A restarts; its next connection takes pool port 1024 again.
    tb.stop_uvsd("TERM");
    tb.start_uvsd(&cfg_a);
    wait_for("A's web4 real server up again", 15, || {
        real_up(&tb, "198.18.1.11:80") == Some(true)
    });
    let mut dl = downloads(&tb, 1);
    let on_a = || {
        fullnat_flows(&String::from_utf8_lossy(
            &tb.uvsadm(&["-L", "-n", "-c"]).stdout,
        ))
    };
    wait_for("the download established on A", 10, || on_a().len() == 1);
    let a_flows = on_a();
    let local = &a_flows.iter().next().unwrap().2;
    assert!(
        before.contains(&format!("(local {local})")),
        "the test needs a reused pool port: A's {a_flows:?}, B had:\n{before}"
    );
    wait_for(
        &format!(
            "A's new connection {a_flows:?} on B (B had:\n{before})\nB now:\n{}",
            b.uvsadm(&["-L", "-n", "-c"])
        ),
        10,
        || a_flows.is_subset(&fullnat_flows(&b.uvsadm(&["-L", "-n", "-c"]))),
    );
    assert_eq!(
        b.metric("uvs_sync_refused_total"),
        0.0,
        "B refused a record"
    );

    // ipvsadm: starting a daemon that runs already fails ("File exists"); so does a backup
    // beside the master with another sync id (uvs has one for both directions). Neither
    // changes the running daemon: its counters go on.
    let sent = metric_sum(&tb.metrics(), "uvs_sync_sent_messages_total");
    for (args, want) in [
        (
            &["--start-daemon", "master"][..],
            "the master sync daemon is already running",
        ),
        (
            &["--start-daemon", "backup", "--syncid", "5"],
            "--syncid 5 differs",
        ),
    ] {
        let o = tb.uvsadm(args);
        let text =
            String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
        assert!(!o.status.success(), "{args:?} was accepted: {text}");
        assert!(text.contains(want), "{args:?}: {text}");
    }
    assert!(
        String::from_utf8_lossy(&tb.uvsadm(&["-L", "-n", "--daemon"]).stdout)
            .starts_with("master sync daemon (mcast=uvs-lb1, syncid=9")
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        metric_sum(&tb.metrics(), "uvs_sync_sent_messages_total") >= sent,
        "the master's counters were reset (restarted)"
    );

    for d in &mut dl {
        let _ = d.kill();
        let _ = d.wait();
    }
}
