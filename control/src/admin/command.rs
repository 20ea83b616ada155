//! What a uvsadm invocation asks for, once parsed (`parse.rs` turns ipvsadm's command
//! line into these; `apply.rs` and `list.rs` carry them out).

use super::tunnel::TunArgs;
use std::net::IpAddr;
use uvs_config::{Forwarding, Persistence, Scheduler, SchedulerFlag, ServiceKey};

/// One uvsadm invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    /// `-L`/`-l`: the table, the connections (`-c`) or one service (`-t`).
    List(ListOptions),
    /// `-A`: a new virtual service.
    AddService(ServiceArgs),
    /// `-E`: replaces a service's scheduler, flags, persistence and one-packet setting (as
    /// ipvsadm does: what is not given returns to its default).
    EditService(ServiceArgs),
    /// `-D`.
    DeleteService(ServiceKey),
    /// `-a`: a new real server.
    AddReal(RealArgs),
    /// `-e`: replaces a real server's forwarding, weight and thresholds.
    EditReal(RealArgs),
    /// `-d`.
    DeleteReal {
        service: ServiceKey,
        real: (IpAddr, u16),
    },
    /// `-C`: removes every virtual service.
    Clear,
    /// `-Z`: zeroes every counter, or one service's (`-Z -t VIP:PORT`).
    Zero(Option<ServiceKey>),
    /// `-R`: the rules of an `ipvsadm -S` / `uvsadm -S` output, with their line numbers,
    /// applied together: all or nothing.
    Restore(Vec<(usize, AdminCommand)>),
    /// `--set TCP TCPFIN UDP`: the TCP established, TCP FIN_WAIT and UDP timeouts in
    /// seconds; 0 leaves one unchanged (as IPVS).
    SetTimeouts { tcp: u32, tcpfin: u32, udp: u32 },
    /// `-L --timeout`: "Timeout (tcp tcpfin udp): 900 120 300".
    ListTimeouts,
    /// `save`: the running configuration as YAML.
    Save,
    /// `-S`: the running table as ipvsadm rules, one uvsadm command line each; with `-n`
    /// (`numeric`) ports as numbers, as `ipvsadm -S -n`, else named from /etc/services.
    SaveRules { numeric: bool },
    /// `top`: a screenful of rates, health and load; `--once` prints one frame and exits.
    Top { once: bool },
    /// `cluster [role GROUP master|backup]`: active/backup roles (its own small grammar).
    Cluster(super::cluster::ClusterCommand),
    /// `-h`.
    Help,
    /// `-v`.
    Version,
    /// `--start-daemon`, `--stop-daemon`, `-L --daemon` (connection sync).
    Daemon(super::syncd::DaemonCommand),
    /// `node`, `node drain [--timeout S]` (BGP announcement, drain).
    Node(super::node::NodeCommand),
    /// `drain -t VIP:PORT -r SERVER [--wait] [--timeout S]`: one real server to weight 0.
    Drain(super::drain::DrainCommand),
    /// `member`: the members of a director-less cluster and their shares (member mode).
    Member,
}

impl AdminCommand {
    /// Whether it edits the table of services (`-A -E -D -a -e -d -C --set`): what a
    /// restore may hold, and what uvsd refuses with ipvsadm's status for a change.
    pub fn edits_table(&self) -> bool {
        matches!(
            self,
            AdminCommand::AddService(_)
                | AdminCommand::EditService(_)
                | AdminCommand::DeleteService(_)
                | AdminCommand::AddReal(_)
                | AdminCommand::EditReal(_)
                | AdminCommand::DeleteReal { .. }
                | AdminCommand::Clear
                | AdminCommand::SetTimeouts { .. }
        )
    }
}

/// What `-L` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// `-n`: numeric ports (addresses are always numeric).
    pub numeric: bool,
    /// `--stats`: cumulative counters.
    pub stats: bool,
    /// `--rate`: per-second rates.
    pub rate: bool,
    /// `--thresholds`: upper/lower connection thresholds.
    pub thresholds: bool,
    /// `--exact`: numbers without K/M/G rounding.
    pub exact: bool,
    /// `--nosort`: configuration order instead of ipvsadm's sort.
    pub nosort: bool,
    /// `-c`: the connection table.
    pub connections: bool,
    /// `--persistent-conn`: each real server's persistence templates (PersistConn).
    pub persistent_conn: bool,
    /// `--tun-info`: each real server's tunnel type and options (ipvsadm's TunnelInfo).
    pub tun_info: bool,
    /// `--json` (uvs): the snapshot (with `service`, holding that service only; with `-c` the
    /// connections) as JSON, for uvsadm to render with names and for scripts.
    pub json: bool,
    /// `-t|-u|--sctp-service|-f`: this service only.
    pub service: Option<ServiceKey>,
}

/// The options of `-A` and `-E`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceArgs {
    pub key: ServiceKey,
    /// `-s`; ipvsadm's default `wlc`.
    pub scheduler: Scheduler,
    /// `-b`, sorted (a set).
    pub flags: Vec<SchedulerFlag>,
    /// `-p [timeout]` and `-M netmask`.
    pub persistence: Option<Persistence>,
    /// `-o`.
    pub one_packet: bool,
    /// `--fullnat-pool ADDR,...`; `None` keeps the pool an edited service has.
    pub fullnat_pool: Option<Vec<IpAddr>>,
}

/// The options of `-a` and `-e`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealArgs {
    pub service: ServiceKey,
    pub address: IpAddr,
    /// The service port when `-r` gives none.
    pub port: u16,
    /// `-g`, `-i`, `-m` or `--fullnat`; `None` = the service's default forwarding method.
    pub forwarding: Option<Forwarding>,
    /// `-w`, default 1.
    pub weight: u16,
    /// `-x`, default 0 (no limit).
    pub upper_threshold: u32,
    /// `-y`, default 0.
    pub lower_threshold: u32,
    /// `--tun-type`, `--tun-port`, `--tun-*csum`.
    pub tunnel: TunArgs,
}
