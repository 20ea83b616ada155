//! uvs-agent against HAProxy itself: a real `haproxy` whose backend server has
//! `agent-check` pointed at uvs-agent follows what the application tells the agent —
//! weight from its load, DRAIN, DOWN, MAINT and back — read from HAProxy's own stats.
//! Runs as any user on 127.0.0.1 (skipped, saying so, when haproxy is not installed).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn agent(sock: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_uvs-agent"))
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "uvs-agent {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// (status, weight) of backend `be` server `s1` from HAProxy's `show stat` CSV.
fn haproxy_server(stats: &Path) -> Option<(String, u32)> {
    let mut s = UnixStream::connect(stats).ok()?;
    s.write_all(b"show stat\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let header: Vec<&str> = out
        .lines()
        .next()?
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (status, weight) = (col("status")?, col("weight")?);
    out.lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"be") && f.get(1) == Some(&"s1"))
        .and_then(|f| Some((f.get(status)?.to_string(), f.get(weight)?.parse().ok()?)))
}

fn wait_for(stats: &Path, what: &str, want: impl Fn(&str, u32) -> bool) -> (String, u32) {
    let t = Instant::now();
    loop {
        let got = haproxy_server(stats);
        if let Some((st, w)) = &got {
            if want(st, *w) {
                return (st.clone(), *w);
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "HAProxy did not show {what}: last {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn haproxy_agent_check_follows_uvs_agent() {
    let haproxy = match Command::new("haproxy").arg("-v").output() {
        Ok(o) if o.status.success() => "haproxy",
        _ => {
            eprintln!("skipping haproxy_agent_check_follows_uvs_agent: haproxy is not installed (apt-get install haproxy)");
            return;
        }
    };
    let dir: PathBuf =
        std::env::temp_dir().join(format!("uvs-agent-haproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (agent_port, front, back) = (free_port(), free_port(), free_port());
    // The real service: anything that accepts (HAProxy's own `check` is a TCP connect).
    let backend = TcpListener::bind(("127.0.0.1", back)).unwrap();
    let sock = dir.join("agent.sock");
    let _agent = Proc(
        Command::new(env!("CARGO_BIN_EXE_uvs-agent"))
            .arg("--socket")
            .arg(&sock)
            .args(["run", "--load", "none", "--interval", "0.1"])
            // The application's load below must outlast every step that follows it (the
            // 10 s default would be a hidden limit on a slow run).
            .args(["--app-load-ttl", "600"])
            .args(["--listen", &format!("127.0.0.1:{agent_port}")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    while !sock.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "uvs-agent did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = dir.join("haproxy.sock");
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global
    maxconn 100
    stats socket {stats} mode 600 level admin
defaults
    mode tcp
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{front}
    default_backend be
backend be
    balance leastconn
    server s1 127.0.0.1:{back} weight 100 check inter 200ms agent-check agent-port {agent_port} agent-inter 100ms agent-send \"be/s1\\n\"
",
            stats = stats.display()
        ),
    )
    .unwrap();
    let check = Command::new(haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _haproxy = Proc(
        Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    wait_for(&stats, "UP at weight 100", |s, w| s == "UP" && w == 100);

    // The application's load becomes the weight: 60 % busy → 40 % of 100.
    assert_eq!(agent(&sock, &["load", "60"]), "up ready 40%");
    wait_for(&stats, "weight 40", |s, w| s == "UP" && w == 40);

    assert_eq!(agent(&sock, &["drain"]), "up drain 40%");
    wait_for(&stats, "DRAIN", |s, _| s.starts_with("DRAIN"));
    assert_eq!(agent(&sock, &["ready"]), "up ready 40%");
    wait_for(&stats, "UP again", |s, w| s == "UP" && w == 40);

    assert_eq!(
        agent(&sock, &["down", "deploying"]),
        "stopped ready 40% #deploying"
    );
    wait_for(&stats, "DOWN", |s, _| s.starts_with("DOWN"));
    assert_eq!(agent(&sock, &["up"]), "up ready 40%");
    wait_for(&stats, "UP after down", |s, _| s == "UP");

    assert_eq!(agent(&sock, &["maint"]), "up maint 40%");
    wait_for(&stats, "MAINT", |s, _| s.starts_with("MAINT"));
    assert_eq!(agent(&sock, &["ready"]), "up ready 40%");
    wait_for(&stats, "UP after maint", |s, _| s == "UP");

    assert_eq!(agent(&sock, &["load", "none"]), "up ready 100%");
    wait_for(&stats, "weight 100", |s, w| s == "UP" && w == 100);
    drop(backend);
    let _ = std::fs::remove_dir_all(&dir);
}
