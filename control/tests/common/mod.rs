//! End-to-end test support: a test network from scripts/testbed.sh (torn down on drop,
//! also when the test fails) and uvsd running in its balancer namespace.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// The end-to-end tests are `#[ignore]`d (cargo lists them as ignored, not passed);
/// `scripts/test.sh` runs them as root with `--include-ignored`. Run without root anyway,
/// one fails here, saying why, rather than passing without having tested anything.
pub fn require_root(test: &str) {
    assert!(
        is_root(),
        "{test} needs root (network namespaces, veth, XDP and AF_XDP): run it as root, \
         e.g. scripts/test.sh under sudo"
    );
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub struct Testbed {
    pub tag: String,
    pub state: PathBuf,
    uvsd: Option<Child>,
    /// Held until the testbed is down (fields drop after `Drop::drop`): another run of
    /// the same test, which would use the same namespace names, waits for it.
    _lock: std::fs::File,
}

/// An exclusive lock on `tag`'s testbed, taken before it is brought up: two runs of one
/// test at once (two checkouts, two terminals) would otherwise tear down each other's
/// namespaces, which share names, and fail in ways that look like forwarding bugs.
fn tag_lock(tag: &str) -> std::fs::File {
    let dir = Path::new("/run/uvs-testbed-locks");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {dir:?}: {e}"));
    let path = dir.join(format!("{tag}.lock"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {path:?}: {e}"));
    f.lock().unwrap_or_else(|e| panic!("locking {path:?}: {e}"));
    f
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    out
}

impl Testbed {
    /// Brings up a testbed; `tag` must be unique among concurrently running tests.
    pub fn up(tag: &str, mode: &str) -> Testbed {
        Self::up_with(tag, mode, 1)
    }

    /// A testbed whose balancer links have `queues` queues each.
    pub fn up_with(tag: &str, mode: &str, queues: usize) -> Testbed {
        let lock = tag_lock(tag);
        let q = queues.to_string();
        let out = run(Command::new(repo().join("scripts/testbed.sh"))
            .args(["up", tag, "--mode", mode, "--queues", &q]));
        let tb = Testbed {
            tag: tag.to_string(),
            state: PathBuf::from(format!("/run/uvs-testbed/{tag}")),
            uvsd: None,
            _lock: lock,
        };
        assert!(
            out.status.success(),
            "testbed up failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The links keep veth's default transmit checksum offload, as containers have it:
        // the sockets of the client and the real servers send partial checksums, and the
        // tests pass only if uvs completes them.
        for (role, dev) in [("client", "uvs-c0"), ("rs1", "uvs-r0")] {
            let k = tb.exec(role, &["ethtool", "-k", dev]);
            let k = String::from_utf8_lossy(&k.stdout);
            assert!(
                k.lines().any(|l| l.trim() == "tx-checksumming: on"),
                "{role} {dev}: transmit checksum offload should be on:\n{k}"
            );
        }
        tb
    }

    pub fn ns(&self, role: &str) -> String {
        format!("uvs-{}-{role}", self.tag)
    }

    /// Runs a command in a namespace of the testbed.
    pub fn exec(&self, role: &str, args: &[&str]) -> Output {
        run(Command::new("ip")
            .args(["netns", "exec", &self.ns(role)])
            .args(args))
    }

    /// uvsd's /metrics (127.0.0.1:9100 in the balancer namespace) as text; empty when it
    /// does not answer within 2 s.
    pub fn metrics(&self) -> String {
        let o = self.exec(
            "lb",
            &[
                "curl",
                "-s",
                "--max-time",
                "2",
                "http://127.0.0.1:9100/metrics",
            ],
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    pub fn sh(&self, role: &str, script: &str) -> Output {
        self.exec(role, &["bash", "-c", script])
    }

    pub fn socket(&self) -> PathBuf {
        self.state.join("uvsadm.sock")
    }

    /// Starts uvsd with `config` (a YAML text), waits for its admin socket.
    pub fn start_uvsd(&mut self, config: &str) {
        self.start_uvsd_signalled(config, None);
    }

    /// [`start_uvsd`](Self::start_uvsd), sending uvsd `signal` (`kill`'s name) `after` its
    /// spawn, while it starts.
    pub fn start_uvsd_signalled(&mut self, config: &str, signal: Option<(&str, Duration)>) {
        let cfg = self.state.join("uvs.yaml");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(self.state.join("uvsd.log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("lb"),
                env!("CARGO_BIN_EXE_uvsd"),
                "--config",
            ])
            .arg(&cfg)
            .arg("--admin-socket")
            .arg(self.socket())
            .args(["--run-for", "600"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning uvsd");
        if let Some((name, after)) = signal {
            std::thread::sleep(after);
            let sent = Command::new("kill")
                .args([&format!("-{name}"), &child.id().to_string()])
                .status()
                .unwrap();
            assert!(sent.success(), "kill -{name}");
        }
        self.uvsd = Some(child);
        let start = Instant::now();
        while !self.socket().exists() {
            if let Some(st) = self.uvsd.as_mut().unwrap().try_wait().unwrap() {
                panic!("uvsd exited ({st}) at startup:\n{}", self.uvsd_log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "uvsd did not come up:\n{}",
                self.uvsd_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn uvsd_pid(&self) -> u32 {
        self.uvsd.as_ref().expect("uvsd running").id()
    }

    pub fn uvsd_log(&self) -> String {
        std::fs::read_to_string(self.state.join("uvsd.log")).unwrap_or_default()
    }

    /// Waits (up to 10 s) until uvsd's log, past its first `from` bytes, contains `needle`:
    /// a reload's outcome is read from the log instead of assumed after a fixed pause.
    /// `from` is `uvsd_log().len()` taken before the signal.
    pub fn wait_log(&self, from: usize, needle: &str) {
        let start = Instant::now();
        loop {
            let log = self.uvsd_log();
            if log.get(from..).is_some_and(|new| new.contains(needle)) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "uvsd did not log {needle:?} within 10 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal to uvsd (by its PID) and waits for it to exit.
    pub fn stop_uvsd(&mut self, signal: &str) -> Option<std::process::ExitStatus> {
        let mut child = self.uvsd.take()?;
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `within` for uvsd to exit on its own: its status, or `None` if it
    /// still runs (it is left running).
    pub fn wait_uvsd_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(st) = self.uvsd.as_mut()?.try_wait().ok().flatten() {
                self.uvsd = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn uvsadm(&self, args: &[&str]) -> Output {
        let sock = self.socket();
        let mut a: Vec<&str> = vec![
            env!("CARGO_BIN_EXE_uvsadm"),
            "--socket",
            sock.to_str().unwrap(),
        ];
        a.extend_from_slice(args);
        self.exec("lb", &a)
    }

    /// `n` HTTP GETs from the client to `url`; the whole bodies ("failed" for a failure).
    pub fn curl_bodies(&self, url: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let o = self.exec("client", &["curl", "-s", "-g", "--max-time", "3", url]);
                if o.status.success() {
                    String::from_utf8_lossy(&o.stdout).trim().to_string()
                } else {
                    "failed".to_string()
                }
            })
            .collect()
    }

    /// `n` HTTP GETs from the client to `url`; returns each answer's first word ("rs1"...)
    /// or "failed".
    pub fn curl_many(&self, url: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let o = self.exec("client", &["curl", "-s", "-g", "--max-time", "3", url]);
                let body = String::from_utf8_lossy(&o.stdout).to_string();
                if o.status.success() {
                    body.split_whitespace()
                        .next()
                        .unwrap_or("empty")
                        .to_string()
                } else {
                    "failed".to_string()
                }
            })
            .collect()
    }
}

/// Whether the metrics endpoint (127.0.0.1:9100 in the balancer namespace) reports real
/// server `real` ("addr:port") of the demo's web4 service as up; `None` if not listed.
pub fn real_up(tb: &Testbed, real: &str) -> Option<bool> {
    tb.metrics()
        .lines()
        .find(|l| {
            l.starts_with("uvs_real_up{")
                && l.contains("service=\"web4\"")
                && l.contains(&format!("real=\"{real}\""))
        })
        .map(|l| l.ends_with(" 1"))
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.stop_uvsd("TERM");
        let _ = Command::new(repo().join("scripts/testbed.sh"))
            .args(["down", &self.tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The `uvs-agent` binary, built into the directory cargo built uvsd in (cargo hands a
/// test only its own package's binaries, and uvs-agent is another package's). Building
/// is a no-op when it is up to date.
pub fn uvs_agent_bin() -> PathBuf {
    let uvsd = Path::new(env!("CARGO_BIN_EXE_uvsd"));
    let profile_dir = uvsd.parent().expect("uvsd's directory");
    let target_dir = profile_dir.parent().expect("the target directory");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "-p", "uvs-agent", "--bin", "uvs-agent"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(repo());
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
        None => {}
    }
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "building uvs-agent: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    profile_dir.join("uvs-agent")
}

/// The demo configuration with `forwarding` replaced (and extra text appended to every
/// service when needed).
pub fn demo_config() -> String {
    std::fs::read_to_string(repo().join("configs/demo.yaml")).unwrap()
}

/// `cfg` (the demo's, or one built on it) with every service forwarded by `method`; for
/// FullNAT each of the demo's VIPs also gets a local pool of its family (198.18.1.100,
/// 2001:2:0:1::100), from which uvs takes the addresses its real servers see.
pub fn with_method(cfg: &str, method: &str) -> String {
    let cfg = cfg.replace("forwarding: nat", &format!("forwarding: {method}"));
    if method != "fullnat" {
        return cfg;
    }
    let cfg = cfg
        .replace(
            "    vip: 198.18.100.1\n",
            "    vip: 198.18.100.1\n    fullnat_pool: [198.18.1.100]\n",
        )
        .replace(
            "    vip: \"2001:2:0:100::1\"\n",
            "    vip: \"2001:2:0:100::1\"\n    fullnat_pool: [\"2001:2:0:1::100\"]\n",
        );
    assert!(
        cfg.contains("fullnat_pool: [198.18.1.100]")
            && cfg.contains("fullnat_pool: [\"2001:2:0:1::100\"]"),
        "both VIPs given a pool:\n{cfg}"
    );
    cfg
}

/// `cfg` (the demo's, or one built on it) without its `conn_table` block: uvsd's default
/// table of 2^20 entries, where workers look a burst's flows up together, where the demo's
/// 65 536 entries take one lookup at a time (`dataplane/src/worker.rs`,
/// `BATCH_LOOKUP_MIN_CAPACITY`).
pub fn default_sized(cfg: &str) -> String {
    let mut out = String::new();
    let mut in_table = false;
    for l in cfg.lines() {
        if l.starts_with("conn_table:") {
            in_table = true;
            continue;
        }
        if in_table && l.starts_with(' ') {
            continue;
        }
        in_table = false;
        out.push_str(l);
        out.push('\n');
    }
    assert!(
        !out.contains("conn_table") && !out.contains("capacity:"),
        "{out}"
    );
    out
}

/// The sum of the samples of metric `name` in /metrics text (over workers and labels);
/// `name` may end in a label set (`uvs_drops_total{reason="x"}`) to pick one sample.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}
