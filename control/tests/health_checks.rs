//! Health checks against local listeners on 127.0.0.1, commands, and the monitor's timing.

use nix::sys::socket::{
    bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use uvs_config::{HealthCheck, HealthCheckKind, HttpUrl, Protocol, ServiceKey, StatusCodes};
use uvs_control::health::{
    check_command, check_command_as, check_http, check_tcp, run_check, HealthMonitor, HealthTarget,
    Start,
};

/// The timeout of checks that must pass (or fail at once, refused or closed): room for a
/// loaded machine to fork `sh` or schedule a thread.
const SHORT: Duration = Duration::from_secs(2);

/// A port nothing listens on: bound, then released.
fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A listener whose accept queue is full and never drained: further SYNs are dropped, so a
/// connect hangs as towards a black-holed server.
fn black_hole() -> (OwnedFd, SocketAddr, TcpStream) {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new([127, 0, 0, 1].into(), 0)),
    )
    .unwrap();
    listen(&fd, Backlog::new(0).unwrap()).unwrap();
    let addr = nix::sys::socket::getsockname::<SockaddrIn>(fd.as_raw_fd()).unwrap();
    let addr = SocketAddr::V4(SocketAddrV4::new(addr.ip(), addr.port()));
    // Backlog 0 still queues one connection: take that slot.
    let filler = TcpStream::connect(addr).unwrap();
    (fd, addr, filler)
}

/// Serves `responses` one connection each, in order, reading the request head first.
/// `None` closes the connection without answering.
fn http_server(responses: Vec<Option<&'static str>>) -> (SocketAddr, JoinHandle<Vec<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for resp in responses {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            requests.push(String::from_utf8_lossy(&head).into_owned());
            if let Some(r) = resp {
                let _ = s.write_all(r.as_bytes());
            }
        }
        requests
    });
    (addr, h)
}

#[test]
fn tcp_check_up_refused_and_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    check_tcp(l.local_addr().unwrap(), SHORT).unwrap();

    let err = check_tcp(closed_port(), SHORT).unwrap_err();
    assert!(err.contains("refused"), "{err}");

    let (_l, addr, _filler) = black_hole();
    let t = Instant::now();
    let err = check_tcp(addr, Duration::from_millis(200)).unwrap_err();
    let took = t.elapsed();
    assert!(err.contains("timed out"), "{err}");
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[test]
fn http_check_status_body_and_request() {
    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (addr, server) = http_server(vec![
        Some(ok),
        Some(ok),
        Some("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"),
        Some("HTTP/1.0 200 OK\r\n\r\nnot it"),
        None,
    ]);
    check_http(addr, "/healthz", 200, None, SHORT).unwrap();
    check_http(addr, "/", 200, Some("ok"), SHORT).unwrap();
    let err = check_http(addr, "/", 200, None, SHORT).unwrap_err();
    assert!(err.contains("status 500"), "{err}");
    let err = check_http(addr, "/", 200, Some("ok"), SHORT).unwrap_err();
    assert!(err.contains("body does not contain"), "{err}");
    let err = check_http(addr, "/", 200, None, SHORT).unwrap_err();
    assert!(err.contains("closed"), "{err}");

    let requests = server.join().unwrap();
    let first = &requests[0];
    assert!(first.starts_with("GET /healthz HTTP/1.1\r\n"), "{first}");
    // Header names are case-insensitive (RFC 9110 §5.1): ureq sends them in lower case.
    let lower = first.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("\r\nhost: {addr}\r\n")),
        "Host names the checked address and port: {first}"
    );
    assert!(lower.contains("\r\nconnection: close\r\n"), "{first}");
}

/// The health check of a configuration file: its service's first check.
fn check_of(health_check: &str) -> HealthCheck {
    let yaml = format!(
        "interfaces:\n  - name: uvs-lb0\n    local: [198.18.0.3]\n    networks: [198.18.0.0/24]\n\
         services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         health_check: {health_check}\n"
    );
    let cfg = uvs_config::load_str(&yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    cfg.services[0].health_check.clone().unwrap()
}

/// keepalived's HTTP_GET with several urls (each must pass, in order), status sets
/// (`200-299 301`) and a `virtualhost` (the Host header).
#[test]
fn http_check_several_urls_status_sets_and_host() {
    let check = check_of(
        "{ type: http, timeout: 2, interval: 2, host: www.example.test, \
         urls: [{ path: /a, expect_status: 200-299 301 }, { path: /b, expect_body: up }] }",
    );
    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nup";
    let (addr, server) = http_server(vec![
        Some("HTTP/1.1 204 No Content\r\n\r\n"),
        Some(ok),
        Some("HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n"),
        Some("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"),
        Some("HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n"),
    ]);
    run_check(&check, addr).unwrap();
    let err = run_check(&check, addr).unwrap_err();
    assert!(err.contains("GET /b: status 500, expected 200"), "{err}");
    let err = run_check(&check, addr).unwrap_err();
    assert!(
        err.contains("GET /a: status 302, expected 200-299 301"),
        "{err}"
    );
    let requests = server.join().unwrap();
    let paths: Vec<&str> = requests
        .iter()
        .map(|r| r.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(paths, ["/a", "/b", "/a", "/b", "/a"]);
    for r in &requests {
        let port = addr.port();
        assert!(
            r.to_ascii_lowercase()
                .contains("\r\nhost: www.example.test\r\n"),
            "the Host header is the virtualhost alone, as keepalived 2 sends it (port {port}): {r}"
        );
    }
}

#[test]
fn http_check_times_out_on_a_silent_server() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    // Accepted (by the kernel) but never answered.
    let t = Instant::now();
    let err = check_http(addr, "/", 200, None, Duration::from_millis(200)).unwrap_err();
    assert!(err.contains("within"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    drop(l);
}

#[test]
fn command_check_exit_status_substitution_and_timeout() {
    let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    check_command("true", addr, SHORT).unwrap();
    let err = check_command("false", addr, SHORT).unwrap_err();
    assert!(err.contains("status 1"), "{err}");
    check_command("test %a = 127.0.0.1 && test %p = 8080", addr, SHORT).unwrap();
    assert!(check_command("test %p = 80", addr, SHORT).is_err());

    let t = Instant::now();
    let err = check_command("sleep 5", addr, Duration::from_millis(200)).unwrap_err();
    assert!(err.contains("killed"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // The whole group goes: a pipeline's processes do not outlive the check.
    let t = Instant::now();
    let err = check_command("sleep 5 | sleep 5; true", addr, Duration::from_millis(100));
    assert!(err.is_err());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

/// A command check that exits 0 passes whatever it prints and whatever it leaves running,
/// as keepalived's MISC_CHECK: a script that prints more than a pipe holds (a verbose
/// `curl -v`, a debug trace) is not stalled until its timeout, and one that starts a
/// background process keeping the output open (`daemon &`) does not hang the checker
/// thread (and with it every reload) until that process exits.
#[test]
fn command_check_passes_with_long_output_or_a_lingering_child() {
    let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let t = Instant::now();
    let r = check_command_as(
        "echo 42; head -c 300000 /dev/zero | tr '\\0' x; echo",
        None,
        addr,
        SHORT,
    );
    assert_eq!(r, Ok(Some(42)), "a long output must not stall the check");
    assert!(t.elapsed() < SHORT, "{:?}", t.elapsed());

    let t = Instant::now();
    let r = check_command_as("echo 7; sleep 5 & exit 0", None, addr, SHORT);
    assert_eq!(r, Ok(Some(7)));
    assert!(
        t.elapsed() < SHORT,
        "a background child holding stdout held the check for {:?}",
        t.elapsed()
    );
}

/// A command check with `user` runs as that account and with no capability left (from root,
/// switching user empties the sets); an unknown account fails the check, saying so.
#[test]
#[ignore = "needs root: switching to another user (scripts/test.sh runs it as root)"]
fn command_check_runs_as_its_user_without_capabilities() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "command_check_runs_as_its_user_without_capabilities needs root"
    );
    let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let long = Duration::from_secs(5);
    let nobody = uvs_control::privileges::account("nobody").unwrap();
    assert_ne!(nobody.uid, 0);
    assert_eq!(
        check_command_as("id -u", Some("nobody"), addr, long).unwrap(),
        Some(nobody.uid)
    );
    let no_caps = "grep -Eq '^CapEff:[[:space:]]+0+$' /proc/self/status";
    check_command_as(no_caps, Some("nobody"), addr, long).unwrap();
    // As uvsd's own user (root here) it keeps root's capabilities: the check above can fail.
    assert!(check_command_as(no_caps, None, addr, long).is_err());
    let err = check_command_as("true", Some("uvs-no-such-user"), addr, long).unwrap_err();
    assert!(err.contains("no user 'uvs-no-such-user'"), "{err}");
}

fn tcp_target(real: SocketAddr, interval_ms: u64, timeout_ms: u64) -> HealthTarget {
    HealthTarget {
        service: ServiceKey::addr("198.18.100.1".parse().unwrap(), Protocol::Tcp, 80),
        real,
        check: HealthCheck {
            kind: HealthCheckKind::Tcp,
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(timeout_ms),
            rise: 2,
            fall: 3,
            port: None,
            start_down: false,
        },
        pools: vec![],
    }
}

#[test]
fn run_check_uses_the_check_port() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut t = tcp_target(closed_port(), 100, 300);
    assert!(run_check(&t.check, t.real).is_err());
    t.check.port = Some(l.local_addr().unwrap().port());
    run_check(&t.check, t.real).unwrap();
    assert_eq!(t.check_addr().port(), l.local_addr().unwrap().port());
}

/// Accepts and drops connections until stopped, then closes the listener.
fn accepting(addr: SocketAddr) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let l = TcpListener::bind(addr).unwrap();
    l.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let h = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            match l.accept() {
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (stop, h)
}

#[test]
fn monitor_reports_down_then_up() {
    let addr = closed_port();
    let (stop_server, server) = accepting(addr);
    let (tx, rx) = mpsc::channel();
    let target = tcp_target(addr, 100, 100);
    let monitor = HealthMonitor::start(
        vec![target.clone()],
        Arc::new(move |t: &HealthTarget, up: bool| {
            let _ = tx.send((t.real, up, Instant::now()));
        }),
    );
    // Up from the start, and no flip while the server answers.
    assert!(rx.recv_timeout(Duration::from_millis(350)).is_err());
    assert_eq!(monitor.current(), vec![(target.clone(), true)]);

    // The server goes away: down after `fall` failed checks, so no sooner than
    // (fall - 1) intervals (a stalled machine only makes it later) and within interval *
    // fall + timeout, with a second of slack for a loaded machine (a fall counted several
    // times over would still take longer).
    let gone = Instant::now();
    stop_server.store(true, Ordering::Relaxed);
    server.join().unwrap();
    let (real, up, at) = rx.recv_timeout(Duration::from_secs(5)).expect("down");
    assert_eq!((real, up), (addr, false));
    assert!(
        at - gone >= Duration::from_millis(100 * 2 - 10),
        "down after fewer than fall = 3 checks: {:?}",
        at - gone
    );
    let bound = Duration::from_millis(100 * 3 + 100);
    assert!(
        at - gone <= bound + Duration::from_secs(1),
        "{:?}",
        at - gone
    );
    assert_eq!(monitor.current(), vec![(target.clone(), false)]);

    // Back: up after `rise` successes, so no sooner than (rise - 1) intervals.
    let back = Instant::now();
    let (stop_server, server) = accepting(addr);
    let (real, up, at) = rx.recv_timeout(Duration::from_secs(5)).expect("up");
    assert_eq!((real, up), (addr, true));
    assert!(
        at - back >= Duration::from_millis(100 - 10),
        "up after fewer than rise = 2 checks: {:?}",
        at - back
    );
    assert!(
        at - back <= Duration::from_millis(100 * 2) + Duration::from_secs(1),
        "{:?}",
        at - back
    );
    assert_eq!(monitor.current(), vec![(target, true)]);
    monitor.stop();
    stop_server.store(true, Ordering::Relaxed);
    server.join().unwrap();
}

#[test]
fn stop_interrupts_checks_in_progress() {
    let (_l, hole, _filler) = black_hole();
    let mut slow_tcp = tcp_target(hole, 10_000, 5_000);
    slow_tcp.check.fall = 1;
    let mut slow_cmd = tcp_target("127.0.0.1:1".parse().unwrap(), 10_000, 5_000);
    slow_cmd.check.kind = HealthCheckKind::Command {
        user: None,
        command: "sleep 5".into(),
    };
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut slow_http = tcp_target(silent.local_addr().unwrap(), 10_000, 5_000);
    slow_http.check.kind = HealthCheckKind::Http {
        urls: vec![HttpUrl {
            path: "/".into(),
            expect_status: StatusCodes::one(200),
            expect_body: None,
            expect_digest: None,
        }],
        host: None,
    };
    let flips = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&flips);
    let monitor = HealthMonitor::start(
        vec![slow_tcp, slow_cmd, slow_http],
        Arc::new(move |_: &HealthTarget, _| f.store(true, Ordering::Relaxed)),
    );
    std::thread::sleep(Duration::from_millis(150));
    let t = Instant::now();
    monitor.stop();
    // Checks wait in 50 ms slices (`STOP_SLICE`); not waiting out their 5 s timeouts (or
    // the 5 s command) is the point, so the bound leaves a loaded machine room.
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(
        !flips.load(Ordering::Relaxed),
        "an interrupted check is not a failure"
    );
}

#[test]
fn dropping_the_monitor_stops_it() {
    let (tx, rx) = mpsc::channel::<bool>();
    let target = tcp_target(closed_port(), 20, 20);
    let monitor = HealthMonitor::start_with(
        vec![(target, false)],
        Arc::new(move |_: &HealthTarget, up| {
            let _ = tx.send(up);
        }),
    );
    assert!(!monitor.current()[0].1, "started down as asked");
    let t = Instant::now();
    drop(monitor);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // The sender went with the threads: the channel is closed, nothing flipped.
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(mpsc::RecvTimeoutError::Disconnected)
    ));
}

/// A command check that prints a number reports it as the server's load (for the `load`
/// scheduler); every successful check feeds a smoothed response time (for `fastest`).
#[test]
fn monitor_feeds_response_time_and_reported_load() {
    let mut t = tcp_target("198.18.1.11:80".parse().unwrap(), 50, 500);
    t.check.kind = HealthCheckKind::Command {
        user: None,
        command: "sleep 0.01; echo 250".into(),
    };
    let m = HealthMonitor::start(vec![t], Arc::new(|_: &HealthTarget, _| {}));
    let start = Instant::now();
    loop {
        let fb = m.feedback();
        let (_, rtt, load) = &fb[0];
        if *load == Some(250) && *rtt >= 10_000 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no feedback: {fb:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    m.stop();
}

/// A check that times out is a response time of at least its timeout for `fastest`: a
/// server that stops answering looks slow from its first failed check, not as fast as its
/// last success until `fall` takes it out. Once it is back, its response time starts
/// afresh from the checks that brought it back instead of decaying from the outage's.
#[test]
fn timed_out_checks_count_as_slow_and_recovery_starts_afresh() {
    let dir = std::env::temp_dir().join(format!("uvs-hc-slow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hang = dir.join("hang");
    let mut t = tcp_target("198.18.1.11:80".parse().unwrap(), 50, 400);
    t.check.kind = HealthCheckKind::Command {
        user: None,
        command: format!("if [ -e {} ]; then sleep 5; fi", hang.display()),
    };
    let (tx, rx) = mpsc::channel();
    let m = HealthMonitor::start(
        vec![t],
        Arc::new(move |_: &HealthTarget, up: bool| {
            let _ = tx.send(up);
        }),
    );
    let rtt = |m: &HealthMonitor| m.feedback()[0].1;
    let start = Instant::now();
    while rtt(&m) == 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "no response time");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(&hang, "").unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(false));
    // Three timeouts of 400 ms (fall 3), smoothed by 1/8 each: at least 400·(1 − (7/8)³).
    let slow = rtt(&m);
    assert!(
        slow >= 120_000,
        "timed-out checks left the response time at {slow} µs"
    );
    std::fs::remove_file(&hang).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true));
    let back = rtt(&m);
    assert!(
        back < 60_000,
        "back up, the response time is still {back} µs"
    );
    m.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A new configuration (a reload, any `uvsadm` edit) restarts the monitor, and the same
/// check resumes where it was: a dead server still goes down after `fall` checks while
/// edits come faster than `fall` intervals (a script adjusting weights every second),
/// instead of its count starting over at each one and the server staying up for as long
/// as the edits go on; and the restart does not run a check out of turn.
#[test]
fn restarted_monitors_resume_their_counts_and_schedule() {
    let target = tcp_target(closed_port(), 300, 100);
    let (tx, rx) = mpsc::channel();
    let on_change = Arc::new(move |_: &HealthTarget, up: bool| {
        let _ = tx.send(up);
    });
    let on_agent = Arc::new(|_: &HealthTarget, _: &uvs_agent::AgentState| {});
    let start = Instant::now();
    let mut m = HealthMonitor::start(vec![target.clone()], on_change.clone());
    // fall 3 at 300 ms: down at about 600 ms (checks at 0, 300, 600); restarted every 250 ms.
    let down = loop {
        if let Ok(up) = rx.recv_timeout(Duration::from_millis(250)) {
            break up;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "still up after {:?} of restarts every 250 ms (fall 3, interval 300 ms)",
            start.elapsed()
        );
        let progress = m.progress();
        m.stop();
        m = HealthMonitor::start_resumed(
            progress
                .into_iter()
                .map(|(t, state, next)| (t, Start::Resume(state, next), Default::default()))
                .collect(),
            on_change.clone(),
            on_agent.clone(),
        );
    };
    assert!(!down);
    let (_, state, next) = m.progress().remove(0);
    assert!(!state.up && state.failures >= 3, "{state:?}");
    assert!(
        next > Instant::now() - Duration::from_millis(300),
        "{next:?}"
    );
    m.stop();
}

/// Two thousand checked servers on the monitor's threads, the first `holed` of them
/// black-holed (each check waits out its 5 s timeout) and the others refusing: the ports
/// of those taken down within 6 s, and how long that took.
fn others_down(holed: u16) -> (std::collections::BTreeSet<u16>, Duration) {
    let (_fd, hole, _filler) = black_hole();
    let closed = closed_port();
    let targets: Vec<(HealthTarget, bool)> = (0..2000u16)
        .map(|n| {
            let (real, timeout) = if n < holed {
                (hole, 5000)
            } else {
                (closed, SHORT.as_millis() as u64)
            };
            let mut t = tcp_target(real, 200, timeout);
            t.service = ServiceKey::addr("198.18.100.1".parse().unwrap(), Protocol::Tcp, 1000 + n);
            (t, true)
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    let m = HealthMonitor::start_with(
        targets,
        Arc::new(move |t: &HealthTarget, up: bool| {
            let _ = tx.send((t.service.port, up));
        }),
    );
    let began = Instant::now();
    let mut down = std::collections::BTreeSet::new();
    while down.len() < usize::from(2000 - holed) {
        match rx.recv_timeout(Duration::from_secs(6).saturating_sub(began.elapsed())) {
            Ok((port, false)) => {
                down.insert(port);
            }
            Ok((port, true)) => panic!("{port} came up"),
            Err(_) => break,
        }
    }
    let took = began.elapsed();
    m.stop();
    assert!(
        down.iter().all(|p| *p >= 1000 + holed),
        "a black-holed one down"
    );
    (down, took)
}

/// A rack gone: 600 of 2 000 checked servers black-holed at once, more than the monitor's
/// 512 threads. Every thread is soon waiting out a 5 s timeout; the monitor adds threads
/// for the checks falling behind, so every one of the other 1 400 that stops answering is
/// still taken down within a few of its intervals (with 512 threads only, none was
/// checked until the first timeouts ended, 5 s in).
#[test]
fn a_rack_of_black_holed_servers_does_not_delay_the_others() {
    let (down, took) = others_down(600);
    assert_eq!(down.len(), 1400, "down after {took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

/// Two thousand checked servers on the monitor's 512 threads, twenty of them black-holed
/// (each check waits out its 5 s timeout): every one of the others that stops answering
/// is taken down within a few of its intervals. With a fixed share of four servers per
/// thread, the servers sharing a thread with a black-holed one were checked once every
/// 5 s and stayed up for 15.
#[test]
fn black_holed_servers_do_not_delay_the_others_at_scale() {
    let (down, took) = others_down(20);
    assert_eq!(
        down.len(),
        1980,
        "{} of 1980 refusing servers down after {took:?}; still up: {:?}",
        down.len(),
        (1020..3000u16)
            .filter(|p| !down.contains(p))
            .take(20)
            .collect::<Vec<_>>()
    );
    // Three failed checks 200 ms apart, on a loaded machine: well under the black-holed
    // servers' 5 s timeout, which they would otherwise have waited for.
    assert!(took < Duration::from_secs(4), "{took:?}");
}
