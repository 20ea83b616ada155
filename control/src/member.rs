//! Member mode: uvsd on a real server of a director-less cluster (as iptables CLUSTERIP or
//! Microsoft NLB's multicast mode). Every member holds the VIP and receives all of its
//! frames (they carry a multicast cluster MAC); the member filter (`uvs_xsk::MemberProgram`)
//! keeps the flows a Maglev table gives this member and drops the others'.
//!
//! Every member checks every member, itself included, with the configured health check,
//! and builds the table over the healthy ones with the project's Maglev (`uvs_sched`, the
//! `mh` scheduler), keyed by each member's address, so members that agree on who is healthy
//! compute the same table; a member that fails loses only its own entries (Maglev's
//! minimal disruption: the other flows keep their owner). The first healthy member in the
//! list answers ARP for the VIP with the cluster MAC.
//!
//! A member's service may outlive its uvsd (killed, crashed): its filter goes with the
//! process, its kernel drops the VIP's frames (addressed to the cluster MAC), and its share
//! would be lost while its check still passes. So each uvsd also sends every other member a
//! heartbeat each check interval (UDP, `member.heartbeat_port`), and a member counts as up
//! only while its check passes and its heartbeat was heard within `fall` intervals (more
//! [`HEARTBEAT_GRACE`]).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uvs_dataplane::wake::Stop;

use anyhow::{anyhow, Context, Result};
use arc_swap::ArcSwap;
use uvs_config::{Config, MemberConfig, ServiceKey};
use uvs_sched::{SchedConfig, Scheduler, SchedulerKind, ServerSpec};
use uvs_xsk::{MemberCounters, MemberHash, MemberProgram, MemberSettings, NO_OWNER};

use crate::admin::{self, AdminCommand};
use crate::health::{HealthMonitor, HealthTarget};

/// Entry → member index over the healthy members ([`NO_OWNER`] everywhere when none is).
///
/// Maglev's own rebuild over the healthy members alone moves a few entries between members
/// that stayed up (the NSDI 2016 paper calls the disruption minimal, not zero: 3 members,
/// one failing, M = 4093 moved 3 of the survivors' 2729 entries, in the unit test). A
/// connection on such an entry would be cut: its new owner's kernel has no socket for it
/// and answers with a reset. So the table
/// is the Maglev table over all members, where an entry whose member is down takes its
/// owner from the Maglev table over the healthy ones: a member's entries never move while
/// it is up, and a recovered member gets back exactly its own.
pub fn build_table(cfg: &MemberConfig, healthy: &[bool]) -> Result<Vec<u16>, String> {
    let all = maglev(cfg, &vec![true; cfg.members.len()])?;
    let up = maglev(cfg, healthy)?;
    if up.is_empty() {
        return Ok(vec![NO_OWNER; cfg.table_size as usize]);
    }
    Ok(all
        .iter()
        .zip(&up)
        .map(|(&a, &u)| if healthy[usize::from(a)] { a } else { u })
        .collect())
}

/// The Maglev table (crates/sched's `mh`) over the members marked in `members`, empty when
/// none is.
fn maglev(cfg: &MemberConfig, members: &[bool]) -> Result<Vec<u16>, String> {
    let specs: Vec<ServerSpec> = cfg
        .members
        .iter()
        .zip(members)
        .map(|(a, &up)| ServerSpec::new(u32::from(up), member_key(*a)))
        .collect();
    let mut sc = SchedConfig::new(SchedulerKind::Mh);
    sc.mh_table_size = cfg.table_size;
    let sched = Scheduler::build(&sc, &specs).map_err(|e| e.to_string())?;
    Ok(sched.maglev_table().unwrap_or(&[]).to_vec())
}

/// A member's Maglev key: FNV-1a over its address, the same on every member (the table's
/// permutations depend only on it, not on the list's order or on who is healthy).
fn member_key(a: IpAddr) -> u64 {
    let bytes = match a {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    };
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where a member is checked: its address, on the check's port or the first service port.
fn check_target(cfg: &MemberConfig, i: usize) -> HealthTarget {
    let port = cfg.ports.first().copied().unwrap_or(0);
    HealthTarget {
        service: ServiceKey::addr(cfg.vip, cfg.protocol, port),
        real: SocketAddr::new(cfg.members[i], cfg.health_check.port.unwrap_or(port)),
        check: cfg.health_check.clone(),
        pools: Vec::new(),
    }
}

/// What `uvsadm member` and `/metrics` show.
#[derive(Clone, Debug)]
pub struct MemberStatus {
    pub config: MemberConfig,
    pub healthy: Vec<bool>,
    /// Down only because its uvsd's heartbeat is not heard (its check passes).
    pub silent: Vec<bool>,
    /// Table entries each member owns.
    pub entries: Vec<u32>,
    pub arp_owner: Option<usize>,
    /// Tables published since the start (the first included).
    pub publications: u64,
    pub counters: MemberCounters,
    pub mode: String,
}

struct State {
    /// What the table was last built over: checked up and heard from.
    healthy: Vec<bool>,
    /// Each member's health check verdict.
    checked: Vec<bool>,
    /// When each member's heartbeat was last heard (this member's: always now).
    heard: Vec<Instant>,
    entries: Vec<u32>,
    arp_owner: Option<usize>,
    publications: u64,
}

/// Slack beyond `fall` check intervals before a silent member counts as down (a heartbeat
/// delayed by a loaded machine is not a dead uvsd).
pub const HEARTBEAT_GRACE: Duration = Duration::from_millis(500);

/// The heartbeat's payload: the protocol's name and version, the VIP, the sender's index.
fn heartbeat(cfg: &MemberConfig) -> String {
    format!("uvs-member 1 {} {}", cfg.vip, cfg.me)
}

/// Which member sent `payload` from `from`, if it is a heartbeat of this cluster (same VIP,
/// the sender's own address at its index).
fn heard_from(cfg: &MemberConfig, payload: &[u8], from: IpAddr) -> Option<usize> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut f = text.split(' ');
    let (Some("uvs-member"), Some("1"), Some(vip), Some(i), None) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return None;
    };
    let i: usize = i.parse().ok()?;
    (vip.parse::<IpAddr>().ok()? == cfg.vip && cfg.members.get(i) == Some(&from) && i != cfg.me)
        .then_some(i)
}

/// Who is up: checked up, and (but for this member) heard from within `window`.
fn effective(
    cfg: &MemberConfig,
    checked: &[bool],
    heard: &[Instant],
    now: Instant,
    window: Duration,
) -> Vec<bool> {
    checked
        .iter()
        .zip(heard)
        .enumerate()
        .map(|(i, (&c, &h))| c && (i == cfg.me || now.saturating_duration_since(h) <= window))
        .collect()
}

/// The running member: its filter and the membership it last published.
pub struct Member {
    config: MemberConfig,
    /// The filter, replaced when its interface is made again ([`Member::reattach`]).
    program: ArcSwap<MemberProgram>,
    /// The interface's configured XDP mode, for attaching again.
    xdp_mode: uvs_xsk::XdpMode,
    state: Mutex<State>,
}

impl Member {
    /// Builds the table over `healthy` and publishes it with the ARP owner.
    fn publish(&self, healthy: Vec<bool>) -> Result<()> {
        let table = build_table(&self.config, &healthy).map_err(|e| anyhow!(e))?;
        let mut entries = vec![0u32; self.config.members.len()];
        for &o in &table {
            if o != NO_OWNER {
                entries[usize::from(o)] += 1;
            }
        }
        let arp_owner = healthy.iter().position(|&h| h);
        self.program
            .load()
            .publish(&table, arp_owner.map(|i| i as u16))
            .map_err(|e| anyhow!("{e}"))?;
        let mut s = self.state.lock().expect("member state lock");
        s.publications += 1;
        log::info!(
            "member: table {} published: healthy [{}], shares [{}], ARP answered by {}",
            s.publications,
            self.config
                .members
                .iter()
                .zip(&healthy)
                .filter(|(_, &h)| h)
                .map(|(a, _)| a.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            entries
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            arp_owner.map_or("nobody".to_string(), |i| self.config.members[i].to_string())
        );
        s.healthy = healthy;
        s.entries = entries;
        s.arp_owner = arp_owner;
        Ok(())
    }

    /// Attaches the filter to its interface made again (another index): the same settings
    /// but the interface's MAC, read again (a veth made again has a new one), the counters
    /// going on, and the table over the members last published. The member's share is its
    /// own again at once, rather than after a restart.
    fn reattach(&self) -> Result<()> {
        let old = self.program.load_full();
        let (name, _) = old.interface();
        let link = crate::spec::link_info(name).map_err(|e| anyhow!(e))?;
        let settings = MemberSettings {
            own_mac: link.mac,
            ..old.settings().clone()
        };
        let new = MemberProgram::attach_in_place_of(name, self.xdp_mode, settings, &old)
            .map_err(|e| anyhow!("{e}"))?;
        self.program.store(Arc::new(new));
        let healthy = self
            .state
            .lock()
            .expect("member state lock")
            .healthy
            .clone();
        self.publish(healthy)
    }

    fn set_health(&self, addr: IpAddr, up: bool) {
        let Some(i) = self.config.members.iter().position(|&a| a == addr) else {
            return;
        };
        let mut s = self.state.lock().expect("member state lock");
        if s.checked[i] != up {
            log::info!(
                "member: {addr}'s check {}",
                if up { "passes" } else { "fails" }
            );
            s.checked[i] = up;
        }
    }

    fn heard(&self, i: usize, at: Instant) {
        let mut s = self.state.lock().expect("member state lock");
        s.heard[i] = at;
    }

    /// How long a member may be silent: `fall` check intervals and [`HEARTBEAT_GRACE`].
    fn window(&self) -> Duration {
        let hc = &self.config.health_check;
        hc.interval.mul_f64(f64::from(hc.fall.max(1))) + HEARTBEAT_GRACE
    }

    /// Who is up now, when that differs from what the table was built over.
    fn due(&self, now: Instant) -> Option<Vec<bool>> {
        let s = self.state.lock().expect("member state lock");
        let healthy = effective(&self.config, &s.checked, &s.heard, now, self.window());
        for (i, (&h, &was)) in healthy.iter().zip(&s.healthy).enumerate() {
            if h != was && s.checked[i] {
                log::info!(
                    "member: {}'s uvsd is {}",
                    self.config.members[i],
                    if h {
                        "heard again"
                    } else {
                        "silent: counted down"
                    }
                );
            }
        }
        (healthy != s.healthy).then_some(healthy)
    }

    /// A picture of the member for `uvsadm member` and `/metrics`.
    pub fn status(&self) -> MemberStatus {
        let s = self.state.lock().expect("member state lock");
        MemberStatus {
            config: self.config.clone(),
            healthy: s.healthy.clone(),
            silent: s
                .healthy
                .iter()
                .zip(&s.checked)
                .map(|(&h, &c)| c && !h)
                .collect(),
            entries: s.entries.clone(),
            arp_owner: s.arp_owner,
            publications: s.publications,
            counters: self.program.load().counters().unwrap_or_default(),
            mode: format!("{:?}", self.program.load().mode()),
        }
    }
}

/// `uvsadm member`.
pub fn format_status(s: &MemberStatus) -> String {
    let c = &s.config;
    let ports = if c.ports.is_empty() {
        "all ports".to_string()
    } else {
        c.ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = format!(
        "Member mode: VIP {} {} {ports}, hash {}, table {} entries, cluster MAC {}\n\
         Filter on {} ({} XDP), tables published: {}\n",
        c.vip,
        c.protocol.name().to_uppercase(),
        c.hash.name(),
        c.table_size,
        mac_text(&c.cluster_mac),
        c.interface,
        s.mode,
        s.publications
    );
    out.push_str("  Member                                   Health  Entries   Share\n");
    let total: u32 = s.entries.iter().sum();
    for (i, a) in c.members.iter().enumerate() {
        let mut name = a.to_string();
        if i == c.me {
            name.push_str(" (me)");
        }
        if s.arp_owner == Some(i) {
            name.push_str(" [arp]");
        }
        let share = if total == 0 {
            0.0
        } else {
            100.0 * f64::from(s.entries[i]) / f64::from(total)
        };
        out.push_str(&format!(
            "  {name:<40} {:<7} {:>7} {share:>6.1}%\n",
            match (s.healthy[i], s.silent[i]) {
                (true, _) => "up",
                (false, true) => "silent",
                (false, false) => "down",
            },
            s.entries[i]
        ));
    }
    let k = &s.counters;
    out.push_str(&format!(
        "Packets: kept {}, dropped: other member {}, no member {}, not ready {}, malformed {}; \
         ARP replied {}, ARP left to the owner {}; passed to the kernel {}\n",
        k.kept,
        k.other_member,
        k.no_member,
        k.not_ready,
        k.malformed,
        k.arp_replied,
        k.arp_dropped,
        k.passed
    ));
    out
}

/// The `/metrics` exposition of member mode.
pub fn render_metrics(s: &MemberStatus) -> String {
    let mut o = String::new();
    o.push_str("# HELP uvs_member_up Health of each cluster member as this member sees it.\n");
    o.push_str("# TYPE uvs_member_up gauge\n");
    for (i, a) in s.config.members.iter().enumerate() {
        o.push_str(&format!(
            "uvs_member_up{{member=\"{a}\",me=\"{}\"}} {}\n",
            i == s.config.me,
            u8::from(s.healthy[i])
        ));
    }
    o.push_str("# HELP uvs_member_table_entries Maglev table entries each member owns.\n");
    o.push_str("# TYPE uvs_member_table_entries gauge\n");
    for (i, a) in s.config.members.iter().enumerate() {
        o.push_str(&format!(
            "uvs_member_table_entries{{member=\"{a}\"}} {}\n",
            s.entries[i]
        ));
    }
    o.push_str("# HELP uvs_member_tables_published_total Maglev tables published (membership changes + 1).\n");
    o.push_str("# TYPE uvs_member_tables_published_total counter\n");
    o.push_str(&format!(
        "uvs_member_tables_published_total {}\n",
        s.publications
    ));
    let k = &s.counters;
    o.push_str("# HELP uvs_member_packets_total Frames the member filter judged, by verdict.\n");
    o.push_str("# TYPE uvs_member_packets_total counter\n");
    for (verdict, n) in [
        ("kept", k.kept),
        ("other_member", k.other_member),
        ("no_member", k.no_member),
        ("not_ready", k.not_ready),
        ("malformed", k.malformed),
        ("arp_replied", k.arp_replied),
        ("arp_dropped", k.arp_dropped),
        ("passed", k.passed),
    ] {
        o.push_str(&format!(
            "uvs_member_packets_total{{verdict=\"{verdict}\"}} {n}\n"
        ));
    }
    o
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Sends this member's heartbeat to every other member each check interval and notes the
/// ones it hears, until `stop`.
fn heartbeats(member: Arc<Member>, stop: Arc<Stop>) -> Result<std::thread::JoinHandle<()>> {
    let cfg = &member.config;
    let me = SocketAddr::new(cfg.members[cfg.me], cfg.heartbeat_port);
    let sock = std::net::UdpSocket::bind(me)
        .with_context(|| format!("member heartbeat: cannot listen on UDP {me}"))?;
    let period = cfg.health_check.interval;
    sock.set_read_timeout(Some(period.min(Duration::from_millis(100))))?;
    Ok(std::thread::Builder::new()
        .name("uvs-heartbeat".into())
        .spawn(move || {
            let cfg = &member.config;
            let payload = heartbeat(cfg);
            let mut next = Instant::now();
            let mut buf = [0u8; 128];
            while !stop.is_raised() {
                if Instant::now() >= next {
                    next += period;
                    for (i, a) in cfg.members.iter().enumerate() {
                        if i != cfg.me {
                            // A peer that is down or unreachable: nothing to do but go on.
                            let _ = sock.send_to(
                                payload.as_bytes(),
                                SocketAddr::new(*a, cfg.heartbeat_port),
                            );
                        }
                    }
                }
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    if let Some(i) = heard_from(cfg, &buf[..n], from.ip()) {
                        member.heard(i, Instant::now());
                    }
                }
            }
        })?)
}

/// Runs member mode until SIGINT/SIGTERM (or `run_for`).
pub fn run(
    config: Config,
    _config_path: &Path,
    opts: &crate::daemon::Options,
    signals: &crate::daemon::Signals,
) -> Result<()> {
    let cfg = config
        .member
        .clone()
        .context("member mode needs the `member:` section")?;
    let ifc = config
        .interfaces
        .iter()
        .find(|i| i.name == cfg.interface)
        .context("the member interface is one of `interfaces` (validated)")?;
    let link = crate::spec::link_info(&cfg.interface).map_err(|e| anyhow!(e))?;
    let IpAddr::V4(vip) = cfg.vip else {
        anyhow::bail!("member mode serves an IPv4 VIP (validated)");
    };
    let settings = MemberSettings {
        vip,
        me: cfg.me as u16,
        proto: crate::spec::proto_number(cfg.protocol),
        ports: cfg.ports.clone(),
        hash: match cfg.hash {
            uvs_config::MemberHash::FiveTuple => MemberHash::FiveTuple,
            uvs_config::MemberHash::Source => MemberHash::Source,
        },
        cluster_mac: cfg.cluster_mac,
        own_mac: link.mac,
        table_size: cfg.table_size,
    };
    let xdp_mode = crate::daemon::xdp_mode(ifc.xdp_mode);
    let program =
        MemberProgram::attach(&cfg.interface, xdp_mode, settings).map_err(|e| anyhow!("{e}"))?;
    let n = cfg.members.len();
    let member = Arc::new(Member {
        config: cfg.clone(),
        program: ArcSwap::from_pointee(program),
        xdp_mode,
        state: Mutex::new(State {
            healthy: vec![true; n],
            checked: vec![true; n],
            heard: vec![Instant::now(); n],
            entries: vec![0; n],
            arp_owner: None,
            publications: 0,
        }),
    });
    // Members start up (keepalived's default): a member that is down is taken out after
    // `fall` failed checks, while one that starts down would drop its share until `rise`.
    member.publish(vec![true; n])?;

    let stop = Arc::new(Stop::new());
    let mut threads = Vec::new();
    let socket = opts
        .admin_socket
        .clone()
        .unwrap_or_else(|| config.admin.socket.clone());
    let m = member.clone();
    let handler: admin::AdminHandler = Arc::new(move |argv: &[String]| match admin::parse(argv)? {
        AdminCommand::Member => Ok(format_status(&m.status())),
        AdminCommand::Help => Ok(admin::usage()),
        AdminCommand::Version => Ok(admin::version()),
        _ => Err("uvsd runs in member mode: only `uvsadm member` applies".into()),
    });
    threads.push(
        admin::serve(
            &socket,
            config.admin.group.as_deref(),
            handler,
            stop.clone(),
        )
        .with_context(|| format!("admin socket {}", socket.display()))?,
    );
    if let Some(listen) = config.metrics.listen {
        let m = member.clone();
        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("cannot listen for metrics on {listen}"))?;
        threads.push(crate::metrics::serve_rendered(
            listener,
            Arc::new(move || render_metrics(&m.status())),
            stop.clone(),
        )?);
    }
    threads.push(heartbeats(member.clone(), stop.clone())?);
    let m = member.clone();
    let monitor = HealthMonitor::start(
        (0..n).map(|i| check_target(&cfg, i)).collect(),
        Arc::new(move |t: &HealthTarget, up: bool| m.set_health(t.real.ip(), up)),
    );
    log::info!(
        "uvsd running in member mode: VIP {} on {} ({:?}), member {} of {}",
        cfg.vip,
        cfg.interface,
        member.program.load().mode(),
        cfg.me + 1,
        n
    );

    // A reload (SIGHUP, as systemd's `reload` sends) must not kill a member; it is not
    // applied either: the filter's settings are fixed at load, so a changed member section
    // needs a restart (the other members take this one's share meanwhile).
    let (term, hup) = (&signals.term, &signals.hup);
    let started = Instant::now();
    let mut last_check = started;
    let mut gone_since = None;
    let mut result = Ok(());
    while !term.load(Ordering::Relaxed) {
        if opts.run_for.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if hup.swap(false, Ordering::Relaxed) {
            log::warn!(
                "member mode does not reload its configuration: restart uvsd to apply changes"
            );
        }
        if let Some(healthy) = member.due(Instant::now()) {
            if let Err(e) = member.publish(healthy) {
                result = Err(e);
                break;
            }
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            let program = member.program.load_full();
            let (name, index) = program.interface();
            if let Err(e) = crate::daemon::follow_interfaces(
                [(0, name, index)],
                |_| member.reattach(),
                &mut gone_since,
            ) {
                result = Err(e);
                break;
            }
        }
    }
    monitor.stop();
    stop.raise();
    for t in threads {
        let _ = t.join();
    }
    log::info!("uvsd (member mode) stopped");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(n: u8) -> MemberConfig {
        let yaml = format!(
            "interfaces:\n  - name: uvs-m0\n    networks: [198.18.70.0/24]\nmember:\n  interface: uvs-m0\n  vip: 198.18.70.100\n  ports: [80]\n  members: [{}]\n  me: 198.18.70.10\n  table_size: 4093\n",
            (0..n)
                .map(|i| format!("198.18.70.{}", 10 + i))
                .collect::<Vec<_>>()
                .join(", ")
        );
        uvs_config::load_str(&yaml, "t.yaml")
            .unwrap()
            .member
            .unwrap()
    }

    #[test]
    fn heartbeats_are_known_by_cluster_sender_and_address() {
        let c = cfg(3);
        let from = |i: u8| format!("198.18.70.{}", 10 + i).parse::<IpAddr>().unwrap();
        assert_eq!(
            heartbeat(&c),
            "uvs-member 1 198.18.70.100 0",
            "what member 0 (me) sends"
        );
        let hb = |i: usize| format!("uvs-member 1 198.18.70.100 {i}");
        assert_eq!(heard_from(&c, hb(2).as_bytes(), from(2)), Some(2));
        assert_eq!(
            heard_from(&c, hb(2).as_bytes(), from(1)),
            None,
            "not its address"
        );
        assert_eq!(heard_from(&c, hb(0).as_bytes(), from(0)), None, "my own");
        assert_eq!(
            heard_from(&c, hb(7).as_bytes(), from(2)),
            None,
            "no member 7"
        );
        for other in [
            "uvs-member 1 198.18.70.101 2",
            "uvs-member 2 198.18.70.100 2",
            "uvs-member 1 198.18.70.100 2 x",
            "uvs-member 1 198.18.70.100",
            "",
        ] {
            assert_eq!(heard_from(&c, other.as_bytes(), from(2)), None, "{other:?}");
        }
    }

    #[test]
    fn a_silent_member_is_down_though_its_check_passes() {
        let c = cfg(3);
        let t0 = Instant::now();
        let w = Duration::from_secs(2);
        let later = t0 + Duration::from_secs(3);
        // Member 2 last heard at t0, member 1 just now; member 0 is me (never heard).
        let heard = [t0, later, t0];
        assert_eq!(
            effective(&c, &[true; 3], &heard, t0 + Duration::from_secs(1), w),
            [true, true, true],
            "within the window"
        );
        assert_eq!(
            effective(&c, &[true; 3], &heard, later, w),
            [true, true, false],
            "member 2 silent for 3 s; me never counts as silent"
        );
        assert_eq!(
            effective(&c, &[false, true, true], &heard, later, w),
            [false, true, false],
            "a failed check is down whatever is heard"
        );
    }

    #[test]
    fn a_failed_member_loses_only_its_own_entries() {
        let c = cfg(3);
        let all = build_table(&c, &[true; 3]).unwrap();
        let mut count = [0usize; 3];
        for &o in &all {
            count[usize::from(o)] += 1;
        }
        // Maglev: ⌊M/N⌋ or ⌈M/N⌉ entries each.
        assert!(count.iter().all(|&k| k == 1364 || k == 1365), "{count:?}");
        let without_1 = build_table(&c, &[true, false, true]).unwrap();
        for (a, b) in all.iter().zip(&without_1) {
            assert_ne!(*b, 1);
            if *a != 1 {
                assert_eq!(a, b, "a healthy member's entry moved");
            }
        }
        // The failed member's entries are spread over the others about evenly.
        let moved: Vec<u16> = all
            .iter()
            .zip(&without_1)
            .filter(|(a, _)| **a == 1)
            .map(|(_, b)| *b)
            .collect();
        let to_0 = moved.iter().filter(|&&o| o == 0).count();
        assert!((500..=865).contains(&to_0), "{to_0} of {}", moved.len());
        // Plain Maglev over the survivors would move some of their entries too (the reason
        // for the composition above).
        let plain = maglev(&c, &[true, false, true]).unwrap();
        let churn = all
            .iter()
            .zip(&plain)
            .filter(|(a, p)| **a != 1 && a != p)
            .count();
        assert!(churn > 0);
        // Back up: exactly the original table.
        assert_eq!(build_table(&c, &[true; 3]).unwrap(), all);
        // Every member computes the same table whatever its own index.
        assert_eq!(build_table(&cfg(3), &[true; 3]).unwrap(), all);
        assert!(build_table(&c, &[false; 3])
            .unwrap()
            .iter()
            .all(|&o| o == NO_OWNER));
    }

    #[test]
    fn listing_and_metrics_show_the_members() {
        let c = cfg(2);
        let s = MemberStatus {
            config: c,
            healthy: vec![true, false],
            silent: vec![false, false],
            entries: vec![4093, 0],
            arp_owner: Some(0),
            publications: 2,
            counters: MemberCounters {
                kept: 5,
                other_member: 7,
                ..Default::default()
            },
            mode: "Native".into(),
        };
        let text = format_status(&s);
        assert!(text.contains("198.18.70.10 (me) [arp]"), "{text}");
        assert!(text.contains("down"), "{text}");
        assert!(text.contains("100.0%"), "{text}");
        let m = render_metrics(&s);
        assert!(
            m.contains("uvs_member_up{member=\"198.18.70.11\",me=\"false\"} 0"),
            "{m}"
        );
        assert!(
            m.contains("uvs_member_packets_total{verdict=\"other_member\"} 7"),
            "{m}"
        );
        assert!(m.contains("uvs_member_tables_published_total 2"), "{m}");
    }
}
