//! keepalived's LVS configuration (`virtual_server` and `real_server` blocks, and
//! `lvs_timeouts` from `global_defs`) → the services of a uvs configuration.
//!
//! Semantics are keepalived's, as its parser and keepalived.conf(5) define them: forwarding
//! defaults to NAT, the scheduler to wlc, `persistence_timeout` without a value (or a
//! `persistence_granularity` alone) to 360 s, a real server's settings to its virtual
//! server's. What uvs cannot do the same way is an error at the keyword that asks for it;
//! what only changes timing or logging is translated as closely as it can be and noted.

use super::check::{Check, Inherited, Kind, Port};
use super::lex::{Pos, Stmt, Word};
use super::real::{one_check, real_server, Real};
use super::values::{addr, bool_arg, forwarding, one_arg, port, uint, Cx, Once, Result};
use super::Diag;
use std::collections::HashMap;
use std::net::IpAddr;
use uvs_config::{Forwarding, Protocol, Scheduler, SchedulerFlag};

/// keepalived's `IPVS_SVC_PERSISTENT_TIMEOUT`: 6 minutes.
const DEFAULT_PERSISTENCE_S: u64 = 360;
/// keepalived's `LVS_MAX_TIMEOUT`: 31 days.
const MAX_PERSISTENCE_S: u64 = 86400 * 31;

/// A translated virtual server.
#[derive(Clone, Debug)]
pub struct Service {
    pub pos: Pos,
    /// `virtual_server 198.18.100.1 80`, for the YAML's comment.
    pub header: String,
    pub name: Option<(String, Pos)>,
    pub vip: IpAddr,
    pub protocol: Protocol,
    pub port: u16,
    pub scheduler: (Scheduler, Option<Pos>),
    pub flags: Vec<(SchedulerFlag, Pos)>,
    pub forwarding: Forwarding,
    /// Timeout, the granularity as uvs writes it (dotted mask or prefix length), position.
    pub persistence: Option<(u64, Option<String>, Pos)>,
    pub one_packet: Option<Pos>,
    pub sorry: Option<(IpAddr, Option<u16>, Pos)>,
    pub check: Option<Check>,
    pub reals: Vec<Real>,
}

/// The translated file.
#[derive(Debug, Default)]
pub struct Translation {
    pub services: Vec<Service>,
    /// From `global_defs { lvs_timeouts ... }`: (uvs field, seconds), and where.
    pub timeouts: Option<(Vec<(&'static str, u64)>, Pos)>,
    /// `interface` of each vrrp_instance.
    pub vrrp_interfaces: Vec<(String, Pos)>,
    /// From `global_defs { lvs_sync_daemon ... }`.
    pub sync: Option<SyncDaemon>,
}

/// `lvs_sync_daemon INTERFACE [[inst] VRRP_INSTANCE] [id N] [maxlen N] [port N] [ttl N]
/// [group ADDR]`: uvs's `sync:` section.
#[derive(Debug)]
pub struct SyncDaemon {
    pub pos: Pos,
    /// `lvs_sync_daemon`, or the older `lvs_sync_daemon_interface`, for the YAML's comment.
    pub keyword: &'static str,
    pub interface: (String, Pos),
    /// The VRRP instance it names: without `id`, keepalived's sync id is its
    /// virtual_router_id.
    pub instance: Option<(String, Pos)>,
    /// `(uvs field, value, position)` of what it gives besides the interface.
    pub fields: Vec<(&'static str, String, Pos)>,
}

/// Top-level blocks that configure something other than LVS (VRRP, addresses, routes,
/// process settings); they have no uvs counterpart and are skipped with a note.
const NOT_LVS: &[&str] = &[
    "vrrp_sync_group",
    "vrrp_script",
    "vrrp_track_process",
    "vrrp_track_file",
    "track_file",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "static_track_group",
    "linkbeat_interfaces",
    "interface_up_down_delays",
    "garp_group",
    "bfd_instance",
    "SSL",
    "net_namespace",
    "net_namespace_ipvs",
    "namespace_with_ipsets",
    "instance",
    "use_pid_dir",
    "linkbeat_use_polling",
    "child_wait_time",
];

pub fn translate(cx: &mut Cx<'_>, top: &[Stmt]) -> Result<Translation> {
    let mut t = Translation::default();
    // keepalived links `virtual_server group NAME` to its group after reading the whole
    // file, so a group may be defined after its use.
    // Each vrrp_instance's virtual_router_id, for lvs_sync_daemon's default sync id.
    let mut vrids: HashMap<String, (String, Pos)> = HashMap::new();
    let mut groups = Groups::new();
    for stmt in top.iter().filter(|s| s.keyword() == "virtual_server_group") {
        let (name, entries) = group(cx, stmt)?;
        if let Some((_, first)) = groups.get(&name) {
            return cx.err(
                stmt.pos(),
                format!(
                    "virtual_server_group {name} is already defined at line {}",
                    first.line
                ),
            );
        }
        groups.insert(name, (entries, stmt.pos()));
    }
    for stmt in top {
        let k = stmt.keyword();
        match k {
            "virtual_server" => {
                for s in virtual_server(cx, stmt, &groups)? {
                    let same =
                        |o: &&Service| (o.vip, o.protocol, o.port) == (s.vip, s.protocol, s.port);
                    if let Some(first) = t.services.iter().find(same) {
                        return cx.err(
                            s.pos,
                            format!(
                                "{} {} is already defined at line {}: uvs has one service per \
                                 (address, protocol, port); merge the two",
                                s.header,
                                s.protocol.name().to_uppercase(),
                                first.pos.line
                            ),
                        );
                    }
                    if let Some((n, at)) = &s.name {
                        let named = |o: &&Service| o.name.as_ref().is_some_and(|(m, _)| m == n);
                        if let Some(first) = t.services.iter().find(named) {
                            return cx.err(
                                *at,
                                format!(
                                    "snmp_name {n} is already used at line {} (uvs names \
                                     services by it, and names are unique)",
                                    first.pos.line
                                ),
                            );
                        }
                    }
                    t.services.push(s);
                }
            }
            "virtual_server_group" => {}
            "global_defs" => global_defs(cx, stmt, &mut t)?,
            "vrrp_instance" => {
                for st in stmt.block.iter().flatten() {
                    if st.keyword() == "interface" {
                        if let Some(w) = st.args().first() {
                            t.vrrp_interfaces.push((w.text.clone(), w.pos));
                        }
                    }
                    if let (Some(name), "virtual_router_id", Some(w)) =
                        (stmt.args().first(), st.keyword(), st.args().first())
                    {
                        vrids.insert(name.text.clone(), (w.text.clone(), w.pos));
                    }
                    // keepalived's older way to say `lvs_sync_daemon IF INSTANCE` (still
                    // read, as deprecated); the first one counts.
                    if let (Some(name), "lvs_sync_daemon_interface", Some(w), None) = (
                        stmt.args().first(),
                        st.keyword(),
                        st.args().first(),
                        &t.sync,
                    ) {
                        cx.note(
                            st.pos(),
                            "lvs_sync_daemon_interface (keepalived's older lvs_sync_daemon) \
                             becomes uvs's `sync:` with `mode: both`: every node sends its \
                             connections and receives its peers', where keepalived runs the \
                             master side on the VRRP master only",
                        );
                        t.sync = Some(SyncDaemon {
                            pos: st.pos(),
                            keyword: "lvs_sync_daemon_interface",
                            interface: (w.text.clone(), w.pos),
                            instance: Some((name.text.clone(), name.pos)),
                            fields: Vec::new(),
                        });
                    }
                }
                cx.note(
                    stmt.pos(),
                    "vrrp_instance is not translated: uvs does not run VRRP (keep another \
                     tool, or keepalived with only its vrrp_instance blocks, for the VIPs' \
                     failover)",
                );
            }
            "SSL" => {
                cx.note(
                    stmt.pos(),
                    "SSL (SSL_GET's CA and client certificate) is not translated: the https \
                     checks verify no certificate, as SSL_GET; to verify, add `verify: true` \
                     and `ca_file` to a check (uvs presents no client certificate)",
                );
            }
            k if NOT_LVS.contains(&k) => {
                cx.note(
                    stmt.pos(),
                    format!("{k} is not part of the LVS configuration; not translated"),
                );
            }
            _ => {
                return cx.err(
                    stmt.pos(),
                    format!("unknown top-level keyword '{k}' (expected virtual_server)"),
                )
            }
        }
    }
    if let Some((name, pos)) = t.sync.as_ref().and_then(|s| s.instance.clone()) {
        match vrids.get(&name) {
            Some((vrid, at)) => {
                let sync = t.sync.as_mut().expect("sync is there");
                if !sync.fields.iter().any(|(f, _, _)| *f == "syncid") {
                    // keepalived: "If no syncid configured, use vrid".
                    let id = uint(
                        cx,
                        &Word {
                            text: vrid.clone(),
                            pos: *at,
                        },
                        0,
                        255,
                        "syncid",
                    )?;
                    sync.fields.insert(0, ("syncid", id.to_string(), *at));
                }
            }
            None => {
                cx.note(
                    pos,
                    format!(
                        "lvs_sync_daemon names vrrp_instance {name}, which the file does not \
                         define: keepalived then runs no sync daemon, and the translation has \
                         no sync section"
                    ),
                );
                t.sync = None;
            }
        }
    }
    Ok(t)
}

fn global_defs(cx: &mut Cx<'_>, stmt: &Stmt, t: &mut Translation) -> Result<()> {
    let mut others = None;
    for st in stmt.block.iter().flatten() {
        match st.keyword() {
            "lvs_timeouts" => {
                // ipvsadm --set: tcp = established, tcpfin = after a FIN, udp.
                let args = st.args();
                if args.is_empty() || args.len() % 2 != 0 {
                    return cx.err(
                        st.pos(),
                        "lvs_timeouts needs [tcp SECS] [tcpfin SECS] [udp SECS]",
                    );
                }
                let mut fields = Vec::new();
                for pair in args.chunks(2) {
                    let field = match pair[0].text.as_str() {
                        "tcp" => "tcp_established",
                        "tcpfin" => "tcp_fin_wait",
                        "udp" => "udp",
                        other => {
                            return cx.err(
                                pair[0].pos,
                                format!("unknown lvs_timeouts field '{other}': tcp, tcpfin or udp"),
                            )
                        }
                    };
                    let secs = uint(cx, &pair[1], 1, u64::from(u32::MAX), "timeout")?;
                    fields.push((field, secs));
                }
                t.timeouts = Some((fields, st.pos()));
            }
            "lvs_sync_daemon" => t.sync = Some(sync_daemon(cx, st)?),
            _ => others = others.or(Some(st.pos())),
        }
    }
    if let Some(pos) = others {
        cx.note(
            pos,
            "global_defs: only lvs_timeouts and lvs_sync_daemon are translated; the rest \
             (mail, VRRP, process settings) has no uvs counterpart",
        );
    }
    Ok(())
}

/// `lvs_sync_daemon`: IPVS's sync daemon, which uvs runs too (`sync:`). keepalived starts
/// its master side on the VRRP instance's master and its backup side elsewhere; uvs runs
/// both sides on every node.
fn sync_daemon(cx: &mut Cx<'_>, st: &Stmt) -> Result<SyncDaemon> {
    let args = st.args();
    let Some(interface) = args.first() else {
        return cx.err(
            st.pos(),
            "lvs_sync_daemon needs an interface: lvs_sync_daemon INTERFACE [VRRP_INSTANCE] \
             [id N] [maxlen N] [port N] [ttl N] [group ADDR]",
        );
    };
    let mut fields = Vec::new();
    let options = ["id", "maxlen", "port", "ttl", "group"];
    // The VRRP instance whose state keepalived's daemon follows: `inst NAME`, or the name
    // alone right after the interface.
    let (instance, mut i) = match args.get(1) {
        Some(w) if w.text == "inst" => match args.get(2) {
            Some(name) => (Some(name), 3),
            None => return cx.err(w.pos, "lvs_sync_daemon inst needs the vrrp_instance's name"),
        },
        Some(w) if !options.contains(&w.text.as_str()) => (Some(w), 2),
        _ => (None, 1),
    };
    // keepalived's older form: the sync id right after the instance, without `id`.
    if let Some(v) = args
        .get(i)
        .filter(|w| instance.is_some() && w.text.starts_with(|c: char| c.is_ascii_digit()))
    {
        fields.push(("syncid", uint(cx, v, 0, 255, "syncid")?.to_string(), v.pos));
        i += 1;
    }
    while i < args.len() {
        let k = &args[i];
        let field = match k.text.as_str() {
            "id" => Some(("syncid", 0, 255)),
            "maxlen" => Some(("maxlen", 1, 65507)),
            "port" => Some(("port", 1, 65535)),
            "ttl" => Some(("ttl", 1, 255)),
            "group" => None,
            other => {
                return cx.err(
                    k.pos,
                    format!(
                        "unknown lvs_sync_daemon option '{other}': id, maxlen, port, ttl or group"
                    ),
                )
            }
        };
        let Some(v) = args.get(i + 1) else {
            return cx.err(k.pos, format!("lvs_sync_daemon {} needs a value", k.text));
        };
        match field {
            Some((name, lo, hi)) => {
                let n = uint(cx, v, lo, hi, name)?;
                fields.push((name, n.to_string(), v.pos));
            }
            None => {
                let group = addr(cx, v)?;
                fields.push(("group", group.to_string(), v.pos));
            }
        }
        i += 2;
    }
    cx.note(
        st.pos(),
        "lvs_sync_daemon becomes uvs's `sync:` with `mode: both`: every node sends its \
         connections and receives its peers', where keepalived runs the master side on the \
         VRRP master only",
    );
    Ok(SyncDaemon {
        pos: st.pos(),
        keyword: "lvs_sync_daemon",
        interface: (interface.text.clone(), interface.pos),
        instance: instance.map(|w| (w.text.clone(), w.pos)),
        fields,
    })
}

/// A `virtual_server_group`'s entries: each `(address, port, position)`.
type Entries = Vec<(IpAddr, u16, Pos)>;

/// `virtual_server_group`s by name, with where each is defined.
type Groups = HashMap<String, (Entries, Pos)>;

/// The most addresses a group's ranges may make services of (keepalived makes an IPVS
/// service of each).
const MAX_GROUP_SERVICES: usize = 256;

/// `virtual_server_group NAME { ADDRESS|RANGE [PORT] ... }`: its name and entries.
fn group(cx: &Cx<'_>, stmt: &Stmt) -> Result<(String, Entries)> {
    let name = one_arg(cx, stmt, "NAME")?.text.clone();
    let Some(body) = &stmt.block else {
        return cx.err(stmt.pos(), "virtual_server_group needs a { ... } block");
    };
    let mut entries: Entries = Vec::new();
    for st in body {
        if st.keyword() == "fwmark" {
            return cx.err(
                st.pos(),
                "a virtual_server_group's fwmark cannot be translated: its mark is set by a \
                 netfilter rule, which uvs does not see; write that rule's match under \
                 `marks:` and a service with `fwmark:` (configs/reference.yaml)",
            );
        }
        if st.block.is_some() {
            return cx.err(
                st.pos(),
                "a virtual_server_group entry does not take a block",
            );
        }
        let vport = match st.args() {
            [] => 0,
            [w] => port(cx, w)?,
            [_, extra, ..] => {
                return cx.err(
                    extra.pos,
                    "a virtual_server_group entry is an address (or range) and a port",
                )
            }
        };
        for a in range(cx, &st.words[0])? {
            if entries.len() == MAX_GROUP_SERVICES {
                return cx.err(
                    st.pos(),
                    format!(
                        "virtual_server_group {name} has more than {MAX_GROUP_SERVICES} \
                         addresses: uvs makes a service of each, as keepalived makes an IPVS \
                         service of each; use a firewall-mark service (`marks:` and \
                         `fwmark:`) for so many"
                    ),
                );
            }
            entries.push((a, vport, st.pos()));
        }
    }
    Ok((name, entries))
}

/// An address or a range of them, as a virtual_server_group writes it: `198.18.100.1-10`
/// (the last part), `198.18.100.250-198.18.101.10`, `198.18.100.8/29`, or the IPv6 forms.
fn range(cx: &Cx<'_>, w: &Word) -> Result<Vec<IpAddr>> {
    let bad = |why: &str| {
        cx.err(
            w.pos,
            format!(
                "'{}' is not an address or range ({why}): write e.g. 198.18.100.1, \
                 198.18.100.1-10, 198.18.100.250-198.18.101.10 or 198.18.100.8/29",
                w.text
            ),
        )
    };
    let as_int = |a: IpAddr| match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let (first, last) = if let Some((a, len)) = w.text.split_once('/') {
        let Ok(a) = a.parse::<IpAddr>() else {
            return bad("not an address before '/'");
        };
        let bits = if a.is_ipv4() { 32 } else { 128 };
        let Some(len) = len.parse::<u32>().ok().filter(|&l| l <= bits) else {
            return bad("not a prefix length after '/'");
        };
        let host = if len == bits {
            0
        } else {
            (1u128 << (bits - len)) - 1
        };
        let base = as_int(a) & !host;
        (base, base | host)
    } else if let Some((a, end)) = w.text.rsplit_once('-') {
        let Ok(a) = a.parse::<IpAddr>() else {
            return bad("not an address before '-'");
        };
        let first = as_int(a);
        let last = if let Ok(b) = end.parse::<IpAddr>() {
            if b.is_ipv4() != a.is_ipv4() {
                return bad("the two ends are of different families");
            }
            as_int(b)
        } else {
            // The last part (an IPv4 octet in decimal, an IPv6 group in hex) ends the range.
            let (part, mask) = if a.is_ipv4() {
                (end.parse::<u128>().ok().filter(|&v| v <= 0xff), 0xffu128)
            } else {
                (
                    u128::from_str_radix(end, 16).ok().filter(|&v| v <= 0xffff),
                    0xffffu128,
                )
            };
            let Some(part) = part else {
                return bad("the end is not the address's last part");
            };
            (first & !mask) | part
        };
        if last < first {
            return bad("it ends before it starts");
        }
        (first, last)
    } else {
        return Ok(vec![addr(cx, w)?]);
    };
    if last - first >= MAX_GROUP_SERVICES as u128 {
        return cx.err(
            w.pos,
            format!(
                "'{}' has more than {MAX_GROUP_SERVICES} addresses: uvs makes a service of \
                 each, as keepalived makes an IPVS service of each; use a firewall-mark \
                 service (`marks:` and `fwmark:`) for so many",
                w.text
            ),
        );
    }
    let v4 = !w.text.contains(':');
    Ok((first..=last)
        .map(|n| {
            if v4 {
                IpAddr::from(std::net::Ipv4Addr::from(n as u32))
            } else {
                IpAddr::from(std::net::Ipv6Addr::from(n))
            }
        })
        .collect())
}

/// One `virtual_server`: a service, or one per address of its group; none if keepalived
/// itself would ignore it (no real servers).
fn virtual_server(cx: &mut Cx<'_>, stmt: &Stmt, groups: &Groups) -> Result<Vec<Service>> {
    let args = stmt.args();
    let header: String = stmt
        .words
        .iter()
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    match args.first().map(|w| w.text.as_str()) {
        None => return cx.err(stmt.pos(), "virtual_server needs an address and port"),
        Some("fwmark") => {
            return cx.err(
                args[0].pos,
                "virtual_server fwmark cannot be translated: its mark is set by a netfilter \
                 rule, which uvs does not see; write that rule's match under `marks:` and a \
                 service with `fwmark:` (configs/reference.yaml), or one virtual_server per \
                 address and port",
            )
        }
        Some("group") => {
            let Some(name) = args.get(1) else {
                return cx.err(args[0].pos, "virtual_server group needs the group's name");
            };
            if let Some(extra) = args.get(2) {
                return cx.err(extra.pos, "virtual_server group takes a name only");
            }
            let Some((entries, _)) = groups.get(&name.text) else {
                return cx.err(
                    name.pos,
                    format!("no virtual_server_group {} is defined", name.text),
                );
            };
            if entries.len() > 1 {
                cx.note(
                    stmt.pos(),
                    "virtual_server group: uvs makes a service of each of the group's \
                     addresses (as keepalived makes an IPVS service of each), each with its \
                     own health checks, where keepalived checks a real server once for the \
                     whole group",
                );
            }
            let mut out = Vec::new();
            for (i, &(vip, vport, _)) in entries.iter().enumerate() {
                let header = format!("{header} ({vip} {vport})");
                if let Some(mut s) = service(cx, stmt, vip, vport, header)? {
                    // snmp_name names the group's first service; the others get a suffix.
                    if i > 0 {
                        if let Some((n, _)) = &mut s.name {
                            *n = format!("{n}-{}", i + 1);
                        }
                    }
                    out.push(s);
                }
            }
            return Ok(out);
        }
        _ => {}
    }
    let vip = addr(cx, &args[0])?;
    let vport = match args.get(1) {
        Some(w) => port(cx, w)?,
        None => 0,
    };
    if let Some(extra) = args.get(2) {
        return cx.err(extra.pos, "virtual_server takes an address and a port only");
    }
    Ok(service(cx, stmt, vip, vport, header)?.into_iter().collect())
}

/// The service a `virtual_server` block makes for `vip` and `vport`; `None` if keepalived
/// itself would ignore it (no real servers).
fn service(
    cx: &mut Cx<'_>,
    stmt: &Stmt,
    vip: IpAddr,
    vport: u16,
    header: String,
) -> Result<Option<Service>> {
    let Some(body) = &stmt.block else {
        return cx.err(stmt.pos(), "virtual_server needs a { ... } block");
    };
    let mut once = Once::new("virtual_server");
    let mut inherited = Inherited::default();
    let mut name = None;
    let mut protocol = None;
    let mut scheduler = None;
    let mut flag_words: Vec<&Word> = Vec::new();
    let mut fwd = None;
    let mut ptimeout: Option<(u64, Pos)> = None;
    let mut granularity: Option<&Word> = None;
    let mut one_packet = None;
    let mut sorry = None;
    let mut sorry_fwd = None;
    let mut service_tun = None;
    let mut real_stmts = Vec::new();
    for st in body {
        let k = st.keyword();
        if k != "real_server" {
            once.check(cx, st)?;
            if st.block.is_some() {
                return cx.err(st.pos(), format!("{k} does not take a block"));
            }
        }
        match k {
            "real_server" => real_stmts.push(st),
            "lb_algo" | "lvs_sched" => {
                let w = one_arg(cx, st, "SCHEDULER")?;
                let s = Scheduler::from_name(&w.text).ok_or_else(|| Diag {
                    file: cx.files.name(w.pos).to_string(),
                    pos: Some(w.pos),
                    message: format!(
                        "unknown scheduler '{}': one of {}",
                        w.text,
                        Scheduler::NAMES.join(", ")
                    ),
                })?;
                scheduler = Some((s, w.pos));
            }
            "lb_kind" | "lvs_method" => {
                let (f, tun) = forwarding(cx, st)?;
                fwd = Some((f, st.pos()));
                service_tun = tun;
            }
            "protocol" => {
                let w = one_arg(cx, st, "TCP|UDP|SCTP")?;
                protocol = Some(match w.text.to_ascii_uppercase().as_str() {
                    "TCP" => Protocol::Tcp,
                    "UDP" => Protocol::Udp,
                    "SCTP" => Protocol::Sctp,
                    _ => {
                        return cx.err(
                            w.pos,
                            format!("unknown protocol '{}': TCP, UDP or SCTP", w.text),
                        )
                    }
                });
            }
            "persistence_timeout" => {
                let secs = match st.args() {
                    [] => DEFAULT_PERSISTENCE_S,
                    [w] => uint(cx, w, 0, MAX_PERSISTENCE_S, "persistence_timeout")?,
                    [_, extra, ..] => {
                        return cx.err(extra.pos, "persistence_timeout takes one value")
                    }
                };
                ptimeout = Some((secs, st.pos()));
            }
            "persistence_granularity" => granularity = Some(one_arg(cx, st, "NETMASK")?),
            "persistence_engine" => {
                return cx.err(
                    st.pos(),
                    "persistence_engine cannot be translated: uvs has no persistence engines \
                     (such as sip); persistence is by client address",
                )
            }
            "ops" => one_packet = Some(st.pos()),
            "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
            | "mh-fallback" => flag_words.push(&st.words[0]),
            "hashed" => {
                return cx.err(
                    st.pos(),
                    "hashed cannot be translated: it is not an IPVS scheduler flag uvs knows",
                )
            }
            "ha_suspend" => cx.note(
                st.pos(),
                "ha_suspend is not translated: uvs checks real servers whether or not the VIP \
                 is configured on this host",
            ),
            "smtp_alert" => {
                if bool_arg(cx, st)? {
                    return cx.err(
                        st.pos(),
                        "smtp_alert cannot be translated: uvs sends no mail (health changes \
                         show in uvsadm -L and the metrics); remove it or write smtp_alert off",
                    );
                }
            }
            "snmp_name" => {
                let w = one_arg(cx, st, "NAME")?;
                name = Some((w.text.clone(), w.pos));
            }
            "omega" => cx.note(
                st.pos(),
                "omega is not translated: uvs runs no notify scripts, at shutdown or otherwise",
            ),
            "quorum" => {
                let w = one_arg(cx, st, "WEIGHT")?;
                if uint(cx, w, 1, u64::from(u32::MAX), "quorum")? > 1 {
                    return cx.err(
                        w.pos,
                        format!(
                            "quorum {} cannot be translated: uvs turns to the sorry server only \
                             when no real server is usable (keepalived's default quorum 1)",
                            w.text
                        ),
                    );
                }
            }
            "hysteresis" => {
                let w = one_arg(cx, st, "WEIGHT")?;
                if uint(cx, w, 0, u64::from(u32::MAX), "hysteresis")? != 0 {
                    return cx.err(
                        w.pos,
                        "hysteresis cannot be translated: uvs has no quorum to dampen",
                    );
                }
            }
            "quorum_up" | "quorum_down" => {
                return cx.err(
                    st.pos(),
                    format!(
                        "{k} cannot be translated: uvs runs no notify scripts (watch \
                         uvs_real_up in the metrics instead)"
                    ),
                )
            }
            "ip_family" => {
                let w = one_arg(cx, st, "inet|inet6")?;
                let v6 = match w.text.as_str() {
                    "inet" => false,
                    "inet6" => true,
                    _ => {
                        return cx.err(
                            w.pos,
                            format!("unknown ip_family '{}': inet or inet6", w.text),
                        )
                    }
                };
                if v6 != vip.is_ipv6() {
                    return cx.err(
                        w.pos,
                        format!("ip_family {} does not match the address {vip}", w.text),
                    );
                }
            }
            "weight" => {
                return cx.err(
                    st.pos(),
                    "a virtual_server weight cannot be translated (it weighs virtual server \
                     groups, which uvs does not have)",
                )
            }
            "sorry_server" => {
                let a = st.args();
                let Some(aw) = a.first() else {
                    return cx.err(st.pos(), "sorry_server needs an address [and port]");
                };
                let sp = match a.get(1) {
                    Some(w) => Some(port(cx, w)?),
                    None => None,
                };
                if let Some(extra) = a.get(2) {
                    return cx.err(extra.pos, "sorry_server takes an address and a port only");
                }
                sorry = Some((addr(cx, aw)?, sp, st.pos()));
            }
            "sorry_server_inhibit" => cx.note(
                st.pos(),
                "sorry_server_inhibit is not translated: uvs sends new connections to the \
                 sorry server only while no real server is usable",
            ),
            "sorry_server_lvs_method" => {
                let (f, tun) = forwarding(cx, st)?;
                if let Some(t) = tun.filter(|t| t.kind != uvs_config::Tunnel::Ipip) {
                    return cx.err(
                        t.pos,
                        "a sorry server's tunnel type cannot be translated: uvs tunnels to \
                         the sorry server with ipip",
                    );
                }
                sorry_fwd = Some((f, st.pos()));
            }
            "inhibit_on_failure" => cx.note(
                st.pos(),
                "inhibit_on_failure needs no translation: a real server uvs finds down keeps \
                 its connections and gets no new ones",
            ),
            "nat_mask" => cx.note(
                st.pos(),
                "nat_mask is not translated: current keepalived does not know it either",
            ),
            _ => {
                if !inherited.keyword(cx, st)? {
                    return cx.err(st.pos(), format!("unknown keyword '{k}' in virtual_server"));
                }
            }
        }
    }
    let Some(protocol) = protocol else {
        return cx.err(
            stmt.pos(),
            "virtual_server has no protocol: current keepalived then uses UDP (and says so), \
             older versions TCP; write protocol TCP, UDP or SCTP",
        );
    };
    // keepalived's default forwarding method is NAT (uvs's, like ipvsadm's, is DR).
    let forwarding = fwd.map_or(Forwarding::Nat, |(f, _)| f);
    if let Some((f, at)) = sorry_fwd {
        if f != forwarding {
            return cx.err(
                at,
                format!(
                    "sorry_server_lvs_method {} cannot be translated: uvs forwards to the sorry \
                     server with the service's method ({forwarding})",
                    f.name().to_uppercase()
                ),
            );
        }
    }
    let scheduler = scheduler.map_or((Scheduler::WeightedLeastConnection, None), |(s, p)| {
        (s, Some(p))
    });
    let flags = flags(cx, &flag_words, scheduler.0)?;
    let mut persistence = match (ptimeout, granularity) {
        (Some((0, _)), None) => None,
        (Some((0, at)), Some(_)) => {
            return cx.err(at, "persistence_timeout 0 with a persistence_granularity")
        }
        (Some((t, at)), g) => Some((t, g, at)),
        (None, Some(g)) => Some((DEFAULT_PERSISTENCE_S, Some(g), g.pos)),
        (None, None) => None,
    }
    .map(|(t, g, at)| -> Result<_> {
        let mask = match g {
            None => None,
            Some(w) if vip.is_ipv4() => Some(w.text.clone()),
            Some(w) => Some(uint(cx, w, 1, 128, "IPv6 persistence_granularity")?.to_string()),
        };
        Ok((t, mask, at))
    })
    .transpose()?;
    if vport == 0 && persistence.is_none() {
        cx.note(
            stmt.pos(),
            "a virtual_server without a port is persistent: keepalived turns persistence on \
             (360 s), and so does the translation",
        );
        persistence = Some((DEFAULT_PERSISTENCE_S, None, stmt.pos()));
    }
    let mut reals = Vec::new();
    let mut checks: Vec<(Option<Check>, Pos, IpAddr)> = Vec::new();
    for st in real_stmts {
        let (mut real, mut check) = real_server(cx, st, &inherited, forwarding, vport)?;
        let real_fwd = real.forwarding.map_or(forwarding, |(f, _)| f);
        // DR and TUN forward to the virtual server's port unchanged: IPVS ignores another
        // port written for the real server (ipvsadm even rewrites it to the service's),
        // while keepalived's checker connects to the port written. So does the translation.
        if let Some((p, pos)) = real.port {
            if p != vport && matches!(real_fwd, Forwarding::Dr | Forwarding::Tun) {
                let method = if real_fwd == Forwarding::Dr {
                    "DR"
                } else {
                    "TUN"
                };
                let checked = match &mut check {
                    Some(c) if c.port == Port::Real && !matches!(c.kind, Kind::Command { .. }) => {
                        c.port = Port::Fixed(p);
                        format!("; its checker connects to {p}, and so does the translated check")
                    }
                    _ => String::new(),
                };
                cx.note(
                    pos,
                    format!(
                        "real_server port {p} with {method}: IPVS forwards to the virtual \
                         server's port {vport} unchanged, so the translation uses {vport}{checked}"
                    ),
                );
                real.port = None;
            }
        }
        if real.tunnel.is_none() && real_fwd == Forwarding::Tun {
            real.tunnel = service_tun;
        }
        let key = |r: &Real| (r.address, r.port.map_or(vport, |(p, _)| p));
        if let Some(first) = reals.iter().find(|r: &&Real| key(r) == key(&real)) {
            return cx.err(
                real.pos,
                format!(
                    "real_server {} port {} is already listed at line {} (keepalived drops \
                     the second one); remove one",
                    real.address,
                    key(&real).1,
                    first.pos.line
                ),
            );
        }
        checks.push((check, real.pos, real.address));
        reals.push(real);
    }
    if reals.is_empty() {
        cx.note(
            stmt.pos(),
            format!(
                "{header} has no real servers: keepalived ignores it, and so does the translation"
            ),
        );
        return Ok(None);
    }
    let check = one_check(cx, &checks)?;
    Ok(Some(Service {
        pos: stmt.pos(),
        header,
        name,
        vip,
        protocol,
        port: vport,
        scheduler,
        flags,
        forwarding,
        persistence,
        one_packet,
        sorry,
        check,
        reals,
    }))
}

/// keepalived's scheduler flag keywords → uvs's flags for the chosen scheduler.
fn flags(cx: &Cx<'_>, words: &[&Word], scheduler: Scheduler) -> Result<Vec<(SchedulerFlag, Pos)>> {
    let mut out: Vec<(SchedulerFlag, Pos)> = Vec::new();
    for w in words {
        let flag = match (w.text.as_str(), scheduler) {
            ("flag-1", Scheduler::SourceHashing) => Some(SchedulerFlag::ShFallback),
            ("flag-2", Scheduler::SourceHashing) => Some(SchedulerFlag::ShPort),
            ("flag-1", Scheduler::MaglevHashing) => Some(SchedulerFlag::MhFallback),
            ("flag-2", Scheduler::MaglevHashing) => Some(SchedulerFlag::MhPort),
            (name, _) => SchedulerFlag::from_name(name).filter(|f| f.scheduler() == scheduler),
        };
        let Some(flag) = flag else {
            return cx.err(
                w.pos,
                format!(
                    "{} means nothing to the {scheduler} scheduler in uvs (sh-* and flag-1/2 \
                     apply to sh, mh-* and flag-1/2 to mh; flag-3 to none)",
                    w.text
                ),
            );
        };
        if !out.iter().any(|(f, _)| *f == flag) {
            out.push((flag, w.pos));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::keepalived::lex::Files;

    fn range_of(text: &str) -> std::result::Result<Vec<String>, String> {
        let files = Files::default();
        let cx = Cx {
            files: &files,
            notes: Vec::new(),
        };
        let w = Word {
            text: text.into(),
            pos: Pos::default(),
        };
        range(&cx, &w)
            .map(|v| v.iter().map(ToString::to_string).collect())
            .map_err(|e| e.message)
    }

    #[test]
    fn group_ranges() {
        assert_eq!(range_of("198.18.100.1").unwrap(), ["198.18.100.1"]);
        assert_eq!(
            range_of("198.18.100.9-11").unwrap(),
            ["198.18.100.9", "198.18.100.10", "198.18.100.11"]
        );
        assert_eq!(
            range_of("198.18.100.255-198.18.101.1").unwrap(),
            ["198.18.100.255", "198.18.101.0", "198.18.101.1"]
        );
        assert_eq!(
            range_of("198.18.100.9/30").unwrap(),
            [
                "198.18.100.8",
                "198.18.100.9",
                "198.18.100.10",
                "198.18.100.11"
            ]
        );
        assert_eq!(
            range_of("2001:2:0:100::e-10").unwrap(),
            ["2001:2:0:100::e", "2001:2:0:100::f", "2001:2:0:100::10"]
        );
        assert_eq!(range_of("2001:2::1/128").unwrap(), ["2001:2::1"]);
        assert!(range_of("198.18.100.1-256")
            .unwrap_err()
            .contains("last part"));
        assert!(range_of("198.18.100.0/23")
            .unwrap_err()
            .contains("more than 256"));
        assert!(range_of("198.18.100.1-2001:2::1")
            .unwrap_err()
            .contains("families"));
    }
}
