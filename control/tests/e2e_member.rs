//! End to end: the director-less member mode (#15's multicast study). A client and three
//! members on one Linux bridge; every member holds the VIP on its loopback and runs nginx
//! (answering its own name) and uvsd in member mode. The client resolves the VIP by ARP to
//! the cluster's multicast MAC (answered by the first healthy member's filter), so the
//! bridge floods every frame to all members and each keeps only its Maglev share.
//!
//! Checked: every request is answered, by exactly the member uvsd's Maglev table names
//! for its flow (predicted here from the same table and the filter's hash), each request
//! once (the members' access logs); every member saw the same frames. Then one member's
//! nginx is stopped by PID: its health check fails, the others take its share, and
//! requests keep succeeding on the remaining two, again each on its predicted member.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use uvs_xsk::{flow_slot, MemberHash, MemberSettings};

const TAG: &str = "mbr";
const VIP: &str = "198.18.71.100";
const CLIENT: &str = "198.18.71.2";
const MEMBERS: [&str; 3] = ["198.18.71.11", "198.18.71.12", "198.18.71.13"];

fn ns(role: &str) -> String {
    format!("uvs-{TAG}-{role}")
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

fn must(args: &[&str]) {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn in_ns(role: &str, args: &[&str]) -> Output {
    let n = ns(role);
    let mut a = vec!["ip", "netns", "exec", n.as_str()];
    a.extend_from_slice(args);
    run(&a)
}

/// The network and its processes; everything goes on drop, also when the test fails.
struct Net {
    dir: PathBuf,
    uvsd: Vec<Child>,
}

impl Net {
    fn up() -> Net {
        let dir = PathBuf::from(format!("/run/uvs-testbed/{TAG}-member"));
        let mut net = Net {
            dir: dir.clone(),
            uvsd: Vec::new(),
        };
        net.teardown();
        std::fs::create_dir_all(&dir).unwrap();
        // The bridge lives in a namespace of its own: nothing touches the host's links.
        let sw = ns("sw");
        let br = ns("br");
        must(&["ip", "netns", "add", &sw]);
        must(&["ip", "-n", &sw, "link", "add", &br, "type", "bridge"]);
        must(&["ip", "-n", &sw, "link", "set", &br, "up"]);
        for role in ["client", "m1", "m2", "m3"] {
            let n = ns(role);
            must(&["ip", "netns", "add", &n]);
            must(&["ip", "-n", &n, "link", "set", "lo", "up"]);
            let port = ns(role);
            must(&[
                "ip", "link", "add", &port, "netns", &sw, "type", "veth", "peer", "name", "eth0",
                "netns", &n,
            ]);
            must(&["ip", "-n", &sw, "link", "set", &port, "master", &br, "up"]);
            must(&["ip", "-n", &n, "link", "set", "eth0", "up"]);
        }
        must(&[
            "ip",
            "-n",
            &ns("client"),
            "addr",
            "add",
            &format!("{CLIENT}/24"),
            "dev",
            "eth0",
        ]);
        for (i, addr) in MEMBERS.iter().enumerate() {
            let n = ns(&format!("m{}", i + 1));
            must(&[
                "ip",
                "-n",
                &n,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            must(&[
                "ip",
                "-n",
                &n,
                "addr",
                "add",
                &format!("{VIP}/32"),
                "dev",
                "lo",
            ]);
            // As for LVS-DR real servers: the kernel must not name the VIP as the source of
            // its own ARP requests, or the client would learn the VIP at this member's MAC.
            must(&[
                "ip",
                "netns",
                "exec",
                &n,
                "sysctl",
                "-qw",
                "net.ipv4.conf.all.arp_announce=2",
                "net.ipv4.conf.eth0.arp_announce=2",
            ]);
        }
        net
    }

    fn member_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("m{}", i + 1))
    }

    fn socket(&self, i: usize) -> PathBuf {
        self.member_dir(i).join("uvsadm.sock")
    }

    fn config(&self, i: usize) -> String {
        let metrics = if i == 0 {
            "metrics:\n  listen: 127.0.0.1:9100\n"
        } else {
            ""
        };
        // Generic XDP: on veth in native mode, kept frames got no answer and the ARP reply
        // (XDP_TX) never reached the bridge (bench/README.md, member mode).
        format!(
            "interfaces:\n  - name: eth0\n    networks: [198.18.71.0/24]\n    xdp_mode: generic\n\
             {metrics}member:\n  interface: eth0\n  vip: {VIP}\n  ports: [80]\n  \
             members: [{}]\n  me: {}\n  \
             health_check: {{ type: tcp, interval: 0.5, timeout: 0.4, rise: 2, fall: 2 }}\n",
            MEMBERS.join(", "),
            MEMBERS[i]
        )
    }

    fn start_member(&mut self, i: usize) {
        let d = self.member_dir(i);
        std::fs::create_dir_all(&d).unwrap();
        let dd = d.display();
        let name = format!("m{}", i + 1);
        std::fs::write(
            d.join("nginx.conf"),
            format!(
                "daemon on;\npid {dd}/nginx.pid;\nerror_log {dd}/error.log;\nworker_processes 1;\n\
                 events {{ worker_connections 1024; }}\nhttp {{\n  log_format port '$remote_port';\n  \
                 access_log {dd}/access.log port;\n  client_body_temp_path {dd};\n  \
                 proxy_temp_path {dd};\n  fastcgi_temp_path {dd};\n  uwsgi_temp_path {dd};\n  \
                 scgi_temp_path {dd};\n  server {{\n    listen 80 default_server;\n    \
                 location / {{ return 200 \"{name}\"; }}\n  }}\n}}\n"
            ),
        )
        .unwrap();
        let conf = d.join("nginx.conf");
        let o = in_ns(
            &name,
            &[
                "nginx",
                "-c",
                conf.to_str().unwrap(),
                "-e",
                &format!("{dd}/error.log"),
            ],
        );
        assert!(
            o.status.success(),
            "nginx: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let cfg = d.join("uvs.yaml");
        std::fs::write(&cfg, self.config(i)).unwrap();
        let log = std::fs::File::create(d.join("uvsd.log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns(&name),
                env!("CARGO_BIN_EXE_uvsd"),
                "--config",
            ])
            .arg(&cfg)
            .arg("--admin-socket")
            .arg(self.socket(i))
            .args(["--run-for", "600"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning uvsd");
        self.uvsd.push(child);
        let start = Instant::now();
        while !self.socket(i).exists() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "uvsd of {name} did not come up:\n{}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.member_dir(i).join("uvsd.log")).unwrap_or_default()
    }

    fn uvsadm_member(&self, i: usize) -> String {
        let sock = self.socket(i);
        let o = in_ns(
            &format!("m{}", i + 1),
            &[
                env!("CARGO_BIN_EXE_uvsadm"),
                "--socket",
                sock.to_str().unwrap(),
                "member",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn nginx_pid(&self, i: usize) -> Option<u32> {
        std::fs::read_to_string(self.member_dir(i).join("nginx.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }

    /// The client ports each member's nginx logged.
    fn served_ports(&self, i: usize) -> Vec<u16> {
        std::fs::read_to_string(self.member_dir(i).join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn teardown(&mut self) {
        for mut c in self.uvsd.drain(..) {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let start = Instant::now();
            while c.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for i in 0..3 {
            if let Some(pid) = self.nginx_pid(i) {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
        for role in ["client", "m1", "m2", "m3", "sw"] {
            // Whatever still runs in the namespace (a process whose PID file was not
            // read) goes first, or it would outlive the namespace's name.
            if let Ok(o) = Command::new("ip")
                .args(["netns", "pids", &ns(role)])
                .stderr(Stdio::null())
                .output()
            {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip")
                .args(["netns", "del", &ns(role)])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// One request's outcome: (member that answered, client port), or `None` for a failure.
type Answer = Option<(usize, u16)>;

/// `n` GETs, each on a new connection (so from a new source port), in one curl process.
fn requests(n: usize, out: &Path) -> Vec<Answer> {
    let url = format!("http://{VIP}/?[1-{n}]");
    let o = in_ns(
        "client",
        &[
            "curl",
            "-s",
            // 3 s: a SYN lost on a loaded machine is sent again after 1 s.
            "--max-time",
            "3",
            "-H",
            "Connection: close",
            &url,
            "-w",
            " %{http_code} %{local_port}\\n",
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    std::fs::write(out, &text).unwrap();
    text.lines()
        .map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [name, "200", port] => Some((
                name.trim_start_matches('m').parse::<usize>().ok()? - 1,
                port.parse().ok()?,
            )),
            _ => None,
        })
        .collect()
}

/// Who owns a client port's flow, per uvsd's table for one health state.
struct Owners {
    table: Vec<u16>,
    settings: MemberSettings,
}

impl Owners {
    fn new(cfg: &uvs_config::MemberConfig, healthy: &[bool]) -> Owners {
        Owners {
            table: uvs_control::member::build_table(cfg, healthy).unwrap(),
            settings: MemberSettings {
                vip: VIP.parse().unwrap(),
                me: 0,
                proto: 6,
                ports: vec![80],
                hash: MemberHash::FiveTuple,
                cluster_mac: cfg.cluster_mac,
                own_mac: [0; 6],
                table_size: cfg.table_size,
            },
        }
    }

    fn of(&self, cport: u16) -> usize {
        let client: Ipv4Addr = CLIENT.parse().unwrap();
        let m = self.settings.table_size;
        usize::from(self.table[flow_slot(&self.settings, client, cport, 80, m)])
    }
}

/// (kept, other member) of member `i`'s filter, from `uvsadm member`.
fn filter_counts(listing: &str) -> (u64, u64) {
    let line = listing
        .lines()
        .find(|l| l.starts_with("Packets:"))
        .expect("a Packets line");
    let num = |after: &str| -> u64 {
        let rest = &line[line.find(after).unwrap() + after.len()..];
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (num("kept"), num("other member"))
}

#[test]
#[ignore = "needs root: network namespaces, a bridge, XDP, nginx"]
fn members_share_the_vip_and_take_over_a_failed_one() {
    common::require_root("e2e_member");
    let mut net = Net::up();
    for i in 0..3 {
        net.start_member(i);
    }
    let cfg = uvs_config::load_str(&net.config(0), "m1.yaml")
        .unwrap()
        .member
        .unwrap();

    // 1. All up: 300 connections from distinct source ports.
    let all_up = [true; 3];
    let answers = requests(300, &net.dir.join("batch1.txt"));
    assert_eq!(answers.len(), 300);
    let failed = answers.iter().filter(|a| a.is_none()).count();
    assert_eq!(failed, 0, "every request answered (client ARP: {:?})", {
        String::from_utf8_lossy(&in_ns("client", &["ip", "neigh"]).stdout).into_owned()
    });
    let owners = Owners::new(&cfg, &all_up);
    let mut per_member = [0usize; 3];
    for (m, port) in answers.iter().flatten() {
        assert_eq!(
            *m,
            owners.of(*port),
            "port {port} answered by m{} against the table",
            m + 1
        );
        per_member[*m] += 1;
    }
    assert!(
        per_member.iter().all(|&k| k >= 60),
        "a third each, roughly: {per_member:?}"
    );
    // Each request served once: its port is in exactly one access log.
    // (nginx logs a request after answering it: the last line may lag the answer.)
    let start = Instant::now();
    let logs = loop {
        let logs: Vec<Vec<u16>> = (0..3).map(|i| net.served_ports(i)).collect();
        if logs.iter().map(Vec::len).sum::<usize>() >= 300
            || start.elapsed() > Duration::from_secs(2)
        {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        logs.iter().map(Vec::len).sum::<usize>(),
        300,
        "{per_member:?}"
    );
    for (m, port) in answers.iter().flatten() {
        assert!(logs[*m].contains(port));
    }
    // Every member saw every frame (flooded), and judged each once.
    let counts: Vec<(u64, u64)> = (0..3)
        .map(|i| filter_counts(&net.uvsadm_member(i)))
        .collect();
    let seen: Vec<u64> = counts.iter().map(|(k, o)| k + o).collect();
    assert!(
        seen[0] > 0 && seen.iter().all(|&s| s == seen[0]),
        "{counts:?}"
    );
    eprintln!("all up: answers per member {per_member:?}, filter (kept, other) {counts:?}");

    // 2. m2's nginx stops (by PID) while requests run.
    let survivors = [true, false, true];
    let pid = net.nginx_pid(1).expect("nginx of m2 runs");
    let out = net.dir.join("batch2.txt");
    let began = Instant::now();
    let during = std::thread::spawn(move || {
        let a = requests(12_000, &out);
        (a, began.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    must(&["kill", &pid.to_string()]);
    let killed = Instant::now();
    let start = Instant::now();
    loop {
        let views: Vec<String> = [0, 2].iter().map(|&i| net.uvsadm_member(i)).collect();
        if views.iter().all(|v| {
            v.lines()
                .any(|l| l.contains(MEMBERS[1]) && l.contains("down"))
                && v.contains("tables published: 2")
        }) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "m2's failure was not noticed:\n{}\n{}",
            views[0],
            net.log(0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let noticed = killed.elapsed();
    let (during, took) = during.join().unwrap();
    let lost = during.iter().filter(|a| a.is_none()).count();
    eprintln!(
        "m2 stopped 300 ms into a run of {} requests lasting {took:?}: both survivors \
         republished within {noticed:?}; {lost} requests failed",
        during.len()
    );
    // The survivors' flows never moved: each answer came from the flow's owner in the old
    // table, or, for m2's flows, in the new one. Only m2's flows can have failed.
    let (old, new) = (Owners::new(&cfg, &all_up), Owners::new(&cfg, &survivors));
    for (m, port) in during.iter().flatten() {
        let before = old.of(*port);
        assert!(
            *m == before || (before == 1 && *m == new.of(*port)),
            "port {port}: answered by m{}, owner m{}",
            m + 1,
            before + 1
        );
    }
    assert!(lost < during.len() / 3, "{lost} failed");

    // 3. After the take-over: everything answered by m1 and m3, per the new table.
    let answers = requests(200, &net.dir.join("batch3.txt"));
    assert!(
        answers.iter().all(Option::is_some),
        "every request answered"
    );
    let owners = Owners::new(&cfg, &survivors);
    let mut per_member = [0usize; 3];
    for (m, port) in answers.iter().flatten() {
        assert_eq!(*m, owners.of(*port), "port {port}");
        per_member[*m] += 1;
    }
    assert_eq!(per_member[1], 0);
    assert!(per_member[0] >= 50 && per_member[2] >= 50, "{per_member:?}");

    // The state is visible in uvsadm and the metrics.
    let listing = net.uvsadm_member(0);
    assert!(listing.contains("198.18.71.11 (me) [arp]"), "{listing}");
    let m = in_ns("m1", &["curl", "-s", "http://127.0.0.1:9100/metrics"]);
    let m = String::from_utf8_lossy(&m.stdout);
    assert!(
        m.contains("uvs_member_up{member=\"198.18.71.12\",me=\"false\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("uvs_member_table_entries{member=\"198.18.71.12\"} 0"),
        "{m}"
    );

    // 4. m3's uvsd dies (SIGKILL) while its nginx runs on: its filter is gone, its kernel
    // drops the VIP's frames, and its check still passes. Its silent heartbeat takes it out
    // of m1's table, and m1 serves everything. (Before, m1 kept m3's share: a third of the
    // requests failed for as long as it stayed so.)
    let pid = net.uvsd[2].id();
    must(&["kill", "-KILL", &pid.to_string()]);
    let _ = net.uvsd[2].wait();
    let start = Instant::now();
    loop {
        let view = net.uvsadm_member(0);
        if view
            .lines()
            .any(|l| l.contains(MEMBERS[2]) && l.contains("silent"))
            && view.contains("tables published: 3")
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "m3's dead uvsd was not noticed:\n{view}\n{}",
            net.log(0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "m3's uvsd killed: m1 took its share within {:?}",
        start.elapsed()
    );
    assert!(net.nginx_pid(2).is_some(), "m3's nginx still runs");
    let answers = requests(100, &net.dir.join("batch4.txt"));
    let by_m1 = answers.iter().filter(|a| matches!(a, Some((0, _)))).count();
    assert_eq!(by_m1, 100, "every request answered by m1: {answers:?}");

    // 5. m1's link is removed and made again (its veth pair recreated, as when a
    // container's network restarts): its uvsd attaches the filter to the new eth0 with
    // the table it had, and serves on. (Before, it stopped for a restart.)
    let (m1, sw, port) = (ns("m1"), ns("sw"), ns("m1"));
    must(&["ip", "-n", &m1, "link", "del", "eth0"]);
    must(&[
        "ip", "link", "add", &port, "netns", &sw, "type", "veth", "peer", "name", "eth0", "netns",
        &m1,
    ]);
    must(&[
        "ip",
        "-n",
        &sw,
        "link",
        "set",
        &port,
        "master",
        &ns("br"),
        "up",
    ]);
    must(&["ip", "-n", &m1, "link", "set", "eth0", "up"]);
    must(&[
        "ip",
        "-n",
        &m1,
        "addr",
        "add",
        &format!("{}/24", MEMBERS[0]),
        "dev",
        "eth0",
    ]);
    let start = Instant::now();
    while !net.log(0).contains("eth0: attached again") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "m1 did not attach again:\n{}",
            net.log(0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        net.uvsd[0].try_wait().unwrap().is_none(),
        "m1's uvsd still runs:\n{}",
        net.log(0)
    );
    let answers = requests(100, &net.dir.join("batch5.txt"));
    let by_m1 = answers.iter().filter(|a| matches!(a, Some((0, _)))).count();
    assert_eq!(
        by_m1,
        100,
        "every request answered by m1 on its new link: {answers:?}\n{}",
        net.log(0)
    );
}
