//! The admin interface: ipvsadm's command line over a Unix socket to uvsd.
//!
//! ```text
//! uvsadm -L -n ──request()──► socket ──serve()──► handle(backend, argv)
//!                                                   ├─ parse()        argv → AdminCommand (sans-IO)
//!                                                   ├─ apply()        edit → validated Config → backend.apply_config
//!                                                   └─ format_list()  Snapshot → ipvsadm's layout
//! ```
//!
//! Commands follow ipvsadm(8): `-A/-E/-D` services, `-a/-e/-d` real servers (a service is
//! `-t|-u|--sctp-service VIP:PORT` or `-f MARK [-6]`), `-C`, `-Z [service]`, `-R`, `--set`,
//! `-L [-n] [--stats|--rate|--thresholds|--persistent-conn] [--exact] [-c] [service]`,
//! `-L --timeout`, `-S` (rules); uvs adds `save` (YAML), `top`, `-L --json`, `-b` scheduler
//! flags, `--fullnat`, `--fullnat-pool` and the `fastest` and `load` schedulers. An edit
//! changes the running configuration only; `uvsadm save` prints it for the YAML file.

mod apply;
mod argv;
pub mod cluster;
mod command;
pub mod drain;
pub mod keepalived;
mod list;
mod names;
pub mod node;
mod parse;
mod restore;
mod socket;
pub mod syncd;
mod top;
pub mod tunnel;

pub use apply::{apply, service_text};
pub use argv::take_socket_option;
pub use list::{
    addresses, config_addresses, conn_addresses, format_conns, format_conns_with, format_list,
    format_list_names, format_list_with, format_rules, format_rules_with, format_timeouts,
    parse_services, IPVS_VERSION,
};
pub use names::{
    numeric_endpoint, numeric_endpoints, parse_getent, Names, Numeric, PortNames, SystemNames,
};
pub use parse::{parse, AdminCommand, ListOptions, RealArgs, ServiceArgs};
pub use socket::{
    gid_in, group_name_in, request, resolve_group, serve, try_request, AdminHandler, AdminRequest,
    AdminResponse, RequestError, MAX_REQUEST,
};
pub use top::{format_top, human};
pub use tunnel::TunArgs;

use crate::snapshot::{ConnSnapshot, Snapshot};
use std::sync::Arc;

/// Where the admin socket is unless the configuration or `--socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/uvs/uvsadm.sock";

/// What the daemon gives the admin interface.
pub trait AdminBackend: Send + Sync {
    /// The running balancer, counters and rates included.
    fn snapshot(&self) -> Snapshot;
    /// The running configuration.
    fn config(&self) -> uvs_config::Config;
    /// Makes `new` (already validated) the running configuration, as a reload would.
    fn apply_config(&self, new: uvs_config::Config) -> Result<(), String>;
    /// The addresses this host holds (uvsd's: `crate::host::host_addresses`, read again for
    /// each edit), which an edit may not make VIPs or real servers, as a reload refuses them.
    /// An error refuses the edit.
    fn host_addresses(&self) -> Result<Vec<std::net::IpAddr>, String>;
    /// `-Z`: zeroes every traffic counter, or those of one service and its real servers.
    /// The service exists in [`AdminBackend::config`].
    fn zero_counters(&self, service: Option<&uvs_config::ServiceKey>);
    /// The connection table (`-L -c`).
    fn connections(&self) -> Vec<ConnSnapshot>;
    /// [`AdminBackend::snapshot`] with each real server's persistence templates counted
    /// (`RealSnapshot::persistent`, for `--persistent-conn`): a walk of the connection table.
    fn snapshot_persistent(&self) -> Snapshot;
    /// `uvsadm node` and `uvsadm node drain`.
    fn node(&self, _cmd: &node::NodeCommand) -> Result<String, String> {
        Err("this daemon has no node state".into())
    }
    /// Active/backup roles (`uvsadm cluster`); `None` where there are none to run (a
    /// backend without a dataplane).
    fn cluster(&self) -> Option<&dyn cluster::ClusterControl> {
        None
    }
}

/// Parses, runs and renders one command; what uvsd's socket handler calls.
pub fn handle(backend: &dyn AdminBackend, argv: &[String]) -> Result<String, String> {
    execute(backend, &parse(argv)?)
}

/// Runs a parsed command. Edits print nothing on success, as ipvsadm.
pub fn execute(backend: &dyn AdminBackend, cmd: &AdminCommand) -> Result<String, String> {
    let names = PortNames;
    match cmd {
        AdminCommand::List(o) if o.connections => {
            let conns = backend.connections();
            if o.json {
                return Ok(to_json(&conns));
            }
            Ok(format_conns_with(&conns, o, &names))
        }
        AdminCommand::List(o) => {
            let mut snap = if o.persistent_conn {
                backend.snapshot_persistent()
            } else {
                backend.snapshot()
            };
            if o.json {
                // The selected service only, as the text listing shows it.
                if let Some(key) = &o.service {
                    snap.services = vec![list::find_service(&snap, key)?.clone()];
                }
                return Ok(to_json(&snap));
            }
            format_list_names(&snap, o, &names)
        }
        AdminCommand::ListTimeouts => Ok(format_timeouts(&backend.config().timeouts)),
        AdminCommand::AddService(_)
        | AdminCommand::EditService(_)
        | AdminCommand::DeleteService(_)
        | AdminCommand::AddReal(_)
        | AdminCommand::EditReal(_)
        | AdminCommand::DeleteReal { .. }
        | AdminCommand::Clear
        | AdminCommand::SetTimeouts { .. }
        | AdminCommand::Restore(_) => {
            let new = apply(cmd, &backend.config(), &backend.host_addresses()?)?;
            backend.apply_config(new)?;
            Ok(String::new())
        }
        AdminCommand::Zero(service) => {
            if let Some(key) = service {
                if !backend.config().services.iter().any(|s| s.key() == *key) {
                    return Err(apply::no_such_service("No such service", key));
                }
            }
            backend.zero_counters(service.as_ref());
            Ok(String::new())
        }
        AdminCommand::Save => Ok(uvs_config::to_yaml(&backend.config())),
        AdminCommand::SaveRules { numeric: true } => {
            Ok(format_rules_with(&backend.config(), &Numeric))
        }
        AdminCommand::SaveRules { numeric: false } => {
            Ok(format_rules_with(&backend.config(), &names))
        }
        AdminCommand::Top { .. } => Ok(format_top(&backend.snapshot())),
        AdminCommand::Cluster(c) => cluster::execute(backend, c),
        AdminCommand::Daemon(syncd::DaemonCommand::List) => Ok(syncd::format(&backend.config())),
        AdminCommand::Daemon(d) => {
            let new = syncd::apply(d, &backend.config())?;
            backend.apply_config(new)?;
            Ok(String::new())
        }
        AdminCommand::Node(n) => backend.node(n),
        AdminCommand::Drain(d) => drain::execute(backend, d),
        AdminCommand::Member => Err(
            "uvsd runs as a director (no `member:` section): `uvsadm member` is for member mode"
                .into(),
        ),
        AdminCommand::Help => Ok(usage()),
        AdminCommand::Version => Ok(version()),
    }
}

/// uvsadm's exit status for a command line it cannot parse (or whose names do not resolve),
/// as ipvsadm's `fail(2, ...)`.
pub const EXIT_USAGE: i32 = 2;

/// uvsadm's exit status when uvsd cannot be reached, as ipvsadm's when IPVS cannot be
/// (`fail(2, "Can't initialize ipvs ...")`).
pub const EXIT_UNREACHABLE: i32 = 2;

/// uvsadm's exit status when a listing fails (ipvsadm's `exit(1)`) and when one of uvs's own
/// commands does.
pub const EXIT_FAILED: i32 = 1;

/// uvsadm's exit status when uvsd refuses `cmd`: 255 for a change (ipvsadm returns -1 when
/// the kernel refuses one: `Service already exists`, `No such destination`, ...), 1 for a
/// listing (ipvsadm's `exit(1)` when it cannot list, e.g. `-L -t` of an unknown service)
/// and for uvs's own commands.
pub fn refused_status(cmd: &AdminCommand) -> i32 {
    match cmd {
        _ if cmd.edits_table() => 255,
        AdminCommand::Zero(_)
        | AdminCommand::Restore(_)
        | AdminCommand::Daemon(syncd::DaemonCommand::Start { .. })
        | AdminCommand::Daemon(syncd::DaemonCommand::Stop(_)) => 255,
        _ => EXIT_FAILED,
    }
}

/// Pretty JSON with a final newline (`-L --json`).
fn to_json<T: serde::Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("snapshots serialise");
    s.push('\n');
    s
}

/// A socket handler running [`handle`] on `backend`, for [`serve`].
pub fn handler(backend: Arc<dyn AdminBackend>) -> AdminHandler {
    Arc::new(move |argv: &[String]| handle(&*backend, argv))
}

/// `-v`.
pub fn version() -> String {
    format!(
        "uvsadm {} (ipvsadm-compatible command line)\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `-h`: ipvsadm's usage with uvs's commands and options.
pub fn usage() -> String {
    let mut u = version();
    u.push_str(
        "Usage:
  uvsadm COMMAND [options] [--socket PATH]     (--socket anywhere on the line;
                                                default $UVSADM_SOCKET, else
                                                /run/uvs/uvsadm.sock)
  uvsadm -A|E virtual-service [-s scheduler] [-b flags]
              [-p [timeout]] [-M netmask] [-o] [--fullnat-pool addr,...]
  uvsadm -D virtual-service
  uvsadm -C
  uvsadm -R
  uvsadm -S [-n]
  uvsadm -a|e virtual-service -r server-address [options]
  uvsadm -d virtual-service -r server-address
  uvsadm -L|l [-n] [--stats|--rate|--thresholds|--persistent-conn] [--exact]
              [--nosort] [--json] [-c | virtual-service]
  uvsadm -L|l --timeout
  uvsadm -Z [virtual-service]
  uvsadm --set tcp tcpfin udp
  uvsadm save
  uvsadm top [--once]
  uvsadm cluster [role GROUP master|backup]
  uvsadm --start-daemon {master|backup} [--mcast-interface IF] [--syncid N]
              [--sync-maxlen N] [--mcast-group ADDR] [--mcast-port PORT] [--mcast-ttl N]
  uvsadm --stop-daemon {master|backup}
  uvsadm -L --daemon
  uvsadm node [drain [--timeout S] [--no-wait]]
  uvsadm drain virtual-service -r server-address [--wait] [--timeout S]
  uvsadm member
  uvsadm import-keepalived [--interface NAME] [--network PREFIX]...
              [--local ADDRESS]... [--route PREFIX,VIA]... [--config-id ID] FILE
  uvsadm -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options (what is not given
                              returns to its default, as in ipvsadm)
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin (uvsadm -S or ipvsadm -S
                              output), all of them or, on a bad line, none
  --save            -S        print the table as uvsadm command lines
  save                        print the running configuration as YAML
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters of a service or all services
  --set tcp tcpfin udp        set the TCP, TCP FIN_WAIT and UDP timeouts in seconds
                              (0 = unchanged); services with their own keep them
  top                         live rates, health and worker load (Ctrl-C quits)
  cluster                     the VIP groups, their active/backup roles and addresses,
                              sync's peers and counters, the VIPs BGP announces
  cluster role GROUP ROLE     make this node master (claim and announce the group's
                              VIPs and FullNAT pool addresses) or backup (silent for
                              them) of GROUP; keepalived's notify script runs it
  import-keepalived           print keepalived.conf's virtual servers as uvs YAML
                              (no daemon needed; errors name file:line:column)
  --start-daemon              start connection sync (IPVS sync protocol v1):
                              master sends, backup receives; edits the YAML's `sync:`
  --stop-daemon               stop it
  node                        this node's BGP announcement: announced and withdrawn
                              VIPs, BIRD's last reconfiguration, drain progress
  node drain                  withdraw every VIP, wait until no connection carries
                              traffic (or --timeout S, default bgp.drain_timeout or
                              60), then stop uvsd; uvsadm waits for it unless --no-wait
  drain                       quiesce one real server (weight 0: no new connections,
                              existing ones finish); --wait prints its active and
                              inactive connections until none is left, --timeout S
                              (implies --wait) gives up after S seconds (exit 1)
  member                      member mode: the cluster's members, their health and
                              Maglev shares, the member filter's counters
  --help            -h        display this help message

Options:
  --tcp-service  -t service-address   virtual-service is one of these; service-address
  --udp-service  -u service-address   is host[:port], e.g. 198.18.100.1:80,
  --sctp-service    service-address   [2001:2::1]:53 or www.example.test:http
  --fwmark-service -f fwmark          fwmark is an integer greater than zero, a mark
                                      defined in the YAML's marks:
  --ipv6         -6                   the fwmark service is IPv6
  --scheduler    -s scheduler         one of rr, wrr, lc, wlc, sed, nq, lblc, lblcr,
                                      dh, sh, mh, fo, ovf, twos, fastest, load;
                                      the default scheduler is wlc.
  --sched-flags  -b flags             sh-fallback, sh-port, mh-fallback, mh-port
                                      (or flag-1, flag-2), comma separated
  --persistent   -p [timeout]         persistent service (default 300 s)
  --netmask      -M netmask           persistent granularity mask (IPv6: prefix length)
  --ops          -o                   one-packet scheduling (UDP)
  --fullnat-pool addr,...             local addresses for FullNAT
  --real-server  -r server-address    server-address is host[:port]
  --gatewaying   -g                   gatewaying (direct routing)
  --ipip         -i                   ipip encapsulation (tunneling)
  --tun-type     type                 one of ipip|gue|gre, the default is ipip
  --tun-port     port                 tunnel destination port (gue)
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum (gue)
  --masquerading -m                   masquerading (NAT)
  --fullnat                           source and destination NAT from the pool
                                      (without one of these: the service's default,
                                      direct routing for services made by -A)
  --weight       -w weight            capacity of real server (0 = quiesce)
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current connections
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --timeout                           output of timeout (tcp tcpfin udp)
  --json                              the listing (or -c connections) as JSON
  --nosort                            disable sorting output of service/server entries
  --numeric      -n                   numeric output of addresses and ports
  --socket       PATH                 uvsd's admin socket (also --socket=PATH, anywhere
                                      on the line); default $UVSADM_SOCKET, else
                                      /run/uvs/uvsadm.sock
  --once                              top: print one frame and exit
  --interface    NAME                 import-keepalived: the interface uvs serves on
                                      (default: the vrrp_instance's)
  --network      PREFIX               import-keepalived: a network on that interface
                                      (DR real servers must be inside one)
  --local        ADDRESS              import-keepalived: an address uvs owns there (one
                                      per family: it asks for the servers' MACs from it)
  --route        PREFIX,VIA           import-keepalived: a route beyond those networks
  --config-id    ID                   import-keepalived: keepalived's -i, choosing the @ID
                                      lines (default: the host name without its domain)
",
    );
    u
}
