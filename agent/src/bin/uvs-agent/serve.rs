//! The daemon: answers agent checks on TCP and commands on a Unix socket.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use uvs_agent::client::{self, Command, CLIENT_OF, MAX_COMMAND};
use uvs_agent::lookup;
use uvs_agent::{Admin, Health, Reply};

use crate::load::Figures;

/// Connections handled at once (agent checks and commands each); past it an agent check
/// still gets its line, without the wait for the peer to close.
const MAX_CONCURRENT: usize = 64;
/// How long a checker gets to close after its line before we close on it.
const LINGER: Duration = Duration::from_millis(500);
/// How long a command client gets to send its line.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// What shapes the reply besides the application's commands.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Report a weight (headroom) at all.
    pub weight: bool,
    /// Lowest weight percentage reported: a saturated server is still given some flows
    /// rather than drained by its own CPU load (0 % drains, in HAProxy and uvs alike).
    pub min_weight: u32,
    /// Reported as `maxconn:N` when set.
    pub maxconn: Option<u32>,
    /// While this file exists the agent says `drain`.
    pub drain_file: Option<PathBuf>,
    /// How long an application's pushed load counts without being repeated.
    pub app_load_ttl: Duration,
    /// Where `client-of` questions go (uvsd's `client_lookup`), if anywhere.
    pub lookup: Option<Lookup>,
}

/// uvsd's client lookup service and the key shared with it.
#[derive(Clone)]
pub struct Lookup {
    pub at: SocketAddr,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key (logs, panics).
        write!(
            f,
            "Lookup {{ at: {}, key: <{} bytes> }}",
            self.at,
            self.key.len()
        )
    }
}

/// What the application (commands, signals) asked for.
#[derive(Clone, Debug)]
struct Wanted {
    admin: Admin,
    /// `Some(reason)` while the application says it is down.
    down: Option<Option<String>>,
    app_load: Option<(f64, Instant)>,
}

pub struct Agent {
    policy: Policy,
    wanted: Mutex<Wanted>,
    figures: Mutex<Figures>,
}

impl Agent {
    pub fn new(policy: Policy) -> Agent {
        Agent {
            policy,
            wanted: Mutex::new(Wanted {
                admin: Admin::Ready,
                down: None,
                app_load: None,
            }),
            figures: Mutex::new(Figures::default()),
        }
    }

    pub fn set_figures(&self, f: Figures) {
        *self.figures.lock().unwrap_or_else(|p| p.into_inner()) = f;
    }

    /// The figures with the application's pushed one, if still fresh.
    pub fn figures(&self) -> Figures {
        let mut f = *self.figures.lock().unwrap_or_else(|p| p.into_inner());
        let w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        f.app = w
            .app_load
            .filter(|(_, at)| at.elapsed() <= self.policy.app_load_ttl)
            .map(|(v, _)| v);
        f
    }

    pub fn set_admin(&self, a: Admin) {
        self.wanted.lock().unwrap_or_else(|p| p.into_inner()).admin = a;
    }

    /// Applies a command; returns the reply balancers now get.
    pub fn command(&self, c: &Command) -> Reply {
        {
            let mut w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
            match c {
                Command::Drain => w.admin = Admin::Drain,
                Command::Ready => w.admin = Admin::Ready,
                Command::Maint => w.admin = Admin::Maint,
                Command::Down(why) => w.down = Some(why.clone()),
                Command::Up => w.down = None,
                Command::Load(v) => w.app_load = v.map(|v| (f64::from(v), Instant::now())),
                Command::Status => {}
            }
        }
        if !matches!(c, Command::Status) {
            log::info!("{c}: now answering \"{}\"", self.reply());
        }
        self.reply()
    }

    /// The reply for a check right now.
    pub fn reply(&self) -> Reply {
        let w = self
            .wanted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let file_drain = self.policy.drain_file.as_ref().is_some_and(|p| p.exists());
        let admin = if file_drain {
            w.admin.max(Admin::Drain)
        } else {
            w.admin
        };
        let weight = self.policy.weight.then(|| {
            let headroom = 100.0 - self.figures().load();
            (headroom.round() as u32).clamp(self.policy.min_weight.min(100), 100)
        });
        Reply {
            health: Some(if w.down.is_some() {
                Health::Stopped
            } else {
                Health::Up
            }),
            admin: Some(admin),
            weight_pct: weight,
            maxconn: self.policy.maxconn,
            description: w.down.flatten(),
            unknown: Vec::new(),
        }
    }
}

/// Binds the agent-check listeners. `[::]:PORT` falls back to `0.0.0.0:PORT` on a host
/// without IPv6.
pub fn bind_checks(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for a in addrs {
        let l = match TcpListener::bind(a) {
            Ok(l) => l,
            Err(e) if a.ip().is_unspecified() && a.is_ipv6() => {
                let v4 = SocketAddr::from(([0, 0, 0, 0], a.port()));
                log::warn!("cannot listen on {a} ({e}); listening on {v4}");
                TcpListener::bind(v4).with_context(|| format!("listening on {v4}"))?
            }
            Err(e) => return Err(e).with_context(|| format!("listening on {a}")),
        };
        out.push(l);
    }
    Ok(out)
}

/// Answers agent checks on `l` until the process ends.
pub fn serve_checks(agent: Arc<Agent>, l: TcpListener) {
    let busy = Arc::new(AtomicUsize::new(0));
    for conn in l.incoming() {
        let s = match conn {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accepting an agent check: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let line = format!("{}\n", agent.reply());
        if busy.fetch_add(1, Ordering::Relaxed) >= MAX_CONCURRENT {
            busy.fetch_sub(1, Ordering::Relaxed);
            answer_check(s, &line, Duration::ZERO);
            continue;
        }
        let b = busy.clone();
        let spawned = std::thread::Builder::new()
            .name("uvs-agent-check".into())
            .spawn(move || {
                answer_check(s, &line, LINGER);
                b.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            busy.fetch_sub(1, Ordering::Relaxed);
            log::warn!("cannot start a thread for an agent check: {e}");
        }
    }
}

/// Writes the line, then waits (up to `linger`) for the checker to close, reading and
/// discarding what it sent (HAProxy's `agent-send`): closing with unread input would
/// make the kernel reset the connection, and a reset can overtake the line.
fn answer_check(mut s: TcpStream, line: &str, linger: Duration) {
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    if let Err(e) = s.write_all(line.as_bytes()) {
        log::debug!("answering an agent check: {e}");
        return;
    }
    let _ = s.shutdown(Shutdown::Write);
    if linger.is_zero() {
        return;
    }
    let deadline = Instant::now() + linger;
    let mut buf = [0u8; 512];
    let mut left = 64 * 1024usize;
    while left > 0 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let _ = s.set_read_timeout(Some(deadline - now));
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// Binds the command socket with `mode`; refuses to take over one another agent serves,
/// replaces a stale one.
pub fn bind_commands(path: &Path, mode: u32) -> Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!(
                "another uvs-agent is listening on {}: stop it first, or give this one another --socket",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let l = UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(l)
}

/// Serves commands on `l` until the process ends.
pub fn serve_commands(agent: Arc<Agent>, l: UnixListener) {
    let busy = Arc::new(AtomicUsize::new(0));
    for conn in l.incoming() {
        let s = match conn {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accepting a command: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if busy.fetch_add(1, Ordering::Relaxed) >= MAX_CONCURRENT {
            busy.fetch_sub(1, Ordering::Relaxed);
            let mut s = s;
            let _ = s.write_all(b"error too many clients at once; try again\n");
            continue;
        }
        let (a, b) = (agent.clone(), busy.clone());
        let spawned = std::thread::Builder::new()
            .name("uvs-agent-cmd".into())
            .spawn(move || {
                handle_command(&a, s);
                b.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            busy.fetch_sub(1, Ordering::Relaxed);
            log::warn!("cannot start a thread for a command: {e}");
        }
    }
}

fn handle_command(agent: &Agent, mut s: UnixStream) {
    let _ = s.set_read_timeout(Some(COMMAND_TIMEOUT));
    let _ = s.set_write_timeout(Some(COMMAND_TIMEOUT));
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let answer = loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            buf.truncate(end);
            break match std::str::from_utf8(&buf) {
                Ok(text) if text.trim_start().starts_with(CLIENT_OF) => {
                    relay_client_of(agent, &text.trim_start()[CLIENT_OF.len()..])
                }
                Ok(text) => match text.parse::<Command>() {
                    Ok(c) => format!("ok {}", agent.command(&c)),
                    Err(e) => format!("error {e}"),
                },
                Err(_) => "error the command is not UTF-8 text".to_string(),
            };
        }
        if buf.len() > MAX_COMMAND {
            break format!("error command longer than {MAX_COMMAND} bytes");
        }
        if Instant::now() >= deadline {
            break "error no complete command line within 2 s".to_string();
        }
        match s.read(&mut chunk) {
            Ok(0) => {
                // A client that closes its side without a newline still meant its line.
                if buf.is_empty() {
                    return;
                }
                buf.push(b'\n');
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break "error no complete command line within 2 s".to_string(),
        }
    };
    let _ = s.write_all(format!("{answer}\n").as_bytes());
}

/// `client-of PROTOCOL LOCAL PEER`: asked of uvsd, its answer passed on.
fn relay_client_of(agent: &Agent, args: &str) -> String {
    let Some(l) = &agent.policy.lookup else {
        return "error this agent has no --lookup (uvsd's client_lookup.listen) to ask".into();
    };
    let (protocol, local, peer) = match client::parse_client_of(args) {
        Ok(a) => a,
        Err(e) => return format!("error {e}: {CLIENT_OF} tcp|udp|sctp LOCAL:PORT PEER:PORT"),
    };
    match lookup::query(l.at, &l.key, protocol, local, peer, lookup::DEFAULT_TIMEOUT) {
        Ok(lookup::Outcome::Found {
            client,
            virtual_service,
        }) => format!(
            "ok {}",
            client::client_of_answer(Some(client::ClientOf {
                client,
                virtual_service
            }))
        ),
        Ok(lookup::Outcome::Unknown) => format!("ok {}", client::client_of_answer(None)),
        Err(e) => {
            log::warn!("client-of {local} {peer}: {e}");
            format!("error {e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            weight: true,
            min_weight: 10,
            maxconn: None,
            drain_file: None,
            app_load_ttl: Duration::from_secs(10),
            lookup: None,
        }
    }

    #[test]
    fn replies_follow_commands_and_load() {
        let a = Agent::new(policy());
        assert_eq!(a.reply().to_string(), "up ready 100%");
        a.set_figures(Figures {
            cpu: Some(37.4),
            ..Figures::default()
        });
        assert_eq!(a.reply().to_string(), "up ready 63%");
        a.command(&Command::Load(Some(80)));
        assert_eq!(a.reply().to_string(), "up ready 20%");
        a.command(&Command::Load(Some(100)));
        assert_eq!(a.reply().to_string(), "up ready 10%", "the floor");
        a.command(&Command::Load(None));
        assert_eq!(a.command(&Command::Drain).to_string(), "up drain 63%");
        assert_eq!(
            a.command(&Command::Down(Some("deploy".into()))).to_string(),
            "stopped drain 63% #deploy"
        );
        a.command(&Command::Up);
        assert_eq!(a.command(&Command::Ready).to_string(), "up ready 63%");
        assert_eq!(a.command(&Command::Maint).to_string(), "up maint 63%");
    }

    #[test]
    fn drain_file_and_stale_app_load() {
        let dir = std::env::temp_dir().join(format!("uvs-agent-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("drain");
        let a = Agent::new(Policy {
            drain_file: Some(file.clone()),
            weight: false,
            maxconn: Some(30),
            // Long enough that a stalled machine cannot outlive it between the two calls
            // that read it fresh.
            app_load_ttl: Duration::from_secs(1),
            ..policy()
        });
        assert_eq!(a.reply().to_string(), "up ready maxconn:30");
        std::fs::write(&file, "").unwrap();
        assert_eq!(a.reply().admin, Some(Admin::Drain));
        a.set_admin(Admin::Maint);
        assert_eq!(
            a.reply().admin,
            Some(Admin::Maint),
            "maint outranks the file's drain"
        );
        std::fs::remove_file(&file).unwrap();
        a.set_admin(Admin::Ready);
        assert_eq!(a.reply().admin, Some(Admin::Ready));
        a.command(&Command::Load(Some(70)));
        assert_eq!(a.figures().app, Some(70.0));
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(a.figures().app, None, "not repeated within its TTL");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
