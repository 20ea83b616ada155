//! End to end (as root): an active/backup pair of uvs balancers decided by keepalived's VRRP
//! (the real daemon, `--vrrp`, configured from configs/keepalived.conf with its notify
//! script scripts/keepalived/uvs-notify.sh), on the network of scripts/cluster_testbed.sh: a
//! client and both nodes on one L2, both nodes and three nginx real servers on another,
//! FullNAT services on the VIPs 198.18.0.100 and 2001:2::100, and connection sync (IPVS's
//! protocol, mode both) between the nodes.
//!
//! - Before keepalived runs, both nodes are backup and nobody answers for the VIP.
//! - keepalived makes node a master: a claims and announces the VIPs, clients are served.
//! - Node b stays backup while a lives: VRRP advertisements cross b's XDP program to its
//!   kernel (otherwise b would take over after 3 × advert_int).
//! - During a wrk run and a 50 MB download through the VIP, a's uvsd and keepalived are
//!   killed with SIGKILL (by PID). New connections succeed on b within keepalived's
//!   failover time + 3 s, the download completes byte-exact (sha256) on b thanks to sync,
//!   and the interruption and wrk's failed requests are reported.
//! - A restarted master (its uvsd killed, keepalived alive) learns the downloads b carried
//!   as soon as its sync sender says hello, takes the group back by preemption with them,
//!   and a uvsd restarted faster than the track script's `fall` gets its role back from
//!   the track script (`uvs-notify.sh --track`); both downloads complete byte for byte.

mod common;
use common::{is_root, repo, require_root};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TAG: &str = "clu";
const VIP4: &str = "198.18.0.100";
const VIP6: &str = "2001:2::100";
/// keepalived's advert_int in the example configuration.
const ADVERT_INT: f64 = 1.0;
/// Node b's VRRP priority (node a: 150).
const PRIO_B: f64 = 100.0;

fn ns(role: &str) -> String {
    format!("uvs-{TAG}-{role}")
}

fn state() -> PathBuf {
    PathBuf::from(format!("/run/uvs-cluster/{TAG}"))
}

fn exec(role: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &ns(role)])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {args:?} in {role}: {e}"))
}

fn sh(role: &str, script: &str) -> Output {
    exec(role, &["bash", "-c", script])
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The test network; torn down on drop (also when the test fails), after every process
/// this test started is killed by its PID.
struct Bed {
    children: Arc<Mutex<Vec<u32>>>,
    /// The tests of this file share one test network (TAG): one at a time, until the
    /// network is down (released after `drop`).
    _lock: std::fs::File,
}

impl Bed {
    fn up() -> Bed {
        let dir = std::path::Path::new("/run/uvs-testbed-locks");
        std::fs::create_dir_all(dir).unwrap();
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("cluster-{TAG}.lock")))
            .unwrap();
        lock.lock().unwrap();
        let out = Command::new(repo().join("scripts/cluster_testbed.sh"))
            .args(["up", TAG])
            .output()
            .unwrap();
        let bed = Bed {
            children: Arc::default(),
            _lock: lock,
        };
        assert!(out.status.success(), "cluster testbed up: {}", text(&out));
        bed
    }

    fn track(&self, pid: u32) {
        self.children.lock().unwrap().push(pid);
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for pid in self.children.lock().unwrap().iter() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new(repo().join("scripts/cluster_testbed.sh"))
            .args(["down", TAG])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One balancer node: its uvsd and keepalived.
struct Node {
    name: &'static str,
    /// Host part of uvs's own addresses on both links.
    local: u8,
    priority: u32,
    uvsd: Option<Child>,
    keepalived: Option<Child>,
}

impl Node {
    fn dir(&self) -> PathBuf {
        state().join(self.name)
    }

    fn socket(&self) -> PathBuf {
        self.dir().join("uvsadm.sock")
    }

    fn config(&self) -> String {
        let k = self.local;
        let reals = |v6: bool| {
            (1..=3)
                .map(|i| {
                    if v6 {
                        format!("{{ address: \"2001:2:0:1::1{i}\" }}")
                    } else {
                        format!("{{ address: 198.18.1.1{i} }}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "interfaces:
  - name: uvs-lb0
    local: [198.18.0.{k}, \"2001:2::{k}\"]
    networks: [198.18.0.0/24, \"2001:2::/64\"]
  - name: uvs-lb1
    local: [198.18.1.{k}, \"2001:2:0:1::{k}\"]
    networks: [198.18.1.0/24, \"2001:2:0:1::/64\"]
workers: {{ count: 1 }}
conn_table: {{ capacity: 65536 }}
services:
  - name: web4
    vip: {VIP4}
    protocol: tcp
    port: 80
    scheduler: rr
    forwarding: fullnat
    fullnat_pool: [198.18.1.100]
    real_servers: [{r4}]
  - name: web6
    vip: \"{VIP6}\"
    protocol: tcp
    port: 80
    scheduler: rr
    forwarding: fullnat
    fullnat_pool: [\"2001:2:0:1::100\"]
    real_servers: [{r6}]
cluster:
  announce: {{ count: 5, interval: 0.2 }}
  groups:
    - {{ name: web, vips: [{VIP4}, \"{VIP6}\"], role: backup }}
sync: {{ mode: both, interface: uvs-lb1, syncid: 7 }}
",
            r4 = reals(false),
            r6 = reals(true)
        )
    }

    fn start_uvsd(&mut self, bed: &Bed) {
        std::fs::create_dir_all(self.dir()).unwrap();
        let cfg = self.dir().join("uvs.yaml");
        std::fs::write(&cfg, self.config()).unwrap();
        let log = std::fs::File::create(self.dir().join("uvsd.log")).unwrap();
        // A uvsd killed with SIGKILL leaves its socket behind: waiting for the file to exist
        // would not wait for the new one.
        let _ = std::fs::remove_file(self.socket());
        let child = Command::new("ip")
            .args(["netns", "exec", &ns(self.name), env!("CARGO_BIN_EXE_uvsd")])
            .arg("--config")
            .arg(&cfg)
            .arg("--admin-socket")
            .arg(self.socket())
            .args(["--run-for", "300"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning uvsd");
        bed.track(child.id());
        self.uvsd = Some(child);
        let t0 = Instant::now();
        while !self.socket().exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "uvsd {} did not come up:\n{}",
                self.name,
                self.log("uvsd.log")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// configs/keepalived.conf for this node: its router id, interface and priority, and
    /// the binaries where the test installed them.
    fn keepalived_config(&self) -> String {
        let example = std::fs::read_to_string(repo().join("configs/keepalived.conf")).unwrap();
        let bin = state().join("bin");
        let sock = self.socket();
        let subs = [
            (
                "router_id uvs-a",
                format!("router_id uvs-{TAG}-{}", self.name),
            ),
            (
                "script \"/usr/lib/uvs/uvs-notify.sh --track\"",
                format!(
                    "script \"{} --socket {} --uvsadm {} --state-dir {} --track\"",
                    bin.join("uvs-notify.sh").display(),
                    sock.display(),
                    bin.join("uvsadm").display(),
                    self.dir().join("notify").display()
                ),
            ),
            ("interface eth0", "interface uvs-lb0".to_string()),
            ("priority 150", format!("priority {}", self.priority)),
            (
                "notify \"/usr/lib/uvs/uvs-notify.sh web\"",
                format!(
                    "notify \"{} --socket {} --uvsadm {} --state-dir {} web\"",
                    bin.join("uvs-notify.sh").display(),
                    sock.display(),
                    bin.join("uvsadm").display(),
                    self.dir().join("notify").display()
                ),
            ),
        ];
        let mut conf = example;
        for (from, to) in subs {
            assert!(
                conf.contains(from),
                "configs/keepalived.conf no longer has `{from}`"
            );
            conf = conf.replace(from, &to);
        }
        conf
    }

    fn start_keepalived(&mut self, bed: &Bed) {
        let conf = self.dir().join("keepalived.conf");
        std::fs::write(&conf, self.keepalived_config()).unwrap();
        let log = std::fs::File::create(self.dir().join("keepalived.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns(self.name), "keepalived"])
            .args(["--dont-fork", "--log-console", "--log-detail", "--vrrp"])
            .arg("--use-file")
            .arg(&conf)
            .arg("--pid")
            .arg(self.dir().join("keepalived.pid"))
            .arg("--vrrp_pid")
            .arg(self.dir().join("vrrp.pid"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning keepalived");
        bed.track(child.id());
        self.keepalived = Some(child);
        // Its VRRP child too, so that teardown kills it by PID even if this test fails.
        let pidfile = self.dir().join("vrrp.pid");
        let t0 = Instant::now();
        loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                bed.track(pid);
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "keepalived {} wrote no VRRP pid:\n{}",
                self.name,
                self.log("keepalived.log")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir().join(file)).unwrap_or_default()
    }

    fn uvsadm(&self, args: &[&str]) -> Output {
        let sock = self.socket();
        let mut a = vec![
            env!("CARGO_BIN_EXE_uvsadm"),
            "--socket",
            sock.to_str().unwrap(),
        ];
        a.extend_from_slice(args);
        exec(self.name, &a)
    }

    /// The role `uvsadm cluster` shows for group web ("MASTER"/"BACKUP"), or the error.
    fn role(&self) -> String {
        let out = self.uvsadm(&["cluster"]);
        let t = text(&out);
        t.lines()
            .find(|l| l.starts_with("web "))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_string)
            .unwrap_or(t)
    }

    fn mac(&self) -> String {
        let o = exec(self.name, &["cat", "/sys/class/net/uvs-lb0/address"]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Kills uvsd and keepalived (its parent stopped first, so it cannot restart its
    /// VRRP child) with SIGKILL, by PID, all at once: a crash, no goodbye advertisement.
    fn crash(&mut self) {
        let pid = |c: &Option<Child>| c.as_ref().map(|c| c.id().to_string()).unwrap();
        let keepalived = pid(&self.keepalived);
        let uvsd = pid(&self.uvsd);
        let vrrp = self.log("vrrp.pid").trim().to_string();
        assert!(!vrrp.is_empty(), "no VRRP child pid");
        let st = Command::new("kill")
            .args(["-STOP", &keepalived])
            .status()
            .unwrap();
        assert!(st.success());
        let st = Command::new("kill")
            .args(["-KILL", &vrrp, &keepalived, &uvsd])
            .status()
            .unwrap();
        assert!(st.success());
        for c in [self.uvsd.as_mut(), self.keepalived.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = c.wait();
        }
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    t0.elapsed()
}

fn curl_ok(url: &str, timeout: &str) -> bool {
    exec(
        "client",
        &[
            "curl",
            "-s",
            "-g",
            "-o",
            "/dev/null",
            "--max-time",
            timeout,
            url,
        ],
    )
    .status
    .success()
}

/// The MAC the client's kernel has for `ip`.
fn client_neigh(ip: &str) -> String {
    let o = exec("client", &["ip", "neigh", "show", ip]);
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    t.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .unwrap_or("none")
        .to_string()
}

/// (requests, failed) from a wrk report: socket errors and non-2xx answers.
fn wrk_counts(report: &str) -> (u64, u64) {
    let num = |s: &str| s.trim().trim_end_matches(',').parse::<u64>().unwrap_or(0);
    let requests = report
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .map(num)
        .unwrap_or(0);
    let mut failed = 0;
    for l in report.lines() {
        if let Some(rest) = l.trim().strip_prefix("Socket errors:") {
            failed += rest
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1))
                .map(num)
                .sum::<u64>();
        }
        if let Some(rest) = l.trim().strip_prefix("Non-2xx or 3xx responses:") {
            failed += num(rest);
        }
    }
    (requests, failed)
}

/// New connections, one started every 100 ms, each with 300 ms to connect: (start, end,
/// success) relative to `t0`, until `stop`.
fn probe(t0: Instant, stop: Arc<AtomicBool>) -> Vec<(f64, f64, bool)> {
    let mut running: Vec<(f64, Child)> = Vec::new();
    let mut done = Vec::new();
    let url = format!("http://{VIP4}/");
    while !stop.load(Ordering::Relaxed) || !running.is_empty() {
        if !stop.load(Ordering::Relaxed) {
            let c = Command::new("ip")
                .args(["netns", "exec", &ns("client")])
                .args(["curl", "-s", "-o", "/dev/null", "--connect-timeout", "0.3"])
                .args(["--max-time", "1", &url])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            running.push((t0.elapsed().as_secs_f64(), c));
        }
        std::thread::sleep(Duration::from_millis(100));
        running.retain_mut(|(start, c)| match c.try_wait() {
            Ok(Some(st)) => {
                done.push((*start, t0.elapsed().as_secs_f64(), st.success()));
                false
            }
            _ => true,
        });
    }
    done
}

fn sha256(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Installs the notify script and uvsadm root-owned and not writable by others, as the
/// example's `enable_script_security` requires (and as an operator installs them).
fn install_bins() {
    let bin = state().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in [state().parent().unwrap(), &state(), &bin] {
        let st = Command::new("chmod").arg("0755").arg(d).status().unwrap();
        assert!(st.success());
    }
    for (src, name) in [
        (
            repo().join("scripts/keepalived/uvs-notify.sh"),
            "uvs-notify.sh",
        ),
        (PathBuf::from(env!("CARGO_BIN_EXE_uvsadm")), "uvsadm"),
    ] {
        let st = Command::new("install")
            .args(["-m", "0755"])
            .arg(&src)
            .arg(bin.join(name))
            .status()
            .unwrap();
        assert!(st.success(), "installing {}", src.display());
    }
}

#[test]
#[ignore = "needs root: network namespaces, XDP, AF_XDP and keepalived (scripts/test.sh runs it as root)"]
fn keepalived_fails_over_to_the_backup_node() {
    require_root("keepalived_fails_over_to_the_backup_node");
    assert!(is_root());
    for tool in ["keepalived", "nginx", "wrk", "curl"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success(),
            "{tool} is not installed: .ci/run --deps-only installs it"
        );
    }
    let bed = Bed::up();
    install_bins();
    let mut a = Node {
        name: "a",
        local: 21,
        priority: 150,
        uvsd: None,
        keepalived: None,
    };
    let mut b = Node {
        name: "b",
        local: 22,
        priority: 100,
        uvsd: None,
        keepalived: None,
    };
    a.start_uvsd(&bed);
    b.start_uvsd(&bed);

    // The example keepalived.conf is accepted; keepalived only notes that it has no VIP.
    let check = sh(
        "a",
        &format!(
            "keepalived --config-test --log-console --use-file {} 2>&1; true",
            {
                std::fs::write(a.dir().join("keepalived.conf"), a.keepalived_config()).unwrap();
                a.dir().join("keepalived.conf").display().to_string()
            }
        ),
    );
    let complaints: Vec<String> = text(&check)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("No VIP specified"))
        .map(str::to_string)
        .collect();
    assert!(
        complaints.is_empty(),
        "keepalived --config-test on configs/keepalived.conf: {complaints:?}"
    );

    // Both backup: nobody claims the VIP, nobody answers ARP for it.
    assert_eq!(a.role(), "BACKUP");
    assert_eq!(b.role(), "BACKUP");
    assert!(
        !curl_ok(&format!("http://{VIP4}/"), "1"),
        "a VIP of a group in backup on every node must not be served"
    );
    assert_eq!(client_neigh(VIP4), "none", "no ARP answer from a backup");

    // keepalived on a: a becomes master (3 × advert_int + skew), claims and announces.
    a.start_keepalived(&bed);
    let took = wait_until("node a master", Duration::from_secs(15), || {
        a.role() == "MASTER"
    });
    eprintln!("node a became master {took:.1?} after keepalived started");
    wait_until("VIP served through a", Duration::from_secs(5), || {
        curl_ok(&format!("http://{VIP4}/"), "1")
    });
    assert!(curl_ok(&format!("http://[{VIP6}]/"), "2"), "IPv6 VIP");
    assert_eq!(
        client_neigh(VIP4),
        a.mac(),
        "the client reaches the VIP at a"
    );

    // keepalived on b: b stays backup, because a's advertisements cross b's XDP program
    // to its kernel; without them b would be master after 3 × advert_int.
    b.start_keepalived(&bed);
    wait_until("b's keepalived in BACKUP", Duration::from_secs(10), || {
        b.log("keepalived.log").contains("Entering BACKUP STATE")
    });
    std::thread::sleep(Duration::from_secs_f64(4.5 * ADVERT_INT));
    assert!(
        !b.log("keepalived.log").contains("Entering MASTER STATE"),
        "b took over while a lives: VRRP did not reach b's kernel\n{}",
        b.log("keepalived.log")
    );
    assert_eq!((a.role(), b.role()), ("MASTER".into(), "BACKUP".into()));

    // Traffic through a: a wrk run (a new connection per request) and a rate-limited
    // 50 MB download; new-connection probes every 100 ms.
    let t0 = Instant::now();
    let wrk = std::thread::spawn(|| {
        let o = exec(
            "client",
            &[
                "timeout",
                "40",
                "wrk",
                "-t1",
                "-c4",
                "-d16s",
                "--timeout",
                "2s",
                "-H",
                "Connection: close",
                &format!("http://{VIP4}/"),
            ],
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    });
    let dl_path = state().join("download");
    let dl = {
        let path = dl_path.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let o = exec(
                "client",
                &[
                    "curl",
                    "-s",
                    "-o",
                    path.to_str().unwrap(),
                    "--limit-rate",
                    "4M",
                    "--max-time",
                    "90",
                    "--speed-limit",
                    "1",
                    "--speed-time",
                    "30",
                    "-w",
                    "%{http_code} %{size_download}",
                    &format!("http://{VIP4}/big"),
                ],
            );
            (o.status.success(), text(&o), started.elapsed())
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let probes = {
        let stop = stop.clone();
        std::thread::spawn(move || probe(t0, stop))
    };
    std::thread::sleep(Duration::from_secs(4));

    // Sync has given b the download's connection before the crash.
    let conns = text(&b.uvsadm(&["-L", "-n", "-c"]));
    assert!(
        conns
            .lines()
            .any(|l| l.contains("ESTABLISHED") && l.contains("198.18.0.2:")),
        "b has no synced established connection from the client:\n{conns}"
    );

    let killed_at = t0.elapsed().as_secs_f64();
    a.crash();
    let failover = 3.0 * ADVERT_INT + (256.0 - PRIO_B) / 256.0 * ADVERT_INT;
    wait_until("b master", Duration::from_secs(15), || b.role() == "MASTER");
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let probes = probes.join().unwrap();
    let report = wrk.join().unwrap();
    let (dl_ok, dl_out, dl_took) = dl.join().unwrap();

    let before_ok = probes.iter().filter(|p| p.0 < killed_at && p.2).count();
    let recovered = probes
        .iter()
        .filter(|p| p.0 >= killed_at && p.2)
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min);
    let interruption = recovered - killed_at;
    let (requests, failed) = wrk_counts(&report);
    let want = std::fs::read_to_string(state().join("big.sha256")).unwrap();
    let got = sha256(&dl_path);
    eprintln!(
        "failover: a killed at {killed_at:.2} s; new connections through b after \
         {interruption:.2} s (keepalived failover time {failover:.2} s, bound {:.2} s); \
         {} probes ok before the crash; wrk: {requests} requests, {failed} failed; \
         50 MB download: {dl_out} in {dl_took:.1?}, sha256 {}",
        failover + 3.0,
        before_ok,
        if got == want.trim() {
            "matches"
        } else {
            "DIFFERS"
        }
    );
    eprintln!("wrk report:\n{report}");

    assert!(before_ok > 0, "no probe succeeded before the crash");
    // 3 s beyond keepalived's own time covers the notify script, the announcement and the
    // probes' own start on a loaded machine; what this guards (a VIP that waits for the
    // client's neighbour cache to time out, or for a restart) takes 30 s or more.
    assert!(
        interruption <= failover + 3.0,
        "new connections resumed {interruption:.2} s after the crash, more than keepalived's \
         failover time {failover:.2} s + 3 s\nb's keepalived:\n{}\nb's uvsd:\n{}",
        b.log("keepalived.log"),
        b.log("uvsd.log")
    );
    assert!(requests > 0, "wrk made no request:\n{report}");
    // b claimed the group and announced it: the client now reaches the VIPs at b.
    let listing = text(&b.uvsadm(&["cluster"]));
    assert!(
        listing.contains("web              MASTER"),
        "b's listing:\n{listing}"
    );
    let sent: u64 = listing
        .lines()
        .find_map(|l| l.strip_prefix("Announcements sent: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(sent >= 4, "b announced {sent} frames:\n{listing}");
    assert_eq!(
        client_neigh(VIP4),
        b.mac(),
        "gratuitous ARP moved the VIP to b"
    );
    assert!(
        curl_ok(&format!("http://[{VIP6}]/"), "2"),
        "IPv6 VIP through b"
    );
    assert_eq!(
        client_neigh(VIP6),
        b.mac(),
        "unsolicited NA moved the IPv6 VIP"
    );
    // The download that started through a finished through b, byte for byte.
    assert!(
        dl_ok,
        "the download did not complete across the failover: {dl_out}"
    );
    assert_eq!(
        got,
        want.trim(),
        "the download differs from the file served"
    );

    // A reload keeps the role keepalived gave (the file still says backup, unchanged).
    let hup = Command::new("kill")
        .args(["-HUP", &b.uvsd.as_ref().unwrap().id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_until("b's reload", Duration::from_secs(5), || {
        b.log("uvsd.log").contains("configuration reloaded")
    });
    assert_eq!(b.role(), "MASTER", "a reload must not undo VRRP's decision");
    // One curl may meet a lost SYN on this loaded two-core machine (CI saw one fail once,
    // cause not found): a reload that stops serving fails all three tries, and a first
    // failure prints what b had, so the next occurrence can be diagnosed.
    let tries: Vec<bool> = (0..3)
        .scan(false, |served, _| {
            if *served {
                return None;
            }
            *served = curl_ok(&format!("http://{VIP4}/"), "2");
            Some(*served)
        })
        .collect();
    if tries.first() == Some(&false) {
        eprintln!(
            "after the reload the first curl failed ({} tries: {tries:?})\nb's uvsd:\n{}\nb's table:\n{}\nb's stats:\n{}",
            tries.len(),
            b.log("uvsd.log"),
            text(&b.uvsadm(&["-L", "-n", "-c"])),
            text(&b.uvsadm(&["-L", "-n", "--stats"]))
        );
    }
    assert!(
        tries.last() == Some(&true),
        "not served after the reload: {tries:?}"
    );
    // A group uvsd does not have is refused, and changes nothing.
    let bad = b.uvsadm(&["cluster", "role", "nosuch", "backup"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("no cluster group 'nosuch': the groups are web"),
        "{}",
        text(&bad)
    );
    assert_eq!(b.role(), "MASTER");
    drop(bed);
}

/// A download started through the client, IPv4 or IPv6 (`-g` for a bracketed address).
fn download(url: &str, to: &Path) -> std::thread::JoinHandle<(bool, String)> {
    let (url, to) = (url.to_string(), to.to_path_buf());
    std::thread::spawn(move || {
        let o = exec(
            "client",
            &[
                "curl",
                "-s",
                "-g",
                "-o",
                to.to_str().unwrap(),
                "--limit-rate",
                "2M",
                "--max-time",
                "90",
                "-w",
                "%{http_code} %{size_download} bytes in %{time_total} s %{errormsg}",
                &url,
            ],
        );
        // curl's exit status tells a reset (56) from a stall until --max-time (28).
        let status = o.status.code().map_or("a signal".into(), |c| c.to_string());
        (
            o.status.success(),
            format!("curl exit status {status}: {}", text(&o)),
        )
    })
}

impl Node {
    /// SIGKILL to uvsd alone (keepalived goes on), by PID.
    fn kill_uvsd(&mut self) {
        let mut c = self.uvsd.take().expect("uvsd running");
        let st = Command::new("kill")
            .args(["-KILL", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let _ = c.wait();
    }

    fn has_client_conn(&self, client: &str) -> bool {
        text(&self.uvsadm(&["-L", "-n", "-c"]))
            .lines()
            .any(|l| l.contains("ESTABLISHED") && l.contains(client))
    }
}

/// The master's uvsd dies while downloads (IPv4 and IPv6) run; keepalived moves the group
/// to b, which carries them on their synced entries. The master's uvsd restarts: b, which
/// owns those flows since their first packet through it, sends them to the restarted node
/// as soon as it hears it, so when VRRP hands the group back (preemption) the downloads go
/// on through a. Then a's uvsd dies and is back at once (as systemd restarts it), faster
/// than the track script's `fall`: keepalived stays MASTER and notifies nothing, and the
/// track script gives the new uvsd its role back. Segments of the downloads that reach the
/// new uvsd before b's answer are dropped unanswered, not reset (`Shared::sync_learning`),
/// and retransmitted. Both downloads complete byte for byte.
#[test]
#[ignore = "needs root: network namespaces, XDP, AF_XDP and keepalived (scripts/test.sh runs it as root)"]
fn a_restarted_master_takes_the_group_back_with_its_connections() {
    require_root("a_restarted_master_takes_the_group_back_with_its_connections");
    let bed = Bed::up();
    install_bins();
    let mut a = Node {
        name: "a",
        local: 21,
        priority: 150,
        uvsd: None,
        keepalived: None,
    };
    let mut b = Node {
        name: "b",
        local: 22,
        priority: 100,
        uvsd: None,
        keepalived: None,
    };
    a.start_uvsd(&bed);
    b.start_uvsd(&bed);
    a.start_keepalived(&bed);
    wait_until("a master", Duration::from_secs(15), || a.role() == "MASTER");
    b.start_keepalived(&bed);
    wait_until("b's keepalived in BACKUP", Duration::from_secs(10), || {
        b.log("keepalived.log").contains("Entering BACKUP STATE")
    });
    wait_until("VIP served through a", Duration::from_secs(5), || {
        curl_ok(&format!("http://{VIP4}/"), "1")
    });

    let dl4 = download(&format!("http://{VIP4}/big"), &state().join("dl4"));
    let dl6 = download(&format!("http://[{VIP6}]/big"), &state().join("dl6"));
    wait_until(
        "b has both downloads by sync",
        Duration::from_secs(10),
        || b.has_client_conn("198.18.0.2:") && b.has_client_conn("[2001:2::2]:"),
    );

    a.kill_uvsd();
    wait_until("b master", Duration::from_secs(15), || b.role() == "MASTER");
    std::thread::sleep(Duration::from_secs(1));
    a.start_uvsd(&bed);
    // b sends its connections to the restarted node at once, not at its next refresh (30 s).
    let learnt = wait_until(
        "the restarted a has the downloads",
        Duration::from_secs(5),
        || a.has_client_conn("198.18.0.2:") && a.has_client_conn("[2001:2::2]:"),
    );
    let back = wait_until("a master again", Duration::from_secs(15), || {
        a.role() == "MASTER" && b.role() == "BACKUP"
    });
    eprintln!("restarted a had the downloads after {learnt:.1?}, the group after {back:.1?}");

    // Back at once, as systemd restarts it: keepalived never leaves MASTER.
    let seen = a.log("keepalived.log").len();
    a.kill_uvsd();
    a.start_uvsd(&bed);
    let again = wait_until(
        "a master after a quick restart",
        Duration::from_secs(5),
        || a.role() == "MASTER",
    );
    eprintln!("a quickly restarted uvsd was master again after {again:.1?}");
    assert!(
        !a.log("keepalived.log")[seen..].contains("Entering FAULT STATE"),
        "the quick restart was meant to be shorter than the track script's fall"
    );
    assert!(curl_ok(&format!("http://{VIP4}/"), "2"), "served through a");

    let want = std::fs::read_to_string(state().join("big.sha256")).unwrap();
    for (dl, file) in [(dl4, "dl4"), (dl6, "dl6")] {
        let (ok, out) = dl.join().unwrap();
        assert!(
            ok,
            "{file}: the download did not complete: {out}\n--- a:\n{}\n--- b:\n{}",
            text(&a.uvsadm(&["top", "--once"])),
            text(&b.uvsadm(&["top", "--once"]))
        );
        assert_eq!(sha256(&state().join(file)), want.trim(), "{file} differs");
    }
    drop(bed);
}
