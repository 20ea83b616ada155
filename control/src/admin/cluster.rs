//! `uvsadm cluster`: the VIP groups and their active/backup roles, connection sync's peers
//! and counters, and the VIPs BGP announces (the node's part in its cluster at a glance);
//! and `uvsadm cluster role GROUP master|backup`, which keepalived's notify scripts run
//! (scripts/keepalived/uvs-notify.sh).

use std::fmt::Write as _;
use uvs_config::ClusterRole;

use super::AdminBackend;
use crate::announce::NodeSnapshot;
use crate::cluster::ClusterStatus;
use crate::snapshot::SyncSnapshot;

/// A `cluster` command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterCommand {
    /// `uvsadm cluster`: every group, its role and addresses.
    List,
    /// `uvsadm cluster role GROUP master|backup`.
    Role { group: String, role: ClusterRole },
}

/// What the daemon offers for `cluster` commands.
pub trait ClusterControl: Send + Sync {
    fn cluster_status(&self) -> ClusterStatus;
    /// Switches `group`; the text says what changed.
    fn set_role(&self, group: &str, role: ClusterRole) -> Result<String, String>;
}

const USAGE: &str = "uvsadm cluster [role GROUP master|backup]";

/// Parses the words after `cluster`.
pub fn parse(args: &[String]) -> Result<ClusterCommand, String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["list"] => Ok(ClusterCommand::List),
        ["role", group, role] => {
            let role = ClusterRole::from_name(&role.to_ascii_lowercase()).ok_or_else(|| {
                format!("cluster role: unknown role '{role}': master or backup ({USAGE})")
            })?;
            Ok(ClusterCommand::Role {
                group: group.to_string(),
                role,
            })
        }
        ["role", ..] => Err(format!("cluster role needs a group and a role: {USAGE}")),
        ["list", extra, ..] => Err(format!(
            "cluster list: unexpected argument '{extra}' (it takes none): {USAGE}"
        )),
        [other, ..] => Err(format!("cluster: unknown subcommand '{other}': {USAGE}")),
    }
}

pub fn execute(backend: &dyn AdminBackend, cmd: &ClusterCommand) -> Result<String, String> {
    let c = backend
        .cluster()
        .ok_or("this uvsd runs no cluster roles (no `cluster:` support in this backend)")?;
    match cmd {
        ClusterCommand::List => {
            let snap = backend.snapshot();
            let mut out = format_cluster(&c.cluster_status());
            out.push_str(&format_peers(snap.sync.as_ref(), snap.node.as_ref()));
            Ok(out)
        }
        ClusterCommand::Role { group, role } => c.set_role(group, *role).map(|_| String::new()),
    }
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// The listing: one line per group, then the VIPs in no group.
///
/// ```text
/// Group            Role    For      Switches  Addresses
/// web              MASTER  12s      1         198.18.0.100 2001:2::100 pool 198.18.1.100
/// ```
pub fn format_cluster(s: &ClusterStatus) -> String {
    let mut out = String::new();
    if s.groups.is_empty() {
        out.push_str("No cluster groups: every VIP is served (configure `cluster.groups`).\n");
    } else {
        let _ = writeln!(
            out,
            "{:<16} {:<7} {:<8} {:<9} Addresses",
            "Group", "Role", "For", "Switches"
        );
        for g in &s.groups {
            let mut addrs: Vec<String> = g
                .vips
                .iter()
                .map(|(a, used)| {
                    if *used {
                        a.to_string()
                    } else {
                        format!("{a} (no service)")
                    }
                })
                .collect();
            addrs.extend(g.pools.iter().map(|a| format!("pool {a}")));
            let _ = writeln!(
                out,
                "{:<16} {:<7} {:<8} {:<9} {}",
                g.name,
                g.role.name().to_ascii_uppercase(),
                duration(g.for_secs),
                g.switches,
                addrs.join(" ")
            );
        }
    }
    if !s.ungrouped.is_empty() {
        let v: Vec<String> = s.ungrouped.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(out, "VIPs in no group (always served): {}", v.join(" "));
    }
    let _ = writeln!(out, "Announcements sent: {}", s.announcements);
    out
}

/// Sync's peers and counters, and what BGP announces: one line each, after the groups.
///
/// ```text
/// Sync: both, peers heard 198.18.62.12; sent 40 messages (120 conns), received 38 (110), \
///   refused 3 messages (other_syncid 3) 0 records, last message 0.2 s ago
/// BGP: serving; announced 198.18.100.1/32; withdrawn 198.18.100.2/32 (no usable real server)
/// ```
pub fn format_peers(sync: Option<&SyncSnapshot>, node: Option<&NodeSnapshot>) -> String {
    let mut out = String::new();
    match sync {
        None => out.push_str("Sync: not running\n"),
        Some(y) => {
            let peers = if y.peers.is_empty() {
                "none".to_string()
            } else {
                y.peers.join(" ")
            };
            let bad: u64 = y.bad_messages.iter().map(|(_, n)| n).sum();
            // Why, when some were: a peer with another sync id or key is refused whole.
            let why: Vec<String> = y
                .bad_messages
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join(", "))
            };
            let refused: u64 = y.refused.iter().map(|(_, n)| n).sum::<u64>() + y.rate_limited;
            let age = y.last_received_age_ms.map_or("never".to_string(), |ms| {
                format!("{:.1} s ago", ms as f64 / 1000.0)
            });
            let _ = writeln!(
                out,
                "Sync: {}, peers heard {peers}; sent {} messages ({} conns), received {} ({}), \
                 refused {bad} messages{why} {refused} records, last message {age}",
                y.mode, y.sent_messages, y.sent_conns, y.received_messages, y.received_conns
            );
        }
    }
    let Some(n) = node.filter(|n| n.bgp) else {
        out.push_str("BGP: not configured\n");
        return out;
    };
    let prefix = |v: &std::net::IpAddr| format!("{v}/{}", if v.is_ipv6() { 128 } else { 32 });
    let announced: Vec<String> = n.announced.iter().map(prefix).collect();
    let _ = write!(
        out,
        "BGP: {}; announced {}",
        n.state,
        if announced.is_empty() {
            "nothing".to_string()
        } else {
            announced.join(" ")
        }
    );
    if !n.withdrawn.is_empty() {
        let w: Vec<String> = n
            .withdrawn
            .iter()
            .map(|(v, why)| format!("{} ({why})", prefix(v)))
            .collect();
        let _ = write!(out, "; withdrawn {}", w.join(" "));
    }
    if n.last_error.is_some() {
        out.push_str("; BIRD reconfiguration FAILING (see uvsadm node)");
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::GroupStatus;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_the_two_forms_and_refuses_the_rest() {
        assert_eq!(parse(&argv("")), Ok(ClusterCommand::List));
        assert_eq!(parse(&argv("list")), Ok(ClusterCommand::List));
        assert_eq!(
            parse(&argv("role web MASTER")),
            Ok(ClusterCommand::Role {
                group: "web".into(),
                role: ClusterRole::Master
            })
        );
        assert!(parse(&argv("role web primary"))
            .unwrap_err()
            .contains("unknown role 'primary': master or backup"));
        assert!(parse(&argv("role web"))
            .unwrap_err()
            .contains("needs a group and a role"));
        assert!(parse(&argv("role web master now"))
            .unwrap_err()
            .contains("needs a group and a role"));
        assert!(parse(&argv("roles"))
            .unwrap_err()
            .contains("unknown subcommand 'roles'"));
        assert!(parse(&argv("list extra"))
            .unwrap_err()
            .contains("cluster list: unexpected argument 'extra'"));
    }

    #[test]
    fn lists_groups_roles_and_ungrouped_vips() {
        let s = ClusterStatus {
            groups: vec![GroupStatus {
                name: "web".into(),
                role: ClusterRole::Master,
                for_secs: 75,
                switches: 2,
                vips: vec![
                    ("198.18.0.100".parse().unwrap(), true),
                    ("2001:2::100".parse().unwrap(), false),
                ],
                pools: vec!["198.18.1.100".parse().unwrap()],
            }],
            ungrouped: vec!["198.18.0.200".parse().unwrap()],
            announcements: 15,
        };
        assert_eq!(
            format_cluster(&s),
            "Group            Role    For      Switches  Addresses\n\
             web              MASTER  1m15s    2         198.18.0.100 2001:2::100 (no service) pool 198.18.1.100\n\
             VIPs in no group (always served): 198.18.0.200\n\
             Announcements sent: 15\n"
        );
        assert!(format_cluster(&ClusterStatus::default()).starts_with("No cluster groups"));
    }

    #[test]
    fn lists_sync_peers_and_bgp_announcements() {
        assert_eq!(
            format_peers(None, None),
            "Sync: not running\nBGP: not configured\n"
        );
        let y = SyncSnapshot {
            mode: "both".into(),
            sent_messages: 40,
            sent_conns: 120,
            received_messages: 38,
            received_conns: 110,
            bad_messages: vec![("auth".into(), 2)],
            refused: vec![("no_service".into(), 3)],
            rate_limited: 1,
            last_received_age_ms: Some(250),
            peers: vec!["198.18.62.12".into(), "198.18.62.13".into()],
            ..SyncSnapshot::default()
        };
        let n = NodeSnapshot {
            state: "serving".into(),
            bgp: true,
            announced: vec![
                "198.18.100.1".parse().unwrap(),
                "2001:2::100".parse().unwrap(),
            ],
            withdrawn: vec![(
                "198.18.100.2".parse().unwrap(),
                "no usable real server".into(),
            )],
            last_error: Some("connecting to BIRD: refused".into()),
            ..NodeSnapshot::default()
        };
        assert_eq!(
            format_peers(Some(&y), Some(&n)),
            "Sync: both, peers heard 198.18.62.12 198.18.62.13; sent 40 messages (120 conns), \
             received 38 (110), refused 2 messages (auth 2) 4 records, last message 0.2 s ago\n\
             BGP: serving; announced 198.18.100.1/32 2001:2::100/128; withdrawn \
             198.18.100.2/32 (no usable real server); BIRD reconfiguration FAILING (see uvsadm node)\n"
        );
        let quiet = SyncSnapshot {
            mode: "backup".into(),
            ..SyncSnapshot::default()
        };
        assert!(format_peers(Some(&quiet), None).starts_with(
            "Sync: backup, peers heard none; sent 0 messages (0 conns), received 0 (0), \
             refused 0 messages 0 records, last message never\n"
        ));
    }
}
