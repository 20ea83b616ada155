//! Active/active behind ECMP: the node announces its VIPs over BGP through BIRD 2.
//!
//! BIRD's main configuration (router id, sessions, filters) is the operator's. uvsd owns one
//! file, `bgp.include`, which that configuration includes: two `protocol static` blocks,
//! `uvs_vips4` and `uvs_vips6`, with one /32 or /128 blackhole route per announced VIP.
//! After rewriting it (atomically: a temporary file renamed over it) uvsd asks BIRD to
//! `configure` over its control socket, the protocol `birdc` speaks. The operator's BGP
//! sessions export `where proto = "uvs_vips4"` (and 6).
//!
//! What is announced: every VIP one of whose services has a usable real server (health up,
//! weight above 0), or every VIP with `withdraw_when: never`. A draining or stopping node
//! announces nothing. The control loop calls [`Node::tick`] every 100 ms, so health flips,
//! reloads and uvsadm edits reach BIRD within that; a failed reconfiguration is retried
//! every second.
//!
//! Draining (`uvsadm node drain`): everything is withdrawn at once, then uvsd keeps
//! forwarding until no connection has carried a packet for [`QUIET`] (the routers have
//! moved the traffic away, or it ended) or the timeout passes, and then stops.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uvs_config::{BgpConfig, Config, Withdraw};
use uvs_dataplane::lifecycle;
use uvs_dataplane::pipeline::conn_flags;
use uvs_dataplane::Shared;

use crate::daemon::Core;

/// A connection that carried no packet for this long no longer holds a drain up.
pub const QUIET: Duration = Duration::from_secs(2);
/// A drain lasts at least this long, so that packets the routers sent before they heard
/// the withdrawal are still served.
const MIN_DRAIN: Duration = Duration::from_secs(1);
/// Between retries of a failed BIRD reconfiguration.
const RETRY: Duration = Duration::from_secs(1);
/// How long BIRD may take to answer on its control socket.
const BIRD_TIMEOUT: Duration = Duration::from_secs(5);

/// Names of the generated protocols, for the operator's export filters.
pub const PROTO4: &str = "uvs_vips4";
pub const PROTO6: &str = "uvs_vips6";

/// The node's BGP announcement and drain state, for `uvsadm node` and `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    /// "serving", "draining" or "stopping".
    pub state: String,
    /// Whether a `bgp:` section is configured.
    pub bgp: bool,
    pub socket: String,
    pub include: String,
    /// VIPs BIRD was last told to announce.
    pub announced: Vec<IpAddr>,
    /// Configured VIPs not announced, with why.
    pub withdrawn: Vec<(IpAddr, String)>,
    pub reconfigures: u64,
    pub reconfigure_errors: u64,
    /// The last failure, while it lasts (cleared by a success).
    pub last_error: Option<String>,
    /// Milliseconds since the last successful reconfiguration.
    pub last_ok_age_ms: Option<u64>,
    /// While draining: seconds spent, the timeout, connections that still carry traffic.
    pub drain_elapsed_s: Option<f64>,
    pub drain_timeout_s: Option<u32>,
    pub drain_busy_conns: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Serving,
    Draining { since: Instant, timeout: Duration },
    Stopping,
}

#[derive(Default)]
struct Inner {
    phase: Option<Phase>,
    /// The bgp section the last push used (a removed section withdraws through it).
    pushed_cfg: Option<BgpConfig>,
    /// What BIRD announces as of the last successful push.
    announced: BTreeSet<IpAddr>,
    withdrawn: BTreeMap<IpAddr, &'static str>,
    /// A push failed: retry even if nothing changed.
    failed_at: Option<Instant>,
    last_ok: Option<Instant>,
    last_error: Option<String>,
    reconfigures: u64,
    reconfigure_errors: u64,
    busy_conns: Option<usize>,
    last_count: Option<Instant>,
}

/// The node's announcer; one per uvsd, in [`Core`].
#[derive(Default)]
pub struct Node {
    inner: Mutex<Inner>,
}

/// Every VIP of the configuration, and those with a usable real server in the running
/// tables (health up and weight above 0; the sorry server does not count).
fn vip_state(cfg: &Config, shared: &Shared) -> (BTreeSet<IpAddr>, BTreeSet<IpAddr>) {
    let all: BTreeSet<IpAddr> = cfg.services.iter().map(|s| s.vip).collect();
    let mut usable = BTreeSet::new();
    let tables = shared.tables.load();
    for svc in tables.services.iter().flatten() {
        let up = svc.reals.iter().enumerate().any(|(slot, r)| {
            r.as_ref().is_some_and(|r| {
                r.weight > 0
                    && svc
                        .live
                        .get(slot)
                        .is_some_and(|l| l.health_up.load(std::sync::atomic::Ordering::Relaxed))
            })
        });
        if up {
            usable.insert(svc.key.vip.to_ip());
        }
    }
    usable.retain(|v| all.contains(v));
    (all, usable)
}

/// Flows (not persistence templates) that carried a packet within [`QUIET`].
///
/// Entries a sync peer installed are left out: their deadline is the peer's (each record
/// sets it to the peer's remaining timeout), so a busy peer would look like traffic here
/// and hold a drain up until its timeout, although none of those flows passes this node.
/// (A flow that ECMP moved here onto its synced entry is this node's from its first packet
/// here, `pipeline::forward::adopt`, and holds the drain like any other.)
pub fn busy_conns(shared: &Shared) -> usize {
    let tables = shared.tables.load();
    let now = shared.clock.now_ticks();
    let quiet = QUIET.as_millis() as u32;
    let mut n = 0;
    shared.conns.for_each(|_, c, deadline| {
        if !lifecycle::is_flow(c) || c.flags & conn_flags::SYNCED != 0 {
            return;
        }
        let timeout = tables
            .service(c.service)
            .map_or(0, |s| s.timeouts.for_state(c.orig.proto, c.state));
        // Each packet sets the deadline to now + the state's timeout.
        let last_seen = deadline.wrapping_sub(timeout);
        if (now.wrapping_sub(last_seen) as i32) < quiet as i32 {
            n += 1;
        }
    });
    n
}

/// The include file for `vips`: both protocols always exist (the operator's filters may
/// name them), with no route when nothing of that family is announced.
pub fn render_include(vips: &BTreeSet<IpAddr>) -> String {
    let mut out = String::from(
        "# Written by uvsd (bgp.include): the VIPs this node announces. Do not edit;\n\
         # uvsd rewrites it and runs `configure` whenever the set changes.\n",
    );
    for (name, channel, v6) in [(PROTO4, "ipv4", false), (PROTO6, "ipv6", true)] {
        out.push_str(&format!("protocol static {name} {{\n  {channel};\n"));
        for vip in vips.iter().filter(|v| v.is_ipv6() == v6) {
            let len = if v6 { 128 } else { 32 };
            out.push_str(&format!("  route {vip}/{len} blackhole;\n"));
        }
        out.push_str("}\n");
    }
    out
}

/// Replaces `path` with `text` at once (a reader never sees half a file).
fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let tmp = dir.join(format!(".{}.uvsd-tmp", name.to_string_lossy()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("writing {}: {e}", path.display())
    })
}

/// One reply of BIRD's control protocol: lines `DDDD-text` (more follow), ` text`
/// (continuation) and a last `DDDD text`. Codes 0xxx are successes, 8xxx and 9xxx errors.
/// Returns the last code and every line's text.
fn read_reply(r: &mut impl BufRead) -> Result<(u32, Vec<String>), String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .map_err(|e| format!("reading BIRD's answer: {e}"))?;
        if n == 0 {
            return Err("BIRD closed its control socket mid-answer".into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(rest) = line.strip_prefix(' ') {
            lines.push(rest.to_string());
            continue;
        }
        let code = line
            .get(..4)
            .and_then(|c| c.parse::<u32>().ok())
            .ok_or_else(|| format!("unexpected line from BIRD: '{line}'"))?;
        let sep = line.as_bytes().get(4).copied();
        lines.push(line.get(5..).unwrap_or("").to_string());
        match sep {
            Some(b'-') => continue,
            Some(b' ') | None => return Ok((code, lines)),
            Some(_) => return Err(format!("unexpected line from BIRD: '{line}'")),
        }
    }
}

/// `birdc -s SOCKET configure`: BIRD rereads its configuration (and so the include).
pub fn bird_configure(socket: &Path) -> Result<String, String> {
    let s = UnixStream::connect(socket)
        .map_err(|e| format!("connecting to BIRD at {}: {e}", socket.display()))?;
    s.set_read_timeout(Some(BIRD_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(BIRD_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let (code, hello) = read_reply(&mut r)?;
    if code != 1 {
        return Err(format!("BIRD did not greet: {code:04} {}", hello.join(" ")));
    }
    (&s).write_all(b"configure\n")
        .map_err(|e| format!("sending `configure` to BIRD: {e}"))?;
    let (code, text) = read_reply(&mut r)?;
    let text = text.join("; ");
    match code {
        // Reconfigured, in progress, queued behind another one.
        3..=5 => Ok(text),
        _ => Err(format!("BIRD refused `configure`: {code:04} {text}")),
    }
}

/// Writes the include with no route and has BIRD reread it: what a stopping uvsd does,
/// for one that could not (`uvsd --bgp-withdraw`).
pub fn withdraw_all(bgp: &BgpConfig) -> Result<String, String> {
    write_atomic(&bgp.include, &render_include(&BTreeSet::new()))
        .and_then(|()| bird_configure(&bgp.socket))
}

impl Node {
    fn phase(i: &Inner) -> Phase {
        i.phase.unwrap_or(Phase::Serving)
    }

    /// What should be announced now, and why the rest is not.
    fn wanted(
        phase: Phase,
        bgp: &BgpConfig,
        all: &BTreeSet<IpAddr>,
        usable: &BTreeSet<IpAddr>,
    ) -> (BTreeSet<IpAddr>, BTreeMap<IpAddr, &'static str>) {
        let why = match phase {
            Phase::Draining { .. } => Some("node draining"),
            Phase::Stopping => Some("node stopping"),
            Phase::Serving => None,
        };
        let mut want = BTreeSet::new();
        let mut withdrawn = BTreeMap::new();
        for v in all {
            if let Some(w) = why {
                withdrawn.insert(*v, w);
            } else if bgp.withdraw_when == Withdraw::Never || usable.contains(v) {
                want.insert(*v);
            } else {
                withdrawn.insert(*v, "no usable real server");
            }
        }
        (want, withdrawn)
    }

    /// Brings BIRD in line with the running configuration and the node's phase. `force`:
    /// push even if nothing changed (a drain must reach BIRD before it is reported).
    fn sync(&self, i: &mut Inner, cfg: &Config, shared: &Shared, force: bool) {
        let (all, usable) = vip_state(cfg, shared);
        let Some(bgp) = cfg.bgp.clone().or_else(|| i.pushed_cfg.clone()) else {
            return;
        };
        // A removed bgp section withdraws everything through the old include, once.
        let removed = cfg.bgp.is_none();
        let (want, withdrawn) = if removed {
            (BTreeSet::new(), BTreeMap::new())
        } else {
            Self::wanted(Self::phase(i), &bgp, &all, &usable)
        };
        i.withdrawn = withdrawn;
        let changed = want != i.announced || i.pushed_cfg.as_ref() != Some(&bgp);
        let retry = i.failed_at.is_some_and(|t| t.elapsed() >= RETRY);
        if !(changed && i.failed_at.is_none() || retry || force) {
            return;
        }
        i.reconfigures += 1;
        let res = write_atomic(&bgp.include, &render_include(&want))
            .and_then(|()| bird_configure(&bgp.socket));
        match res {
            Ok(_) => {
                if want != i.announced {
                    let added: Vec<_> = want.difference(&i.announced).collect();
                    let gone: Vec<_> = i.announced.difference(&want).collect();
                    log::info!("bgp: announcing {added:?}, withdrew {gone:?} (BIRD reconfigured)");
                }
                i.announced = want;
                i.pushed_cfg = if removed { None } else { Some(bgp) };
                i.failed_at = None;
                i.last_error = None;
                i.last_ok = Some(Instant::now());
            }
            Err(e) => {
                if i.last_error.as_deref() != Some(&e) {
                    log::error!("bgp: {e} (retrying every {} s)", RETRY.as_secs());
                }
                i.reconfigure_errors += 1;
                i.failed_at = Some(Instant::now());
                i.last_error = Some(e);
            }
        }
    }

    /// One control-loop round. Returns true when a drain has finished and uvsd should stop.
    pub fn tick(&self, core: &Core) -> bool {
        // Without a bgp section, now or pushed before, there is nothing to sync: an idle
        // uvsd does not copy its configuration ten times a second.
        let configured = core
            .running
            .lock()
            .expect("running lock")
            .config
            .bgp
            .is_some();
        let bgp = configured || self.inner.lock().expect("node lock").pushed_cfg.is_some();
        let cfg = bgp.then(|| core.running.lock().expect("running lock").config.clone());
        let mut i = self.inner.lock().expect("node lock");
        if let Some(cfg) = &cfg {
            self.sync(&mut i, cfg, &core.shared, false);
        }
        let Phase::Draining { since, timeout } = Self::phase(&i) else {
            return false;
        };
        if i.last_count
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500))
        {
            i.busy_conns = Some(busy_conns(&core.shared));
            i.last_count = Some(Instant::now());
        }
        let elapsed = since.elapsed();
        let quiet = i.busy_conns == Some(0) && elapsed >= MIN_DRAIN;
        if quiet || elapsed >= timeout {
            log::info!(
                "drain finished after {:.1} s ({}): stopping",
                elapsed.as_secs_f64(),
                if quiet {
                    "no connection carries traffic".to_string()
                } else {
                    format!(
                        "timeout, {} connection(s) still busy",
                        i.busy_conns.unwrap_or(0)
                    )
                }
            );
            i.phase = Some(Phase::Stopping);
            return true;
        }
        false
    }

    /// `uvsadm node drain`: withdraws every VIP now (BIRD has been told when this returns),
    /// then the control loop waits for traffic to end or `timeout` seconds.
    pub fn drain(&self, core: &Core, timeout: Option<u32>) -> Result<String, String> {
        let cfg = core.running.lock().expect("running lock").config.clone();
        let mut i = self.inner.lock().expect("node lock");
        if let Phase::Draining { since, timeout } = Self::phase(&i) {
            return Ok(format!(
                "already draining for {:.1} s (timeout {} s)\n",
                since.elapsed().as_secs_f64(),
                timeout.as_secs()
            ));
        }
        if Self::phase(&i) == Phase::Stopping {
            return Err("uvsd is already stopping".into());
        }
        let secs = timeout.unwrap_or_else(|| cfg.bgp.as_ref().map_or(60, |b| b.drain_timeout));
        i.phase = Some(Phase::Draining {
            since: Instant::now(),
            timeout: Duration::from_secs(u64::from(secs)),
        });
        i.last_count = None;
        i.busy_conns = None;
        log::info!("drain requested (timeout {secs} s): withdrawing every VIP");
        self.sync(&mut i, &cfg, &core.shared, true);
        let mut out = String::new();
        if cfg.bgp.is_some() {
            match &i.last_error {
                None => out.push_str("withdrawn: every VIP (BIRD reconfigured)\n"),
                Some(e) => out.push_str(&format!(
                    "withdrawal not confirmed ({e}); retrying every second\n"
                )),
            }
        }
        out.push_str(&format!(
            "draining: uvsd stops when no connection has carried traffic for {} s, or in {secs} s\n",
            QUIET.as_secs()
        ));
        Ok(out)
    }

    /// On the way out (SIGTERM, SIGINT, end of a drain): withdraw everything, then keep
    /// forwarding for `stop_delay` while the routers converge (not after a drain, which
    /// already waited).
    pub fn shutdown(&self, core: &Core) {
        let cfg = core.running.lock().expect("running lock").config.clone();
        let mut i = self.inner.lock().expect("node lock");
        let was_serving = Self::phase(&i) == Phase::Serving;
        i.phase = Some(Phase::Stopping);
        let had = !i.announced.is_empty();
        if cfg.bgp.is_none() && i.pushed_cfg.is_none() {
            return;
        }
        // One attempt, retried once: uvsd is exiting.
        self.sync(&mut i, &cfg, &core.shared, true);
        if i.last_error.is_some() {
            self.sync(&mut i, &cfg, &core.shared, true);
        }
        let delay = cfg.bgp.as_ref().map_or(0, |b| b.stop_delay);
        drop(i);
        if was_serving && had && delay > 0 {
            log::info!("withdrawn: still forwarding for {delay} s while routers converge");
            std::thread::sleep(Duration::from_secs(u64::from(delay)));
        }
    }

    pub fn snapshot(&self, cfg: &Config) -> NodeSnapshot {
        let i = self.inner.lock().expect("node lock");
        let (state, elapsed, timeout) = match Self::phase(&i) {
            Phase::Serving => ("serving", None, None),
            Phase::Draining { since, timeout } => (
                "draining",
                Some(since.elapsed().as_secs_f64()),
                Some(timeout.as_secs() as u32),
            ),
            Phase::Stopping => ("stopping", None, None),
        };
        NodeSnapshot {
            state: state.into(),
            bgp: cfg.bgp.is_some(),
            socket: cfg
                .bgp
                .as_ref()
                .map(|b| b.socket.display().to_string())
                .unwrap_or_default(),
            include: cfg
                .bgp
                .as_ref()
                .map(|b| b.include.display().to_string())
                .unwrap_or_default(),
            announced: i.announced.iter().copied().collect(),
            withdrawn: i
                .withdrawn
                .iter()
                .map(|(v, w)| (*v, (*w).to_string()))
                .collect(),
            reconfigures: i.reconfigures,
            reconfigure_errors: i.reconfigure_errors,
            last_error: i.last_error.clone(),
            last_ok_age_ms: i.last_ok.map(|t| t.elapsed().as_millis() as u64),
            drain_elapsed_s: elapsed,
            drain_timeout_s: timeout,
            drain_busy_conns: elapsed.and(i.busy_conns),
        }
    }
}

fn prefix(v: &IpAddr) -> String {
    format!("{v}/{}", if v.is_ipv6() { 128 } else { 32 })
}

/// `uvsadm node`.
pub fn format(n: &NodeSnapshot) -> String {
    let mut out = format!("Node: {}", n.state);
    if let (Some(e), Some(t)) = (n.drain_elapsed_s, n.drain_timeout_s) {
        out.push_str(&format!(" ({e:.1} s of {t} s"));
        if let Some(b) = n.drain_busy_conns {
            out.push_str(&format!(", {b} connection(s) with traffic"));
        }
        out.push(')');
    }
    out.push('\n');
    if !n.bgp {
        out.push_str("BGP: not configured (no bgp: section)\n");
        return out;
    }
    out.push_str(&format!(
        "BGP: BIRD at {}, include {}\n",
        n.socket, n.include
    ));
    match (&n.last_error, n.last_ok_age_ms) {
        (Some(e), _) => out.push_str(&format!("Last reconfigure: FAILED: {e}\n")),
        (None, Some(ms)) => out.push_str(&format!(
            "Last reconfigure: ok, {:.1} s ago ({} in all)\n",
            ms as f64 / 1000.0,
            n.reconfigures
        )),
        (None, None) => out.push_str("Last reconfigure: none yet\n"),
    }
    out.push_str("Announced:\n");
    for v in &n.announced {
        out.push_str(&format!("  {}\n", prefix(v)));
    }
    if !n.withdrawn.is_empty() {
        out.push_str("Withdrawn:\n");
        for (v, why) in &n.withdrawn {
            out.push_str(&format!("  {:<24} {why}\n", prefix(v)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_has_both_protocols_and_host_routes() {
        let vips: BTreeSet<IpAddr> = ["198.18.100.1", "2001:2:0:100::1", "198.18.100.2"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let t = render_include(&vips);
        assert!(t.contains("protocol static uvs_vips4 {\n  ipv4;\n  route 198.18.100.1/32 blackhole;\n  route 198.18.100.2/32 blackhole;\n}\n"), "{t}");
        assert!(
            t.contains(
                "protocol static uvs_vips6 {\n  ipv6;\n  route 2001:2:0:100::1/128 blackhole;\n}\n"
            ),
            "{t}"
        );
        let empty = render_include(&BTreeSet::new());
        assert!(
            empty.contains("protocol static uvs_vips4 {\n  ipv4;\n}\n"),
            "{empty}"
        );
    }

    #[test]
    fn replies_are_read_to_their_last_line() {
        let mut r = std::io::Cursor::new(
            b"0002-Reading configuration from /etc/bird.conf\n0003 Reconfigured\n".to_vec(),
        );
        let (code, lines) = read_reply(&mut r).unwrap();
        assert_eq!(code, 3);
        assert_eq!(
            lines,
            ["Reading configuration from /etc/bird.conf", "Reconfigured"]
        );
        let mut r =
            std::io::Cursor::new(b"8002-/etc/bird.conf:3:1 syntax error\n more\n9001 x\n".to_vec());
        assert_eq!(read_reply(&mut r).unwrap().0, 9001);
        let mut r = std::io::Cursor::new(b"0002-half".to_vec());
        assert!(read_reply(&mut r).is_err());
        let mut r = std::io::Cursor::new(b"hello\n".to_vec());
        assert!(read_reply(&mut r).is_err());
    }

    /// A drain waits for the flows that pass this node, not for the copies a sync peer
    /// keeps refreshing: a busy cluster would otherwise hold every drain to its timeout.
    #[test]
    fn synced_entries_do_not_hold_a_drain() {
        use uvs_conntrack::{tcp::TcpState, Conn, FlowKey};
        use uvs_dataplane::pipeline::PROTO_TCP;
        use uvs_dataplane::tables::TablesBuilder;
        use uvs_dataplane::Method;
        let spec = uvs_dataplane::lab::spec(Method::Nat, uvs_sched::SchedulerKind::Rr, 1);
        let shared = Shared::new(TablesBuilder::build(&spec, None).unwrap(), 1000, 1);
        let state = TcpState::Established as u8;
        let timeout = shared
            .tables
            .load()
            .service(0)
            .unwrap()
            .timeouts
            .for_state(PROTO_TCP, state);
        let now = shared.clock.now_ticks();
        for (client, flags) in [(2, 0), (3, conn_flags::SYNCED), (4, conn_flags::SYNCED)] {
            let k = FlowKey {
                proto: PROTO_TCP,
                v6: false,
                src: [198, 18, 0, client, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                dst: [198, 18, 100, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                sport: 6,
                dport: 80,
            };
            let c = Conn {
                orig: k,
                reply: k.reversed(),
                service: 0,
                real: 1,
                method: 0,
                state,
                flags,
            };
            // Just refreshed: what a packet here, or a peer's record, leaves.
            shared
                .conns
                .insert(&c, now, now.wrapping_add(timeout))
                .unwrap();
        }
        assert_eq!(busy_conns(&shared), 1);
    }

    #[test]
    fn draining_withdraws_everything_and_dead_vips_are_withdrawn() {
        let bgp = BgpConfig {
            include: "/x".into(),
            socket: "/y".into(),
            withdraw_when: Withdraw::NoUsableServer,
            drain_timeout: 60,
            stop_delay: 1,
        };
        let a: IpAddr = "198.18.100.1".parse().unwrap();
        let b: IpAddr = "198.18.100.2".parse().unwrap();
        let all = BTreeSet::from([a, b]);
        let usable = BTreeSet::from([a]);
        let (want, why) = Node::wanted(Phase::Serving, &bgp, &all, &usable);
        assert_eq!(want, BTreeSet::from([a]));
        assert_eq!(why.get(&b), Some(&"no usable real server"));
        let never = BgpConfig {
            withdraw_when: Withdraw::Never,
            ..bgp.clone()
        };
        assert_eq!(Node::wanted(Phase::Serving, &never, &all, &usable).0, all);
        let drain = Phase::Draining {
            since: Instant::now(),
            timeout: Duration::from_secs(1),
        };
        let (want, why) = Node::wanted(drain, &never, &all, &usable);
        assert!(want.is_empty());
        assert_eq!(why.get(&a), Some(&"node draining"));
        assert!(Node::wanted(Phase::Stopping, &bgp, &all, &usable)
            .0
            .is_empty());
    }
}
