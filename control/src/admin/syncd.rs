//! ipvsadm's sync-daemon commands: `--start-daemon master|backup [--mcast-interface IF]
//! [--syncid N] [--sync-maxlen N] [--mcast-group ADDR] [--mcast-port PORT] [--mcast-ttl N]`,
//! `--stop-daemon master|backup` and `-L --daemon`. Starting or stopping edits the running
//! configuration's `sync:` section (as any uvsadm edit, validated first; `uvsadm save`
//! shows it), and uvsd starts, restarts or stops the daemon to match: a direction started
//! or stopped beside the other starts or stops only its thread (`SyncDaemon::change_mode`).
//!
//! Starting a daemon that runs already is refused, as ipvsadm's EEXIST ("File exists").
//! One `sync:` section serves both directions (one sync id, interface, group, port...):
//! the other direction starts beside a running daemon (mode both) only with the same
//! parameters or none.

use std::net::IpAddr;

use uvs_config::{Config, SyncConfig, SyncMode};

/// A parsed sync-daemon command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonCommand {
    Start {
        mode: SyncMode,
        interface: Option<String>,
        syncid: Option<u8>,
        maxlen: Option<u16>,
        group: Option<IpAddr>,
        port: Option<u16>,
        ttl: Option<u8>,
    },
    Stop(SyncMode),
    List,
}

fn mode(v: &str) -> Result<SyncMode, String> {
    match v {
        "master" => Ok(SyncMode::Master),
        "backup" => Ok(SyncMode::Backup),
        _ => Err(format!(
            "--start-daemon/--stop-daemon take 'master' or 'backup', not '{v}'"
        )),
    }
}

fn value<T: std::str::FromStr>(flag: &str, v: Option<&String>, what: &str) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs {what}"))?;
    v.parse()
        .map_err(|_| format!("{flag}: '{v}' is not {what}"))
}

/// `Some` when `argv` is a sync-daemon command (then every other flag must belong to it).
pub fn parse(argv: &[String]) -> Option<Result<DaemonCommand, String>> {
    let is = |f: &str| {
        argv.iter()
            .any(|a| a == f || a.starts_with(&format!("{f}=")))
    };
    if !is("--start-daemon") && !is("--stop-daemon") && !is("--daemon") {
        return None;
    }
    Some(parse_daemon(argv))
}

fn parse_daemon(argv: &[String]) -> Result<DaemonCommand, String> {
    // Split --flag=value into flag, value.
    let mut words = Vec::new();
    for a in argv {
        match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => {
                words.push(f.to_string());
                words.push(v.to_string());
            }
            _ => words.push(a.clone()),
        }
    }
    let mut it = words.iter();
    let mut start = None;
    let mut stop = None;
    let mut list = false;
    let (mut interface, mut syncid, mut maxlen, mut group, mut port, mut ttl) =
        (None, None, None, None, None, None);
    while let Some(w) = it.next() {
        match w.as_str() {
            "--start-daemon" => start = Some(mode(it.next().map_or("", |s| s.as_str()))?),
            "--stop-daemon" => stop = Some(mode(it.next().map_or("", |s| s.as_str()))?),
            "--daemon" => list = true,
            "--list" | "--numeric" => {}
            // -L, -l, -n, and clustered as people type them: -Ln.
            s if s.len() > 1
                && s.starts_with('-')
                && s[1..].chars().all(|c| matches!(c, 'L' | 'l' | 'n')) => {}
            "--mcast-interface" => {
                interface = Some(
                    it.next()
                        .ok_or("--mcast-interface needs an interface name")?
                        .clone(),
                )
            }
            "--syncid" => syncid = Some(value(w, it.next(), "a sync id 0..255")?),
            "--sync-maxlen" => maxlen = Some(value(w, it.next(), "a length")?),
            "--mcast-group" => group = Some(value(w, it.next(), "an IP address")?),
            "--mcast-port" => port = Some(value(w, it.next(), "a port")?),
            "--mcast-ttl" => ttl = Some(value(w, it.next(), "a TTL 1..255")?),
            other => {
                return Err(format!(
                    "{other} does not go with the sync-daemon commands (see uvsadm -h)"
                ))
            }
        }
    }
    match (start, stop, list) {
        (Some(mode), None, false) => Ok(DaemonCommand::Start {
            mode,
            interface,
            syncid,
            maxlen,
            group,
            port,
            ttl,
        }),
        (None, Some(mode), false) if interface.is_none() && syncid.is_none() => {
            Ok(DaemonCommand::Stop(mode))
        }
        (None, None, true) => Ok(DaemonCommand::List),
        _ => {
            Err("give one of --start-daemon MODE [options], --stop-daemon MODE, -L --daemon".into())
        }
    }
}

/// The configuration after `cmd` (Start/Stop), or why it cannot apply.
pub fn apply(cmd: &DaemonCommand, cfg: &Config) -> Result<Config, String> {
    let mut new = cfg.clone();
    match cmd {
        DaemonCommand::Start {
            mode,
            interface,
            syncid,
            maxlen,
            group,
            port,
            ttl,
        } => {
            let base = cfg.sync.clone();
            if let Some(b) = &base {
                running_daemon_allows(b, cmd)?;
            }
            let interface = match (interface, &base) {
                (Some(i), _) => i.clone(),
                (None, Some(b)) => b.interface.clone(),
                (None, None) => {
                    return Err(
                        "--start-daemon needs --mcast-interface IF (no sync configured)".into(),
                    )
                }
            };
            if !cfg.interfaces.iter().any(|i| i.name == interface) {
                return Err(format!(
                    "--mcast-interface: '{interface}' is not one of uvsd's interfaces"
                ));
            }
            let running = base.as_ref().map(|b| b.mode);
            let mode = match (running, mode) {
                (Some(SyncMode::Both), _) => SyncMode::Both,
                (Some(SyncMode::Master), SyncMode::Backup)
                | (Some(SyncMode::Backup), SyncMode::Master) => SyncMode::Both,
                (_, m) => *m,
            };
            let group = group.unwrap_or_else(|| {
                base.as_ref()
                    .map_or(IpAddr::from(uvs_sync::wire::DEFAULT_GROUP), |b| b.group)
            });
            if !group.is_multicast() {
                return Err(format!("--mcast-group: {group} is not a multicast address"));
            }
            if ttl == &Some(0) {
                return Err("--mcast-ttl: 1..255".into());
            }
            if maxlen.is_some_and(|m| m < 128) {
                return Err("--sync-maxlen: at least 128".into());
            }
            new.sync = Some(SyncConfig {
                mode,
                interface,
                syncid: syncid.or(base.as_ref().map(|b| b.syncid)).unwrap_or(0),
                group,
                port: port
                    .or(base.as_ref().map(|b| b.port))
                    .unwrap_or(uvs_sync::wire::DEFAULT_PORT),
                ttl: ttl.or(base.as_ref().map(|b| b.ttl)).unwrap_or(1),
                maxlen: maxlen.or(base.as_ref().and_then(|b| b.maxlen)),
                peers: base.as_ref().map(|b| b.peers.clone()).unwrap_or_default(),
                auth_key: base.as_ref().and_then(|b| b.auth_key.clone()),
                refresh_period: base.as_ref().map_or(30, |b| b.refresh_period),
                max_rate: base.as_ref().map_or(100_000, |b| b.max_rate),
            });
        }
        DaemonCommand::Stop(m) => {
            let Some(s) = &cfg.sync else {
                return Err("No daemon is running: no sync daemon runs".into());
            };
            new.sync = match (s.mode, m) {
                (SyncMode::Both, SyncMode::Master) => Some(SyncConfig {
                    mode: SyncMode::Backup,
                    ..s.clone()
                }),
                (SyncMode::Both, SyncMode::Backup) => Some(SyncConfig {
                    mode: SyncMode::Master,
                    ..s.clone()
                }),
                (x, y) if x == *y => None,
                (x, y) => {
                    return Err(format!(
                        "No daemon is running: no {y} sync daemon runs (this node is {x})"
                    ))
                }
            };
        }
        DaemonCommand::List => {}
    }
    Ok(new)
}

/// Whether `start` (a Start command) may join the running daemon `running`. ipvsadm
/// refuses to start a daemon that runs already (EEXIST); so does uvs, rather than restart
/// it. IPVS keeps a master's and a backup's parameters apart; uvs runs both directions
/// from one `sync:` section (one sync id, interface, group, port, TTL and maxlen), so the
/// other direction starts beside a running daemon only with the same parameters, or with
/// none given: otherwise it would change the running one's too.
fn running_daemon_allows(running: &SyncConfig, start: &DaemonCommand) -> Result<(), String> {
    let DaemonCommand::Start {
        mode,
        interface,
        syncid,
        maxlen,
        group,
        port,
        ttl,
    } = start
    else {
        return Ok(());
    };
    if running.mode == SyncMode::Both || running.mode == *mode {
        return Err(format!(
            "Daemon has already run: the {mode} sync daemon is already running (File exists): \
             `uvsadm --stop-daemon {mode}` first to start it again with other options"
        ));
    }
    let other = running.mode;
    let differs = |flag: &str, given: String, now: String| {
        Err(format!(
            "{flag} {given} differs from the running {other} sync daemon's {now}: uvs runs the \
             master and backup sync daemons from one `sync:` section, with one sync id (and \
             one interface, group, port, TTL and maximum length) for both directions; give \
             the same value or none, or stop the {other} daemon first (`uvsadm \
             --stop-daemon {other}`)"
        ))
    };
    if let Some(i) = interface.as_ref().filter(|i| **i != running.interface) {
        return differs("--mcast-interface", i.clone(), running.interface.clone());
    }
    if let Some(id) = syncid.filter(|id| *id != running.syncid) {
        return differs("--syncid", id.to_string(), running.syncid.to_string());
    }
    if let Some(g) = group.filter(|g| *g != running.group) {
        return differs("--mcast-group", g.to_string(), running.group.to_string());
    }
    if let Some(p) = port.filter(|p| *p != running.port) {
        return differs("--mcast-port", p.to_string(), running.port.to_string());
    }
    if let Some(t) = ttl.filter(|t| *t != running.ttl) {
        return differs("--mcast-ttl", t.to_string(), running.ttl.to_string());
    }
    if let Some(m) = maxlen.filter(|m| Some(*m) != running.maxlen) {
        let now = running
            .maxlen
            .map_or("(the interface MTU's)".to_string(), |l| l.to_string());
        return differs("--sync-maxlen", m.to_string(), now);
    }
    Ok(())
}

/// `-L --daemon`, as ipvsadm 1.31 prints it (maxlen the one in use, as the kernel reports it).
pub fn format(cfg: &Config) -> String {
    let Some(s) = &cfg.sync else {
        return String::new();
    };
    let mut out = String::new();
    let modes: &[&str] = match s.mode {
        SyncMode::Master => &["master"],
        SyncMode::Backup => &["backup"],
        SyncMode::Both => &["master", "backup"],
    };
    for m in modes {
        out.push_str(&format!(
            "{m} sync daemon (mcast={}, syncid={}, maxlen={}, group={}, port={}, ttl={})\n",
            s.interface,
            s.syncid,
            crate::sync::maxlen(s),
            s.group,
            s.port,
            s.ttl
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sync: &str) -> Config {
        uvs_config::load_str(
            &format!(
                "interfaces:\n  - name: uvs-lb1\n    local: [198.18.1.3]\n    networks: [198.18.1.0/24]\n  - name: uvs-lb2\n    local: [198.18.2.3]\n    networks: [198.18.2.0/24]\n{sync}"
            ),
            "t.yaml",
        )
        .unwrap()
    }

    /// The command `line` (uvsadm's words) stands for.
    fn cmd(line: &str) -> DaemonCommand {
        let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse(&argv).unwrap().unwrap()
    }

    /// ipvsadm: starting a daemon that runs already fails (EEXIST); uvs says so and
    /// changes nothing (no restart, no counters reset).
    #[test]
    fn starting_a_running_daemon_is_refused() {
        for (running, mode) in [
            ("master", SyncMode::Master),
            ("backup", SyncMode::Backup),
            ("both", SyncMode::Master),
            ("both", SyncMode::Backup),
        ] {
            let cfg = config(&format!(
                "sync: {{ mode: {running}, interface: uvs-lb1, syncid: 7 }}\n"
            ));
            for line in [
                format!("--start-daemon {mode}"),
                format!("--start-daemon {mode} --syncid 5"),
            ] {
                let err = apply(&cmd(&line), &cfg).unwrap_err();
                assert!(
                    err.starts_with("Daemon has already run: ")
                        && err.contains(&format!("the {mode} sync daemon is already running"))
                        && err.contains("File exists")
                        && err.contains(&format!("--stop-daemon {mode}")),
                    "{running} + start {mode}: {err}"
                );
            }
        }
    }

    /// ipvsadm (ESRCH): "No daemon is running", first, as scripts look for it.
    #[test]
    fn stopping_no_daemon_says_ipvsadms_words() {
        let none = config("");
        let err = apply(&cmd("--stop-daemon master"), &none).unwrap_err();
        assert!(err.starts_with("No daemon is running"), "{err}");
        let backup = config("sync: { mode: backup, interface: uvs-lb1 }\n");
        let err = apply(&cmd("--stop-daemon master"), &backup).unwrap_err();
        assert!(err.starts_with("No daemon is running"), "{err}");
    }

    /// uvs runs both directions from one `sync:` section (one sync id, one interface,
    /// group, port...): a backup started beside a running master with other parameters
    /// would change the master's too, so it is refused and the message says why; with the
    /// same (or no) parameters it joins the master (mode both).
    #[test]
    fn the_other_direction_shares_the_running_daemons_parameters() {
        let cfg = config("sync: { mode: both, interface: uvs-lb1, syncid: 7 }\n");
        let both = apply(&DaemonCommand::Stop(SyncMode::Backup), &cfg).unwrap();
        assert_eq!(both.sync.as_ref().unwrap().mode, SyncMode::Master);
        let cases = [
            (
                "--syncid 5",
                "--syncid 5 differs from the running master sync daemon's 7",
            ),
            (
                "--mcast-interface uvs-lb2",
                "--mcast-interface uvs-lb2 differs from the running master sync daemon's uvs-lb1",
            ),
            (
                "--mcast-group 224.0.0.82",
                "--mcast-group 224.0.0.82 differs",
            ),
            ("--mcast-port 8849", "--mcast-port 8849 differs"),
            ("--mcast-ttl 2", "--mcast-ttl 2 differs"),
            ("--sync-maxlen 1000", "--sync-maxlen 1000 differs"),
        ];
        for (opts, want) in cases {
            let err = apply(&cmd(&format!("--start-daemon backup {opts}")), &both).unwrap_err();
            assert!(
                err.contains(want) && err.contains("one sync id"),
                "{opts}: {err}"
            );
        }
        // The same parameters, or none: both directions run.
        for line in [
            "--start-daemon backup",
            "--start-daemon backup --syncid 7 --mcast-interface uvs-lb1 --mcast-port 8848",
        ] {
            let new = apply(&cmd(line), &both).unwrap();
            let s = new.sync.unwrap();
            assert_eq!((s.mode, s.syncid), (SyncMode::Both, 7), "{line}");
        }
    }
}
