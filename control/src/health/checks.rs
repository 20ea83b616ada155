//! The probes: one blocking check of one real server (TCP connect, HTTP(S) GET, a
//! command, an agent's reply), bounded by the check's timeout and interruptible by the
//! monitor's stop signal.

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::sys::socket::{
    connect, getsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    SockaddrIn6,
};
use nix::unistd::Pid;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uvs_agent::proto::{self, AgentState, Reply};
use uvs_config::{HealthCheck, HealthCheckKind};

use super::*;

/// Runs one check of `check` against the real server `real` (the check's port, if set,
/// replaces the real server's), bounded by the check's timeout. `Err` says why it failed.
/// (An agent's reply is parsed but not judged here: see [`check_agent`].)
pub fn run_check(check: &HealthCheck, real: SocketAddr) -> Result<(), String> {
    run_check_until(check, real, &Arc::new(AtomicBool::new(false))).map(|_| ())
}

/// What a successful check learned besides "it answered".
#[derive(Debug, Default)]
pub(super) struct CheckOutput {
    /// The load a `command` check printed (see [`command_until`]).
    pub(super) load: Option<u32>,
    /// An agent's reply.
    pub(super) agent: Option<Reply>,
}

impl From<Option<u32>> for CheckOutput {
    fn from(load: Option<u32>) -> Self {
        CheckOutput { load, agent: None }
    }
}

/// Runs one check.
pub(super) fn run_check_until(
    check: &HealthCheck,
    real: SocketAddr,
    stop: &Arc<AtomicBool>,
) -> Result<CheckOutput, String> {
    let addr = SocketAddr::new(real.ip(), check.port.unwrap_or(real.port()));
    match &check.kind {
        HealthCheckKind::Tcp => tcp_until(addr, check.timeout, stop).map(|_| None.into()),
        HealthCheckKind::Http { urls, host } => {
            crate::webcheck::get_urls(addr, urls, host.as_deref(), None, check.timeout, stop)
                .map(|_| None.into())
        }
        HealthCheckKind::Https {
            urls,
            sni,
            verify,
            ca_file,
        } => crate::webcheck::get_urls(
            addr,
            urls,
            None,
            Some(crate::webcheck::Tls {
                sni: sni.as_deref(),
                verify: *verify,
                ca_file: ca_file.as_deref(),
            }),
            check.timeout,
            stop,
        )
        .map(|_| None.into()),
        HealthCheckKind::Command { command, user } => {
            command_until(command, user.as_deref(), addr, check.timeout, stop)
                .map(CheckOutput::from)
        }
        HealthCheckKind::Agent { send } => agent_until(addr, send.as_deref(), check.timeout, stop)
            .map(|r| CheckOutput {
                load: None,
                agent: Some(r),
            }),
    }
}

/// An agent check (HAProxy's agent-check protocol): connect to the agent at `addr`, send
/// `send` if given, read one line within `timeout` and parse it. A malformed reply is an
/// error that says what is wrong with it.
pub fn check_agent(
    addr: SocketAddr,
    send: Option<&str>,
    timeout: Duration,
) -> Result<Reply, String> {
    agent_until(addr, send, timeout, &AtomicBool::new(false))
}

pub(super) fn agent_until(
    addr: SocketAddr,
    send: Option<&str>,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<Reply, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect_until(addr, deadline, timeout, stop)?;
    if let Some(text) = send {
        let remaining = deadline.saturating_duration_since(Instant::now());
        stream
            .set_write_timeout(Some(remaining.max(Duration::from_millis(1))))
            .and_then(|()| stream.write_all(text.as_bytes()))
            .map_err(|e| format!("sending to the agent at {addr}: {e}"))?;
    }
    let mut got = Vec::with_capacity(64);
    let mut buf = [0u8; 512];
    loop {
        // Enough to decide: a line end, or more than a line may hold.
        if got.iter().any(|&b| b == b'\n' || b == b'\r') || got.len() > proto::MAX_LINE {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            return Err(STOPPED.into());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(if got.is_empty() {
                format!("the agent at {addr} sent nothing within {timeout:?}")
            } else {
                format!("the agent at {addr} sent no complete line within {timeout:?}")
            });
        }
        stream
            .set_read_timeout(Some((deadline - now).min(STOP_SLICE)))
            .map_err(|e| format!("reading from the agent at {addr}: {e}"))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(format!("reading from the agent at {addr}: {e}")),
        }
    }
    proto::parse_reply(&got).map_err(|e| format!("{e} (agent at {addr})"))
}

/// `TCP_CHECK`: the three-way handshake completes within `timeout`.
pub fn check_tcp(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    tcp_until(addr, timeout, &AtomicBool::new(false))
}

pub(super) fn tcp_until(
    addr: SocketAddr,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<(), String> {
    connect_until(addr, Instant::now() + timeout, timeout, stop).map(drop)
}

/// A non-blocking connect polled in [`STOP_SLICE`] steps, so that stopping the monitor does
/// not wait for a black-holed SYN to time out.
pub(crate) fn connect_until(
    addr: SocketAddr,
    deadline: Instant,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<TcpStream, String> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("cannot create a socket: {}", e.desc()))?;
    let started = match addr {
        SocketAddr::V4(a) => connect(fd.as_raw_fd(), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => connect(fd.as_raw_fd(), &SockaddrIn6::from(a)),
    };
    match started {
        Ok(()) => {}
        Err(Errno::EINPROGRESS) => loop {
            if stop.load(Ordering::Relaxed) {
                return Err(STOPPED.into());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("connect to {addr} timed out after {timeout:?}"));
            }
            let slice = (deadline - now).min(STOP_SLICE);
            // Rounded up so a sub-millisecond remainder still waits instead of spinning.
            let ms = u16::try_from(slice.as_millis() + 1).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => break,
                Err(e) => return Err(format!("connect to {addr}: {}", e.desc())),
            }
        },
        Err(e) => return Err(format!("connect to {addr}: {}", e.desc())),
    }
    match getsockopt(&fd, sockopt::SocketError) {
        Ok(0) => {}
        Ok(code) => {
            return Err(format!(
                "connect to {addr}: {}",
                Errno::from_raw(code).desc()
            ))
        }
        Err(e) => return Err(format!("connect to {addr}: {}", e.desc())),
    }
    let stream = TcpStream::from(fd);
    stream
        .set_nonblocking(false)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    Ok(stream)
}

/// `HTTP_GET`: `GET path` over HTTP/1.1 with `Connection: close` answers `expect_status`, and
/// its body contains `expect_body` when given; all within `timeout` (connect included).
///
/// The Host header is the checked address (with the port unless it is 80), as keepalived sends
/// when no `virtualhost` is set. The client is ureq's (see `webcheck`).
pub fn check_http(
    addr: SocketAddr,
    path: &str,
    expect_status: u16,
    expect_body: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    http_until(
        addr,
        path,
        expect_status,
        expect_body,
        timeout,
        &Arc::new(AtomicBool::new(false)),
    )
}

pub(super) fn http_until(
    addr: SocketAddr,
    path: &str,
    expect_status: u16,
    expect_body: Option<&str>,
    timeout: Duration,
    stop: &Arc<AtomicBool>,
) -> Result<(), String> {
    crate::webcheck::get(
        &crate::webcheck::Get {
            addr,
            path,
            expect_status: &uvs_config::StatusCodes::one(expect_status),
            expect_body,
            expect_digest: None,
            host: None,
            tls: None,
        },
        timeout,
        stop,
    )
}

/// `MISC_CHECK`: `sh -c command` with `%a` replaced by the address, `%p` by the port and `%%`
/// by `%` exits 0 within `timeout`. On timeout the command's whole process group is killed
/// (keepalived kills the script's group too), so a pipeline does not outlive its check.
pub fn check_command(command: &str, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    command_until(command, None, addr, timeout, &AtomicBool::new(false)).map(|_| ())
}

/// [`check_command`] as the account `user` (`None`: uvsd's own); returns the number the
/// command printed on its first line, if any (the load it reports).
pub fn check_command_as(
    command: &str,
    user: Option<&str>,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Option<u32>, String> {
    command_until(command, user, addr, timeout, &AtomicBool::new(false))
}

/// `%a` → address (IPv6 without brackets), `%p` → port, `%%` → `%`; any other `%` is kept.
pub fn substitute(command: &str, addr: SocketAddr) -> String {
    let mut out = String::with_capacity(command.len() + 16);
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('a') => out.push_str(&addr.ip().to_string()),
            Some('p') => out.push_str(&addr.port().to_string()),
            Some('%') => out.push('%'),
            _ => {
                out.push('%');
                continue;
            }
        }
        chars.next();
    }
    out
}

/// Runs a MISC_CHECK command. Load feedback for the `load` scheduler: when a successful
/// command prints a number on its first line, that is the real server's load (0 idle ..
/// 1000 saturated), as an agent on the real server would report it (e.g. `ssh %a cat
/// /run/load` or a curl of an agent endpoint). Output is read after the command exits,
/// so it should stay short (a pipe's 64 KiB).
pub(super) fn command_until(
    command: &str,
    user: Option<&str>,
    addr: SocketAddr,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<Option<u32>, String> {
    let line = substitute(command, addr);
    let deadline = Instant::now() + timeout;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&line)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group, so a timeout can kill everything it started.
        .process_group(0);
    // The check is not the service: systemd would take its notifications for uvsd's.
    for v in crate::notify::ENV {
        cmd.env_remove(v);
    }
    if let Some(name) = user {
        // std sets the groups to none, then the gid, then the uid in the child: from root
        // that also empties its capability sets (capabilities(7)).
        let acct = crate::privileges::account(name)?;
        cmd.uid(acct.uid)
            .gid(acct.gid)
            .env("HOME", &acct.home)
            .env("USER", name)
            .env("LOGNAME", name);
    }
    let mut child = cmd.spawn().map_err(|e| match user {
        Some(u) => format!("cannot run sh -c {line:?} as user '{u}': {e}"),
        None => format!("cannot run sh -c {line:?}: {e}"),
    })?;
    // Read as the command runs, never waiting on the pipe: an output longer than the pipe
    // holds would stall the command until its timeout, and a background process it leaves
    // behind keeps the pipe open long after it exits.
    let mut stdout = child.stdout.take();
    if let Some(so) = &stdout {
        let _ = fcntl(so, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    }
    let mut out = Vec::new();
    let mut pause = Duration::from_millis(1);
    loop {
        let status = child.try_wait();
        // After the exit too: what the command wrote before it ended is in the pipe.
        if let Some(so) = &mut stdout {
            if !drain(so, &mut out) {
                stdout = None;
            }
        }
        match status {
            Ok(Some(status)) => {
                return match (status.code(), status.signal()) {
                    (Some(0), _) => Ok(String::from_utf8_lossy(&out)
                        .lines()
                        .next()
                        .and_then(|l| l.trim().parse::<u32>().ok())),
                    (Some(code), _) => Err(format!("{line:?} exited with status {code}")),
                    (None, Some(sig)) => Err(format!("{line:?} was killed by signal {sig}")),
                    (None, None) => Err(format!("{line:?} ended abnormally")),
                };
            }
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for {line:?}: {e}")),
        }
        let stopping = stop.load(Ordering::Relaxed);
        if stopping || Instant::now() >= deadline {
            // The group id is the child's pid (process_group(0)); the pid is still ours to
            // signal because the child has not been reaped.
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            return Err(if stopping {
                STOPPED.into()
            } else {
                format!("{line:?} did not finish within {timeout:?}: killed")
            });
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// What a command check keeps of its output: its first line is all it reads.
const MAX_OUTPUT: usize = 4096;

/// Reads what the non-blocking pipe holds, keeping the first [`MAX_OUTPUT`] bytes; false
/// once the pipe is closed (or broken).
fn drain(pipe: &mut impl Read, out: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                let keep = n.min(MAX_OUTPUT.saturating_sub(out.len()));
                out.extend_from_slice(&buf[..keep]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
        }
    }
}

/// Called from a checker thread when a target's state flips: `(target, now_up)`.
pub type OnChange = Arc<dyn Fn(&HealthTarget, bool) + Send + Sync>;
/// Called from an agent check's thread when what the agent said changes (and once at the
/// start, with the state it starts from): `(target, state)`.
pub type OnAgent = Arc<dyn Fn(&HealthTarget, &AgentState) + Send + Sync>;
