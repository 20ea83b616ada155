//! Raw document → validated [`Config`], with every mistake located and explained.
//!
//! Checks run in document order and stop at the first mistake, so the error a user sees is the
//! earliest one in their file.

mod bgp;
mod cluster;
mod fwmark;
mod health;
mod layer7;
mod lookup;
mod member;
pub(crate) use member::mac_text;
mod real;
mod service;
mod site;
mod sync;

pub use fwmark::MAX_MARK_PORT_RANGES;
pub use service::DEFAULT_PERSISTENCE;

use crate::error::{suggest, ConfigError};
use crate::marks::{join, MarkTree};
use crate::model::{
    Admin, Config, ConnTable, Interface, Metrics, Route, Timeouts, Workers, XdpMode, ZeroCopy,
    DEFAULT_ADMIN_SOCKET,
};
use crate::net::{IpPrefix, PrefixError, PrefixMap};
use crate::raw::{RawConfig, RawInterface, RawTimeouts};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

pub(crate) type Result<T> = std::result::Result<T, ConfigError>;

/// Addresses uvs owns of one family (VIPs, local and FullNAT pool addresses) that the XDP
/// program's `owned4`/`owned6` maps hold (`crates/xsk/bpf/uvs_xdp.c`).
pub const MAX_OWNED_PER_FAMILY: usize = 16384;
/// Real server addresses of one family its `reals4`/`reals6` maps hold.
pub const MAX_REALS_PER_FAMILY: usize = 16384;
/// (real server, protocol, port) entries its `real_ports` map holds.
pub const MAX_REAL_PORTS: usize = 65536;

/// Connection table capacity limit: 2^28 entries.
pub(crate) const MAX_CONN_TABLE: u64 = 1 << 28;
/// Longest timeout in seconds, for the per-state timeouts and persistence (YAML and
/// `uvsadm -p` alike): IPVS's `INT_MAX / HZ` with HZ = 1000 (`ip_vs_set_timeout()` in
/// `ip_vs_ctl.c`), and what the connection table's wrapping millisecond deadlines allow
/// (less than 2^31 ms ahead).
pub const MAX_TIMEOUT: u64 = i32::MAX as u64 / 1000;
/// Linux `IFNAMSIZ` is 16 including the terminating NUL.
pub(crate) const MAX_IFNAME: usize = 15;
/// Queues per interface; one AF_XDP socket and UMEM region each.
pub(crate) const MAX_QUEUES: u64 = 1024;
/// AF_XDP ring descriptors when the YAML does not say (uvsd measured 2048 losing frames
/// during short stalls at 400-600 kpps on veth, 4096 not).
pub(crate) const DEFAULT_RING_SIZE: u64 = 4096;

/// Where errors point: the file name and the positions of its nodes; and the addresses the
/// host holds, when the caller knows them (uvsd does; `--check-config` and tests need not).
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub tree: &'a MarkTree,
    pub host: &'a [IpAddr],
}

/// What an address is used for, which decides what it may not be.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Vip,
    Local,
    Pool,
    Real,
    Sorry,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Vip => "VIP",
            Role::Local => "local address",
            Role::Pool => "fullnat pool address",
            Role::Real => "real server",
            Role::Sorry => "sorry server",
        }
    }

    /// Real and sorry servers are other machines uvs forwards to; the rest uvs owns.
    fn is_server(self) -> bool {
        matches!(self, Role::Real | Role::Sorry)
    }
}

/// The interfaces, for the checks services make against them.
pub(crate) struct Links {
    /// The on-link networks and where each is listed.
    networks: PrefixMap<String>,
    routes: PrefixMap<()>,
    /// Every local address and the path where it is listed.
    locals: HashMap<IpAddr, String>,
    /// The networks of an interface without a `local` address of their family, with the
    /// interface's name: uvs could not ask who holds an address there (its ARP requests and
    /// neighbour solicitations go out from a local address).
    unsourced: PrefixMap<String>,
}

impl Links {
    pub fn new(interfaces: &[Interface]) -> Links {
        let mut links = Links {
            networks: PrefixMap::default(),
            routes: PrefixMap::default(),
            locals: HashMap::new(),
            unsourced: PrefixMap::default(),
        };
        for (i, ifc) in interfaces.iter().enumerate() {
            for (j, n) in ifc.networks.iter().enumerate() {
                links
                    .networks
                    .insert(*n, format!("interfaces[{i}].networks[{j}]"));
                if !ifc.local.iter().any(|l| l.is_ipv4() == n.is_ipv4()) {
                    links.unsourced.insert(*n, ifc.name.clone());
                }
            }
            for r in &ifc.routes {
                links.routes.insert(r.prefix, ());
            }
            for (j, ip) in ifc.local.iter().enumerate() {
                links
                    .locals
                    .entry(*ip)
                    .or_insert_with(|| format!("interfaces[{i}].local[{j}]"));
            }
        }
        links
    }

    /// Inside one of the interfaces' networks.
    pub fn on_link(&self, ip: IpAddr) -> bool {
        self.networks.contains_addr(ip)
    }

    /// `ip` is on a network of an interface with no `local` address of its family: the
    /// network and the interface's name.
    pub fn unsourced(&self, ip: IpAddr) -> Option<(IpPrefix, &str)> {
        self.networks.covering(ip).next()?;
        self.unsourced
            .covering(ip)
            .next()
            .map(|(n, name)| (n, name.as_str()))
    }

    /// On a link or through a route: what the dataplane needs to send to `ip`.
    pub fn routed(&self, ip: IpAddr) -> bool {
        self.on_link(ip) || self.routes.contains_addr(ip)
    }

    /// The network (and its path) whose directed broadcast address `ip` is. /31 and /32 have
    /// none (RFC 3021).
    fn broadcast_of(&self, ip: IpAddr) -> Option<(IpPrefix, &str)> {
        let IpAddr::V4(v4) = ip else { return None };
        self.networks.covering(ip).find_map(|(n, at)| {
            let host_bits = u32::MAX.checked_shr(u32::from(n.len())).unwrap_or(0);
            (n.len() <= 30 && u32::from(v4) & host_bits == host_bits).then_some((n, at.as_str()))
        })
    }
}

impl Ctx<'_> {
    /// An error at the value of `path` (or its nearest ancestor present in the file).
    pub fn err(&self, path: &str, message: impl Into<String>) -> ConfigError {
        let pos = self.tree.value(path);
        ConfigError {
            file: self.file.to_string(),
            line: pos.line,
            column: pos.column,
            path: path.to_string(),
            message: message.into(),
            hint: None,
        }
    }

    /// An error at the key of `path`, for problems with a field's presence rather than value.
    pub fn err_key(&self, path: &str, message: impl Into<String>) -> ConfigError {
        let pos = self.tree.key(path);
        ConfigError {
            line: pos.line,
            column: pos.column,
            ..self.err(path, message)
        }
    }

    /// An error about `path` located at another node, `at` (the one the user should edit).
    pub fn err_at(&self, at: &str, path: &str, message: impl Into<String>) -> ConfigError {
        let pos = self.tree.value(at);
        ConfigError {
            line: pos.line,
            column: pos.column,
            ..self.err(path, message)
        }
    }

    /// Refuses `ip` where it cannot serve as `role`: an address that is not one host's
    /// (unspecified, loopback, multicast, broadcast), one uvs owns already (a local address,
    /// for VIPs and servers), or one the host holds.
    pub fn check_address(&self, links: &Links, path: &str, role: Role, ip: IpAddr) -> Result<()> {
        let what = role.name();
        let v4 = |ip: IpAddr| matches!(ip, IpAddr::V4(a) if a.is_broadcast());
        let kind = if ip.is_unspecified() {
            Some((
                "the unspecified address",
                "0.0.0.0 and :: mean \"no address\": write a real one",
            ))
        } else if ip.is_loopback() {
            Some((
                "a loopback address",
                "loopback addresses never leave this host",
            ))
        } else if ip.is_multicast() {
            Some(("a multicast address", "uvs balances unicast traffic only"))
        } else if v4(ip) {
            Some(("the broadcast address", BROADCAST_HINT))
        } else {
            None
        };
        if let Some((kind, hint)) = kind {
            return Err(self
                .err(path, format!("{what} {ip} is {kind}"))
                .with_hint(Some(hint.into())));
        }
        if let Some((net, at)) = links.broadcast_of(ip) {
            return Err(self
                .err(
                    path,
                    format!(
                        "{what} {ip} is the broadcast address of {net} ({at}, line {})",
                        self.line_of(at)
                    ),
                )
                .with_hint(Some(BROADCAST_HINT.into())));
        }
        if matches!(role, Role::Vip | Role::Real | Role::Sorry) {
            if let Some(at) = links.locals.get(&ip) {
                return Err(self.also(path, role, ip, at));
            }
        }
        if self.host.contains(&ip) {
            let hint = if role.is_server() {
                "uvs forwards to other machines; a service on this host cannot be a real server"
            } else {
                "uvs would take the host's own traffic to it: choose an address the host does not use"
            };
            return Err(self
                .err(path, format!("{what} {ip} is an address this host holds"))
                .with_hint(Some(hint.into())));
        }
        Ok(())
    }

    /// `ip`, used as `role` at `path`, is also the address uvs owns at `other`.
    pub fn also(&self, path: &str, role: Role, ip: IpAddr, other: &str) -> ConfigError {
        let hint = match role {
            Role::Vip => "give the service an address of its own",
            Role::Pool => {
                "the pool is the source address towards real servers: give it addresses of its own"
            }
            _ => "uvs owns this address; a real server is another machine",
        };
        self.err(
            path,
            format!(
                "{} {ip} is also {other} (line {})",
                role.name(),
                self.line_of(other)
            ),
        )
        .with_hint(Some(hint.into()))
    }

    /// Line of the node at `path`, for "already defined at line N" messages.
    pub fn line_of(&self, path: &str) -> usize {
        self.tree.value(path).line
    }

    pub fn addr(&self, path: &str, text: &str) -> Result<IpAddr> {
        if let Ok(ip) = text.parse() {
            return Ok(ip);
        }
        let hint = if let Some((a, _)) = text.split_once('/') {
            a.parse::<IpAddr>()
                .is_ok()
                .then(|| format!("a single address has no '/length': write {a}"))
        } else if let Ok(sa) = text.parse::<SocketAddr>() {
            Some(format!(
                "write the address alone ({}) and the port in its own `port` field",
                sa.ip()
            ))
        } else {
            text.strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .filter(|t| t.parse::<IpAddr>().is_ok())
                .map(|t| format!("drop the brackets: \"{t}\""))
        };
        Err(self
            .err(path, format!("'{text}' is not an IPv4 or IPv6 address"))
            .with_hint(hint))
    }

    pub fn prefix(&self, path: &str, text: &str) -> Result<IpPrefix> {
        text.parse::<IpPrefix>().map_err(|e| {
            let hint = match &e {
                PrefixError::HostBits { network } => Some(format!("did you mean {network}?")),
                PrefixError::MissingLength => Some(match text.parse::<IpAddr>() {
                    Ok(ip) if ip.is_ipv4() => format!("a single host is {text}/32"),
                    Ok(_) => format!("a single host is {text}/128"),
                    Err(_) => "write it as 198.18.0.0/24 or 2001:2::/64".to_string(),
                }),
                _ => None,
            };
            self.err(path, format!("'{text}' is not a valid prefix: {e}"))
                .with_hint(hint)
        })
    }

    /// One of a fixed set of names, with a did-you-mean hint.
    pub fn name<T>(
        &self,
        path: &str,
        text: &str,
        what: &str,
        names: &[&str],
        from_name: fn(&str) -> Option<T>,
    ) -> Result<T> {
        from_name(text).ok_or_else(|| {
            self.err(path, format!("unknown {what} '{text}'"))
                .with_hint(Some(suggest(text, names)))
        })
    }

    /// `value` within `lo..=hi`.
    pub fn range(&self, path: &str, value: u64, lo: u64, hi: u64, what: &str) -> Result<u64> {
        if (lo..=hi).contains(&value) {
            Ok(value)
        } else {
            Err(self.err(path, format!("{what} {value} is out of range {lo}..={hi}")))
        }
    }

    pub fn port(&self, path: &str, value: u64) -> Result<u16> {
        Ok(self.range(path, value, 0, 65535, "port")? as u16)
    }

    /// Global or per-service timeouts: every field present must be 1..=MAX_TIMEOUT; absent ones
    /// come from `base`.
    pub fn timeouts(&self, path: &str, raw: &RawTimeouts, base: &Timeouts) -> Result<Timeouts> {
        for (field, value) in raw.fields() {
            if let Some(v) = value {
                let p = join(path, field);
                self.range(&p, v, 1, MAX_TIMEOUT, "timeout")
                    .map_err(|e| e.with_hint(Some("timeouts are in seconds".into())))?;
            }
        }
        let pick = |v: Option<u64>, d: u32| v.map_or(d, |v| v as u32);
        Ok(Timeouts {
            tcp_established: pick(raw.tcp_established, base.tcp_established),
            tcp_syn_sent: pick(raw.tcp_syn_sent, base.tcp_syn_sent),
            tcp_syn_recv: pick(raw.tcp_syn_recv, base.tcp_syn_recv),
            tcp_fin_wait: pick(raw.tcp_fin_wait, base.tcp_fin_wait),
            tcp_time_wait: pick(raw.tcp_time_wait, base.tcp_time_wait),
            tcp_close: pick(raw.tcp_close, base.tcp_close),
            tcp_close_wait: pick(raw.tcp_close_wait, base.tcp_close_wait),
            tcp_last_ack: pick(raw.tcp_last_ack, base.tcp_last_ack),
            udp: pick(raw.udp, base.udp),
            icmp: pick(raw.icmp, base.icmp),
            sctp: pick(raw.sctp, base.sctp),
            sctp_init1: pick(raw.sctp_init1, base.sctp_init1),
            sctp_init: pick(raw.sctp_init, base.sctp_init),
            sctp_cookie_sent: pick(raw.sctp_cookie_sent, base.sctp_cookie_sent),
            sctp_cookie_replied: pick(raw.sctp_cookie_replied, base.sctp_cookie_replied),
            sctp_cookie_wait: pick(raw.sctp_cookie_wait, base.sctp_cookie_wait),
            sctp_cookie: pick(raw.sctp_cookie, base.sctp_cookie),
            sctp_cookie_echoed: pick(raw.sctp_cookie_echoed, base.sctp_cookie_echoed),
            sctp_shutdown_sent: pick(raw.sctp_shutdown_sent, base.sctp_shutdown_sent),
            sctp_shutdown_received: pick(raw.sctp_shutdown_received, base.sctp_shutdown_received),
            sctp_shutdown_ack_sent: pick(raw.sctp_shutdown_ack_sent, base.sctp_shutdown_ack_sent),
            sctp_rejected: pick(raw.sctp_rejected, base.sctp_rejected),
            sctp_closed: pick(raw.sctp_closed, base.sctp_closed),
        })
    }
}

const BROADCAST_HINT: &str = "a broadcast reaches every host on the link";

pub(crate) fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

impl ConfigError {
    pub(crate) fn with_hint(mut self, hint: Option<String>) -> ConfigError {
        self.hint = hint;
        self
    }
}

/// Validates a deserialised document.
pub(crate) fn validate(cx: &Ctx<'_>, raw: RawConfig) -> Result<Config> {
    let interfaces = interfaces(cx, raw.interfaces.unwrap_or_default())?;
    let links = Links::new(&interfaces);
    for (i, ifc) in interfaces.iter().enumerate() {
        for (j, ip) in ifc.local.iter().enumerate() {
            cx.check_address(
                &links,
                &format!("interfaces[{i}].local[{j}]"),
                Role::Local,
                *ip,
            )?;
        }
    }
    let max_queues = interfaces.iter().map(|i| i.queues).max().unwrap_or(1);
    let count_given = raw.workers.as_ref().is_some_and(|w| w.count.is_some());
    let workers = workers(cx, raw.workers.unwrap_or_default(), max_queues)?;
    // Worker i serves queue i of every interface (uvsd refuses to start otherwise).
    if let Some((i, ifc)) = interfaces
        .iter()
        .enumerate()
        .find(|(_, ifc)| (ifc.queues as usize) < workers.count)
    {
        let n = workers.count;
        return Err(if count_given {
            cx.err(
                "workers.count",
                format!(
                    "{n} workers but interface '{}' has queues: {} — each worker serves its \
                     own queue of every interface",
                    ifc.name, ifc.queues
                ),
            )
            .with_hint(Some(format!(
                "give '{}' queues: {n} (and the device as many: ethtool -L {} combined {n}), \
                 or set count: {}",
                ifc.name, ifc.name, ifc.queues
            )))
        } else {
            cx.err_at(
                &format!("interfaces[{i}].name"),
                &format!("interfaces[{i}].queues"),
                format!(
                    "interface '{}' has queues: {}, but there are {n} workers (workers.count \
                     defaults to the largest `queues`) and each serves its own queue of every \
                     interface",
                    ifc.name, ifc.queues
                ),
            )
            .with_hint(Some(format!(
                "give it queues: {n} as well, or set workers.count: {}",
                ifc.queues
            )))
        });
    }
    let capacity = raw
        .conn_table
        .unwrap_or_default()
        .capacity
        .unwrap_or(1 << 20);
    let capacity = cx.range(
        "conn_table.capacity",
        capacity,
        1,
        MAX_CONN_TABLE,
        "capacity",
    )? as u32;
    let timeouts = cx.timeouts(
        "timeouts",
        &raw.timeouts.unwrap_or_default(),
        &Timeouts::default(),
    )?;
    let conn_reuse_mode = cx.range(
        "conn_reuse_mode",
        raw.conn_reuse_mode.unwrap_or(1),
        0,
        3,
        "conn_reuse_mode",
    )? as u8;
    let admin = admin(cx, raw.admin.unwrap_or_default())?;
    let metrics = match raw.metrics.unwrap_or_default().listen {
        None => Metrics { listen: None },
        Some(text) => Metrics {
            listen: Some(text.parse().map_err(|_| {
                cx.err("metrics.listen", format!("'{text}' is not an address:port"))
                    .with_hint(Some(
                        "write 127.0.0.1:9100 or [::1]:9100 (IPv6 in brackets)".into(),
                    ))
            })?),
        },
    };
    let sync = match raw.sync {
        None => None,
        Some(s) => Some(sync::sync(cx, s, &interfaces)?),
    };
    let bgp = match raw.bgp {
        None => None,
        Some(b) => Some(bgp::bgp(cx, b)?),
    };
    let marks = fwmark::marks(cx, raw.marks.unwrap_or_default())?;
    if raw.member.is_some() && raw.services.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(member::no_services(cx));
    }
    let services = service::services(
        cx,
        raw.services.unwrap_or_default(),
        &links,
        &timeouts,
        &marks,
    )?;
    xdp_maps(cx, &interfaces, &services, &marks)?;
    let client_lookup = match raw.client_lookup {
        None => None,
        Some(l) => Some(lookup::client_lookup(cx, l, &interfaces, &services)?),
    };
    let cluster = cluster::cluster(
        cx,
        raw.cluster.unwrap_or_default(),
        &links,
        &interfaces,
        &services,
    )?;
    let member = match raw.member {
        None => None,
        Some(m) => Some(member::member(cx, m, &interfaces, &services)?),
    };
    Ok(Config {
        interfaces,
        workers,
        conn_table: ConnTable { capacity },
        timeouts,
        expire_nodest_conn: raw.expire_nodest_conn.unwrap_or(false),
        conn_reuse_mode,
        expire_quiescent_template: raw.expire_quiescent_template.unwrap_or(false),
        drop_entry: raw.drop_entry.unwrap_or(true),
        admin,
        metrics,
        sync,
        bgp,
        client_lookup,
        marks,
        services,
        cluster,
        member,
    })
}

/// What the XDP program's maps must hold fits them: owned addresses and real server
/// addresses per family, (real server, protocol, port) entries. The first service that
/// would overflow one is refused, rather than uvsd failing at start (or a reload failing)
/// with the kernel's `E2BIG`.
fn xdp_maps(
    cx: &Ctx<'_>,
    interfaces: &[Interface],
    services: &[crate::model::Service],
    marks: &[crate::model::Mark],
) -> Result<()> {
    let mut owned = [HashSet::new(), HashSet::new()];
    let mut reals = [HashSet::new(), HashSet::new()];
    let mut ports = HashSet::new();
    let fam = |ip: &IpAddr| usize::from(ip.is_ipv6());
    for ip in interfaces.iter().flat_map(|i| &i.local) {
        owned[fam(ip)].insert(*ip);
    }
    for (i, s) in services.iter().enumerate() {
        let base = format!("services[{i}]");
        let vip = (s.fwmark == 0).then_some(s.vip);
        for ip in vip.iter().chain(&s.fullnat_pool) {
            owned[fam(ip)].insert(*ip);
            if owned[fam(ip)].len() > MAX_OWNED_PER_FAMILY {
                let field = if Some(*ip) == vip {
                    "vip"
                } else {
                    "fullnat_pool"
                };
                return Err(cx
                    .err(
                        &join(&base, field),
                        format!(
                            "{ip} is one {} address too many: the XDP program holds at most {MAX_OWNED_PER_FAMILY} of uvs's own (VIPs, local and FullNAT pool addresses) per family",
                            family(*ip)
                        ),
                    )
                    .with_hint(Some(
                        "a firewall-mark service (fwmark:, marks:) serves a whole prefix of VIPs with one entry"
                            .into(),
                    )));
            }
        }
        let protocols = if s.fwmark == 0 {
            vec![s.protocol]
        } else {
            marks
                .iter()
                .find(|m| m.mark == s.fwmark)
                .map(|m| m.protocols.clone())
                .unwrap_or_default()
        };
        let sorry = s.sorry_server.iter().map(|o| (o.address, o.port));
        let servers = s.real_servers.iter().map(|r| (r.address, r.port));
        for (ip, port) in servers.chain(sorry) {
            reals[fam(&ip)].insert(ip);
            for p in &protocols {
                ports.insert((ip, *p, port));
            }
            let full = if reals[fam(&ip)].len() > MAX_REALS_PER_FAMILY {
                Some(format!(
                    "{ip} is one {} real server address too many: the XDP program holds at most {MAX_REALS_PER_FAMILY} per family",
                    family(ip)
                ))
            } else if ports.len() > MAX_REAL_PORTS {
                Some(format!(
                    "{ip} port {port} is one (real server, protocol, port) too many: the XDP program holds at most {MAX_REAL_PORTS}"
                ))
            } else {
                None
            };
            if let Some(message) = full {
                return Err(cx.err(&join(&base, "real_servers"), message));
            }
        }
    }
    Ok(())
}

fn interfaces(cx: &Ctx<'_>, raw: Vec<RawInterface>) -> Result<Vec<Interface>> {
    if raw.is_empty() {
        return Err(cx
            .err("interfaces", "at least one interface is needed")
            .with_hint(Some(
                "add `interfaces: [{ name: eth0, networks: [198.18.0.0/24] }]`".into(),
            )));
    }
    let mut out: Vec<Interface> = Vec::with_capacity(raw.len());
    let mut names: HashMap<String, String> = HashMap::new();
    let mut locals: HashMap<IpAddr, String> = HashMap::new();
    let mut networks = Networks::default();
    for (i, r) in raw.into_iter().enumerate() {
        let base = format!("interfaces[{i}]");
        let iface = interface(cx, &base, r)?;
        let name_path = join(&base, "name");
        if let Some(first) = names.insert(iface.name.clone(), name_path.clone()) {
            return Err(cx.err(
                &name_path,
                format!(
                    "interface '{}' is already listed at line {}",
                    iface.name,
                    cx.line_of(&first)
                ),
            ));
        }
        for (j, ip) in iface.local.iter().enumerate() {
            let p = format!("{base}.local[{j}]");
            if let Some(first) = locals.insert(*ip, p.clone()) {
                return Err(cx.err(
                    &p,
                    format!(
                        "local address {ip} is already listed at line {}",
                        cx.line_of(&first)
                    ),
                ));
            }
        }
        for (j, net) in iface.networks.iter().enumerate() {
            networks.add(cx, *net, format!("{base}.networks[{j}]"))?;
        }
        out.push(iface);
    }
    Ok(out)
}

/// The on-link networks seen so far, disjoint, by family and first address. Two prefixes
/// overlap exactly when one contains the other, so a new one can only overlap its
/// predecessor (by first address) or the first one after its own start: O(log n) each.
#[derive(Default)]
struct Networks(BTreeMap<(bool, u128), (u128, IpPrefix, String)>);

impl Networks {
    fn add(&mut self, cx: &Ctx<'_>, net: IpPrefix, path: String) -> Result<()> {
        let (first, last) = span(net);
        let v6 = !net.is_ipv4();
        let before = self.0.range(..=(v6, first)).next_back();
        let after = self.0.range((v6, first)..).next();
        for (&(fam, start), (end, other, at)) in before.into_iter().chain(after) {
            if fam == v6 && start <= last && first <= *end {
                return Err(cx
                    .err(
                        &path,
                        format!(
                            "network {net} overlaps {other} ({at}, line {})",
                            cx.line_of(at)
                        ),
                    )
                    .with_hint(Some(
                        "an on-link network belongs to one interface, once: reach others \
                         through `routes`"
                            .into(),
                    )));
            }
        }
        self.0.insert((v6, first), (last, net, path));
        Ok(())
    }
}

/// First and last address of a prefix, as numbers.
fn span(net: IpPrefix) -> (u128, u128) {
    let (addr, bits) = match net.addr() {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    let host = u32::from(bits - net.len());
    let mask = if host == 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    };
    (addr, addr | mask)
}

/// A Linux interface name as `dev_valid_name()` accepts it.
fn ifname(cx: &Ctx<'_>, path: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(cx.err(path, "the interface name is empty"));
    }
    if name.len() > MAX_IFNAME {
        return Err(cx
            .err(
                path,
                format!(
                    "interface name '{name}' is {} bytes long; Linux allows at most {MAX_IFNAME}",
                    name.len()
                ),
            )
            .with_hint(Some("IFNAMSIZ is 16 including the terminating NUL".into())));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(cx.err(
            path,
            format!(
                "'{name}' is not a valid Linux interface name (no '/', ':', spaces, '.' or '..')"
            ),
        ));
    }
    Ok(())
}

fn interface(cx: &Ctx<'_>, base: &str, r: RawInterface) -> Result<Interface> {
    let name_path = join(base, "name");
    let name = r.name.ok_or_else(|| {
        cx.err(&name_path, "the interface has no `name`")
            .with_hint(Some("add `name: <Linux interface name>`".into()))
    })?;
    ifname(cx, &name_path, &name)?;
    let queues = cx.range(
        &join(base, "queues"),
        r.queues.unwrap_or(1),
        1,
        MAX_QUEUES,
        "queue count",
    )? as u32;
    let xdp_mode = match &r.xdp_mode {
        None => XdpMode::Auto,
        Some(t) => cx.name(
            &join(base, "xdp_mode"),
            t,
            "xdp_mode",
            XdpMode::NAMES,
            XdpMode::from_name,
        )?,
    };
    let zero_copy = match &r.zero_copy {
        None => ZeroCopy::Auto,
        Some(t) => cx.name(
            &join(base, "zero_copy"),
            t,
            "zero_copy setting",
            ZeroCopy::NAMES,
            ZeroCopy::from_name,
        )?,
    };
    let ring_path = join(base, "ring_size");
    let ring_size = cx.range(
        &ring_path,
        r.ring_size.unwrap_or(DEFAULT_RING_SIZE),
        64,
        16384,
        "ring size",
    )? as u32;
    if !ring_size.is_power_of_two() {
        return Err(cx
            .err(
                &ring_path,
                format!("ring size {ring_size} is not a power of two"),
            )
            .with_hint(Some(format!(
                "use {}",
                ring_size.next_power_of_two().min(16384)
            ))));
    }
    let mut networks: Vec<IpPrefix> = Vec::new();
    let mut on_link_nets = PrefixMap::default();
    for (j, text) in r.networks.unwrap_or_default().iter().enumerate() {
        let p = format!("{base}.networks[{j}]");
        let net = cx.prefix(&p, text)?;
        if !on_link_nets.insert(net, ()) {
            return Err(cx.err(&p, format!("network {net} is listed twice")));
        }
        networks.push(net);
    }
    let on_link = |ip: IpAddr| on_link_nets.contains_addr(ip);
    let mut local = Vec::new();
    for (j, text) in r.local.unwrap_or_default().iter().enumerate() {
        let p = format!("{base}.local[{j}]");
        let ip = cx.addr(&p, text)?;
        if !on_link(ip) {
            return Err(cx
                .err(
                    &p,
                    format!("local address {ip} is not inside any of this interface's networks"),
                )
                .with_hint(Some(
                    "uvs answers ARP/NDP for it on this link: add its prefix to `networks`".into(),
                )));
        }
        local.push(ip);
    }
    let mut routes = Vec::new();
    for (j, route) in r.routes.unwrap_or_default().into_iter().enumerate() {
        let p = format!("{base}.routes[{j}]");
        let prefix_path = join(&p, "prefix");
        let via_path = join(&p, "via");
        let prefix = match &route.prefix {
            Some(t) => cx.prefix(&prefix_path, t)?,
            None => return Err(cx.err(&prefix_path, "the route has no `prefix`")),
        };
        let via = match &route.via {
            Some(t) => cx.addr(&via_path, t)?,
            None => return Err(cx.err(&via_path, "the route has no `via` next hop")),
        };
        if via.is_ipv4() != prefix.is_ipv4() {
            return Err(cx.err(
                &via_path,
                format!("next hop {via} is not of the same address family as {prefix}"),
            ));
        }
        if !on_link(via) {
            return Err(cx
                .err(
                    &via_path,
                    format!("next hop {via} is not inside any of this interface's networks"),
                )
                .with_hint(Some(
                    "a next hop must be directly reachable: add its prefix to `networks`".into(),
                )));
        }
        if !local.iter().any(|l: &IpAddr| l.is_ipv4() == via.is_ipv4()) {
            return Err(cx
                .err(
                    &via_path,
                    format!(
                        "next hop {via}: this interface has no `local` {} address, and uvs asks \
                         for a next hop's MAC address ({}) from one",
                        family(via),
                        if via.is_ipv4() { "ARP" } else { "NDP" }
                    ),
                )
                .with_hint(Some(format!(
                    "add to its `local` an {} address of the next hop's network that the \
                     host does not use",
                    family(via)
                ))));
        }
        routes.push(Route { prefix, via });
    }
    Ok(Interface {
        name,
        queues,
        xdp_mode,
        zero_copy,
        ring_size,
        local,
        networks,
        routes,
    })
}

/// `workers.spin_us` when absent (and the kernel fast path is off; with it, 0): a steady
/// flow never waits for a wake-up between bursts, and an idle worker costs little
/// (uvs_dataplane::worker::DEFAULT_SPIN).
const DEFAULT_SPIN_US: u32 = 200;

fn workers(cx: &Ctx<'_>, raw: crate::raw::RawWorkers, max_queues: u32) -> Result<Workers> {
    let count = match raw.count {
        None => u64::from(max_queues),
        Some(c) => cx.range("workers.count", c, 1, 1024, "worker count")?,
    } as usize;
    let cores = match raw.cores {
        None => None,
        Some(cores) => {
            if cores.len() < count {
                return Err(cx
                    .err(
                        "workers.cores",
                        format!("{} cores listed for {count} workers", cores.len()),
                    )
                    .with_hint(Some(
                        "list one core per worker, or drop `cores` for no pinning".into(),
                    )));
            }
            let mut seen: Vec<usize> = Vec::with_capacity(cores.len());
            let mut listed = std::collections::HashSet::new();
            for (i, &c) in cores.iter().enumerate() {
                let c = usize::try_from(c).unwrap_or(usize::MAX);
                if !listed.insert(c) {
                    return Err(cx
                        .err(
                            &format!("workers.cores[{i}]"),
                            format!("core {c} is listed twice"),
                        )
                        .with_hint(Some(
                            "two pinned poll-mode workers on one core starve each other".into(),
                        )));
                }
                seen.push(c);
            }
            Some(seen)
        }
    };
    let kernel_fast_path = raw.kernel_fast_path.unwrap_or(false);
    let spin_us = match raw.spin_us {
        // With the kernel fast path a worker sees a connection's SYN, handshake ACK and FINs
        // only, so a spin after each mostly holds a core the client, the real servers and
        // the kernel's forwarding would use (bench/README.md, "The fast path's default:
        // no spin").
        None if kernel_fast_path => 0,
        None => DEFAULT_SPIN_US,
        Some(v) => cx.range(
            "workers.spin_us",
            v,
            0,
            1_000_000,
            "spin before sleeping (µs)",
        )? as u32,
    };
    Ok(Workers {
        count,
        cores,
        busy_poll: raw.busy_poll.unwrap_or(false),
        spin_us,
        flow_cache: raw.flow_cache.unwrap_or(true),
        kernel_fast_path,
    })
}

fn admin(cx: &Ctx<'_>, raw: crate::raw::RawAdmin) -> Result<Admin> {
    let socket = raw
        .socket
        .unwrap_or_else(|| DEFAULT_ADMIN_SOCKET.to_string());
    if !socket.starts_with('/') {
        return Err(cx
            .err(
                "admin.socket",
                format!("admin socket path '{socket}' is not absolute"),
            )
            .with_hint(Some(format!("for example {DEFAULT_ADMIN_SOCKET}"))));
    }
    if let Some(g) = &raw.group {
        if g.is_empty() || g.contains(|c: char| c == ':' || c.is_whitespace()) {
            return Err(cx.err("admin.group", format!("'{g}' is not a valid group name")));
        }
    }
    Ok(Admin {
        socket: PathBuf::from(socket),
        group: raw.group,
    })
}
