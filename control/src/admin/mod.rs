//! The admin interface: ipvsadm's command line over a Unix socket to uvsd.
//!
//! ```text
//! uvsadm -L -n ──request()──► socket ──serve()──► handle(backend, argv)
//!                                                   ├─ parse()        argv → AdminCommand (sans-IO)
//!                                                   ├─ apply()        edit → validated Config → backend.apply_config
//!                                                   └─ format_list()  Snapshot → ipvsadm's layout
//! ```
//!
//! Commands follow ipvsadm(8): `-A/-E/-D` services, `-a/-e/-d` real servers, `-C`, `-Z`,
//! `-L [-n] [--stats|--rate|--thresholds] [--exact] [-c] [-t|-u|--sctp-service VIP:PORT]`,
//! `-S` (rules); uvs adds `save` (YAML), `top`, `--sctp-service`, `-b` scheduler flags,
//! `--fullnat`, `--fullnat-pool` and the `fastest` and `load` schedulers. An edit changes
//! the running configuration only; `uvsadm save` prints it for the YAML file.

mod apply;
mod argv;
pub mod cluster;
pub mod keepalived;
mod list;
mod parse;
mod socket;
pub mod syncd;
mod top;

pub use apply::{apply, service_text};
pub use list::{format_conns, format_list, format_list_with, format_rules, parse_services};
pub use parse::{parse, AdminCommand, ListOptions, RealArgs, ServiceArgs};
pub use socket::{
    gid_in, group_name_in, request, resolve_group, serve, AdminHandler, AdminRequest, AdminResponse,
};
pub use top::{format_top, human};

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
    /// `-Z`: zeroes every traffic counter.
    fn zero_counters(&self);
    /// The connection table (`-L -c`).
    fn connections(&self) -> Vec<ConnSnapshot>;
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
    match cmd {
        AdminCommand::List(o) if o.connections => {
            Ok(format_conns(&backend.connections(), o.numeric))
        }
        AdminCommand::List(o) => format_list_with(&backend.snapshot(), o),
        AdminCommand::AddService(_)
        | AdminCommand::EditService(_)
        | AdminCommand::DeleteService(_)
        | AdminCommand::AddReal(_)
        | AdminCommand::EditReal(_)
        | AdminCommand::DeleteReal { .. }
        | AdminCommand::Clear => {
            let new = apply(cmd, &backend.config())?;
            backend.apply_config(new)?;
            Ok(String::new())
        }
        AdminCommand::Zero => {
            backend.zero_counters();
            Ok(String::new())
        }
        AdminCommand::Save => Ok(uvs_config::to_yaml(&backend.config())),
        AdminCommand::SaveRules => Ok(format_rules(&backend.config())),
        AdminCommand::Top { .. } => Ok(format_top(&backend.snapshot())),
        AdminCommand::Cluster(c) => cluster::execute(backend, c),
        AdminCommand::Daemon(syncd::DaemonCommand::List) => Ok(syncd::format(&backend.config())),
        AdminCommand::Daemon(d) => {
            let new = syncd::apply(d, &backend.config())?;
            backend.apply_config(new)?;
            Ok(String::new())
        }
        AdminCommand::Help => Ok(usage()),
        AdminCommand::Version => Ok(version()),
    }
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
  uvsadm [--socket PATH] COMMAND [options]     (default socket /run/uvs/uvsadm.sock,
                                                or $UVSADM_SOCKET)
  uvsadm -A|E -t|u|--sctp-service service-address [-s scheduler] [-b flags]
              [-p [timeout]] [-M netmask] [-o] [--fullnat-pool addr,...]
  uvsadm -D -t|u|--sctp-service service-address
  uvsadm -C
  uvsadm -a|e -t|u|--sctp-service service-address -r server-address [options]
  uvsadm -d -t|u|--sctp-service service-address -r server-address
  uvsadm -L|l [-n] [--stats|--rate|--thresholds] [--exact] [--nosort]
              [-c | -t|u|--sctp-service service-address]
  uvsadm -Z
  uvsadm -S [-n]
  uvsadm save
  uvsadm top [--once]
  uvsadm cluster [role GROUP master|backup]
  uvsadm --start-daemon {master|backup} [--mcast-interface IF] [--syncid N]
              [--sync-maxlen N] [--mcast-group ADDR] [--mcast-port PORT] [--mcast-ttl N]
  uvsadm --stop-daemon {master|backup}
  uvsadm -L --daemon
  uvsadm import-keepalived [--interface NAME] [--network PREFIX]...
              [--local ADDRESS]... [--route PREFIX,VIA]... FILE
  uvsadm -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options (what is not given
                              returns to its default, as in ipvsadm)
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --save            -S        print the table as uvsadm command lines
  save                        print the running configuration as YAML
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters of all services
  top                         live rates, health and worker load (Ctrl-C quits)
  cluster                     the VIP groups, their active/backup roles and addresses
  cluster role GROUP ROLE     make this node master (claim and announce the group's
                              VIPs and FullNAT pool addresses) or backup (silent for
                              them) of GROUP; keepalived's notify script runs it
  import-keepalived           print keepalived.conf's virtual servers as uvs YAML
                              (no daemon needed; errors name file:line:column)
  --start-daemon              start connection sync (IPVS sync protocol v1):
                              master sends, backup receives; edits the YAML's `sync:`
  --stop-daemon               stop it
  --help            -h        display this help message

Options:
  --tcp-service  -t service-address   service-address is address[:port]
  --udp-service  -u service-address   e.g. 198.18.100.1:80 or [2001:2::1]:53
  --sctp-service    service-address
  --scheduler    -s scheduler         one of rr, wrr, lc, wlc, sed, nq, lblc, lblcr,
                                      dh, sh, mh, fo, ovf, twos, fastest, load;
                                      the default scheduler is wlc.
  --sched-flags  -b flags             sh-fallback, sh-port, mh-fallback, mh-port
                                      (or flag-1, flag-2), comma separated
  --persistent   -p [timeout]         persistent service (default 300 s)
  --netmask      -M netmask           persistent granularity mask (IPv6: prefix length)
  --ops          -o                   one-packet scheduling (UDP)
  --fullnat-pool addr,...             local addresses for FullNAT
  --real-server  -r server-address    server-address is address[:port]
  --gatewaying   -g                   gatewaying (direct routing)
  --ipip         -i                   ipip encapsulation (tunneling)
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
  --nosort                            disable sorting output of service/server entries
  --numeric      -n                   numeric output of ports (addresses are always numeric)
  --once                              top: print one frame and exit
  --interface    NAME                 import-keepalived: the interface uvs serves on
                                      (default: the vrrp_instance's)
  --network      PREFIX               import-keepalived: a network on that interface
                                      (DR real servers must be inside one)
  --local        ADDRESS              import-keepalived: an address uvs owns there
  --route        PREFIX,VIA           import-keepalived: a route beyond those networks
",
    );
    u
}
