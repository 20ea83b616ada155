//! The admin socket end to end with a fake backend in a temporary directory: requests and
//! answers, file mode and group, stale and live sockets, stopping, and the uvsadm binary.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use uvs_config::Config;
use uvs_control::admin::{format_list, handler, request, serve, AdminBackend};
use uvs_control::snapshot::{
    ConnSnapshot, Rates, RealSnapshot, ServiceSnapshot, Snapshot, Traffic,
};
use uvs_dataplane::wake::Stop;

const YAML: &str = r#"
interfaces:
  - name: uvs-lb0
    local: [198.18.0.3]
    networks: [198.18.0.0/24]
  - name: uvs-lb1
    local: [198.18.1.3]
    networks: [198.18.1.0/24]
services:
  - name: web4
    vip: 198.18.100.1
    protocol: tcp
    port: 80
    scheduler: rr
    forwarding: nat
    real_servers:
      - address: 198.18.1.11
"#;

/// Holds a configuration and renders a snapshot from it, as the daemon would.
struct FakeBackend {
    config: Mutex<Config>,
    zeroed: AtomicUsize,
    /// What `host_addresses` answers: none by default, as off the test network.
    host: Mutex<Result<Vec<std::net::IpAddr>, String>>,
}

impl AdminBackend for FakeBackend {
    fn snapshot(&self) -> Snapshot {
        let cfg = self.config.lock().unwrap();
        Snapshot {
            version: "0.1.0".into(),
            conn_capacity: cfg.conn_table.capacity as usize,
            conn_count: 1,
            conn_dropped: 0,
            services: cfg
                .services
                .iter()
                .map(|s| ServiceSnapshot {
                    name: s.name.clone(),
                    protocol: s.protocol.name().to_ascii_uppercase(),
                    vip: s.vip,
                    port: s.port,
                    fwmark: s.fwmark,
                    scheduler: s.scheduler.name().into(),
                    flags: String::new(),
                    persistent: None,
                    one_packet: false,
                    reals: s
                        .real_servers
                        .iter()
                        .map(|r| RealSnapshot {
                            address: r.address,
                            port: r.port,
                            forward: "Masq".into(),
                            tunnel: String::new(),
                            weight: u32::from(r.weight),
                            active: 1,
                            inactive: 0,
                            health_up: true,
                            overloaded: false,
                            upper_threshold: r.upper_threshold,
                            lower_threshold: r.lower_threshold,
                            persistent: 0,
                            response_time_us: 0,
                            load: 0,
                            traffic: Traffic::default(),
                            rates: Rates::default(),
                        })
                        .collect(),
                    traffic: Traffic::default(),
                    rates: Rates::default(),
                })
                .collect(),
            workers: vec![],
            drops: vec![],
            generation: 1,
            sync: None,
            node: None,
            client_lookup: None,
            cluster: None,
            layer7_pools: vec![],
            fast_path: vec![],
            fast_path_sent: vec![],
            attached_again: vec![],
            unclaimed: vec![],
        }
    }

    fn config(&self) -> Config {
        self.config.lock().unwrap().clone()
    }

    fn apply_config(&self, new: Config) -> Result<(), String> {
        *self.config.lock().unwrap() = new;
        Ok(())
    }

    fn host_addresses(&self) -> Result<Vec<std::net::IpAddr>, String> {
        self.host.lock().unwrap().clone()
    }

    fn zero_counters(&self, _service: Option<&uvs_config::ServiceKey>) {
        self.zeroed.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot_persistent(&self) -> Snapshot {
        self.snapshot()
    }

    fn connections(&self) -> Vec<ConnSnapshot> {
        vec![ConnSnapshot {
            protocol: "TCP".into(),
            expires_s: 61,
            state: "ESTABLISHED".into(),
            client: ("198.18.0.2".parse().unwrap(), 40000),
            virtual_: ("198.18.100.1".parse().unwrap(), 80),
            real: ("198.18.1.11".parse().unwrap(), 80),
            local: None,
            template: false,
        }]
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("uvs-admin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Running {
    backend: Arc<FakeBackend>,
    stop: Arc<Stop>,
    handle: Option<JoinHandle<()>>,
}

impl Running {
    fn start(path: &Path, group: Option<&str>) -> Running {
        Running::start_yaml(path, group, YAML)
    }

    fn start_yaml(path: &Path, group: Option<&str>, yaml: &str) -> Running {
        let backend = Arc::new(FakeBackend {
            config: Mutex::new(uvs_config::load_str(yaml, "test.yaml").unwrap()),
            zeroed: AtomicUsize::new(0),
            host: Mutex::new(Ok(Vec::new())),
        });
        let stop = Arc::new(Stop::new());
        let handle = serve(
            path,
            group,
            handler(backend.clone() as Arc<dyn AdminBackend>),
            Arc::clone(&stop),
        )
        .unwrap();
        Running {
            backend,
            stop,
            handle: Some(handle),
        }
    }

    fn stop(&mut self) -> Duration {
        let t = Instant::now();
        self.stop.raise();
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        t.elapsed()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

#[test]
fn round_trip() {
    let dir = TempDir::new("roundtrip");
    // The parent directory is created if missing.
    let path = dir.0.join("run/uvsadm.sock");
    let mut daemon = Running::start(&path, None);

    let listing = request(&path, &args("-L -n")).unwrap();
    assert_eq!(
        listing,
        format_list(&daemon.backend.snapshot(), true, false, false)
    );
    assert!(
        listing.contains("  -> 198.18.1.11:80               Masq    1      1          0         ")
    );

    assert_eq!(
        request(&path, &args("-a -t 198.18.100.1:80 -r 198.18.1.12 -w 3")),
        Ok(String::new())
    );
    let cfg = daemon.backend.config();
    assert_eq!(cfg.services[0].real_servers.len(), 2);
    assert_eq!(cfg.services[0].real_servers[1].weight, 3);

    let err = request(&path, &args("-A -t 198.18.100.1:80")).unwrap_err();
    assert!(err.contains("already exists"), "{err}");
    let err = request(&path, &args("-L --bogus")).unwrap_err();
    assert!(err.contains("unknown option '--bogus'"), "{err}");
    assert_eq!(
        daemon.backend.config(),
        cfg,
        "rejected edits change nothing"
    );

    assert_eq!(request(&path, &args("-Z")), Ok(String::new()));
    assert_eq!(daemon.backend.zeroed.load(Ordering::Relaxed), 1);

    let conns = request(&path, &args("-L -n -c")).unwrap();
    assert!(
        conns.contains("TCP 01:01  ESTABLISHED 198.18.0.2:40000"),
        "{conns}"
    );

    let yaml = request(&path, &args("save")).unwrap();
    assert_eq!(uvs_config::load_str(&yaml, "saved.yaml").unwrap(), cfg);

    let frame = request(&path, &args("top --once")).unwrap();
    assert!(frame.starts_with("uvs 0.1.0"), "{frame}");

    // Woken by its stop fd at once; a server that waited out its 1 s idle wait would fail.
    assert!(daemon.stop() < Duration::from_millis(600));
    assert!(!path.exists(), "the socket file goes with the server");
    let err = request(&path, &args("-L")).unwrap_err();
    assert!(err.contains("cannot reach uvsd at"), "{err}");
    assert!(err.contains("is it running?"), "{err}");
}

#[test]
fn bad_request_lines_get_an_answer() {
    use std::io::{BufRead, BufReader, Write};
    let dir = TempDir::new("badline");
    let path = dir.0.join("uvsadm.sock");
    let _daemon = Running::start(&path, None);
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.write_all(b"{\"argv\": 3}\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        v["output"].as_str().unwrap().contains("bad request"),
        "{line}"
    );
}

#[test]
fn socket_mode_and_group() {
    let dir = TempDir::new("mode");
    let path = dir.0.join("uvsadm.sock");
    {
        let _daemon = Running::start(&path, None);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    // Our own group, by number: 0660 and that group.
    let probe = dir.0.join("probe");
    std::fs::write(&probe, b"").unwrap();
    let gid = std::fs::metadata(&probe).unwrap().gid();
    {
        let _daemon = Running::start(&path, Some(&gid.to_string()));
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), gid);
        request(&path, &args("-L")).unwrap();
    }
    let err = serve(
        &path,
        Some("no-such-group-uvs"),
        Arc::new(|_: &[String]| Ok(String::new())),
        Arc::new(Stop::new()),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown group 'no-such-group-uvs'"),
        "{err}"
    );
    assert!(!path.exists(), "nothing is created for an unknown group");
}

#[test]
fn stale_live_and_foreign_files() {
    let dir = TempDir::new("stale");
    let path = dir.0.join("uvsadm.sock");

    // Stale: a socket file nobody accepts on is replaced.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let err = request(&path, &args("-L")).unwrap_err();
    assert!(err.contains("connection refused"), "{err}");
    let mut daemon = Running::start(&path, None);
    request(&path, &args("-L")).unwrap();

    // Live: a second server refuses to steal it.
    let err = serve(
        &path,
        None,
        Arc::new(|_: &[String]| Ok(String::new())),
        Arc::new(Stop::new()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("already serving"), "{err}");
    request(&path, &args("-L")).unwrap();
    daemon.stop();

    // Not a socket: left alone.
    std::fs::write(&path, b"precious").unwrap();
    let err = serve(
        &path,
        None,
        Arc::new(|_: &[String]| Ok(String::new())),
        Arc::new(Stop::new()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn uvsadm_binary() {
    let dir = TempDir::new("binary");
    let path = dir.0.join("uvsadm.sock");
    let daemon = Running::start(&path, None);
    let uvsadm = env!("CARGO_BIN_EXE_uvsadm");

    let out = Command::new(uvsadm)
        .args(["--socket", path.to_str().unwrap(), "-Ln"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format_list(&daemon.backend.snapshot(), true, false, false)
    );

    let out = Command::new(uvsadm)
        .env("UVSADM_SOCKET", &path)
        .args(["top", "--once"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("uvs 0.1.0"));

    let out = Command::new(uvsadm)
        .env("UVSADM_SOCKET", &path)
        .args(["-a", "-t", "198.18.100.1:80", "-r", "198.18.1.11"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("uvsadm: Destination already exists: 198.18.1.11:80"),
        "{err}"
    );

    // Parse errors and help need no daemon.
    let nowhere = dir.0.join("absent.sock");
    let out = Command::new(uvsadm)
        .args([
            "--socket",
            nowhere.to_str().unwrap(),
            "-A",
            "-t",
            "198.18.100.1:80",
            "-w",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("illegal option -w"));
    let out = Command::new(uvsadm)
        .args(["--socket", nowhere.to_str().unwrap(), "-h"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("--add-service     -A"));
    let out = Command::new(uvsadm)
        .args([&format!("--socket={}", nowhere.display()), "-L"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!(
            "cannot reach uvsd at {}: is it running?",
            nowhere.display()
        )),
        "{err}"
    );
}

/// Runs `f` on another thread and gives up waiting after `limit` (the thread is left behind:
/// on the old one-client-at-a-time server it would block for minutes).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// A client that sends its request one byte at a time, `gap` apart, and then waits for an
/// answer; returns what it read and when the server closed the connection.
fn drip(path: PathBuf, gap: Duration) -> (String, Duration) {
    use std::io::{Read, Write};
    let t = Instant::now();
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let mut got = Vec::new();
    for b in b"{\"argv\":[\"-L\",\"-n\"]}\n".iter().cycle().take(10_000) {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if t.elapsed() > Duration::from_secs(20) {
            break;
        }
        std::thread::sleep(gap);
    }
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let _ = s.read_to_end(&mut got);
    (String::from_utf8_lossy(&got).into_owned(), t.elapsed())
}

/// Idle clients and a client dripping its request byte by byte can no longer hold the admin
/// socket: a real request is answered at once, the dripping client is cut off once its time
/// to send a whole request is up, and idle ones are told why they are closed.
#[test]
fn idle_and_slow_clients_do_not_block_requests() {
    let dir = TempDir::new("dos");
    let path = dir.0.join("uvsadm.sock");
    let daemon = Running::start(&path, None);

    let idle: Vec<_> = (0..500)
        .map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap())
        .collect();
    let dripping = {
        let path = path.clone();
        std::thread::spawn(move || drip(path, Duration::from_millis(250)))
    };
    std::thread::sleep(Duration::from_millis(100));

    let t = Instant::now();
    let p = path.clone();
    let answer = within(Duration::from_secs(3), move || request(&p, &args("-L -n")))
        .expect("uvsadm -L -n not answered within 3 s with 500 idle clients connected");
    assert_eq!(
        answer.unwrap(),
        format_list(&daemon.backend.snapshot(), true, false, false)
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // An edit too, while they are all still connected.
    let p = path.clone();
    let edit = within(Duration::from_secs(3), move || {
        request(&p, &args("-a -t 198.18.100.1:80 -r 198.18.1.12"))
    })
    .expect("edit not answered within 3 s");
    assert_eq!(edit, Ok(String::new()));

    // The dripping client never completes a line in time: it is cut off after the request
    // deadline with a message saying so, not served for ever.
    let (said, took) = dripping.join().unwrap();
    assert!(
        took < Duration::from_secs(6),
        "dripping client held for {took:?}"
    );
    assert!(said.contains("\"ok\":false"), "{said}");
    assert!(said.contains("within"), "{said}");

    // Every idle client is closed (with a reason) within the deadline.
    use std::io::Read;
    let t = Instant::now();
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).expect("idle client closed");
        assert!(got.is_empty() || got.contains("\"ok\":false"), "{got}");
    }
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

/// When more clients wait to send their request than the server keeps, the longest-waiting
/// one is refused with a clear answer at once (not after its deadline), and requests still
/// get through.
#[test]
fn too_many_waiting_clients_are_refused_clearly() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("limit");
    let path = dir.0.join("uvsadm.sock");
    let _daemon = Running::start(&path, None);
    let first = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let t = Instant::now();
    let _others: Vec<_> = (0..300)
        .map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap())
        .collect();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(&first).read_line(&mut line).unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        v["output"]
            .as_str()
            .unwrap()
            .contains("too many admin clients"),
        "{line}"
    );
    request(&path, &args("-L -n")).unwrap();
}

/// Requests from many clients at once are all answered, and concurrent edits never lose one
/// another (each is a read-modify-write of the configuration).
#[test]
fn concurrent_edits_all_apply() {
    let dir = TempDir::new("concurrent");
    let path = dir.0.join("uvsadm.sock");
    let daemon = Running::start(&path, None);
    let threads: Vec<_> = (20..52)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                request(
                    &path,
                    &args(&format!("-a -t 198.18.100.1:80 -r 198.18.1.{i}")),
                )
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Ok(String::new()));
    }
    assert_eq!(daemon.backend.config().services[0].real_servers.len(), 33);
}

/// `uvsadm ... | head`: a reader that goes away is no error.
#[test]
fn uvsadm_quiet_on_a_closed_pipe() {
    let dir = TempDir::new("pipe");
    let path = dir.0.join("uvsadm.sock");
    let _daemon = Running::start(&path, None);
    let uvsadm = env!("CARGO_BIN_EXE_uvsadm");
    for argv in [vec!["-h"], vec!["-L", "-n"], vec!["save"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(uvsadm)
            .arg("--socket")
            .arg(&path)
            .args(&argv)
            .stdout(writer)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{argv:?}: {out:?}");
        assert!(
            out.stderr.is_empty(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The ipvsadm-parity commands over the socket and through the binary: `--json` is the data
/// uvsadm renders (with names) itself, `-L --timeout`, `--set`, `-Z` of one service, and `-R`
/// from standard input with names, all or nothing.
#[test]
fn parity_commands_over_the_socket() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = TempDir::new("parity");
    let path = dir.0.join("uvsadm.sock");
    let daemon = Running::start(&path, None);
    let uvsadm = env!("CARGO_BIN_EXE_uvsadm");
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(uvsadm)
            .arg("--socket")
            .arg(&path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };

    let json = request(&path, &args("-L --json")).unwrap();
    let snap: Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(snap, daemon.backend.snapshot());
    let json = request(&path, &args("-L -c --json")).unwrap();
    let conns: Vec<ConnSnapshot> = serde_json::from_str(&json).unwrap();
    assert_eq!(conns, daemon.backend.connections());
    let err = request(&path, &args("-L --json -t 198.18.100.9:80")).unwrap_err();
    assert!(
        err.contains("No such service: TCP 198.18.100.9:80"),
        "{err}"
    );

    // uvsadm without -n renders the JSON itself: the same listing as uvsd's where the
    // resolver knows no host names (ports named from /etc/services either way).
    let (code, out, err) = run(&["-L"], "");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("IP Virtual Server version 1.2.1 (size="),
        "{out}"
    );
    assert_eq!(
        out,
        format_list(&daemon.backend.snapshot(), false, false, false)
    );

    assert_eq!(
        request(&path, &args("-L --timeout")).unwrap(),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    let (code, _, err) = run(&["--set", "600", "0", "30"], "");
    assert_eq!(code, Some(0), "{err}");
    let t = daemon.backend.config().timeouts;
    assert_eq!((t.tcp_established, t.tcp_fin_wait, t.udp), (600, 120, 30));

    let err = request(&path, &args("-Z -t 198.18.100.9:80")).unwrap_err();
    assert!(err.contains("No such service"), "{err}");
    assert_eq!(daemon.backend.zeroed.load(Ordering::Relaxed), 0);
    assert_eq!(
        request(&path, &args("-Z -t 198.18.100.1:80")),
        Ok(String::new())
    );
    assert_eq!(daemon.backend.zeroed.load(Ordering::Relaxed), 1);

    // -R: ipvsadm -S output with service names; then a bad input, which changes nothing.
    let before = daemon.backend.config();
    let (code, _, err) = run(
        &["-R"],
        "-A -t 198.18.100.2:http -s wrr\n-a -t 198.18.100.2:http -r 198.18.1.12:http -m -w 2\n",
    );
    assert_eq!(code, Some(0), "{err}");
    let after = daemon.backend.config();
    assert_eq!(after.services.len(), before.services.len() + 1);
    let s = &after.services[1];
    assert_eq!(
        (s.vip.to_string(), s.port),
        ("198.18.100.2".to_string(), 80)
    );
    assert_eq!(s.real_servers[0].port, 80);
    let (code, _, err) = run(
        &["-R"],
        "# a comment\n-A -t 198.18.100.3:80\n-a -t 198.18.100.3:80 -r 198.18.1.11 -w 99999\n",
    );
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with("uvsadm: line 3: illegal -w (weight) '99999'"),
        "{err}"
    );
    let (code, _, err) = run(&["-R"], "-A -t 198.18.100.3:nosuchservice\n");
    assert_eq!(code, Some(2));
    assert!(
        err.contains("line 1: unknown tcp service name 'nosuchservice'"),
        "{err}"
    );
    let (code, _, err) = run(&["-R", "-n"], "");
    assert_eq!(code, Some(2));
    assert!(err.contains("standard input"), "{err}");
    assert_eq!(
        daemon.backend.config(),
        after,
        "refused restores change nothing"
    );
}

/// Two address services and a firewall-mark service, for the listings that select one.
const YAML_SEVERAL: &str = r#"
interfaces:
  - name: uvs-lb0
    local: [198.18.0.3]
    networks: [198.18.0.0/24]
  - name: uvs-lb1
    local: [198.18.1.3]
    networks: [198.18.1.0/24]
marks:
  - mark: 1
    destinations: [198.18.128.0/17]
    protocols: [tcp]
services:
  - name: web4
    vip: 198.18.100.1
    protocol: tcp
    port: 80
    scheduler: rr
    forwarding: nat
    real_servers:
      - address: 198.18.1.11
  - name: dns4
    vip: 198.18.100.1
    protocol: udp
    port: 53
    scheduler: rr
    forwarding: nat
    real_servers:
      - address: 198.18.1.12
  - fwmark: 1
    scheduler: dh
    forwarding: dr
    real_servers:
      - address: 198.18.1.13
"#;

/// `uvsadm` with `args` against `path`; (exit code, stdout, stderr).
fn uvsadm_at(path: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_uvsadm"))
        .env("UVSADM_SOCKET", path)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `-L --json` with a service selects it, as the text listing does: `-t`, `-u` and `-f`.
#[test]
fn json_listing_of_one_service() {
    let dir = TempDir::new("jsonone");
    let path = dir.0.join("uvsadm.sock");
    let daemon = Running::start_yaml(&path, None, YAML_SEVERAL);
    let all: Snapshot = serde_json::from_str(&request(&path, &args("-L --json")).unwrap()).unwrap();
    assert_eq!(all.services.len(), 3);
    for (sel, name) in [
        ("-t 198.18.100.1:80", "web4"),
        ("-u 198.18.100.1:53", "dns4"),
        ("-f 1", "fwmark/1"),
    ] {
        let text = request(&path, &args(&format!("-L -n --json {sel}"))).unwrap();
        let one: Snapshot = serde_json::from_str(&text).unwrap();
        let names: Vec<&str> = one.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [name], "-L --json {sel}");
        // The rest of the snapshot is the whole one's.
        assert_eq!(
            Snapshot {
                services: all.services.clone(),
                ..one.clone()
            },
            all
        );
        // uvsadm without -n renders the selected JSON as uvsd renders its text listing.
        let line = format!("-L {sel}");
        let words: Vec<&str> = line.split_whitespace().collect();
        let (code, out, err) = uvsadm_at(&path, &words);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(out, request(&path, &args(&line)).unwrap(), "uvsadm {line}");
        assert_eq!(out.lines().count(), 4, "{line}: {out}");
    }
    let err = request(&path, &args("-L --json -f 2")).unwrap_err();
    assert!(err.contains("No such service: FWM 2"), "{err}");
    assert_eq!(daemon.backend.config().services.len(), 3);
}

/// `-S -n` (and `-Sn`, `--save --numeric`) writes port numbers, as `ipvsadm -S -n`; `-S`
/// without it names them.
#[test]
fn save_rules_numeric_and_named() {
    let dir = TempDir::new("saven");
    let path = dir.0.join("uvsadm.sock");
    let _daemon = Running::start_yaml(&path, None, YAML_SEVERAL);
    let numeric = "-A -t 198.18.100.1:80 -s rr\n";
    for argv in ["-S -n", "-Sn", "--save --numeric", "-nS"] {
        let over_socket = request(&path, &args(argv)).unwrap();
        assert!(over_socket.contains(numeric), "{argv}: {over_socket}");
        assert!(!over_socket.contains(":http"), "{argv}: {over_socket}");
        let words: Vec<&str> = argv.split_whitespace().collect();
        let (code, out, err) = uvsadm_at(&path, &words);
        assert_eq!(code, Some(0), "{argv}: {err}");
        assert_eq!(out, over_socket, "uvsadm {argv}");
    }
    // Without -n, ports are named (where /etc/services knows them), as ipvsadm -S does.
    use uvs_control::admin::Names as _;
    if uvs_control::admin::PortNames
        .port(80, "tcp")
        .is_some_and(|n| n == "http")
    {
        let (code, out, err) = uvsadm_at(&path, &["-S"]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("-A -t 198.18.100.1:http -s rr\n"), "{out}");
        let over_socket = request(&path, &args("-S")).unwrap();
        assert!(
            over_socket.contains("-A -t 198.18.100.1:http -s rr\n"),
            "{over_socket}"
        );
    }
}

/// `--socket PATH` and `--socket=PATH` go anywhere on the line, as the usage says.
#[test]
fn socket_option_anywhere() {
    let dir = TempDir::new("sockany");
    let path = dir.0.join("uvsadm.sock");
    let daemon = Running::start(&path, None);
    let p = path.to_str().unwrap();
    let inline = format!("--socket={p}");
    let want_list = format_list(&daemon.backend.snapshot(), true, false, false);
    let nowhere = dir.0.join("absent.sock");
    for argv in [
        vec!["--socket", p, "-L", "-n"],
        vec!["-L", "--socket", p, "-n"],
        vec!["-L", "-n", "--socket", p],
        vec!["-L", "-n", &inline],
        vec![&inline, "-Ln"],
        vec!["-Ln", "--socket", p],
    ] {
        // $UVSADM_SOCKET points nowhere: the option wins.
        let out = Command::new(env!("CARGO_BIN_EXE_uvsadm"))
            .env("UVSADM_SOCKET", &nowhere)
            .args(&argv)
            .output()
            .unwrap();
        assert!(out.status.success(), "{argv:?}: {out:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            want_list,
            "{argv:?}"
        );
    }
    let (code, out, err) = uvsadm_at(&nowhere, &["-L", "-n", "-c", "--socket", p]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("ESTABLISHED"), "{out}");
    // An edit with the option at its end.
    let (code, _, err) = uvsadm_at(
        &nowhere,
        &[
            "-a",
            "-t",
            "198.18.100.1:80",
            "-r",
            "198.18.1.12",
            "--socket",
            p,
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(daemon.backend.config().services[0].real_servers.len(), 2);
    // Errors: no path, an empty one, twice.
    let (code, _, err) = uvsadm_at(&path, &["-L", "-n", "--socket"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--socket needs a path"), "{err}");
    let (code, _, err) = uvsadm_at(&path, &["-L", "--socket="]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--socket needs a path"), "{err}");
    let (code, _, err) = uvsadm_at(&path, &["--socket", p, "-L", "--socket", p]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--socket given twice"), "{err}");
}

/// Edits are checked against the backend's host addresses: one it holds is refused, naming
/// it, and changes nothing; when they cannot be read, edits are refused (as a reload is) while
/// listings still work.
#[test]
fn edits_are_checked_against_the_hosts_addresses() {
    let dir = TempDir::new("host");
    let path = dir.0.join("uvsadm.sock");
    let daemon = Running::start(&path, None);
    *daemon.backend.host.lock().unwrap() = Ok(vec!["198.18.0.1".parse().unwrap()]);
    let before = daemon.backend.config();
    let err = request(&path, &args("-A -t 198.18.0.1:80")).unwrap_err();
    assert!(
        err.contains("VIP 198.18.0.1 is an address this host holds"),
        "{err}"
    );
    let err = request(&path, &args("-a -t 198.18.100.1:80 -r 198.18.0.1 -m")).unwrap_err();
    assert!(
        err.contains("real server 198.18.0.1 is an address this host holds"),
        "{err}"
    );
    let err = request(
        &path,
        &["-R".to_string(), "-A -t 198.18.0.1:443".to_string()],
    )
    .unwrap_err();
    assert!(
        err.contains("198.18.0.1 is an address this host holds"),
        "{err}"
    );
    let err = request(&path, &args("drain -t 198.18.100.1:80 -r 198.18.0.1")).unwrap_err();
    assert!(err.contains("No such destination"), "{err}");
    assert_eq!(
        daemon.backend.config(),
        before,
        "refused edits change nothing"
    );
    request(&path, &args("-A -t 198.18.100.2:80")).unwrap();

    *daemon.backend.host.lock().unwrap() = Err("cannot check the host's addresses: no ip".into());
    let err = request(&path, &args("-D -t 198.18.100.2:80")).unwrap_err();
    assert!(err.contains("cannot check the host's addresses"), "{err}");
    let err = request(&path, &args("drain -t 198.18.100.1:80 -r 198.18.1.11")).unwrap_err();
    assert!(err.contains("cannot check the host's addresses"), "{err}");
    assert_eq!(daemon.backend.config().services.len(), 2);
    request(&path, &args("-L -n")).unwrap();
}

/// uvsadm's exit status is ipvsadm's, which scripts test: 0 on success, 2 for a command line
/// it cannot parse (ipvsadm's `fail(2, ...)`) and when uvsd cannot be reached (ipvsadm's
/// `fail(2, "Can't initialize ipvs ...")`), 255 for a change uvsd refuses (ipvsadm returns -1
/// when the kernel refuses one), 1 when a listing fails (ipvsadm's `exit(1)` there).
#[test]
fn exit_status_as_ipvsadm() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = TempDir::new("exit");
    let path = dir.0.join("uvsadm.sock");
    let _daemon = Running::start(&path, None);
    let code = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_uvsadm"))
            .env("UVSADM_SOCKET", &path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait().unwrap().code()
    };
    // Success.
    assert_eq!(code(&["-L", "-n"], ""), Some(0));
    assert_eq!(code(&["-A", "-t", "198.18.100.2:80"], ""), Some(0));
    // Usage and parse errors: 2.
    assert_eq!(
        code(&["-A", "-t", "198.18.100.1:80", "-w", "2"], ""),
        Some(2)
    );
    assert_eq!(code(&["-L", "--bogus"], ""), Some(2));
    assert_eq!(code(&["-A", "-t", "no.such.host.invalid:80"], ""), Some(2));
    assert_eq!(code(&["--socket"], ""), Some(2));
    assert_eq!(code(&["-R"], "-A -t 198.18.100.3:80 -s nosuch\n"), Some(2));
    // Changes uvsd refuses: 255.
    assert_eq!(code(&["-A", "-t", "198.18.100.1:80"], ""), Some(255));
    assert_eq!(
        code(&["-a", "-t", "198.18.100.1:80", "-r", "198.18.1.11"], ""),
        Some(255)
    );
    assert_eq!(code(&["-D", "-t", "198.18.100.9:80"], ""), Some(255));
    assert_eq!(
        code(&["-d", "-t", "198.18.100.1:80", "-r", "198.18.1.99"], ""),
        Some(255)
    );
    assert_eq!(code(&["-Z", "-t", "198.18.100.9:80"], ""), Some(255));
    assert_eq!(code(&["-R"], "-A -t 198.18.100.1:80 -s rr\n"), Some(255));
    // A listing of a service that does not exist: 1, as ipvsadm's list_service.
    assert_eq!(code(&["-L", "-n", "-t", "198.18.100.9:80"], ""), Some(1));
    // No daemon: 2, as ipvsadm without IPVS ("Can't initialize ipvs"), named listings too.
    let nowhere = dir.0.join("absent.sock");
    for args in [&["-A", "-t", "198.18.100.1:80"][..], &["-L"], &["-S"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_uvsadm"))
            .arg("--socket")
            .arg(&nowhere)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}
