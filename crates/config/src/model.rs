//! The validated configuration: typed addresses, enums and resolved defaults.
//!
//! Every value here has passed validation (see `validate`), so consumers need no further checks:
//! addresses are of the right family, defaults are filled in (a real server's port and
//! forwarding method, a service's timeouts merged over the global ones), names are known.

use crate::net::IpPrefix;
use serde::{Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// An enum written in YAML as one of a fixed set of lower-case names.
macro_rules! named_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// Every YAML name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text,)+];

            /// The YAML name.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            /// The variant with this YAML name (exact, lower case).
            pub fn from_name(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
    };
}

named_enum! {
    /// How the XDP program is attached (`ip link set ... xdpdrv` / `xdpgeneric`).
    pub enum XdpMode {
        /// Native (driver) mode, falling back to generic with a logged warning.
        Auto = "auto",
        Native = "native",
        Generic = "generic",
    }
}

named_enum! {
    /// AF_XDP zero-copy binding (`XDP_ZEROCOPY`); `Auto` tries it and falls back to copy mode
    /// (veth, for one, answers EOPNOTSUPP).
    pub enum ZeroCopy {
        Auto = "auto",
        On = "on",
        Off = "off",
    }
}

named_enum! {
    /// Transport protocol of a virtual service (ipvsadm `-t`, `-u`, `--sctp-service`).
    pub enum Protocol {
        Tcp = "tcp",
        Udp = "udp",
        Sctp = "sctp",
    }
}

named_enum! {
    /// Scheduling algorithm: IPVS's set plus the feedback-driven ones uvs adds.
    pub enum Scheduler {
        RoundRobin = "rr",
        WeightedRoundRobin = "wrr",
        LeastConnection = "lc",
        WeightedLeastConnection = "wlc",
        ShortestExpectedDelay = "sed",
        NeverQueue = "nq",
        LocalityBasedLeastConnection = "lblc",
        LocalityBasedLeastConnectionReplicated = "lblcr",
        DestinationHashing = "dh",
        SourceHashing = "sh",
        /// Maglev hashing.
        MaglevHashing = "mh",
        WeightedFailover = "fo",
        WeightedOverflow = "ovf",
        /// Power of two random choices.
        TwoChoices = "twos",
        /// Fastest measured response (handshake or probe RTT).
        Fastest = "fastest",
        /// Load reported by agents on the real servers.
        Load = "load",
        /// Geographic: the client's prefix names a site; that site's servers first.
        Geo = "geo",
    }
}

named_enum! {
    /// Scheduler flags, with ipvsadm's names (`-b sh-fallback,sh-port`).
    pub enum SchedulerFlag {
        /// sh: if the hashed server is unavailable, try the next one.
        ShFallback = "sh-fallback",
        /// sh: hash the source port too.
        ShPort = "sh-port",
        /// mh: if the hashed server is unavailable, try the next one.
        MhFallback = "mh-fallback",
        /// mh: hash the source port too.
        MhPort = "mh-port",
    }
}

impl SchedulerFlag {
    /// The only scheduler the flag applies to (IPVS maps sh-* and mh-* onto the same
    /// three flag bits, meaningful only to their own scheduler).
    pub fn scheduler(self) -> Scheduler {
        match self {
            SchedulerFlag::ShFallback | SchedulerFlag::ShPort => Scheduler::SourceHashing,
            SchedulerFlag::MhFallback | SchedulerFlag::MhPort => Scheduler::MaglevHashing,
        }
    }
}

named_enum! {
    /// Packet forwarding method (ipvsadm `-m`, `-g`, `-i`, plus FullNAT).
    pub enum Forwarding {
        /// Masquerading: DNAT to the real server, SNAT of replies.
        Nat = "nat",
        /// Direct routing: MAC rewrite; the real server holds the VIP and replies directly.
        Dr = "dr",
        /// Tunnelling: IPIP / IPv6-in-IPv6 encapsulation to the real server.
        Tun = "tun",
        /// Source and destination NAT to a local address pool.
        FullNat = "fullnat",
    }
}

named_enum! {
    /// Tunnel encapsulation for `tun` forwarding.
    pub enum Tunnel {
        /// IPIP (IPv4) or IPv6-in-IPv6 (RFC 2473), like IPVS's default.
        Ipip = "ipip",
    }
}

/// The whole validated configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub interfaces: Vec<Interface>,
    pub workers: Workers,
    pub conn_table: ConnTable,
    pub timeouts: Timeouts,
    /// IPVS sysctl `expire_nodest_conn`: when a real server is removed, drop its connections
    /// (true) or let them finish (false).
    pub expire_nodest_conn: bool,
    /// IPVS sysctl `conn_reuse_mode`: bit 0 — a SYN (SCTP INIT) that finds its tuple's
    /// entry in TIME_WAIT or CLOSE (SCTP CLOSED) expires it and is scheduled afresh; bit 1 —
    /// so does one finding a DR/TUN entry in FIN_WAIT. 0 turns reuse off. Default 1.
    pub conn_reuse_mode: u8,
    /// IPVS sysctl `expire_quiescent_template`: a persistence template pointing at a real
    /// server of weight 0 is dropped (true) or still honoured (false, the default).
    pub expire_quiescent_template: bool,
    /// IPVS's `drop_entry` defence: when the table is at least 7/8 full, connections that
    /// never completed their handshake (TCP SYN_RECV) are dropped to make room. Default
    /// true, because uvs's table has a fixed capacity (IPVS's grows until memory runs out).
    pub drop_entry: bool,
    pub admin: Admin,
    pub metrics: Metrics,
    pub services: Vec<Service>,
}

/// A NIC driven through AF_XDP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// Linux interface name, at most 15 bytes (`IFNAMSIZ` - 1).
    pub name: String,
    /// Number of NIC queues, one AF_XDP socket each.
    pub queues: u32,
    pub xdp_mode: XdpMode,
    pub zero_copy: ZeroCopy,
    /// Descriptors in each AF_XDP ring (power of two, 64..=16384; default 4096).
    pub ring_size: u32,
    /// Addresses uvs owns on this link (it answers ARP/NDP for them; the kernel does not
    /// have them). Each lies inside one of `networks`.
    pub local: Vec<IpAddr>,
    /// Directly reachable prefixes: neighbours are resolved by ARP/NDP.
    pub networks: Vec<IpPrefix>,
    pub routes: Vec<Route>,
}

/// A next hop for destinations outside the interface's networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    pub prefix: IpPrefix,
    /// Inside one of the interface's networks, same family as `prefix`.
    pub via: IpAddr,
}

/// Dataplane worker threads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Workers {
    /// Worker `i` serves queue `i` of every interface; defaults to the largest queue count.
    pub count: usize,
    /// CPU cores to pin worker `i` to `cores[i]`; `None` = no pinning. Distinct, at least
    /// `count` long.
    pub cores: Option<Vec<usize>>,
    /// Never sleep: an idle worker keeps polling its rings (lowest wake-up latency, one
    /// whole core per worker). Default false: after a short spin an idle worker sleeps in
    /// `poll(2)` on its AF_XDP sockets until a frame arrives.
    pub busy_poll: bool,
}

/// Connection table sizing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ConnTable {
    /// Maximum tracked connections, `1..=2^28`.
    pub capacity: u32,
}

/// Idle timeouts in seconds per protocol state, IPVS's defaults
/// (`net/netfilter/ipvs/ip_vs_proto_{tcp,udp,sctp}.c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    pub tcp_established: u32,
    pub tcp_syn_sent: u32,
    pub tcp_syn_recv: u32,
    pub tcp_fin_wait: u32,
    pub tcp_time_wait: u32,
    pub tcp_close: u32,
    pub tcp_close_wait: u32,
    pub tcp_last_ack: u32,
    pub udp: u32,
    pub icmp: u32,
    /// One value for every SCTP state for now (IPVS's ESTABLISHED default).
    pub sctp: u32,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            tcp_established: 900,
            tcp_syn_sent: 120,
            tcp_syn_recv: 60,
            tcp_fin_wait: 120,
            tcp_time_wait: 120,
            tcp_close: 10,
            tcp_close_wait: 60,
            tcp_last_ack: 30,
            udp: 300,
            icmp: 60,
            sctp: 900,
        }
    }
}

/// The admin socket `uvsadm` talks to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Admin {
    /// Absolute path of the Unix socket.
    pub socket: PathBuf,
    /// A group allowed besides root.
    pub group: Option<String>,
}

impl Default for Admin {
    fn default() -> Admin {
        Admin {
            socket: PathBuf::from(DEFAULT_ADMIN_SOCKET),
            group: None,
        }
    }
}

pub(crate) const DEFAULT_ADMIN_SOCKET: &str = "/run/uvs/uvsadm.sock";

/// The Prometheus endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Metrics {
    /// `None` = no metrics endpoint.
    pub listen: Option<SocketAddr>,
}

/// What identifies a virtual service across reloads, as in IPVS: (VIP, protocol, port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ServiceKey {
    pub vip: IpAddr,
    pub protocol: Protocol,
    /// 0 = every port.
    pub port: u16,
}

impl fmt::Display for ServiceKey {
    /// `tcp/198.18.100.1:80`, `udp/[2001:2:0:100::1]:53`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.protocol,
            SocketAddr::new(self.vip, self.port)
        )
    }
}

/// A virtual service.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Service {
    /// Unique; defaults to the key's text, `tcp/198.18.100.1:80`.
    pub name: String,
    pub vip: IpAddr,
    pub protocol: Protocol,
    /// 0 = every port; such a service is persistent (ipvsadm(8)).
    pub port: u16,
    pub scheduler: Scheduler,
    /// Each flag belongs to `scheduler`; no duplicates; sorted (it is a set).
    pub scheduler_flags: Vec<SchedulerFlag>,
    /// Maglev lookup table size, a prime; only with `mh`.
    pub mh_table_size: Option<u32>,
    /// The default forwarding method of the real servers (already applied to each).
    pub forwarding: Forwarding,
    pub persistence: Option<Persistence>,
    /// UDP one-packet scheduling (ipvsadm `-o`): every datagram is scheduled on its own.
    pub one_packet: bool,
    /// Source addresses for FullNAT, same family as the real servers using them. Non-empty
    /// when any real server uses FullNAT.
    pub fullnat_pool: Vec<IpAddr>,
    /// The global timeouts with this service's overrides applied.
    pub timeouts: Timeouts,
    pub sorry_server: Option<SorryServer>,
    /// `None` = real servers are always considered up.
    pub health_check: Option<HealthCheck>,
    /// Client prefixes per site, for the `geo` scheduler; non-empty exactly when the
    /// scheduler is `geo`. Names are unique and no prefix is listed twice.
    pub sites: Vec<Site>,
    pub real_servers: Vec<RealServer>,
}

/// A site of the `geo` scheduler: clients whose address falls in one of `clients` (longest
/// prefix wins across all sites) are sent to the real servers of this site first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Site {
    pub name: String,
    /// Of the VIP's family. May be empty: a site that only takes spill-over.
    pub clients: Vec<IpPrefix>,
}

impl Service {
    pub fn key(&self) -> ServiceKey {
        ServiceKey {
            vip: self.vip,
            protocol: self.protocol,
            port: self.port,
        }
    }
}

/// Client affinity (ipvsadm `-p` and `-M`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Persistence {
    /// Seconds a client stays with its real server after its last connection ends.
    pub timeout: u32,
    /// Clients whose addresses share this many leading bits share a real server (`-M`; an
    /// IPv4 netmask `255.255.255.0` is stored as 24).
    pub prefix_len: u8,
}

/// Where to send clients when no real server is usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SorryServer {
    pub address: IpAddr,
    pub port: u16,
}

/// A real server behind a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RealServer {
    pub address: IpAddr,
    /// Defaults to the service port; equal to it for `dr` and `tun` (they cannot rewrite
    /// ports); 0 for port-0 services.
    pub port: u16,
    /// 0 = quiesced: no new connections, existing ones finish.
    pub weight: u16,
    pub forwarding: Forwarding,
    /// Stop sending new connections at this many active ones; 0 = no limit (ipvsadm `-x`).
    pub upper_threshold: u32,
    /// Resume below this many (ipvsadm `-y`); at most `upper_threshold`.
    pub lower_threshold: u32,
    /// `Some` exactly when `forwarding` is `Tun`.
    pub tunnel: Option<Tunnel>,
    /// Index into the service's `sites`; `Some` exactly when the scheduler is `geo`.
    /// (An index keeps `RealServer` `Copy`; `to_yaml` writes the site's name.)
    pub site: Option<u16>,
}

impl RealServer {
    /// What identifies a real server within its service across reloads.
    pub fn key(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

/// An active health check, run against each real server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    pub kind: HealthCheckKind,
    /// Time between checks (millisecond precision).
    #[serde(serialize_with = "secs_f64")]
    pub interval: Duration,
    /// Time one check may take; at most `interval`.
    #[serde(serialize_with = "secs_f64")]
    pub timeout: Duration,
    /// Consecutive successes that bring a down server up.
    pub rise: u32,
    /// Consecutive failures that bring an up server down.
    pub fall: u32,
    /// Port to check; `None` = the real server's port.
    pub port: Option<u16>,
}

/// The check itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// A TCP handshake completes.
    Tcp,
    /// `GET path` answers `expect_status`, with `expect_body` in the body if set.
    Http {
        path: String,
        expect_status: u16,
        expect_body: Option<String>,
    },
    /// A command exits 0; `%a` is replaced by the address, `%p` by the port, `%%` by `%`.
    Command { command: String },
    /// HAProxy's agent-check protocol: connect to the agent's port (`send` is written
    /// first, as HAProxy's `agent-send`), read one line (`75%`, `drain`, `down`, …) that
    /// sets the server's weight, state and connection limit.
    Agent { send: Option<String> },
}

impl HealthCheckKind {
    /// The YAML `type` value.
    pub fn type_name(&self) -> &'static str {
        match self {
            HealthCheckKind::Tcp => "tcp",
            HealthCheckKind::Http { .. } => "http",
            HealthCheckKind::Command { .. } => "command",
            HealthCheckKind::Agent { .. } => "agent",
        }
    }
}

fn secs_f64<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
