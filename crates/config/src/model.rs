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
    /// Tunnel encapsulation for `tun` forwarding (ipvsadm `--tun-type`).
    pub enum Tunnel {
        /// IPIP (IPv4) or IPv6-in-IPv6 (RFC 2473), like IPVS's default.
        Ipip = "ipip",
        /// UDP to `tun_port` + a GUE header (Linux FOU/GUE receivers).
        Gue = "gue",
        /// GRE (RFC 2784), protocol IPv4 or IPv6.
        Gre = "gre",
    }
}

named_enum! {
    /// Checksums of a GUE or GRE tunnel (ipvsadm `--tun-nocsum`, `--tun-csum`,
    /// `--tun-remcsum`; Linux's `IP_VS_TUNNEL_ENCAP_FLAG_*`).
    pub enum TunCsum {
        /// No outer checksum: UDP checksum 0, GRE without the C bit (the default).
        None = "none",
        /// GUE: UDP checksum computed; GRE: the GRE checksum carried.
        Csum = "csum",
        /// GUE only: remote checksum offload. IPVS adds the option only for a packet whose
        /// inner checksum is still partial; uvs completes every partial checksum before it
        /// forwards, so this sends what `csum` sends (a computed UDP checksum).
        Remcsum = "remcsum",
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
    /// never completed their handshake (TCP SYN_RECV), UDP/ICMP flows and TCP flows of
    /// mh/sh services idle for 60 s (IPVS's `todrop_entry` age) and persistence templates
    /// left controlling no connection are dropped to make room. Default
    /// true, because uvs's table has a fixed capacity (IPVS's grows until memory runs out).
    pub drop_entry: bool,
    pub admin: Admin,
    pub metrics: Metrics,
    /// Firewall marks: named matches on a packet's destination that firewall-mark services
    /// (`fwmark:`, ipvsadm `-f`) take their traffic from. uvs does not see netfilter's marks,
    /// so the match that an iptables rule would make is written here.
    pub marks: Vec<Mark>,
    /// `None`: no connection sync.
    pub sync: Option<SyncConfig>,
    /// `None`: the VIPs are not announced over BGP.
    pub bgp: Option<BgpConfig>,
    /// `None`: no client lookup service (real servers behind FullNAT cannot ask who
    /// their clients are).
    pub client_lookup: Option<ClientLookup>,
    pub services: Vec<Service>,
    /// Active/backup roles per VIP group (keepalived's VRRP decides at run time).
    pub cluster: Cluster,
    /// `Some`: director-less member mode (no services; see [`MemberConfig`]).
    pub member: Option<MemberConfig>,
}

named_enum! {
    /// How a member filter hashes a flow.
    pub enum MemberHash {
        /// Addresses, ports and protocol (CLUSTERIP's sourceip-sourceport-destport).
        FiveTuple = "five_tuple",
        /// The client's address only (NLB's single affinity).
        Source = "source",
    }
}

/// Director-less member mode (as iptables CLUSTERIP or Microsoft NLB's multicast mode):
/// every member holds the VIP, receives all of its frames through a shared multicast MAC,
/// and keeps only the flows a Maglev table built over the healthy members gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberConfig {
    /// Where the filter is attached (one of `interfaces`).
    pub interface: String,
    /// The shared VIP (IPv4).
    pub vip: IpAddr,
    pub protocol: Protocol,
    /// Destination ports balanced per flow; empty: every port.
    pub ports: Vec<u16>,
    /// Every member's own address, in the same order on every member (the table's indices).
    pub members: Vec<IpAddr>,
    /// This member's index in `members`.
    pub me: usize,
    /// The multicast MAC the VIP resolves to (default: 03:bf and the VIP's four bytes, as
    /// NLB's multicast mode).
    pub cluster_mac: [u8; 6],
    pub hash: MemberHash,
    /// Maglev table entries: a prime, at most 65537.
    pub table_size: u32,
    /// How each member (this one included) is checked; the port defaults to the first of
    /// `ports`.
    pub health_check: HealthCheck,
    /// The UDP port each member's uvsd sends its heartbeat to and hears the others' on: a
    /// member whose uvsd is silent for `fall` check intervals counts as down even while
    /// its service answers (its filter went with it, so its share would be lost).
    pub heartbeat_port: u16,
}

/// [`MemberConfig::heartbeat_port`]'s default.
pub const DEFAULT_HEARTBEAT_PORT: u16 = 6082;

named_enum! {
    /// A VIP group's role in an active/backup pair.
    pub enum ClusterRole {
        /// Claims the group's VIPs and FullNAT pool addresses: answers ARP/NDP for them and
        /// forwards their traffic.
        Master = "master",
        /// Silent for them (not claimed, no ARP/NDP answers); keeps receiving connection sync.
        Backup = "backup",
    }
}

/// Active/backup operation: which VIPs move together between balancers, and how a node
/// announces them when it becomes master.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cluster {
    pub announce: Announce,
    /// Names and VIPs unique across groups. A VIP in no group is always served.
    pub groups: Vec<ClusterGroup>,
}

impl Cluster {
    /// The group `vip` belongs to, by index.
    pub fn group_of(&self, vip: IpAddr) -> Option<usize> {
        self.groups.iter().position(|g| g.vips.contains(&vip))
    }
}

/// Gratuitous ARPs (IPv4) and unsolicited neighbour advertisements (IPv6) sent for every
/// address of a group that becomes master, `count` times, `interval` apart (keepalived's
/// `garp_master_repeat` and `garp_interval`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Announce {
    /// 1..=100, default 5.
    pub count: u32,
    /// 10 ms..=10 s, default 200 ms; millisecond precision.
    #[serde(serialize_with = "secs_f64")]
    pub interval: Duration,
}

impl Default for Announce {
    fn default() -> Announce {
        Announce {
            count: 5,
            interval: Duration::from_millis(200),
        }
    }
}

/// VIPs that fail over together, as one keepalived `vrrp_instance` moves its addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterGroup {
    /// Unique; letters, digits, `-`, `_`, `.`; at most 32 bytes (uvsadm and notify scripts
    /// name groups on the command line).
    pub name: String,
    /// At least one. The FullNAT pool addresses of the services on these VIPs belong to the
    /// group too. A VIP no service uses yet is allowed (claimed once a service has it).
    pub vips: Vec<IpAddr>,
    /// The role at start; at run time `uvsadm cluster role` changes it (a reload keeps the
    /// running role unless the file's role for the group changed).
    pub role: ClusterRole,
    /// Interfaces the announcements go out on, by name; empty = for each address, the
    /// interfaces whose `networks` contain it, or every interface when none does.
    pub interfaces: Vec<String>,
}

/// What a firewall mark matches, as the `iptables -t mangle ... -j MARK --set-mark N` rule
/// of an IPVS director would: a packet to one of `destinations` with one of `protocols` and
/// a destination port in one of `ports` carries the mark.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mark {
    /// 1..=2^32-1 (ipvsadm: "fwmark is an integer greater than zero"); unique.
    pub mark: u32,
    /// Unique; defaults to `fwmark N`.
    pub name: String,
    /// Destination prefixes, IPv4 and/or IPv6; at least one.
    pub destinations: Vec<IpPrefix>,
    /// Default: tcp, udp and sctp. No duplicates.
    pub protocols: Vec<Protocol>,
    /// Destination port ranges; empty = every port.
    pub ports: Vec<PortRange>,
}

impl Mark {
    /// Whether a packet to `dst` (`proto`, destination port `port`) carries this mark.
    pub fn matches(&self, dst: IpAddr, protocol: Protocol, port: u16) -> bool {
        self.protocols.contains(&protocol)
            && (self.ports.is_empty() || self.ports.iter().any(|r| r.contains(port)))
            && self.destinations.iter().any(|d| d.contains(dst))
    }
}

/// Ports `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl fmt::Display for PortRange {
    /// `80`, `8000-8099`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
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
    /// Microseconds an idle worker keeps polling (yielding its core between empty polls)
    /// before it sleeps, `..=1_000_000`, default 200, or 0 with `kernel_fast_path` (its
    /// workers see a connection's handshake and close only); 0: it sleeps at the first
    /// empty poll.
    /// A polling worker keeps its core busy, so the scheduler wakes the client and real
    /// servers it forwards to on another core (a wake-up across cores costs 15–50 µs on
    /// the test VMs); one that sleeps at once can share their core, when the scheduler
    /// keeps it there (bench/README.md, "Where a crossing's microseconds go"). Ignored with
    /// `busy_poll`.
    pub spin_us: u32,
    /// Each worker forwards an established IPv4 or IPv6 TCP/UDP packet of a NAT or FullNAT flow
    /// from its flow cache, a record of how it forwarded the flow's earlier packet
    /// (`dataplane/src/flowcache.rs`): default true; false sends every packet down the
    /// whole path (to rule the cache out when chasing a problem; the same bytes leave
    /// either way, only slower).
    pub flow_cache: bool,
    /// The kernel fast path (`dataplane/src/fastpath.rs`): default false; true lets the
    /// XDP program rewrite the established packets of IPv4 and IPv6 TCP/UDP NAT and
    /// FullNAT flows the workers wrote into its tables and hand them to the kernel, which
    /// forwards them, so that they never cross to a worker thread. Needs
    /// `net.ipv4.ip_forward=1` in uvsd's network namespace, `net.ipv6.conf.all.forwarding=1`
    /// too when IPv6 services exist, and kernel routes to the clients and real servers (as
    /// IPVS's NAT does); uvsd refuses to start without them.
    pub kernel_fast_path: bool,
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
    /// SCTP ESTABLISHED (IPVS's `sctp_timeouts[]`, like the other `sctp_*` states).
    pub sctp: u32,
    pub sctp_init1: u32,
    pub sctp_init: u32,
    pub sctp_cookie_sent: u32,
    pub sctp_cookie_replied: u32,
    pub sctp_cookie_wait: u32,
    pub sctp_cookie: u32,
    pub sctp_cookie_echoed: u32,
    pub sctp_shutdown_sent: u32,
    pub sctp_shutdown_received: u32,
    pub sctp_shutdown_ack_sent: u32,
    pub sctp_rejected: u32,
    pub sctp_closed: u32,
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
            sctp_init1: 4,
            sctp_init: 61,
            sctp_cookie_sent: 61,
            sctp_cookie_replied: 61,
            sctp_cookie_wait: 61,
            sctp_cookie: 61,
            sctp_cookie_echoed: 61,
            sctp_shutdown_sent: 61,
            sctp_shutdown_received: 61,
            sctp_shutdown_ack_sent: 61,
            sctp_rejected: 4,
            sctp_closed: 61,
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

named_enum! {
    /// Which side of connection sync this node runs (ipvsadm --start-daemon).
    pub enum SyncMode {
        /// Sends its connections to the peers.
        Master = "master",
        /// Receives the peers' connections.
        Backup = "backup",
        /// Both (active/active, or a pair that fails over both ways).
        Both = "both",
    }
}

/// The client lookup service: real servers behind FullNAT ask (UDP, HMAC-SHA256 under a
/// shared key) who the client of one of their connections is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClientLookup {
    /// Where uvsd answers: an address of the host's kernel the real servers reach.
    pub listen: std::net::SocketAddr,
    /// The key shared with the real servers' uvs-agent (at least 16 bytes).
    pub auth_key: String,
}

/// Connection synchronisation: IPVS's sync protocol v1 over UDP (multicast by default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyncConfig {
    pub mode: SyncMode,
    /// The interface sync messages go out of and are received on (the kernel's side of it).
    pub interface: String,
    /// IPVS's sync id: messages of another id are ignored (0 on a backup: accept any).
    pub syncid: u8,
    /// Multicast group (IPVS: 224.0.0.81), or an IPv6 group.
    pub group: IpAddr,
    pub port: u16,
    pub ttl: u8,
    /// Largest message; `None`: the interface MTU less IP and UDP headers, as IPVS.
    pub maxlen: Option<u16>,
    /// Unicast peers instead of the multicast group (networks without multicast).
    pub peers: Vec<IpAddr>,
    /// Shared key: messages carry an HMAC-SHA256 and a sequence number; unsigned, forged
    /// or replayed ones are dropped. `None` (the default) keeps IPVS's wire format.
    pub auth_key: Option<String>,
    /// Seconds between resends of every long-lived connection (0: only changes).
    pub refresh_period: u32,
    /// Received connection records accepted per second; more are dropped and counted.
    pub max_rate: u32,
}

named_enum! {
    /// When a VIP stops being announced (a draining or stopping node withdraws all).
    pub enum Withdraw {
        /// When none of the VIP's services has a usable real server (health up, weight > 0).
        NoUsableServer = "no_usable_server",
        /// Only when the node drains or stops.
        Never = "never",
    }
}

/// BGP announcement of the VIPs: uvsd writes BIRD 2 `protocol static` blocks into
/// `include` (a file the operator's bird.conf includes) and asks BIRD to reconfigure over
/// its control socket. BIRD's main configuration (sessions, filters) stays the operator's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BgpConfig {
    /// The file uvsd owns and rewrites.
    pub include: PathBuf,
    /// BIRD's control socket (`birdc -s`).
    pub socket: PathBuf,
    pub withdraw_when: Withdraw,
    /// Seconds `uvsadm node drain` waits for traffic to end, unless `--timeout` says.
    pub drain_timeout: u32,
    /// Seconds uvsd keeps forwarding after withdrawing on SIGTERM/SIGINT, while routers
    /// converge.
    pub stop_delay: u32,
}

pub(crate) const DEFAULT_BIRD_SOCKET: &str = "/run/bird/bird.ctl";

/// The Prometheus endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Metrics {
    /// `None` = no metrics endpoint.
    pub listen: Option<SocketAddr>,
}

/// What identifies a virtual service across reloads, as in IPVS: (VIP, protocol, port), or
/// (firewall mark, family) for a firewall-mark service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ServiceKey {
    /// For a firewall-mark service, the unspecified address of its family (`0.0.0.0`, `::`).
    pub vip: IpAddr,
    /// For a firewall-mark service, tcp (unused, as ipvsadm sets it).
    pub protocol: Protocol,
    /// 0 = every port (and for a firewall-mark service).
    pub port: u16,
    /// The firewall mark (ipvsadm `-f`); 0 = an address service, as in IPVS.
    pub fwmark: u32,
}

impl ServiceKey {
    /// An address service.
    pub fn addr(vip: IpAddr, protocol: Protocol, port: u16) -> ServiceKey {
        ServiceKey {
            vip,
            protocol,
            port,
            fwmark: 0,
        }
    }

    /// The firewall-mark service of `mark` for IPv6 (`-f N -6`) or IPv4 (`-f N`).
    pub fn mark(fwmark: u32, ipv6: bool) -> ServiceKey {
        let vip = if ipv6 {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        };
        ServiceKey {
            vip,
            protocol: Protocol::Tcp,
            port: 0,
            fwmark,
        }
    }

    pub fn is_fwmark(&self) -> bool {
        self.fwmark != 0
    }
}

impl fmt::Display for ServiceKey {
    /// `tcp/198.18.100.1:80`, `udp/[2001:2:0:100::1]:53`, `fwmark/1`, `fwmark/1/ipv6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_fwmark() {
            let v6 = if self.vip.is_ipv6() { "/ipv6" } else { "" };
            return write!(f, "fwmark/{}{v6}", self.fwmark);
        }
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
    /// For a firewall-mark service, the unspecified address of its family.
    pub vip: IpAddr,
    /// For a firewall-mark service, tcp (unused; the mark says which protocols).
    pub protocol: Protocol,
    /// 0 = every port; such a service is persistent (ipvsadm(8)). 0 for a firewall-mark
    /// service.
    pub port: u16,
    /// A firewall-mark service takes the packets of its family that carry this mark
    /// (`Config::marks`); 0 = an address service (vip, protocol, port).
    pub fwmark: u32,
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
    /// TCP SYN proxy: uvs answers the handshake with a SYN cookie and opens the real
    /// server's side only for clients that complete it (NAT and FullNAT only).
    pub syn_proxy: bool,
    /// `proxy_protocol: v2`: the SYN proxy sends a PROXY protocol v2 header (the client's
    /// address and port, the VIP and port) first on the server's side of each connection.
    /// Only with `syn_proxy`.
    pub proxy_protocol: bool,
    /// `layer: 7`: content-based scheduling on the first request (implies `syn_proxy`).
    pub layer7: Option<Layer7>,
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

/// Content-based scheduling of a `layer: 7` service: the first request's head (HTTP/1.x)
/// or ClientHello (TLS SNI) is matched against `rules` in order; the first match names the
/// pool whose scheduler picks the real server, no match the default pool.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Layer7 {
    /// Names unique; each pool's members are addresses of the service's real servers.
    pub pools: Vec<Pool>,
    pub rules: Vec<Rule>,
    /// Index into `pools`.
    pub default_pool: usize,
    /// Longest request head (or TLS ClientHello) uvs reads before choosing, in bytes;
    /// longer ones get 431.
    pub head_limit: u32,
    /// Seconds a client has to send its whole head; slower ones get 408.
    pub head_timeout: u32,
}

/// Default `head_limit` (bytes).
pub const DEFAULT_HEAD_LIMIT: u32 = 8192;
/// Default `head_timeout` (seconds).
pub const DEFAULT_HEAD_TIMEOUT: u32 = 10;

/// Some of a `layer: 7` service's real servers (every real server of the service at one of
/// `members`), scheduled on their own.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pool {
    pub name: String,
    pub scheduler: Scheduler,
    pub members: Vec<IpAddr>,
    /// The pool's own check of its members, used for them instead of the service's
    /// `health_check`; its verdict holds for this pool only (a member it fails is still
    /// used by the other pools it belongs to). `None` = the service's check.
    pub health_check: Option<HealthCheck>,
}

impl Pool {
    /// The check that decides whether a member may take this pool's requests: the pool's
    /// own, else the service's (`None`: members are always up for it).
    pub fn check<'a>(&'a self, service: &'a Service) -> Option<&'a HealthCheck> {
        self.health_check.as_ref().or(service.health_check.as_ref())
    }
}

/// One content rule: conditions that must all hold, and the pool (index into
/// `Layer7::pools`) it sends to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rule {
    /// At least one, at most one of each kind, in the order host, path prefix, header,
    /// cookie, SNI; `Sni` never with the others (a first request is TLS or HTTP, not both).
    pub matches: Vec<Match>,
    pub pool: usize,
}

/// What a rule compares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Match {
    /// The HTTP Host header (without its port; an absolute-form target's authority
    /// instead), lowercase: exact, or `*.suffix` for any name ending in `.suffix`.
    Host(String),
    /// The request target's path starts with this (a path beginning with `/`; an
    /// absolute-form target's path is compared).
    PathPrefix(String),
    /// A request header (name case-insensitive, lowercase here) with exactly this value.
    Header { name: String, value: String },
    /// A cookie of the Cookie header with exactly this value.
    Cookie { name: String, value: String },
    /// The TLS ClientHello's server name, lowercase: exact or `*.suffix`.
    Sni(String),
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
    /// The service's health check and those of its `layer: 7` pools (their users and CA
    /// files are checked as the service's).
    pub fn health_checks(&self) -> impl Iterator<Item = &HealthCheck> {
        let pools = self.layer7.iter().flat_map(|l| &l.pools);
        self.health_check
            .iter()
            .chain(pools.filter_map(|p| p.health_check.as_ref()))
    }

    pub fn key(&self) -> ServiceKey {
        ServiceKey {
            vip: self.vip,
            protocol: self.protocol,
            port: self.port,
            fwmark: self.fwmark,
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
    /// GUE's UDP destination port (ipvsadm `--tun-port`); `Some` exactly for `gue`.
    pub tun_port: Option<u16>,
    /// Outer checksums of a GUE or GRE tunnel; `None` for every other real server.
    pub tun_csum: TunCsum,
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
    /// Whether a server new to the checks starts down, until its first check passes
    /// (keepalived's `alpha`); by default it starts up. A server the checks already know
    /// (a reload, an edit) keeps its state either way.
    pub start_down: bool,
}

/// The check itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// A TCP handshake completes.
    Tcp,
    /// `GET` of each of `urls` answers as that url expects; every one must (keepalived's
    /// `HTTP_GET` with several `url` blocks).
    Http {
        urls: Vec<HttpUrl>,
        /// The Host header (keepalived's `virtualhost`); `None`: the address, and the port
        /// unless it is 80.
        host: Option<String>,
    },
    /// As `Http`, over TLS (keepalived's `SSL_GET`, HAProxy's `check-ssl`).
    Https {
        urls: Vec<HttpUrl>,
        /// The server name sent in the handshake (SNI) and as the Host header; `None`: the
        /// address, and no SNI (RFC 6066 §3 allows no address literals there).
        sni: Option<String>,
        /// Whether the certificate must be valid for `sni` (or the address); off by
        /// default, as keepalived's `SSL_GET` does not verify unless told to.
        verify: bool,
        /// PEM file of the CA certificates trusted when `verify` is on; `None`: the Mozilla
        /// roots built into uvs.
        ca_file: Option<String>,
    },
    /// A command exits 0; `%a` is replaced by the address, `%p` by the port, `%%` by `%`.
    /// `user`: the account it runs as (keepalived's MISC_CHECK `user`); `None` = uvsd's
    /// own. Either way it runs without uvsd's capabilities.
    Command {
        command: String,
        user: Option<String>,
    },
    /// HAProxy's agent-check protocol: connect to the agent's port (`send` is written
    /// first, as HAProxy's `agent-send`), read one line (`75%`, `drain`, `down`, …) that
    /// sets the server's weight, state and connection limit.
    Agent { send: Option<String> },
}

/// One request of an `http` or `https` check: `GET path` answers a status in
/// `expect_status`, with `expect_body` in the body if set, and a body whose MD5 is
/// `expect_digest` (32 lower-case hex digits, keepalived's `digest`) if set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HttpUrl {
    pub path: String,
    pub expect_status: StatusCodes,
    pub expect_body: Option<String>,
    pub expect_digest: Option<String>,
}

/// The HTTP statuses a check accepts: inclusive ranges (`200`, or keepalived 2's
/// `200-299 301`), written back as a number when there is one code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCodes(pub Vec<(u16, u16)>);

impl StatusCodes {
    /// Exactly `code`.
    pub fn one(code: u16) -> StatusCodes {
        StatusCodes(vec![(code, code)])
    }

    /// Whether `code` is one of them.
    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
    }

    /// The one code, when there is one.
    pub fn single(&self) -> Option<u16> {
        match self.0.as_slice() {
            [(lo, hi)] if lo == hi => Some(*lo),
            _ => None,
        }
    }
}

impl fmt::Display for StatusCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for StatusCodes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.single() {
            Some(code) => s.serialize_u16(code),
            None => s.collect_str(self),
        }
    }
}

impl HealthCheckKind {
    /// The YAML `type` value.
    pub fn type_name(&self) -> &'static str {
        match self {
            HealthCheckKind::Tcp => "tcp",
            HealthCheckKind::Http { .. } => "http",
            HealthCheckKind::Https { .. } => "https",
            HealthCheckKind::Command { .. } => "command",
            HealthCheckKind::Agent { .. } => "agent",
        }
    }
}

fn secs_f64<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
