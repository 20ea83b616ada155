//! `uvsadm cluster`: the VIP groups and their active/backup roles, and
//! `uvsadm cluster role GROUP master|backup`, which keepalived's notify scripts run
//! (scripts/keepalived/uvs-notify.sh).

use std::fmt::Write as _;
use uvs_config::ClusterRole;

use super::AdminBackend;
use crate::cluster::ClusterStatus;

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
        [other, ..] => Err(format!("cluster: unknown subcommand '{other}': {USAGE}")),
    }
}

pub fn execute(backend: &dyn AdminBackend, cmd: &ClusterCommand) -> Result<String, String> {
    let c = backend
        .cluster()
        .ok_or("this uvsd runs no cluster roles (no `cluster:` support in this backend)")?;
    match cmd {
        ClusterCommand::List => Ok(format_cluster(&c.cluster_status())),
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
}
