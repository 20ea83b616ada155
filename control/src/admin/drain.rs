//! `uvsadm drain -t|-u|--sctp-service VIP:PORT | -f MARK [-6]  -r SERVER[:PORT] [--wait]
//! [--timeout S]`: take one real server out of a service gracefully.
//!
//! uvsd sets the server's weight to 0, which is how IPVS quiesces a destination (`ipvsadm -e
//! -w 0`): schedulers give it no new connection, its existing connections (and persistence
//! templates) go on until they end. The edit goes through the same validation as `-e`, so a
//! service or server that does not exist changes nothing and says so. uvsd answers at once;
//! waiting (`--wait`) is uvsadm's side: it polls the server's active and inactive connection
//! counts (`-L --json`), prints progress as it goes, and ends when both are 0 (exit 0) or the
//! timeout has passed (exit 1; the weight stays 0). Inactive connections count too: a
//! connection in FIN_WAIT or TIME_WAIT still belongs to the server until its entry expires
//! (`timeouts:` `tcp_fin_wait`, `tcp_time_wait`), as in IPVS's InActConn.

use super::apply::{apply, service_text};
use super::argv::{endpoint, number};
use super::parse::AdminCommand;
use super::AdminBackend;
use crate::snapshot::Snapshot;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use uvs_config::{Protocol, ServiceKey};

/// A parsed `drain` command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainCommand {
    pub service: ServiceKey,
    /// The server's address and port (the service's port when `-r` gives none).
    pub real: (IpAddr, u16),
    /// uvsadm waits until the server has no connection left.
    pub wait: bool,
    /// Seconds uvsadm waits at most (`None`: until done or interrupted). Implies `wait`.
    pub timeout: Option<u32>,
}

const USAGE: &str = "uvsadm drain -t|-u|--sctp-service VIP:PORT (or -f MARK [-6]) \
                     -r SERVER[:PORT] [--wait] [--timeout S]";

/// `Some` when `argv` is a `drain` command.
pub fn parse(argv: &[String]) -> Option<Result<DrainCommand, String>> {
    if argv.first().map(String::as_str) != Some("drain") {
        return None;
    }
    Some(parse_drain(&argv[1..]).map_err(|e| format!("drain: {e} (usage: {USAGE})")))
}

fn parse_drain(args: &[String]) -> Result<DrainCommand, String> {
    let mut service: Option<ServiceKey> = None;
    let mut mark: Option<u32> = None;
    let mut ipv6 = false;
    let mut real: Option<(IpAddr, Option<u16>)> = None;
    let (mut wait, mut timeout) = (false, None);
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (a, None),
        };
        let mut value = |what: &str| {
            inline
                .or_else(|| it.next())
                .map(str::to_string)
                .ok_or_else(|| format!("{flag} needs {what}"))
        };
        let protocol = match flag {
            "-t" | "--tcp-service" => Some(Protocol::Tcp),
            "-u" | "--udp-service" => Some(Protocol::Udp),
            "--sctp-service" => Some(Protocol::Sctp),
            _ => None,
        };
        if let Some(protocol) = protocol {
            if service.is_some() || mark.is_some() {
                return Err("give one service".into());
            }
            let (vip, port) = endpoint(&value("VIP:PORT")?, "virtual service")?;
            service = Some(ServiceKey::addr(vip, protocol, port.unwrap_or(0)));
            continue;
        }
        match flag {
            "-f" | "--fwmark-service" => {
                if service.is_some() || mark.is_some() {
                    return Err("give one service".into());
                }
                let m = number(&value("a firewall mark")?, 1, u64::from(u32::MAX), "-f")?;
                mark = Some(m as u32);
            }
            "-6" | "--ipv6" if inline.is_none() => ipv6 = true,
            "-r" | "--real-server" => {
                if real.is_some() {
                    return Err("give one real server (-r) per drain".into());
                }
                real = Some(endpoint(&value("SERVER[:PORT]")?, "real server")?);
            }
            "--wait" if inline.is_none() => wait = true,
            "--timeout" => {
                let v = value("seconds")?;
                let s: u32 = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=86400).contains(s))
                    .ok_or_else(|| format!("--timeout '{v}' is not 1..=86400 seconds"))?;
                timeout = Some(s);
                wait = true;
            }
            _ => return Err(format!("unexpected argument '{a}'")),
        }
    }
    let service = match (service, mark) {
        (Some(s), None) if ipv6 => {
            return Err(format!(
                "-6 goes with -f (a firewall-mark service), not with {}",
                service_text(&s)
            ))
        }
        (Some(s), None) => s,
        (None, Some(m)) => ServiceKey::mark(m, ipv6),
        _ => return Err("which service? give -t, -u, --sctp-service or -f".into()),
    };
    let (address, port) = real.ok_or("which real server? give -r SERVER[:PORT]")?;
    // An IPv6 service may have IPv4 real servers (NAT64, and tun); the edit path checks the
    // server is one of the service's.
    if service.vip.is_ipv4() && address.is_ipv6() && !service.is_fwmark() {
        return Err(format!(
            "real server {address} is not of the family of service {}",
            service_text(&service)
        ));
    }
    Ok(DrainCommand {
        real: (address, port.unwrap_or(service.port)),
        service,
        wait,
        timeout,
    })
}

/// uvsd's side: weight 0 (through the same validated edit path as `-e`), then one line with
/// the server's weight before and its connections now.
pub fn execute(backend: &dyn AdminBackend, d: &DrainCommand) -> Result<String, String> {
    let cfg = backend.config();
    let new = apply(
        &AdminCommand::Drain(d.clone()),
        &cfg,
        &backend.host_addresses()?,
    )?;
    let was = cfg
        .services
        .iter()
        .find(|s| s.key() == d.service)
        .and_then(|s| {
            s.real_servers
                .iter()
                .find(|r| r.key() == SocketAddr::new(d.real.0, d.real.1))
        })
        .map_or(0, |r| r.weight);
    if new != cfg {
        backend.apply_config(new)?;
    }
    let server = SocketAddr::new(d.real.0, d.real.1);
    let svc = service_text(&d.service);
    let counts = counts(&backend.snapshot(), d)?;
    let what = if was == 0 {
        "weight already 0".to_string()
    } else {
        format!("weight 0 (was {was}), no new connections")
    };
    Ok(format!(
        "{server} in {svc}: {what}; {} active, {} inactive\n",
        counts.active, counts.inactive
    ))
}

/// The server's figures in a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    pub active: u32,
    pub inactive: u32,
    /// The weight in effect.
    pub weight: u32,
}

/// The drained server's counts in `snap`, or why it is not there.
pub fn counts(snap: &Snapshot, d: &DrainCommand) -> Result<Counts, String> {
    let svc = super::list::find_service(snap, &d.service)?;
    let r = svc
        .reals
        .iter()
        .find(|r| r.address == d.real.0 && r.port == d.real.1)
        .ok_or_else(|| {
            format!(
                "{} is no longer a real server of {} (removed while draining)",
                SocketAddr::new(d.real.0, d.real.1),
                service_text(&d.service)
            )
        })?;
    Ok(Counts {
        active: r.active,
        inactive: r.inactive,
        weight: r.weight,
    })
}

/// The `-L --json` command uvsadm polls while it waits.
pub fn poll_argv(d: &DrainCommand) -> Vec<String> {
    let mut argv: Vec<String> = ["-L", "-n", "--json"].map(String::from).into();
    argv.extend(
        super::apply::service_option(&d.service)
            .split_whitespace()
            .map(String::from),
    );
    argv
}

/// How often uvsadm polls, and the longest it stays silent while nothing changes.
pub const POLL: Duration = Duration::from_millis(500);
const QUIET: Duration = Duration::from_secs(5);

/// uvsadm's side of `--wait`: polls `fetch` every [`POLL`] (`sleep` waits, `elapsed` says
/// how long since the drain), writes a progress line to `out` when the counts change and at
/// least every 5 s, and returns the last line on success or the reason it gave up.
pub fn wait(
    d: &DrainCommand,
    mut fetch: impl FnMut() -> Result<Snapshot, String>,
    mut sleep: impl FnMut(Duration),
    mut elapsed: impl FnMut() -> Duration,
    out: &mut dyn std::io::Write,
) -> Result<String, String> {
    let server = SocketAddr::new(d.real.0, d.real.1);
    let mut last: Option<(Counts, Duration)> = None;
    loop {
        let c = counts(&fetch()?, d)?;
        let t = elapsed();
        if c.weight != 0 {
            return Err(format!(
                "{server}'s weight is {} again (changed while draining): drain abandoned",
                c.weight
            ));
        }
        if c.active == 0 && c.inactive == 0 {
            return Ok(format!(
                "{server}: drained, no connections left after {:.1} s\n",
                t.as_secs_f64()
            ));
        }
        let changed = last.is_none_or(|(l, at)| l != c || t.saturating_sub(at) >= QUIET);
        if changed {
            writeln!(
                out,
                "{server}: {} active, {} inactive, {:.1} s",
                c.active,
                c.inactive,
                t.as_secs_f64()
            )
            .and_then(|()| out.flush())
            .map_err(|e| format!("writing the progress: {e}"))?;
            last = Some((c, t));
        }
        if let Some(limit) = d.timeout {
            if t >= Duration::from_secs(limit.into()) {
                return Err(format!(
                    "{server} still has {} active and {} inactive connections after {limit} s \
                     (--timeout {limit}); its weight stays 0: wait longer, or remove it with \
                     uvsadm -d (its connections then finish on their own)",
                    c.active, c.inactive
                ));
            }
        }
        sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{RealSnapshot, ServiceSnapshot};

    fn p(s: &str) -> Option<Result<DrainCommand, String>> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_services_servers_and_options() {
        let tcp = ServiceKey::addr(ip("198.18.100.1"), Protocol::Tcp, 80);
        assert_eq!(
            p("drain -t 198.18.100.1:80 -r 198.18.1.11"),
            Some(Ok(DrainCommand {
                service: tcp,
                real: (ip("198.18.1.11"), 80),
                wait: false,
                timeout: None,
            }))
        );
        assert_eq!(
            p("drain --tcp-service=198.18.100.1:80 --real-server=198.18.1.11:8080 --wait"),
            Some(Ok(DrainCommand {
                service: tcp,
                real: (ip("198.18.1.11"), 8080),
                wait: true,
                timeout: None,
            }))
        );
        // --timeout implies --wait.
        let d = p("drain -u [2001:2::1]:53 -r [2001:2:0:1::11] --timeout 30")
            .unwrap()
            .unwrap();
        assert_eq!(
            d.service,
            ServiceKey::addr(ip("2001:2::1"), Protocol::Udp, 53)
        );
        assert_eq!(d.real, (ip("2001:2:0:1::11"), 53));
        assert!(d.wait);
        assert_eq!(d.timeout, Some(30));
        let d = p("drain --sctp-service 198.18.100.1:9 -r 198.18.1.11 --timeout=5")
            .unwrap()
            .unwrap();
        assert_eq!(d.service.protocol, Protocol::Sctp);
        assert_eq!(d.timeout, Some(5));
        // An IPv4 server of an IPv6 service (NAT64).
        let d = p("drain -t [2001:2:0:100::64]:80 -r 198.18.1.11")
            .unwrap()
            .unwrap();
        assert_eq!(d.real, (ip("198.18.1.11"), 80));
        let d = p("drain -f 7 -6 -r 2001:2:0:1::11").unwrap().unwrap();
        assert_eq!(d.service, ServiceKey::mark(7, true));
        assert_eq!(d.real, (ip("2001:2:0:1::11"), 0));
        assert_eq!(p("-L -n"), None);
        assert_eq!(p("node drain"), None);
    }

    #[test]
    fn mistakes_are_explained() {
        let err = |s: &str| p(s).unwrap().unwrap_err();
        assert!(err("drain").contains("which service?"), "{}", err("drain"));
        assert!(err("drain -t 198.18.100.1:80").contains("which real server?"));
        assert!(err("drain -r 198.18.1.11").contains("which service?"));
        assert!(
            err("drain -t 198.18.100.1:80 -r 198.18.1.11 -r 198.18.1.12")
                .contains("one real server")
        );
        assert!(
            err("drain -t 198.18.100.1:80 -u 198.18.100.1:53 -r 198.18.1.11")
                .contains("one service")
        );
        assert!(err("drain -t 198.18.100.1:80 -r 198.18.1.11 --timeout").contains("needs"));
        assert!(err("drain -t 198.18.100.1:80 -r 198.18.1.11 --timeout 0").contains("1..=86400"));
        assert!(err("drain -t 198.18.100.1:80 -r 198.18.1.11 --timeout x").contains("1..=86400"));
        assert!(err("drain -t 198.18.100.1:80 -r 198.18.1.11 --wiat").contains("'--wiat'"));
        assert!(err("drain -t 198.18.100.1:80 -r 2001:2::11").contains("family"));
        assert!(err("drain -t 198.18.100.1:80 -6 -r 198.18.1.11").contains("-6 goes with -f"));
        assert!(err("drain -t 198.18.100.1:http -r 198.18.1.11").contains("illegal port"));
        assert!(err("drain -t 198.18.100.1:80 -r 198.18.1.11 --wait=yes").contains("'--wait=yes'"));
        assert!(err("drain -t 198.18.100.1:80 -r x").contains("usage: uvsadm drain"));
    }

    fn snap(weight: u32, active: u32, inactive: u32) -> Snapshot {
        let real = RealSnapshot {
            address: ip("198.18.1.11"),
            port: 80,
            forward: "Masq".into(),
            tunnel: String::new(),
            weight,
            active,
            inactive,
            health_up: true,
            overloaded: false,
            upper_threshold: 0,
            lower_threshold: 0,
            persistent: 0,
            response_time_us: 0,
            load: 0,
            traffic: Default::default(),
            rates: Default::default(),
        };
        Snapshot {
            services: vec![ServiceSnapshot {
                name: "web4".into(),
                protocol: "TCP".into(),
                vip: ip("198.18.100.1"),
                port: 80,
                fwmark: 0,
                scheduler: "rr".into(),
                flags: String::new(),
                persistent: None,
                one_packet: false,
                reals: vec![real],
                traffic: Default::default(),
                rates: Default::default(),
            }],
            ..Default::default()
        }
    }

    /// Runs `wait` over scripted snapshots, one per poll, half a second apart.
    fn run(timeout: Option<u32>, script: &[Snapshot]) -> (Result<String, String>, String) {
        let d = p("drain -t 198.18.100.1:80 -r 198.18.1.11 --wait")
            .unwrap()
            .unwrap();
        let d = DrainCommand { timeout, ..d };
        let mut polls = script.iter().cloned();
        let t = std::cell::Cell::new(Duration::ZERO);
        let mut out = Vec::new();
        let r = wait(
            &d,
            || polls.next().ok_or_else(|| "script ran out".to_string()),
            |dt| t.set(t.get() + dt),
            || t.get(),
            &mut out,
        );
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn waits_until_no_connection_is_left() {
        let (r, out) = run(
            None,
            &[snap(0, 2, 1), snap(0, 2, 1), snap(0, 1, 1), snap(0, 0, 0)],
        );
        assert_eq!(
            out,
            "198.18.1.11:80: 2 active, 1 inactive, 0.0 s\n\
             198.18.1.11:80: 1 active, 1 inactive, 1.0 s\n"
        );
        assert_eq!(
            r.unwrap(),
            "198.18.1.11:80: drained, no connections left after 1.5 s\n"
        );
        // Nothing to wait for.
        let (r, out) = run(Some(1), &[snap(0, 0, 0)]);
        assert!(r.unwrap().contains("after 0.0 s"));
        assert_eq!(out, "");
    }

    #[test]
    fn quiet_stretches_still_show_progress() {
        let script: Vec<Snapshot> = (0..13).map(|_| snap(0, 1, 0)).collect();
        let (r, out) = run(None, &script);
        assert_eq!(r.unwrap_err(), "script ran out");
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(out.ends_with("1 active, 0 inactive, 5.0 s\n"), "{out}");
    }

    #[test]
    fn gives_up_at_the_timeout_or_when_the_server_changes() {
        let script: Vec<Snapshot> = (0..10).map(|_| snap(0, 1, 2)).collect();
        let (r, _) = run(Some(2), &script);
        let e = r.unwrap_err();
        assert!(
            e.contains("still has 1 active and 2 inactive connections after 2 s (--timeout 2)"),
            "{e}"
        );
        let (r, _) = run(None, &[snap(0, 1, 0), snap(3, 1, 0)]);
        assert!(r.unwrap_err().contains("weight is 3 again"));
        let mut gone = snap(0, 0, 0);
        gone.services[0].reals.clear();
        let (r, _) = run(None, &[snap(0, 1, 0), gone]);
        assert!(r.unwrap_err().contains("no longer a real server"));
        let mut gone = snap(0, 0, 0);
        gone.services.clear();
        let (r, _) = run(None, &[gone]);
        assert!(r
            .unwrap_err()
            .contains("No such service: TCP 198.18.100.1:80"));
    }
}
