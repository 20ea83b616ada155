//! Names for addresses and ports, as ipvsadm prints and reads them: without `-n`, an address is
//! shown as its host name (the system resolver's reverse lookup) and a port as its service name
//! (`/etc/services`), and `-t`/`-u`/`-r` accept names as well as numbers.
//!
//! uvsd never waits on a resolver: it prints numeric addresses, and uvsadm, in the caller's
//! process as ipvsadm, resolves host names itself ([`SystemNames`]) and turns the names it is
//! given into numbers before sending a command ([`numeric_endpoints`]).

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How a listing names addresses and ports; `None` prints the number.
pub trait Names {
    fn host(&self, ip: IpAddr) -> Option<String>;
    /// `protocol` as ipvsadm lists it ("TCP", "UDP", "SCTP").
    fn port(&self, port: u16, protocol: &str) -> Option<String>;
}

/// `-n`: numbers only.
pub struct Numeric;

impl Names for Numeric {
    fn host(&self, _: IpAddr) -> Option<String> {
        None
    }
    fn port(&self, _: u16, _: &str) -> Option<String> {
        None
    }
}

/// Service names for ports, numeric addresses: what uvsd prints without `-n`.
pub struct PortNames;

impl Names for PortNames {
    fn host(&self, _: IpAddr) -> Option<String> {
        None
    }
    fn port(&self, port: u16, protocol: &str) -> Option<String> {
        services()
            .by_port
            .get(&(port, protocol.to_ascii_lowercase()))
            .cloned()
    }
}

/// Host names from the system resolver and service names for ports: what uvsadm prints without
/// `-n`. The addresses are looked up once, when it is made.
pub struct SystemNames {
    hosts: HashMap<IpAddr, String>,
}

/// Longest a listing waits for host names; addresses not named by then stay numeric.
pub const RESOLVE_TIME: Duration = Duration::from_secs(5);
/// Lookups running at once.
const PARALLEL: usize = 16;

impl SystemNames {
    /// Looks up the names of `addrs` with `getent hosts` (glibc's resolver through NSS, as
    /// ipvsadm's `gethostbyaddr`): several at once, all within `RESOLVE_TIME`.
    pub fn resolve(addrs: impl IntoIterator<Item = IpAddr>) -> SystemNames {
        let mut todo: Vec<IpAddr> = addrs.into_iter().collect();
        todo.sort();
        todo.dedup();
        let deadline = Instant::now() + RESOLVE_TIME;
        let mut hosts = HashMap::new();
        for chunk in todo.chunks(PARALLEL) {
            let found = std::thread::scope(|scope| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|&ip| scope.spawn(move || (ip, reverse_lookup(ip, deadline))))
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|h| h.join().ok())
                    .collect::<Vec<_>>()
            });
            for (ip, name) in found {
                if let Some(n) = name {
                    hosts.insert(ip, n);
                }
            }
        }
        SystemNames { hosts }
    }

    /// Names given directly (for tests and callers with their own resolver).
    pub fn from_map(hosts: HashMap<IpAddr, String>) -> SystemNames {
        SystemNames { hosts }
    }
}

impl Names for SystemNames {
    fn host(&self, ip: IpAddr) -> Option<String> {
        self.hosts.get(&ip).cloned()
    }
    fn port(&self, port: u16, protocol: &str) -> Option<String> {
        PortNames.port(port, protocol)
    }
}

/// `getent hosts ADDR` → the canonical name, or `None` (no name, no getent, or past the
/// deadline: the lookup is then killed).
fn reverse_lookup(ip: IpAddr, deadline: Instant) -> Option<String> {
    let mut child = Command::new("getent")
        .args(["hosts", &ip.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                child.stdout.take()?.read_to_string(&mut out).ok()?;
                return if status.success() {
                    parse_getent(&out, ip)
                } else {
                    None
                };
            }
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                // Our own child, by its handle.
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The name on `getent hosts` output's line for `ip` (`198.18.0.1   lb.example  lb`).
pub fn parse_getent(out: &str, ip: IpAddr) -> Option<String> {
    out.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let addr: IpAddr = words.next()?.parse().ok()?;
        (addr == ip).then(|| words.next().map(str::to_string))?
    })
}

/// `/etc/services`, read once: port → name and name (and aliases) → port, per protocol.
struct Services {
    by_port: HashMap<(u16, String), String>,
    by_name: HashMap<(String, String), u16>,
}

fn services() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    SERVICES.get_or_init(|| {
        let text = std::fs::read_to_string("/etc/services").unwrap_or_default();
        Services {
            by_port: parse_services(&text),
            by_name: parse_service_names(&text),
        }
    })
}

/// `/etc/services` lines (`http 80/tcp www # WorldWideWeb`) → (port, protocol) → first name.
pub fn parse_services(text: &str) -> HashMap<(u16, String), String> {
    let mut map = HashMap::new();
    for (name, _, port, proto) in service_lines(text) {
        map.entry((port, proto)).or_insert_with(|| name.to_string());
    }
    map
}

/// `/etc/services` lines → (name or alias, protocol) → port.
fn parse_service_names(text: &str) -> HashMap<(String, String), u16> {
    let mut map = HashMap::new();
    for (name, aliases, port, proto) in service_lines(text) {
        for n in std::iter::once(name).chain(aliases) {
            map.entry((n.to_string(), proto.clone())).or_insert(port);
        }
    }
    map
}

fn service_lines(text: &str) -> impl Iterator<Item = (&str, Vec<&str>, u16, String)> {
    text.lines().filter_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let name = words.next()?;
        let (port, proto) = words.next()?.split_once('/')?;
        let port = port.parse::<u16>().ok()?;
        Some((name, words.collect(), port, proto.to_ascii_lowercase()))
    })
}

/// The port a service name stands for (`http` → 80 for tcp).
pub fn port_of(name: &str, protocol: &str) -> Option<u16> {
    services()
        .by_name
        .get(&(name.to_string(), protocol.to_ascii_lowercase()))
        .copied()
}

/// The first address `host` resolves to through the system resolver (getaddrinfo), IPv4 first
/// as ipvsadm's `gethostbyname`.
pub fn address_of(host: &str) -> Option<IpAddr> {
    let addrs: Vec<SocketAddr> = (host, 0).to_socket_addrs().ok()?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(SocketAddr::ip)
}

/// `HOST[:PORT]` with names → the numeric `ADDRESS[:PORT]` uvsd reads (`[v6]:port` for
/// IPv6). Numeric text comes back unchanged.
pub fn numeric_endpoint(text: &str, protocol: &str) -> Result<String, String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, after)) => (h, after.strip_prefix(':')),
            None => return Ok(text.to_string()),
        }
    } else if text.parse::<IpAddr>().is_ok() {
        return Ok(text.to_string());
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => address_of(host).ok_or_else(|| {
            format!("host name '{host}' in '{text}' does not resolve (give an address instead)")
        })?,
    };
    let port = match port {
        None => None,
        Some(p) if p.parse::<u16>().is_ok() => Some(p.to_string()),
        Some(p) => Some(
            port_of(p, protocol)
                .ok_or_else(|| {
                    format!("unknown {protocol} service name '{p}' in '{text}' (see /etc/services)")
                })?
                .to_string(),
        ),
    };
    Ok(match (ip, port) {
        (IpAddr::V4(a), Some(p)) => format!("{a}:{p}"),
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (ip, None) => ip.to_string(),
    })
}

/// An argv with the host and service names after `-t`, `-u`, `--sctp-service` and `-r` (in
/// any of ipvsadm's spellings: `-t X`, `-tX`, `--tcp-service X`, `--tcp-service=X`) replaced
/// by numbers. A real server's port is named in its service's protocol.
pub fn numeric_endpoints(argv: &[String]) -> Result<Vec<String>, String> {
    // The protocol an option's value names ports in ("" for -r: its service's).
    let option = |w: &str| -> Option<&'static str> {
        match w {
            "-t" | "--tcp-service" => Some("tcp"),
            "-u" | "--udp-service" => Some("udp"),
            "--sctp-service" => Some("sctp"),
            "-r" | "--real-server" => Some(""),
            _ => None,
        }
    };
    let protocol = argv
        .iter()
        .find_map(|w| {
            let head = w.split('=').next().unwrap_or(w);
            match option(head) {
                Some(p) if !p.is_empty() => Some(p),
                _ if w.starts_with("-t") && !w.starts_with("--") => Some("tcp"),
                _ if w.starts_with("-u") && !w.starts_with("--") => Some("udp"),
                _ => None,
            }
        })
        .unwrap_or("tcp");
    let mut out = Vec::with_capacity(argv.len());
    let mut i = 0;
    while i < argv.len() {
        let w = &argv[i];
        if option(w).is_some() {
            out.push(w.clone());
            if let Some(v) = argv.get(i + 1) {
                out.push(numeric_endpoint(v, protocol)?);
                i += 1;
            }
        } else if let Some((head, v)) = w.split_once('=').filter(|(h, _)| option(h).is_some()) {
            out.push(format!("{head}={}", numeric_endpoint(v, protocol)?));
        } else if w.len() > 2
            && !w.starts_with("--")
            && (w.starts_with("-t") || w.starts_with("-u") || w.starts_with("-r"))
        {
            out.push(format!(
                "{}{}",
                &w[..2],
                numeric_endpoint(&w[2..], protocol)?
            ));
        } else {
            out.push(w.clone());
        }
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getent_lines() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            parse_getent("127.0.0.1       localhost\n", ip).as_deref(),
            Some("localhost")
        );
        assert_eq!(
            parse_getent("::1  ip6-localhost ip6-loopback\n", "::1".parse().unwrap()).as_deref(),
            Some("ip6-localhost")
        );
        assert_eq!(parse_getent("127.0.0.2 other\n", ip), None);
        assert_eq!(parse_getent("", ip), None);
    }

    /// Names become numbers before a command is sent: hosts through the system resolver
    /// (localhost is in /etc/hosts), ports through /etc/services in the service's protocol.
    #[test]
    fn endpoints_become_numeric() {
        assert_eq!(
            numeric_endpoint("localhost:http", "tcp").unwrap(),
            "127.0.0.1:80"
        );
        assert_eq!(numeric_endpoint("[::1]:https", "tcp").unwrap(), "[::1]:443");
        assert_eq!(numeric_endpoint("198.18.0.1", "tcp").unwrap(), "198.18.0.1");
        assert_eq!(numeric_endpoint("2001:2::1", "tcp").unwrap(), "2001:2::1");
        assert_eq!(
            numeric_endpoint("198.18.0.1:8080", "tcp").unwrap(),
            "198.18.0.1:8080"
        );
        assert_eq!(
            numeric_endpoint("198.18.0.1:domain", "udp").unwrap(),
            "198.18.0.1:53"
        );
        let err = numeric_endpoint("198.18.0.1:nosuchservice", "udp").unwrap_err();
        assert!(
            err.contains("unknown udp service name 'nosuchservice'"),
            "{err}"
        );
        let argv: Vec<String> = "-a -u 198.18.100.1:domain --real-server=localhost:domain -m"
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(
            numeric_endpoints(&argv).unwrap().join(" "),
            "-a -u 198.18.100.1:53 --real-server=127.0.0.1:53 -m"
        );
        let argv: Vec<String> = "-Ln -tlocalhost:http"
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(
            numeric_endpoints(&argv).unwrap().join(" "),
            "-Ln -t127.0.0.1:80"
        );
    }

    #[test]
    fn service_names_both_ways() {
        let text = "http 80/tcp www # WWW\ndomain 53/udp\nx 70000/tcp\n";
        let by_port = parse_services(text);
        assert_eq!(
            by_port.get(&(80, "tcp".into())).map(String::as_str),
            Some("http")
        );
        let by_name = parse_service_names(text);
        assert_eq!(by_name.get(&("www".into(), "tcp".into())), Some(&80));
        assert_eq!(by_name.get(&("domain".into(), "udp".into())), Some(&53));
        assert_eq!(by_name.get(&("domain".into(), "tcp".into())), None);
        assert_eq!(by_name.len(), 3);
    }
}
