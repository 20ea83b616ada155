//! ipvsadm's command line, parsed without I/O into an [`AdminCommand`].
//!
//! Follows ipvsadm(8) and its popt table: short options cluster (`-Ln`, `-w3`), long options
//! take `--opt value` or `--opt=value`, `-p` takes an optional timeout, one command per line,
//! and each command accepts only its own options (ipvsadm's `commands_v_options` table). Service
//! and server addresses are numeric (`198.18.100.1:80`, `[2001:2::1]:80`): uvsd never waits on
//! DNS (uvsadm resolves the names of an `-R` input itself, see `names`). A firewall-mark
//! service is `-f MARK` (`-f MARK -6` for IPv6), its match defined in the YAML's `marks:`.
//! uvs additions: `--sctp-service`, `-b` for scheduler flags, `--fullnat` and
//! `--fullnat-pool`, the `fastest` and `load` schedulers, `-L --json`, `save` (YAML) and `top`.
//!
//! `-R` reads rules from uvsadm's standard input; uvsadm sends them to uvsd as the words after
//! `-R`, one whole line each (`["-R", "-A -t 198.18.100.1:80 -s rr", ...]`), and uvsd applies
//! them all or none.

use super::argv::{endpoint, max_prefix, netmask, number, tokenize};
pub use super::command::*;
use super::restore::{restore, restore_lines, set_timeouts};
use super::tunnel::TunArgs;
use std::net::IpAddr;
use uvs_config::{
    Forwarding, Persistence, Protocol, Scheduler, SchedulerFlag, ServiceKey, TunCsum, Tunnel,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cmd {
    List,
    AddService,
    EditService,
    DeleteService,
    AddReal,
    EditReal,
    DeleteReal,
    Clear,
    Zero,
    Save,
    SaveRules,
    Restore,
    SetTimeouts,
    Top,
    Help,
    Version,
}

impl Cmd {
    /// As ipvsadm names the command in its messages, with the flag.
    fn name(self) -> &'static str {
        match self {
            Cmd::List => "-L (list)",
            Cmd::AddService => "-A (add-service)",
            Cmd::EditService => "-E (edit-service)",
            Cmd::DeleteService => "-D (delete-service)",
            Cmd::AddReal => "-a (add-server)",
            Cmd::EditReal => "-e (edit-server)",
            Cmd::DeleteReal => "-d (delete-server)",
            Cmd::Clear => "-C (clear)",
            Cmd::Zero => "-Z (zero)",
            Cmd::Save => "save",
            Cmd::SaveRules => "-S (save)",
            Cmd::Restore => "-R (restore)",
            Cmd::SetTimeouts => "--set",
            Cmd::Top => "top",
            Cmd::Help => "-h (help)",
            Cmd::Version => "-v (version)",
        }
    }
}

/// The options, as ipvsadm's `optnames`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    SchedFlags,
    Persistent,
    Netmask,
    Real,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Stats,
    Rate,
    Thresholds,
    NoSort,
    Exact,
    OnePacket,
    FullnatPool,
    Once,
    Timeout,
    PersistentConn,
    Json,
    Ipv6,
    TunInfo,
    TunType,
    TunPort,
    TunCsum,
}

impl Opt {
    fn name(self) -> &'static str {
        match self {
            Opt::Numeric => "-n (numeric)",
            Opt::Connection => "-c (connection)",
            Opt::Service => "-t/-u/--sctp-service/-f (service-address)",
            Opt::Scheduler => "-s (scheduler)",
            Opt::SchedFlags => "-b (sched-flags)",
            Opt::Persistent => "-p (persistent)",
            Opt::Netmask => "-M (netmask)",
            Opt::Real => "-r (real-server)",
            Opt::Forward => "-g/-i/-m/--fullnat (forwarding-method)",
            Opt::Weight => "-w (weight)",
            Opt::UThreshold => "-x (u-threshold)",
            Opt::LThreshold => "-y (l-threshold)",
            Opt::Stats => "--stats",
            Opt::Rate => "--rate",
            Opt::Thresholds => "--thresholds",
            Opt::NoSort => "--nosort",
            Opt::Exact => "--exact",
            Opt::OnePacket => "-o (ops)",
            Opt::FullnatPool => "--fullnat-pool",
            Opt::Once => "--once",
            Opt::Timeout => "--timeout",
            Opt::PersistentConn => "--persistent-conn",
            Opt::Json => "--json",
            Opt::Ipv6 => "-6 (ipv6)",
            Opt::TunInfo => "--tun-info",
            Opt::TunType => "--tun-type",
            Opt::TunPort => "--tun-port",
            Opt::TunCsum => "--tun-nocsum/--tun-csum/--tun-remcsum",
        }
    }

    /// Options each command accepts (ipvsadm's `commands_v_options`, plus uvs's own).
    fn allowed(self, cmd: Cmd) -> bool {
        use Opt::*;
        match cmd {
            Cmd::List => matches!(
                self,
                Numeric
                    | Connection
                    | Service
                    | Ipv6
                    | Stats
                    | Rate
                    | Thresholds
                    | NoSort
                    | Exact
                    | Timeout
                    | PersistentConn
                    | Json
                    | TunInfo
            ),
            Cmd::AddService | Cmd::EditService => matches!(
                self,
                Service
                    | Ipv6
                    | Scheduler
                    | SchedFlags
                    | Persistent
                    | Netmask
                    | OnePacket
                    | FullnatPool
            ),
            Cmd::DeleteService | Cmd::Zero => matches!(self, Service | Ipv6),
            Cmd::AddReal | Cmd::EditReal => {
                matches!(
                    self,
                    Service
                        | Ipv6
                        | Real
                        | Forward
                        | Weight
                        | UThreshold
                        | LThreshold
                        | TunType
                        | TunPort
                        | TunCsum
                )
            }
            Cmd::DeleteReal => matches!(self, Service | Ipv6 | Real),
            Cmd::Save | Cmd::SaveRules => self == Numeric,
            Cmd::Top => self == Once,
            Cmd::Clear | Cmd::Restore | Cmd::SetTimeouts | Cmd::Help | Cmd::Version => false,
        }
    }
}

/// Everything the options said, before the command decides what it means.
#[derive(Default)]
pub(super) struct Seen {
    pub(super) cmd: Option<(Cmd, String)>,
    pub(super) opts: Vec<(Opt, String)>,
    pub(super) service: Option<ServiceKey>,
    /// Bare words: `--set`'s three timeouts.
    pub(super) words: Vec<String>,
    pub(super) scheduler: Option<Scheduler>,
    pub(super) flags: Vec<String>,
    pub(super) persistent: Option<u32>,
    pub(super) netmask: Option<String>,
    pub(super) real: Option<(IpAddr, Option<u16>)>,
    pub(super) forward: Option<Forwarding>,
    pub(super) weight: Option<u16>,
    pub(super) upper: Option<u32>,
    pub(super) lower: Option<u32>,
    pub(super) tun: TunArgs,
    pub(super) pool: Option<Vec<IpAddr>>,
    pub(super) list: ListOptions,
    pub(super) once: bool,
}

impl Seen {
    fn command(&mut self, cmd: Cmd, spelled: &str) -> Result<(), String> {
        if let Some((_, first)) = &self.cmd {
            return Err(format!(
                "multiple commands specified ({first} and {spelled}): give one per invocation"
            ));
        }
        self.cmd = Some((cmd, spelled.to_string()));
        Ok(())
    }

    fn option(&mut self, opt: Opt, spelled: &str) -> Result<(), String> {
        if self.opts.iter().any(|(o, _)| *o == opt) {
            return Err(format!(
                "multiple {} options specified: give it once",
                opt.name()
            ));
        }
        self.opts.push((opt, spelled.to_string()));
        Ok(())
    }

    fn has(&self, opt: Opt) -> bool {
        self.opts.iter().any(|(o, _)| *o == opt)
    }
}

/// Parses one ipvsadm-style command line (without the program name). An empty line lists the
/// table, as bare `ipvsadm` does.
pub fn parse(argv: &[String]) -> Result<AdminCommand, String> {
    if argv.is_empty() {
        return Ok(AdminCommand::List(ListOptions::default()));
    }
    if argv[0] == "-R" || argv[0] == "--restore" {
        return restore_lines(&argv[1..]);
    }
    if argv[0] == "cluster" {
        return super::cluster::parse(&argv[1..]).map(AdminCommand::Cluster);
    }
    if let Some(d) = super::syncd::parse(argv) {
        return d.map(AdminCommand::Daemon);
    }
    if let Some(n) = super::node::parse(argv) {
        return n.map(AdminCommand::Node);
    }
    if let Some(d) = super::drain::parse(argv) {
        return d.map(AdminCommand::Drain);
    }
    if argv[0] == "member" {
        return match argv.get(1) {
            None => Ok(AdminCommand::Member),
            Some(a) => Err(format!("member: unexpected argument '{a}' (uvsadm member)")),
        };
    }
    let mut s = Seen::default();
    for (key, spelled, value) in tokenize(argv)? {
        let v = || value.clone().unwrap_or_default();
        match key.as_str() {
            "" => match spelled.as_str() {
                "save" if s.cmd.is_none() => s.command(Cmd::Save, "save")?,
                "top" if s.cmd.is_none() => s.command(Cmd::Top, "top")?,
                "list" if s.cmd.is_none() => s.command(Cmd::List, "list")?,
                "help" if s.cmd.is_none() => s.command(Cmd::Help, "help")?,
                w if matches!(s.cmd, Some((Cmd::SetTimeouts, _))) => s.words.push(w.to_string()),
                w => {
                    return Err(format!(
                        "unexpected argument '{w}'{}",
                        if w.contains(':') || w.parse::<IpAddr>().is_ok() {
                            ": addresses follow -t, -u, --sctp-service or -r"
                        } else {
                            ": see uvsadm -h"
                        }
                    ))
                }
            },
            "A" => s.command(Cmd::AddService, &spelled)?,
            "E" => s.command(Cmd::EditService, &spelled)?,
            "D" => s.command(Cmd::DeleteService, &spelled)?,
            "C" => s.command(Cmd::Clear, &spelled)?,
            "L" | "l" => s.command(Cmd::List, &spelled)?,
            "Z" => s.command(Cmd::Zero, &spelled)?,
            "a" => s.command(Cmd::AddReal, &spelled)?,
            "e" => s.command(Cmd::EditReal, &spelled)?,
            "d" => s.command(Cmd::DeleteReal, &spelled)?,
            "S" => s.command(Cmd::SaveRules, &spelled)?,
            "R" => s.command(Cmd::Restore, &spelled)?,
            "set" => s.command(Cmd::SetTimeouts, &spelled)?,
            "h" => s.command(Cmd::Help, &spelled)?,
            "v" => s.command(Cmd::Version, &spelled)?,
            "t" | "u" | "sctp-service" => {
                s.option(Opt::Service, &spelled)?;
                let protocol = match key.as_str() {
                    "t" => Protocol::Tcp,
                    "u" => Protocol::Udp,
                    _ => Protocol::Sctp,
                };
                let (vip, port) = endpoint(&v(), "virtual service")?;
                s.service = Some(ServiceKey::addr(vip, protocol, port.unwrap_or(0)));
            }
            "f" => {
                s.option(Opt::Service, &spelled)?;
                let mark = number(&v(), 1, u64::from(u32::MAX), "-f (firewall mark)")
                    .map_err(|e| format!("{e} (a firewall mark is greater than zero)"))?;
                s.service = Some(ServiceKey::mark(mark as u32, false));
            }
            "6" => s.option(Opt::Ipv6, &spelled)?,
            "s" => {
                s.option(Opt::Scheduler, &spelled)?;
                let name = v();
                s.scheduler = Some(Scheduler::from_name(&name).ok_or_else(|| {
                    format!(
                        "unknown scheduler '{name}' after -s: one of {}",
                        Scheduler::NAMES.join(", ")
                    )
                })?);
            }
            "b" => {
                s.option(Opt::SchedFlags, &spelled)?;
                s.flags = v()
                    .split(',')
                    .map(|f| f.trim().to_string())
                    .filter(|f| !f.is_empty())
                    .collect();
            }
            "p" => {
                s.option(Opt::Persistent, &spelled)?;
                // The YAML's rule, so an edit that parses also validates. (ipvsadm takes up
                // to 31 days; uvs's deadlines stop at about 24.8.)
                s.persistent = Some(match &value {
                    None => uvs_config::DEFAULT_PERSISTENCE,
                    Some(t) => number(
                        t,
                        1,
                        uvs_config::MAX_TIMEOUT,
                        "-p (persistence timeout in seconds)",
                    )? as u32,
                });
            }
            "M" => {
                s.option(Opt::Netmask, &spelled)?;
                s.netmask = Some(v());
            }
            "r" => {
                s.option(Opt::Real, &spelled)?;
                s.real = Some(endpoint(&v(), "real server")?);
            }
            "g" | "i" | "m" | "fullnat" => {
                s.option(Opt::Forward, &spelled)?;
                s.forward = Some(match key.as_str() {
                    "g" => Forwarding::Dr,
                    "i" => Forwarding::Tun,
                    "m" => Forwarding::Nat,
                    _ => Forwarding::FullNat,
                });
            }
            "w" => {
                s.option(Opt::Weight, &spelled)?;
                s.weight = Some(number(&v(), 0, 65535, "-w (weight)")? as u16);
            }
            "x" => {
                s.option(Opt::UThreshold, &spelled)?;
                s.upper = Some(number(&v(), 0, i32::MAX as u64, "-x (upper threshold)")? as u32);
            }
            "y" => {
                s.option(Opt::LThreshold, &spelled)?;
                s.lower = Some(number(&v(), 0, i32::MAX as u64, "-y (lower threshold)")? as u32);
            }
            "tun-type" => {
                s.option(Opt::TunType, &spelled)?;
                let name = v();
                s.tun.kind = Some(Tunnel::from_name(&name).ok_or_else(|| {
                    format!("illegal tunnel type '{name}' after --tun-type: one of ipip, gue, gre")
                })?);
            }
            "tun-port" => {
                s.option(Opt::TunPort, &spelled)?;
                s.tun.port = Some(number(&v(), 1, 65535, "--tun-port (tunnel port)")? as u16);
            }
            "tun-nocsum" | "tun-csum" | "tun-remcsum" => {
                if let Some((_, first)) = s.opts.iter().find(|(o, _)| *o == Opt::TunCsum) {
                    return Err(format!("the option {spelled} conflicts with {first}"));
                }
                s.option(Opt::TunCsum, &spelled)?;
                s.tun.csum = Some(match key.as_str() {
                    "tun-nocsum" => TunCsum::None,
                    "tun-csum" => TunCsum::Csum,
                    _ => TunCsum::Remcsum,
                });
            }
            "tun-info" => {
                s.option(Opt::TunInfo, &spelled)?;
                s.list.tun_info = true;
            }
            "fullnat-pool" => {
                s.option(Opt::FullnatPool, &spelled)?;
                let mut pool = Vec::new();
                for a in v().split(',').map(str::trim).filter(|a| !a.is_empty()) {
                    pool.push(a.parse::<IpAddr>().map_err(|_| {
                        format!("--fullnat-pool: '{a}' is not an IP address (give ADDR,ADDR,...)")
                    })?);
                }
                if pool.is_empty() {
                    return Err("--fullnat-pool needs at least one address".into());
                }
                s.pool = Some(pool);
            }
            "n" => {
                s.option(Opt::Numeric, &spelled)?;
                s.list.numeric = true;
            }
            "c" => {
                s.option(Opt::Connection, &spelled)?;
                s.list.connections = true;
            }
            "stats" => {
                s.option(Opt::Stats, &spelled)?;
                s.list.stats = true;
            }
            "rate" => {
                s.option(Opt::Rate, &spelled)?;
                s.list.rate = true;
            }
            "thresholds" => {
                s.option(Opt::Thresholds, &spelled)?;
                s.list.thresholds = true;
            }
            "X" => {
                s.option(Opt::Exact, &spelled)?;
                s.list.exact = true;
            }
            "nosort" => {
                s.option(Opt::NoSort, &spelled)?;
                s.list.nosort = true;
            }
            // Sorting is the default; ipvsadm keeps --sort as a no-op too.
            "sort" => {}
            "o" => {
                s.option(Opt::OnePacket, &spelled)?;
            }
            "once" => {
                s.option(Opt::Once, &spelled)?;
                s.once = true;
            }
            "timeout" => s.option(Opt::Timeout, &spelled)?,
            "persistent-conn" => {
                s.option(Opt::PersistentConn, &spelled)?;
                s.list.persistent_conn = true;
            }
            "json" => {
                s.option(Opt::Json, &spelled)?;
                s.list.json = true;
            }
            other => return Err(unsupported(other, &spelled)),
        }
    }
    build(s)
}

/// ipvsadm features uvs does not have, each with what to do instead.
fn unsupported(key: &str, spelled: &str) -> String {
    let why = match key {
        "start-daemon" | "stop-daemon" => {
            "connection sync is configured in the YAML file, not started by uvsadm"
        }
        "pe" => "persistence engines (SIP) are not supported by uvs",
        _ => "not supported by uvs",
    };
    format!("{spelled}: {why}")
}

/// Turns the collected options into a command, checking they belong to it.
fn build(mut s: Seen) -> Result<AdminCommand, String> {
    let Some((cmd, _)) = s.cmd else {
        return Err(
            "no command given: -L lists, -A/-E/-D edit services, -a/-e/-d real servers \
             (see uvsadm -h)"
                .into(),
        );
    };
    match cmd {
        Cmd::Help => return Ok(AdminCommand::Help),
        Cmd::Version => return Ok(AdminCommand::Version),
        Cmd::Restore => return restore(&s),
        Cmd::SetTimeouts => return set_timeouts(&s),
        _ => {}
    }
    for (opt, spelled) in &s.opts {
        if !opt.allowed(cmd) {
            return Err(format!(
                "illegal option {spelled} with {}{}",
                cmd.name(),
                match (opt, cmd) {
                    (Opt::Weight | Opt::Forward | Opt::UThreshold | Opt::LThreshold, _) =>
                        ": it belongs to -a/-e (real servers)",
                    (Opt::Scheduler | Opt::Persistent | Opt::Netmask | Opt::SchedFlags, _) =>
                        ": it belongs to -A/-E (services)",
                    (Opt::Timeout | Opt::PersistentConn | Opt::Json, _) =>
                        ": it belongs to -L (list)",
                    _ => "",
                }
            ));
        }
    }
    if s.has(Opt::Ipv6) {
        match &mut s.service {
            Some(k) if k.is_fwmark() => *k = ServiceKey::mark(k.fwmark, true),
            _ => {
                return Err(
                    "-6 makes a firewall-mark service IPv6: it needs -f MARK (an address \
                     service's family is its address's)"
                        .into(),
                )
            }
        }
    }
    let s = s;
    let service = |what: &str| -> Result<ServiceKey, String> {
        s.service.ok_or_else(|| {
            format!(
                "{what} needs a service: add -t VIP:PORT, -u VIP:PORT, --sctp-service \
                 VIP:PORT or -f MARK"
            )
        })
    };
    let real = |key: &ServiceKey, what: &str| -> Result<(IpAddr, u16), String> {
        let (addr, port) = s
            .real
            .ok_or_else(|| format!("{what} needs a real server: add -r ADDRESS[:PORT]"))?;
        Ok((addr, port.unwrap_or(key.port)))
    };
    Ok(match cmd {
        Cmd::List => {
            // ipvsadm 1.31's conflicts, and only those: -c or --timeout with --stats, --rate
            // or --thresholds, --timeout with --persistent-conn. Several views list the
            // first of --stats, --rate, --thresholds, --persistent-conn (its print_title);
            // -c lists every connection, with a service too (its list_conn takes none).
            let l = &s.list;
            if l.connections && (l.stats || l.rate || l.thresholds) {
                return Err(
                    "options conflict in the list command: -c lists connections, without \
                     --stats, --rate or --thresholds"
                        .into(),
                );
            }
            if s.has(Opt::Timeout) && !l.connections && s.service.is_none() {
                if l.stats || l.rate || l.thresholds || l.persistent_conn || l.json {
                    return Err(
                        "options conflict in the list command: --timeout prints the timeouts, \
                         without --stats, --rate, --thresholds, --persistent-conn or --json \
                         (uvsadm -L --timeout)"
                            .into(),
                    );
                }
                return Ok(AdminCommand::ListTimeouts);
            }
            let mut list = s.list.clone();
            list.service = s.service;
            AdminCommand::List(list)
        }
        Cmd::AddService | Cmd::EditService => {
            let key = service(cmd.name())?;
            let scheduler = s.scheduler.unwrap_or(Scheduler::WeightedLeastConnection);
            let flags = sched_flags(&s.flags, scheduler)?;
            if s.netmask.is_some() && s.persistent.is_none() {
                return Err("-M sets the persistence granularity: it needs -p [timeout]".into());
            }
            let persistence = match s.persistent {
                None => None,
                Some(timeout) => Some(Persistence {
                    timeout,
                    prefix_len: match &s.netmask {
                        None => max_prefix(key.vip),
                        Some(m) => netmask(m, key.vip)?,
                    },
                }),
            };
            if key.port == 0 && persistence.is_none() && !key.is_fwmark() {
                return Err(
                    "zero port specified for a non-persistent service: a port-0 service \
                     needs -p"
                        .into(),
                );
            }
            let one_packet = s.has(Opt::OnePacket);
            if one_packet && (key.protocol != Protocol::Udp || key.is_fwmark()) {
                return Err("one-packet scheduling (-o) is only for UDP services (-u)".into());
            }
            let args = ServiceArgs {
                key,
                scheduler,
                flags,
                persistence,
                one_packet,
                fullnat_pool: s.pool.clone(),
            };
            if cmd == Cmd::AddService {
                AdminCommand::AddService(args)
            } else {
                AdminCommand::EditService(args)
            }
        }
        Cmd::DeleteService => AdminCommand::DeleteService(service(cmd.name())?),
        Cmd::AddReal | Cmd::EditReal => {
            let key = service(cmd.name())?;
            let (address, port) = real(&key, cmd.name())?;
            s.tun.check(s.forward)?;
            let args = RealArgs {
                service: key,
                address,
                port,
                forwarding: s.forward,
                weight: s.weight.unwrap_or(1),
                upper_threshold: s.upper.unwrap_or(0),
                lower_threshold: s.lower.unwrap_or(0),
                tunnel: s.tun,
            };
            if cmd == Cmd::AddReal {
                AdminCommand::AddReal(args)
            } else {
                AdminCommand::EditReal(args)
            }
        }
        Cmd::DeleteReal => {
            let key = service(cmd.name())?;
            let real = real(&key, cmd.name())?;
            AdminCommand::DeleteReal { service: key, real }
        }
        Cmd::Clear => AdminCommand::Clear,
        Cmd::Zero => AdminCommand::Zero(s.service),
        Cmd::Save => AdminCommand::Save,
        Cmd::SaveRules => AdminCommand::SaveRules {
            numeric: s.list.numeric,
        },
        Cmd::Top => AdminCommand::Top { once: s.once },
        Cmd::Help => AdminCommand::Help,
        Cmd::Version => AdminCommand::Version,
        Cmd::Restore | Cmd::SetTimeouts => unreachable!("built above"),
    })
}

/// `-b` names: uvs's (`sh-fallback`, …) or ipvsadm's generic `flag-1`/`flag-2`, which mean
/// fallback and port for whichever of sh and mh is the scheduler.
fn sched_flags(names: &[String], scheduler: Scheduler) -> Result<Vec<SchedulerFlag>, String> {
    let mut out = Vec::new();
    for name in names {
        let flag = match (name.as_str(), scheduler) {
            ("flag-1", Scheduler::SourceHashing) => SchedulerFlag::ShFallback,
            ("flag-2", Scheduler::SourceHashing) => SchedulerFlag::ShPort,
            ("flag-1", Scheduler::MaglevHashing) => SchedulerFlag::MhFallback,
            ("flag-2", Scheduler::MaglevHashing) => SchedulerFlag::MhPort,
            (n, _) => SchedulerFlag::from_name(n).ok_or_else(|| {
                format!(
                    "unknown scheduler flag '{n}' after -b: one of {}",
                    SchedulerFlag::NAMES.join(", ")
                )
            })?,
        };
        if flag.scheduler() != scheduler {
            return Err(format!(
                "scheduler flag '{flag}' applies only to the {} scheduler, this service uses \
                 {scheduler}: add -s {}",
                flag.scheduler(),
                flag.scheduler()
            ));
        }
        if !out.contains(&flag) {
            out.push(flag);
        }
    }
    out.sort();
    Ok(out)
}
