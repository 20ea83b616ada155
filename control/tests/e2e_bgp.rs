//! End to end (as root, with BIRD 2 installed): active/active behind ECMP.
//!
//! scripts/bgp_testbed.sh builds a client behind a router and up to three uvs nodes on one
//! L2 with it, and three nginx real servers on a second L2 with the nodes (and the router,
//! for direct-routing replies). The router runs BIRD with ECMP (`merge paths on` in its
//! kernel protocol, `fib_multipath_hash_policy=1`) and an eBGP session to each node (hold
//! time 3 s); each node runs BIRD, whose bird.conf is the operator's and includes the file
//! uvsd writes, and uvsd, which drives what BIRD announces. The nodes sync their
//! connections to each other (IPVS sync, mode both, on the real servers' L2).
//!
//! Checked: the router learns the VIP from both nodes as one multipath route; new flows
//! spread over both nodes (connections on each); a node whose real servers all have weight 0
//! withdraws the VIP and announces it again when they come back; `uvsadm node drain`
//! withdraws (route via the other node only), new connections succeed, and uvsd stops by
//! itself once its traffic has ended; a node whose uvsd and BIRD are SIGKILLed is withdrawn
//! by the router (the kernel closes its BGP session) and new connections succeed; SIGTERM
//! withdraws before uvsd exits; a node that goes silent is withdrawn by the hold timer.
//! Convergence and recovery times are measured and printed.
//!
//! Established flows across changes of the node set (a DR service with Maglev hashing,
//! `mh` with `mh-port`): 24 long-lived keep-alive connections ask for a page every 100 ms
//! while a third node joins and then a node is SIGKILLed. The router's own choice for each
//! flow (`ip route get` with the flow's ports, checked against where new connections
//! really went) gives the share of flows that changed node; every connection must go on
//! answering from the same real server, whether its new node had its entry by sync (the
//! others send a joining node every connection when they hear its sync hello) or adopted
//! it by hash. The share of new connections the new node takes is printed.
//!
//! IPv6: each node also has an IPv6 BGP session and announces the IPv6 VIP as a /128
//! (`uvs_vips6`); the router's multipath route for it follows the nodes, and connections
//! through it succeed on both nodes.
//!
//! FullNAT, not NAT: behind ECMP a real server's reply must come back through the node
//! that has the flow. With NAT the real server's default route would send every reply to
//! one node (or to the router, which would hash it to either), and the other node's flows
//! would break. FullNAT rewrites the source to the node's own pool address (198.18.62.101
//! on n1, .102 on n2), so replies go back to the right node with no routing on the real
//! servers; DR would work too but needs the VIP on every real server's loopback.

mod common;
use common::{repo, require_root};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TAG: &str = "bgpe2e";
/// FullNAT, `mh` on the client address: one real server for the client.
const VIP: &str = "198.18.100.1";
/// Direct routing, `mh` with `mh-port`: flows spread over the real servers.
const VIP_DR: &str = "198.18.100.2";
/// FullNAT over IPv6, announced as a /128 over the nodes' IPv6 BGP sessions.
const VIP6: &str = "2001:2:0:100::1";
/// Long-lived connections through VIP_DR, and the pause between their requests.
const FLOWS: usize = 24;
const FLOW_INTERVAL: &str = "0.1";

fn ns(role: &str) -> String {
    format!("uvs-{TAG}-{role}")
}

fn exec(role: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &ns(role)])
        .args(args)
        .output()
        .expect("ip netns exec")
}

fn state() -> PathBuf {
    PathBuf::from(format!("/run/uvs-testbed/{TAG}"))
}

/// The network; torn down on drop (every process in its namespaces, by PID), also when
/// the test fails.
struct Net;
impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/bgp_testbed.sh"))
            .args(["down", TAG])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn spawn_in(role: &str, args: &[&str], log: &str) -> Child {
    let log = std::fs::File::create(state().join(log)).unwrap();
    Command::new("ip")
        .args(["netns", "exec", &ns(role)])
        .args(args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawning")
}

fn kill(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status();
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// One uvs node: its BIRD and its uvsd.
struct Node {
    n: u8,
    bird: Option<Child>,
    uvsd: Option<Child>,
}

impl Node {
    fn role(&self) -> String {
        format!("n{}", self.n)
    }
    fn dir(&self) -> PathBuf {
        state().join(self.role())
    }
    fn addr(&self) -> String {
        format!("198.18.61.1{}", self.n)
    }
    fn config(&self, weight: u32) -> String {
        let d = self.dir();
        let pool = format!("198.18.62.10{}", self.n);
        let pool6 = format!("2001:2:0:62::10{}", self.n);
        let reals: String = (1..=3)
            .map(|i| format!("      - {{ address: 198.18.62.2{i}, port: 80, weight: {weight} }}\n"))
            .collect();
        let reals6: String = (1..=3)
            .map(|i| {
                format!(
                    "      - {{ address: \"2001:2:0:62::2{i}\", port: 80, weight: {weight} }}\n"
                )
            })
            .collect();
        let dr_reals: String = (1..=3)
            .map(|i| format!("      - {{ address: 198.18.62.2{i}, weight: {weight} }}\n"))
            .collect();
        format!(
            "interfaces:
  - name: uvs-f0
    local: [198.18.61.10{n}, \"2001:2:0:61::10{n}\"]
    networks: [198.18.61.0/24, \"2001:2:0:61::/64\"]
    routes:
      - {{ prefix: 198.18.60.0/24, via: 198.18.61.1 }}
      - {{ prefix: \"2001:2:0:60::/64\", via: \"2001:2:0:61::1\" }}
  - name: uvs-b0
    local: [{pool}, \"{pool6}\"]
    networks: [198.18.62.0/24, \"2001:2:0:62::/64\"]
workers: {{ count: 1 }}
conn_table: {{ capacity: 65536 }}
metrics: {{ listen: 127.0.0.1:9100 }}
# Every node sends its connections and takes its peers'. No periodic refresh within the
# test: a node that joins knows only what changed since it started, so the flows it takes
# over from before are adopted by hash (counted), not found by sync.
sync: {{ mode: both, interface: uvs-b0, syncid: 1, refresh_period: 600 }}
bgp:
  include: {inc}
  socket: {sock}
  drain_timeout: 20
  stop_delay: 4
services:
  - name: web
    vip: {VIP}
    protocol: tcp
    port: 80
    scheduler: mh
    forwarding: fullnat
    fullnat_pool: [{pool}]
    real_servers:
{reals}  - name: web6
    vip: \"{VIP6}\"
    protocol: tcp
    port: 80
    scheduler: mh
    forwarding: fullnat
    fullnat_pool: [\"{pool6}\"]
    real_servers:
{reals6}  - name: dsr
    vip: {VIP_DR}
    protocol: tcp
    port: 80
    scheduler: mh
    scheduler_flags: [mh-port]
    forwarding: dr
    real_servers:
{dr_reals}",
            inc = d.join("uvs-vips.conf").display(),
            sock = d.join("bird.ctl").display(),
            n = self.n,
        )
    }
    fn socket(&self) -> PathBuf {
        self.dir().join("uvsadm.sock")
    }

    fn setup(&self) {
        let d = self.dir();
        std::fs::create_dir_all(&d).unwrap();
        // The operator's bird.conf: uvsd only owns the included file, which must exist
        // when BIRD starts (uvsd rewrites it at once).
        std::fs::write(
            d.join("uvs-vips.conf"),
            uvs_control::announce::render_include(&BTreeSet::new()),
        )
        .unwrap();
        std::fs::write(
            d.join("bird.conf"),
            format!(
                "router id {a};
protocol device {{ scan time 1; }}
include \"{inc}\";
protocol bgp upstream {{
  local {a} as 65010;
  neighbor 198.18.61.1 as 65000;
  hold time 3; keepalive time 1;
  connect delay time 1; connect retry time 1; error wait time 1, 2;
  ipv4 {{ import none; export where proto = \"uvs_vips4\"; }};
}}
protocol bgp upstream6 {{
  local 2001:2:0:61::1{n} as 65010;
  neighbor 2001:2:0:61::1 as 65000;
  hold time 3; keepalive time 1;
  connect delay time 1; connect retry time 1; error wait time 1, 2;
  ipv6 {{ import none; export where proto = \"uvs_vips6\"; }};
}}
",
                a = self.addr(),
                n = self.n,
                inc = d.join("uvs-vips.conf").display()
            ),
        )
        .unwrap();
        std::fs::write(d.join("uvs.yaml"), self.config(1)).unwrap();
    }

    fn start_bird(&mut self) {
        let d = self.dir();
        let conf = d.join("bird.conf");
        let sock = d.join("bird.ctl");
        self.bird = Some(spawn_in(
            &self.role(),
            &[
                "bird",
                "-f",
                "-c",
                conf.to_str().unwrap(),
                "-s",
                sock.to_str().unwrap(),
            ],
            &format!("{}-bird.log", self.role()),
        ));
    }

    fn start_uvsd(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let cfg = self.dir().join("uvs.yaml");
        let sock = self.socket();
        self.uvsd = Some(spawn_in(
            &self.role(),
            &[
                env!("CARGO_BIN_EXE_uvsd"),
                "--config",
                cfg.to_str().unwrap(),
                "--admin-socket",
                sock.to_str().unwrap(),
                "--run-for",
                "400",
            ],
            &format!("{}-uvsd.log", self.role()),
        ));
        let t0 = Instant::now();
        while !self.socket().exists() {
            if let Some(st) = self.uvsd.as_mut().unwrap().try_wait().unwrap() {
                panic!("{} uvsd exited ({st}):\n{}", self.role(), self.log());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "{} uvsd did not start:\n{}",
                self.role(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(state().join(format!("{}-uvsd.log", self.role())))
            .unwrap_or_default()
    }

    fn uvsadm(&self, args: &[&str]) -> Output {
        let sock = self.socket();
        let mut a = vec![
            env!("CARGO_BIN_EXE_uvsadm"),
            "--socket",
            sock.to_str().unwrap(),
        ];
        a.extend_from_slice(args);
        exec(&self.role(), &a)
    }

    /// The sum of the samples of `family` whose labels contain `labels`, from this node's
    /// /metrics.
    fn metric(&self, family: &str, labels: &str) -> u64 {
        let o = exec(
            &self.role(),
            &[
                "curl",
                "-s",
                "--max-time",
                "2",
                "http://127.0.0.1:9100/metrics",
            ],
        );
        let text = String::from_utf8_lossy(&o.stdout);
        text.lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(family) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Connections this node scheduled for `service` (synced ones are not counted).
    fn scheduled(&self, service: &str) -> u64 {
        self.metric(
            "uvs_service_connections_total",
            &format!("service=\"{service}\""),
        )
    }

    /// Mid-flow packets of flows it had no entry for, adopted by the Maglev hash.
    fn adopted(&self) -> u64 {
        self.metric("uvs_worker_hash_adopted_total", "")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for c in [self.uvsd.as_mut(), self.bird.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The router's next hops for `vip` (a /32 or a /128).
fn next_hops_of(vip: &str) -> BTreeSet<String> {
    let (family, len) = if vip.contains(':') {
        ("-6", 128)
    } else {
        ("-4", 32)
    };
    let o = exec(
        "rt",
        &["ip", family, "route", "show", &format!("{vip}/{len}")],
    );
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_string())
        .collect()
}

/// Waits until the router's next hops for the IPv4 VIP are `want`; how long it took.
fn converge(want: &[&str], since: Instant, limit: Duration, what: &str) -> Duration {
    converge_vip(VIP, want, since, limit, what)
}

/// Waits until the router's next hops for `vip` are `want`; how long it took.
fn converge_vip(vip: &str, want: &[&str], since: Instant, limit: Duration, what: &str) -> Duration {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    loop {
        if next_hops_of(vip) == want {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < limit,
            "{what}: the router's next hops for {vip} are {:?}, not {want:?} after {limit:?}\nlogs:\n{}\nrouter BIRD:\n{}",
            next_hops_of(vip),
            ["n1-bird.log", "n2-bird.log", "n1-uvsd.log", "n2-uvsd.log", "rt-bird.log"]
                .iter()
                .map(|f| format!("== {f}\n{}", std::fs::read_to_string(state().join(f)).unwrap_or_default()))
                .collect::<String>(),
            String::from_utf8_lossy(
                &exec("rt", &["birdc", "-s", state().join("rt.ctl").to_str().unwrap(), "show", "protocols"]).stdout
            )
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` new connections from the client (each its own source port): how many succeeded.
fn curls(n: usize) -> usize {
    curls_to(&format!("http://{VIP}/"), n)
}

/// `n` new connections to `url`: how many succeeded.
fn curls_to(url: &str, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            let o = exec("client", &["curl", "-s", "-g", "--max-time", "2", url]);
            o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("rs")
        })
        .count()
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The long-lived connections of scripts/keepalive_flows.py, running in the client.
struct Flows {
    child: Child,
    out: std::io::BufReader<std::process::ChildStdout>,
    ports: Vec<u16>,
}

/// What one connection saw.
#[derive(Debug)]
struct FlowResult {
    port: u16,
    bodies: Vec<String>,
    answers: u64,
    max_wait: f64,
    error: Option<String>,
}

impl Flows {
    /// Opens the connections; returns once every one is established.
    fn start(vip: &str, n: usize) -> Flows {
        use std::io::BufRead;
        let script = repo().join("scripts/keepalive_flows.py");
        let n = n.to_string();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns("client"), "python3"])
            .arg(&script)
            .args([vip, "80", &n, FLOW_INTERVAL, "60"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("keepalive_flows.py");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: '{line}'"));
        let ports = v["ready"]
            .as_array()
            .expect("ready line")
            .iter()
            .map(|p| p.as_u64().unwrap() as u16)
            .collect();
        Flows { child, out, ports }
    }

    /// Stops asking and collects what every connection saw.
    fn finish(mut self) -> Vec<FlowResult> {
        use std::io::BufRead;
        drop(self.child.stdin.take());
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        let _ = self.child.wait();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: '{line}'"));
        v["conns"]
            .as_array()
            .expect("conns")
            .iter()
            .map(|c| FlowResult {
                port: c["port"].as_u64().unwrap() as u16,
                bodies: c["bodies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b.as_str().unwrap().trim().to_string())
                    .collect(),
                answers: c["answers"].as_u64().unwrap(),
                max_wait: c["max_wait"].as_f64().unwrap(),
                error: c["error"].as_str().map(String::from),
            })
            .collect()
    }
}

impl Drop for Flows {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seconds until expiry of this node's entries for the long-lived flows, by client port.
fn expiries(node: &Node) -> std::collections::HashMap<u16, u32> {
    let o = node.uvsadm(&["-L", "-c", "-n"]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let (expire, client, vip) = (w.get(1)?, w.get(3)?, w.get(4)?);
            if *vip != format!("{VIP_DR}:80") {
                return None;
            }
            let (m, s) = expire.split_once(':')?;
            let secs: u32 = m.parse::<u32>().ok()? * 60 + s.parse::<u32>().ok()?;
            let port = client.strip_prefix("198.18.60.2:")?.parse().ok()?;
            Some((port, secs))
        })
        .collect()
}

/// Which running node carries each long-lived flow, by its client port: the one whose
/// entry for it does not age. Every packet sets an entry's expiry back to ESTABLISHED's
/// 900 s, and a flow asks every 100 ms; the other nodes' copies of it (from sync, or from
/// carrying it before) count down. Two looks 1.2 s apart: the carrier's expiry has not
/// gone down, every copy's has. `None` for a flow no node, or more than one, claims.
fn carriers(nodes: &[&Node], ports: &[u16]) -> Vec<Option<u8>> {
    let first: Vec<_> = nodes.iter().map(|n| expiries(n)).collect();
    std::thread::sleep(Duration::from_millis(1200));
    let second: Vec<_> = nodes.iter().map(|n| expiries(n)).collect();
    ports
        .iter()
        .map(|p| {
            let on: Vec<u8> = nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| match (first[*i].get(p), second[*i].get(p)) {
                    (Some(a), Some(b)) => b >= a,
                    _ => false,
                })
                .map(|(_, n)| n.n)
                .collect();
            (on.len() == 1).then(|| on[0])
        })
        .collect()
}

#[test]
#[ignore = "needs root: network namespaces, XDP, AF_XDP and BIRD 2 (scripts/test.sh runs it as root)"]
fn ecmp_active_active_with_bird() {
    require_root("ecmp_active_active_with_bird");
    assert!(
        have("bird"),
        "BIRD 2 is not installed (`.ci/run --deps-only` installs bird2)"
    );
    let out = Command::new(repo().join("scripts/bgp_testbed.sh"))
        .args(["up", TAG])
        .output()
        .unwrap();
    let _net = Net;
    assert!(
        out.status.success(),
        "bgp testbed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The router: ECMP over everything BGP brings.
    let rt_conf = state().join("rt.conf");
    std::fs::write(
        &rt_conf,
        "router id 198.18.61.1;
protocol device { scan time 1; }
protocol kernel { ipv4 { import none; export all; }; merge paths on; }
protocol kernel { ipv6 { import none; export all; }; merge paths on; }
template bgp node {
  local 198.18.61.1 as 65000;
  hold time 3; keepalive time 1;
  connect delay time 1; connect retry time 1; error wait time 1, 2;
  ipv4 { import all; export none; };
}
protocol bgp n1 from node { neighbor 198.18.61.11 as 65010; }
protocol bgp n2 from node { neighbor 198.18.61.12 as 65010; }
protocol bgp n3 from node { neighbor 198.18.61.13 as 65010; }
template bgp node6 {
  local 2001:2:0:61::1 as 65000;
  hold time 3; keepalive time 1;
  connect delay time 1; connect retry time 1; error wait time 1, 2;
  ipv6 { import all; export none; };
}
protocol bgp n1v6 from node6 { neighbor 2001:2:0:61::11 as 65010; }
protocol bgp n2v6 from node6 { neighbor 2001:2:0:61::12 as 65010; }
protocol bgp n3v6 from node6 { neighbor 2001:2:0:61::13 as 65010; }
",
    )
    .unwrap();
    let mut rt_bird = spawn_in(
        "rt",
        &[
            "bird",
            "-f",
            "-c",
            rt_conf.to_str().unwrap(),
            "-s",
            state().join("rt.ctl").to_str().unwrap(),
        ],
        "rt-bird.log",
    );

    let mut n1 = Node {
        n: 1,
        bird: None,
        uvsd: None,
    };
    let mut n2 = Node {
        n: 2,
        bird: None,
        uvsd: None,
    };
    // Joins later.
    let mut n3 = Node {
        n: 3,
        bird: None,
        uvsd: None,
    };
    let (a1, a2, a3) = (n1.addr(), n2.addr(), n3.addr());
    let t0 = Instant::now();
    for n in [&mut n1, &mut n2] {
        n.setup();
        n.start_bird();
        n.start_uvsd();
    }
    let initial = converge(
        &[&a1, &a2],
        t0,
        Duration::from_secs(30),
        "initial announcement",
    );
    println!(
        "BGP: multipath route via both nodes {:.2} s after BIRD and uvsd started",
        initial.as_secs_f64()
    );
    let status = String::from_utf8_lossy(&n1.uvsadm(&["node"]).stdout).to_string();
    assert!(
        status.contains("Node: serving") && status.contains("198.18.100.1/32"),
        "{status}"
    );

    // Flows spread over both nodes.
    let ok = curls(40);
    assert_eq!(
        ok,
        40,
        "connections through the VIP failed\nn1:\n{}\nn2:\n{}",
        String::from_utf8_lossy(&n1.uvsadm(&["-L", "-n", "--stats"]).stdout),
        String::from_utf8_lossy(&n2.uvsadm(&["-L", "-n", "--stats"]).stdout)
    );
    // Counted where they were scheduled: with sync each node also holds its peer's.
    let (c1, c2) = (n1.scheduled("web"), n2.scheduled("web"));
    println!("spread: 40 connections, {c1} through n1, {c2} through n2");
    assert!(
        c1 > 0 && c2 > 0,
        "flows not spread over both nodes: n1 {c1}, n2 {c2}"
    );
    assert_eq!(c1 + c2, 40);

    // IPv6: the /128 over the nodes' IPv6 sessions, a multipath route, traffic through it.
    let (v1, v2) = ("2001:2:0:61::11", "2001:2:0:61::12");
    let d = converge_vip(
        VIP6,
        &[v1, v2],
        t0,
        Duration::from_secs(20),
        "IPv6 announcement",
    );
    println!(
        "BGP: IPv6 multipath route for {VIP6}/128 via both nodes {:.2} s after start",
        d.as_secs_f64()
    );
    let url6 = format!("http://[{VIP6}]/");
    assert_eq!(
        curls_to(&url6, 20),
        20,
        "connections through the IPv6 VIP failed"
    );
    let (c1, c2) = (n1.scheduled("web6"), n2.scheduled("web6"));
    println!("spread (IPv6): 20 connections, {c1} through n1, {c2} through n2");
    assert!(
        c1 > 0 && c2 > 0 && c1 + c2 == 20,
        "IPv6 flows: n1 {c1}, n2 {c2}"
    );

    // No usable real server (every weight 0, by a reload of the file): n1 withdraws.
    let t = Instant::now();
    std::fs::write(n1.dir().join("uvs.yaml"), n1.config(0)).unwrap();
    let d = converge(&[&a2], t, Duration::from_secs(10), "withdraw on weight 0");
    println!(
        "weight 0 on every real server of n1: withdrawn in {:.2} s (incl. 0.5 s file settle)",
        d.as_secs_f64()
    );
    let status = String::from_utf8_lossy(&n1.uvsadm(&["node"]).stdout).to_string();
    assert!(status.contains("no usable real server"), "{status}");
    // What an operator's alert sees: the VIP withdrawn, and why, while the node serves.
    assert_eq!(
        n1.metric(
            "uvs_bgp_withdrawn",
            &format!("vip=\"{VIP}\",reason=\"no_usable_real_server\""),
        ),
        1
    );
    assert_eq!(n1.metric("uvs_bgp_announced", &format!("vip=\"{VIP}\"")), 0);
    assert_eq!(n1.metric("uvs_node_state", "state=\"serving\""), 1);
    let cluster = String::from_utf8_lossy(&n1.uvsadm(&["cluster"]).stdout).to_string();
    assert!(
        cluster.contains("Sync: both, peers heard 198.18.62.12")
            && cluster.contains("BGP: serving; announced nothing; withdrawn 198.18.100.1/32 (no usable real server)"),
        "{cluster}"
    );
    assert_eq!(curls(10), 10);
    let t = Instant::now();
    std::fs::write(n1.dir().join("uvs.yaml"), n1.config(1)).unwrap();
    let d = converge(&[&a1, &a2], t, Duration::from_secs(10), "announce again");
    println!("weights back: announced again in {:.2} s", d.as_secs_f64());

    // Drain n1: withdrawn at once, new connections succeed through n2, uvsd stops itself.
    let sock = n1.socket();
    let t = Instant::now();
    let mut drain = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns("n1"),
            env!("CARGO_BIN_EXE_uvsadm"),
            "--socket",
        ])
        .arg(&sock)
        .args(["node", "drain", "--timeout", "15"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let d = converge(&[&a2], t, Duration::from_secs(10), "drain");
    println!(
        "drain: route via n2 only {:.2} s after `uvsadm node drain`",
        d.as_secs_f64()
    );
    assert_eq!(curls(20), 20, "new connections failed during the drain");
    let st =
        wait_exit(&mut drain, Duration::from_secs(30)).expect("uvsadm node drain did not return");
    let out = drain.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        st.success(),
        "node drain: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("withdrawn") && text.contains("uvsd stopped"),
        "{text}"
    );
    println!(
        "drain: uvsd stopped by itself {:.2} s after the command",
        t.elapsed().as_secs_f64()
    );
    let st =
        wait_exit(n1.uvsd.as_mut().unwrap(), Duration::from_secs(10)).expect("n1 uvsd still runs");
    assert!(st.success(), "n1 uvsd after drain: {st}\n{}", n1.log());
    assert!(n1.log().contains("drain finished"), "{}", n1.log());

    // n1 back.
    let t = Instant::now();
    n1.start_uvsd();
    let d = converge(&[&a1, &a2], t, Duration::from_secs(15), "n1 restarted");
    println!(
        "recovery: n1's uvsd restarted, multipath again in {:.2} s",
        d.as_secs_f64()
    );

    // Established flows while the node set changes: long-lived connections through the DR
    // service, then a third node joins.
    let flows = Flows::start(VIP_DR, FLOWS);
    let ports = flows.ports.clone();
    let before = carriers(&[&n1, &n2], &ports);
    let adopted0 = [n1.adopted(), n2.adopted()];
    let t = Instant::now();
    n3.setup();
    n3.start_bird();
    n3.start_uvsd();
    let d = converge(&[&a1, &a2, &a3], t, Duration::from_secs(20), "n3 added");
    println!(
        "n3 added: multipath via three nodes {:.2} s after its BIRD and uvsd started",
        d.as_secs_f64()
    );
    // The moved flows' next packets (every 100 ms) reach their new nodes.
    std::thread::sleep(Duration::from_millis(300));
    let after = carriers(&[&n1, &n2, &n3], &ports);
    let known = (0..ports.len())
        .filter(|i| before[*i].is_some() && after[*i].is_some())
        .count();
    let moved: Vec<usize> = (0..ports.len())
        .filter(|i| before[*i].is_some() && after[*i].is_some() && before[*i] != after[*i])
        .collect();
    let to_n3 = moved.iter().filter(|i| after[**i] == Some(3)).count();

    // New connections after the addition: how many the new node takes.
    let sched0 = [
        n1.scheduled("dsr"),
        n2.scheduled("dsr"),
        n3.scheduled("dsr"),
    ];
    let new_flows = 30;
    let ok = (0..new_flows)
        .filter(|_| {
            let o = exec(
                "client",
                &[
                    "curl",
                    "-s",
                    "--max-time",
                    "2",
                    &format!("http://{VIP_DR}/"),
                ],
            );
            String::from_utf8_lossy(&o.stdout).starts_with("rs")
        })
        .count();
    assert_eq!(ok, new_flows, "new connections through {VIP_DR} failed");
    let sched = [
        n1.scheduled("dsr") - sched0[0],
        n2.scheduled("dsr") - sched0[1],
        n3.scheduled("dsr") - sched0[2],
    ];
    assert_eq!(sched.iter().sum::<u64>(), new_flows as u64, "{sched:?}");
    println!(
        "n3 added: {} of {known} established flows changed node ({:.0} %; {to_n3} to n3, {} between \
         n1 and n2); {new_flows} new connections went {} / {} / {} to n1 / n2 / n3 (n3's share {:.0} %)",
        moved.len(),
        100.0 * moved.len() as f64 / known.max(1) as f64,
        moved.len() - to_n3,
        sched[0],
        sched[1],
        sched[2],
        100.0 * sched[2] as f64 / new_flows as f64
    );
    // n1 and n2 heard n3's sync hello when it started and sent it every connection at
    // once: the flows moved to n3 find their synced entries there (before, n3 knew none
    // until their next refresh and adopted them by hash). Every flow keeping its real
    // server is checked below, whichever way its new node knew it.
    let adopted_n3 = n3.adopted();
    let synced_n3 = n3
        .uvsadm(&["-L", "-n", "-c"])
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| String::from_utf8_lossy(l).contains(VIP_DR))
        .count();
    println!(
        "n3 added: hash adoptions n1 {}, n2 {} (flows moved between them have synced entries), \
         n3 {adopted_n3}; n3 holds {synced_n3} entries of the DR service's flows by sync",
        n1.adopted() - adopted0[0],
        n2.adopted() - adopted0[1]
    );
    assert!(
        synced_n3 + adopted_n3 as usize >= to_n3,
        "{to_n3} flows moved to n3: it knew {synced_n3} by sync and adopted {adopted_n3}"
    );

    // n2 dies: uvsd and its BIRD SIGKILLed; the router's hold timer (3 s) withdraws it.
    let on_n2: Vec<u16> = ports
        .iter()
        .zip(&after)
        .filter(|(_, c)| **c == Some(2))
        .map(|(p, _)| *p)
        .collect();
    let adopted1 = [n1.adopted(), n3.adopted()];
    let t = Instant::now();
    kill(n2.uvsd.as_mut().unwrap(), "KILL");
    kill(n2.bird.as_mut().unwrap(), "KILL");
    let d = converge(&[&a1, &a3], t, Duration::from_secs(15), "n2 killed");
    let d6 = converge_vip(
        VIP6,
        &[v1, "2001:2:0:61::13"],
        t,
        Duration::from_secs(5),
        "n2 killed (IPv6)",
    );
    println!(
        "failure: IPv6 route without n2 {:.2} s after the kill",
        d6.as_secs_f64()
    );
    // The kernel closes the killed BIRD's TCP session, so the router hears of it at once;
    // the hold timer is for a node that goes silent (below).
    println!(
        "failure: n2 (uvsd + BIRD) SIGKILLed, withdrawn by the router in {:.2} s",
        d.as_secs_f64()
    );
    assert!(
        d <= Duration::from_secs(5),
        "convergence took {d:?}, more than the hold time + 2 s"
    );
    let _ = wait_exit(n2.uvsd.as_mut().unwrap(), Duration::from_secs(5));
    let _ = wait_exit(n2.bird.as_mut().unwrap(), Duration::from_secs(5));
    assert_eq!(curls(20), 20, "new connections failed after n2 died");
    assert_eq!(
        curls_to(&url6, 10),
        10,
        "IPv6 connections failed after n2 died"
    );
    // The flows n2 carried now go through n1 and n3.
    let last = carriers(&[&n1, &n3], &ports);
    let results = flows.finish();
    let known = (0..ports.len())
        .filter(|i| after[*i].is_some() && last[*i].is_some())
        .count();
    let moved_death = (0..ports.len())
        .filter(|i| after[*i].is_some() && last[*i].is_some() && after[*i] != last[*i])
        .count();
    println!(
        "n2 died: {moved_death} of {known} established flows changed node ({} of them n2's); \
         hash adoptions since: n1 {} (it has every older flow by sync), n3 {}",
        on_n2.len(),
        n1.adopted() - adopted1[0],
        n3.adopted() - adopted1[1]
    );
    let mut per_real = std::collections::BTreeMap::new();
    for r in &results {
        assert!(
            r.error.is_none() && r.bodies.len() == 1 && r.answers >= 20,
            "flow from port {} (moved on n3's arrival: {}, was on n2: {}): {r:?}",
            r.port,
            moved.iter().any(|i| ports[*i] == r.port),
            on_n2.contains(&r.port)
        );
        *per_real
            .entry(r.bodies[0].split(' ').next().unwrap().to_string())
            .or_insert(0) += 1;
    }
    let worst = results.iter().map(|r| r.max_wait).fold(0.0, f64::max);
    let answers: u64 = results.iter().map(|r| r.answers).sum();
    println!(
        "established flows: all {} kept their real server ({per_real:?}) through n3's arrival and \
         n2's death, {answers} answers, longest wait for one {:.2} s",
        results.len(),
        worst
    );
    // A measurement, not chance: flows did change node both times.
    assert!(
        !moved.is_empty() && !on_n2.is_empty(),
        "no flow changed node"
    );

    // n2 back: BIRD first, as a node's setup does, then uvsd.
    let t = Instant::now();
    n2.start_bird();
    n2.start_uvsd();
    let d = converge(&[&a1, &a2, &a3], t, Duration::from_secs(20), "n2 restarted");
    println!(
        "recovery: n2 (BIRD + uvsd) restarted, multipath again in {:.2} s",
        d.as_secs_f64()
    );
    assert_eq!(curls(10), 10);

    // SIGTERM: uvsd withdraws before it exits (it keeps forwarding stop_delay meanwhile).
    let t = Instant::now();
    kill(n2.uvsd.as_mut().unwrap(), "TERM");
    let d = converge(&[&a1, &a3], t, Duration::from_secs(5), "SIGTERM");
    assert!(
        n2.uvsd.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the route went only after uvsd had exited"
    );
    let st = wait_exit(n2.uvsd.as_mut().unwrap(), Duration::from_secs(10))
        .expect("n2 uvsd did not exit");
    println!(
        "SIGTERM: withdrawn in {:.2} s, uvsd exited after {:.2} s",
        d.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    assert!(st.success(), "{st}");
    assert_eq!(curls(10), 10);

    // A node that goes silent (its link down: power loss, a cut cable) sends nothing: the
    // router's hold timer (3 s) withdraws it.
    let t = Instant::now();
    exec("n1", &["ip", "link", "set", "uvs-f0", "down"]);
    let d = converge(&[&a3], t, Duration::from_secs(10), "n1 silent");
    println!(
        "failure: n1 silent (link down), withdrawn by the hold timer in {:.2} s (hold time 3 s)",
        d.as_secs_f64()
    );
    // Only that it happens: when the hold timer fires depends on the last keepalive (and
    // times belong in the benchmarks, not in assertions); the time is printed above.
    assert!(
        d <= Duration::from_secs(8),
        "hold-timer convergence took {d:?}"
    );

    kill(&mut rt_bird, "TERM");
    let _ = wait_exit(&mut rt_bird, Duration::from_secs(5));
}
