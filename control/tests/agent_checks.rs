//! Agent checks (HAProxy's agent-check protocol) against a scripted agent on 127.0.0.1:
//! replies as HAProxy's manual writes them, malformed ones, `agent-send`, and the
//! monitor turning replies into weights and health flips.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use uvs_agent::{Admin, AgentState, Health};
use uvs_config::{HealthCheck, HealthCheckKind, Protocol, ServiceKey};
use uvs_control::health::{check_agent, HealthMonitor, HealthTarget};

const SHORT: Duration = Duration::from_millis(500);

/// A scripted agent: answers every connection with the current `reply` bytes, records
/// what the checker sent first (up to 100 ms), and closes.
struct FakeAgent {
    addr: SocketAddr,
    reply: Arc<Mutex<Vec<u8>>>,
    received: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeAgent {
    fn start(reply: &[u8]) -> FakeAgent {
        Self::start_reading(reply, Duration::from_millis(100))
    }

    /// For a checker that sends a line first: its request is waited for up to 2 s, so a
    /// loaded machine does not record an empty one (`start`'s 100 ms suits checkers that
    /// send nothing, whose wait it is).
    fn start_expecting_send(reply: &[u8]) -> FakeAgent {
        Self::start_reading(reply, Duration::from_secs(2))
    }

    fn start_reading(reply: &[u8], read_timeout: Duration) -> FakeAgent {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let reply = Arc::new(Mutex::new(reply.to_vec()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, rx, st) = (reply.clone(), received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(read_timeout)).unwrap();
                let mut buf = [0u8; 256];
                let n = s.read(&mut buf).unwrap_or(0);
                rx.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let line = r.lock().unwrap().clone();
                let _ = s.write_all(&line);
            }
        });
        FakeAgent {
            addr,
            reply,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn say(&self, line: &str) {
        *self.reply.lock().unwrap() = line.as_bytes().to_vec();
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn agent_target(agent: SocketAddr, interval_ms: u64, send: Option<&str>) -> HealthTarget {
    HealthTarget {
        service: ServiceKey {
            vip: "198.18.100.1".parse().unwrap(),
            protocol: Protocol::Tcp,
            port: 80,
            fwmark: 0,
        },
        real: SocketAddr::new(agent.ip(), 80),
        check: HealthCheck {
            kind: HealthCheckKind::Agent {
                send: send.map(String::from),
            },
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(interval_ms.min(300)),
            rise: 2,
            fall: 3,
            port: Some(agent.port()),
            start_down: false,
        },
        pools: vec![],
    }
}

/// (line, health, admin state, weight %, maxconn) a reply should parse to.
type Expect = (
    &'static str,
    Option<Health>,
    Option<Admin>,
    Option<u32>,
    Option<u32>,
);

/// Every reply form of HAProxy's `agent-check` documentation, literally, and the state
/// each leaves.
#[test]
fn replies_from_haproxys_manual() {
    let a = FakeAgent::start(b"");
    let cases: &[Expect] = &[
        ("75%\n", None, None, Some(75), None),
        ("maxconn:30\n", None, None, None, Some(30)),
        ("ready\n", None, Some(Admin::Ready), None, None),
        ("drain\n", None, Some(Admin::Drain), None, None),
        ("maint\n", None, Some(Admin::Maint), None, None),
        ("down\n", Some(Health::Down), None, None, None),
        ("fail\n", Some(Health::Fail), None, None, None),
        ("stopped\n", Some(Health::Stopped), None, None, None),
        ("up\n", Some(Health::Up), None, None, None),
        ("up 75%\r\n", Some(Health::Up), None, Some(75), None),
        (
            "down #missing process\n",
            Some(Health::Down),
            None,
            None,
            None,
        ),
    ];
    for &(line, health, admin, pct, maxconn) in cases {
        a.say(line);
        let r = check_agent(a.addr, None, SHORT).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(
            (r.health, r.admin, r.weight_pct, r.maxconn),
            (health, admin, pct, maxconn),
            "{line:?}"
        );
    }
}

#[test]
fn malformed_replies_fail_with_a_reason() {
    let a = FakeAgent::start(b"");
    for (line, why) in [
        ("75%x\n", "bad weight \"75%x\""),
        ("up maxconn:many\n", "bad maxconn"),
        ("up 75%", "no end of line"),
        ("", "sent nothing"),
        ("up\u{1}\n", "control character"),
    ] {
        a.say(line);
        let err = check_agent(a.addr, None, SHORT).unwrap_err();
        assert!(err.contains(why), "{line:?}: {err}");
        assert!(err.contains(&a.addr.to_string()), "names the agent: {err}");
    }
    a.say(&"x".repeat(5000));
    let err = check_agent(a.addr, None, SHORT).unwrap_err();
    assert!(err.contains("longer than 1024"), "{err}");
}

#[test]
fn agent_send_is_written_first() {
    let a = FakeAgent::start_expecting_send(b"up\n");
    check_agent(a.addr, Some("web4\n"), SHORT).unwrap();
    assert_eq!(a.received.lock().unwrap().last().unwrap(), "web4\n");
}

/// The monitor: weights and drain go to `on_agent`; `down` takes the server out at once
/// (no `fall` wait), `up` brings it back at once; a malformed reply changes nothing of
/// the agent's state and counts as a failed check; an agent that disappears fails the
/// check after `fall`.
#[test]
fn monitor_applies_agent_replies() {
    let a = FakeAgent::start_expecting_send(b"up ready 80%\n");
    // Each flip with the number of requests the agent had received by then.
    let (flips_tx, flips) = mpsc::channel::<(bool, usize)>();
    let received = Arc::clone(&a.received);
    let (states_tx, states) = mpsc::channel::<AgentState>();
    let m = HealthMonitor::start_full(
        vec![(
            agent_target(a.addr, 200, Some("svc\n")),
            true,
            AgentState::default(),
        )],
        Arc::new(move |_: &HealthTarget, up| {
            let _ = flips_tx.send((up, received.lock().unwrap().len()));
        }),
        Arc::new(move |_: &HealthTarget, st: &AgentState| {
            let _ = states_tx.send(st.clone());
        }),
    );
    let next_state = |want: &dyn Fn(&AgentState) -> bool| {
        let end = Instant::now() + Duration::from_secs(3);
        loop {
            let st = states
                .recv_timeout(end.saturating_duration_since(Instant::now()))
                .expect("agent state");
            if want(&st) {
                return st;
            }
        }
    };
    // At the start, the state it starts from; then the agent's 80 %.
    assert_eq!(next_state(&|_| true), AgentState::default());
    let st = next_state(&|s| s.weight_pct == 80);
    assert_eq!(st.effective_weight_pct(), 80);

    a.say("drain\n");
    let st = next_state(&|s| s.admin == Admin::Drain);
    assert_eq!(st.effective_weight_pct(), 0);
    assert!(!st.is_out(), "draining is not down");

    // Counted in the agent's requests, not in time, so a loaded machine cannot fail it: at
    // most the one under way when the reply changed and the first to get it.
    let asked = a.received.lock().unwrap().len();
    a.say("stopped #deploying\n");
    let (up, by) = flips.recv_timeout(Duration::from_secs(5)).expect("flip");
    assert!(!up);
    let checks = by - asked;
    assert!(
        checks <= 2,
        "down at the first such reply, not after fall = 3 checks: {checks} checks"
    );
    assert!(!m.current()[0].1);

    // A malformed reply: refused whole; the agent's state is still stopped + drain.
    a.say("up 75%x\n");
    std::thread::sleep(Duration::from_millis(500));
    let kept = &m.agent_states()[0].1;
    assert_eq!((kept.health, kept.admin), (Health::Stopped, Admin::Drain));
    assert!(flips.try_recv().is_err(), "no flip from a malformed reply");

    a.say("up ready\n");
    assert_eq!(
        flips.recv_timeout(Duration::from_secs(5)).map(|f| f.0),
        Ok(true)
    );
    let st = next_state(&|s| s.admin == Admin::Ready && s.health == Health::Up);
    assert_eq!(
        st.effective_weight_pct(),
        80,
        "the weight was kept all along"
    );
    assert!(a.received.lock().unwrap().iter().all(|r| r == "svc\n"));

    // The agent goes away: an ordinary failed check, down after fall = 3.
    drop(a);
    assert_eq!(
        flips.recv_timeout(Duration::from_secs(5)).map(|f| f.0),
        Ok(false)
    );
    m.stop();
}
