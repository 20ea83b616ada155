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
    cfg.replace("local: [198.18.0.3, \"2001:2::3\"]", "local: [198.18.0.4]")
        .replace(
            "local: [198.18.1.3, \"2001:2:0:1::3\"]",
            "local: [198.18.1.4]",
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
