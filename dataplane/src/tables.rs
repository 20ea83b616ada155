//! The tables control publishes and workers read: virtual services, real servers,
//! interfaces and routes, as one immutable snapshot swapped atomically (pingora's
//! `ArcSwap` of backends). Workers load it once per burst and never wait for control.
//!
//! Identity that outlives a snapshot: a service keeps its id and a real server keeps its
//! slot for as long as it exists, so connection entries (which store service id and real
//! slot) and live counters (active/inactive connections, shared with the scheduler) stay
//! valid across reloads. [`TablesBuilder::build`] takes the previous snapshot to carry them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use uvs_conntrack::Timeouts;
use uvs_sched::{SchedConfig, Scheduler, ServerLive, ServerSpec};

use crate::counters::PerWorkerStats;

/// Forwarding method, as ipvsadm's `-m` (NAT), `-g` (DR), `-i` (TUN) and FullNAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Method {
    Nat = 0,
    Dr = 1,
    Tun = 2,
    FullNat = 3,
}

impl Method {
    /// The method a connection entry was stored with (`method as u8`); `None` for a byte
    /// uvs never stores, which callers refuse instead of reading it as NAT.
    pub fn from_u8(v: u8) -> Option<Method> {
        match v {
            0 => Some(Method::Nat),
            1 => Some(Method::Dr),
            2 => Some(Method::Tun),
            3 => Some(Method::FullNat),
            _ => None,
        }
    }

    /// ipvsadm's name in `-L` output.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Method::Nat => "Masq",
            Method::Dr => "Route",
            Method::Tun => "Tunnel",
            Method::FullNat => "FullNat",
        }
    }
}

/// TUN's encapsulation towards one real server (ipvsadm `--tun-type`, `--tun-port`,
/// `--tun-nocsum`/`--tun-csum`/`--tun-remcsum`; remcsum arrives here as `checksum`, see
/// `uvs_config::TunCsum`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunEncap {
    /// IP-in-IP / IPv6-in-IPv6 (IPVS's default).
    #[default]
    Ipip,
    /// UDP to `port` + GUE; `checksum`: compute the UDP checksum; `remcsum`: the operator
    /// asked for remote checksum offload, which is sent as `checksum` (uvs completes
    /// partial inner checksums before it forwards; kept for the listing).
    Gue {
        port: u16,
        checksum: bool,
        remcsum: bool,
    },
    /// GRE; `checksum`: carry the GRE checksum.
    Gre { checksum: bool },
}

impl TunEncap {
    /// Index of the per-type counter (`WorkerCounters::tunnelled`).
    pub fn index(self) -> usize {
        match self {
            TunEncap::Ipip => 0,
            TunEncap::Gue { .. } => 1,
            TunEncap::Gre { .. } => 2,
        }
    }

    /// The type's name, for metrics labels (ipvsadm's `--tun-type` names).
    pub const NAMES: [&'static str; 3] = ["ipip", "gue", "gre"];
}

/// An IP address in the 16-byte form the tables use: IPv4 in the first four bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpKey {
    pub v6: bool,
    pub addr: [u8; 16],
}

impl IpKey {
    /// Whether `addr` is this address, compared as two 8-byte words: the connection table
    /// writes addresses in 8-byte pieces, and a 16-byte load of them would stall on store
    /// forwarding (measured: 7.5% of the established path).
    #[inline]
    pub fn same_addr(&self, addr: &[u8; 16]) -> bool {
        let w = |a: &[u8; 16], i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&a[i..i + 8]);
            u64::from_ne_bytes(b)
        };
        w(&self.addr, 0) == w(addr, 0) && w(&self.addr, 8) == w(addr, 8)
    }

    pub fn from_ip(ip: std::net::IpAddr) -> Self {
        match ip {
            std::net::IpAddr::V4(a) => {
                let mut addr = [0; 16];
                addr[..4].copy_from_slice(&a.octets());
                IpKey { v6: false, addr }
            }
            std::net::IpAddr::V6(a) => IpKey {
                v6: true,
                addr: a.octets(),
            },
        }
    }

    pub fn to_ip(self) -> std::net::IpAddr {
        if self.v6 {
            std::net::IpAddr::V6(self.addr.into())
        } else {
            let mut o = [0; 4];
            o.copy_from_slice(&self.addr[..4]);
            std::net::IpAddr::V4(o.into())
        }
    }
}

/// A virtual service's identity: (VIP, protocol, port); port 0 means every port.
///
/// A firewall-mark service has protocol 0 and port 0, and its "VIP" holds the mark (big
/// endian, in the first four bytes, the family in `v6`): what IPVS puts in the address of a
/// firewall-mark service's persistence templates, so persistence works unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub vip: IpKey,
    pub proto: u8,
    pub port: u16,
}

impl ServiceKey {
    /// The firewall-mark service of `mark` in one family.
    pub fn mark(mark: u32, v6: bool) -> ServiceKey {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&mark.to_be_bytes());
        ServiceKey {
            vip: IpKey { v6, addr },
            proto: 0,
            port: 0,
        }
    }

    /// The mark of a firewall-mark service.
    pub fn fwmark(&self) -> Option<u32> {
        (self.proto == 0).then(|| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&self.vip.addr[..4]);
            u32::from_be_bytes(b)
        })
    }
}

/// A multiply-rotate hasher for the small fixed-size keys looked up per packet; SipHash's
/// DoS resistance buys nothing for keys the operator configured.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// One interface the workers drive, by port index.
#[derive(Clone, Debug)]
pub struct IfaceRt {
    pub name: String,
    pub mac: [u8; 6],
    pub mtu: u16,
    /// Addresses uvs itself owns on this link (ARP/NDP source; FullNAT pool lives in services).
    pub local4: Option<[u8; 4]>,
    pub local6: Option<[u8; 16]>,
}

/// A route: prefix → egress port and optional gateway (None = directly connected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpKey,
    pub len: u8,
    pub port: u8,
    pub via: Option<IpKey>,
}

/// The first (longest, as the routes are sorted) route matching `dst`: its port and
/// next hop (the destination itself when directly connected).
#[inline]
fn lookup_route(routes: &[Route], dst: &IpKey) -> Option<(u8, IpKey)> {
    routes
        .iter()
        .find(|r| r.matches(dst))
        .map(|r| (r.port, r.via.unwrap_or(*dst)))
}

impl Route {
    #[inline]
    fn matches(&self, dst: &IpKey) -> bool {
        prefix_matches(&self.prefix, self.len, dst)
    }
}

/// Whether `dst` lies in `prefix/len` (same family).
#[inline]
fn prefix_matches(prefix: &IpKey, len: u8, dst: &IpKey) -> bool {
    if dst.v6 != prefix.v6 {
        return false;
    }
    let full = usize::from(len / 8);
    if dst.addr[..full] != prefix.addr[..full] {
        return false;
    }
    let rem = len % 8;
    if rem == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rem);
    dst.addr[full] & mask == prefix.addr[full] & mask
}

/// What a firewall mark matches (uvs's stand-in for a netfilter mark): destination
/// prefixes, protocols, destination port ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkSpec {
    pub mark: u32,
    /// (prefix, length), either family.
    pub destinations: Vec<(IpKey, u8)>,
    /// IP protocol numbers.
    pub protos: Vec<u8>,
    /// Inclusive destination port ranges; empty = every port.
    pub ports: Vec<(u16, u16)>,
}

impl MarkSpec {
    #[inline]
    fn matches(&self, dst: &IpKey, proto: u8, port: u16) -> bool {
        self.protos.contains(&proto)
            && (self.ports.is_empty() || self.ports.iter().any(|&(a, b)| a <= port && port <= b))
            && self
                .destinations
                .iter()
                .any(|(p, len)| prefix_matches(p, *len, dst))
    }
}

/// A mark with the ids of its services: `[IPv4, IPv6]`.
struct MarkRt {
    spec: MarkSpec,
    services: [Option<u16>; 2],
}

/// A real server as workers see it.
#[derive(Clone, Debug)]
pub struct RealRt {
    pub addr: IpKey,
    pub port: u16,
    pub method: Method,
    /// TUN only: the encapsulation.
    pub tun: TunEncap,
    pub weight: u32,
    /// Egress port and next hop (the server itself when directly connected).
    pub egress: u8,
    pub next_hop: IpKey,
    pub stats: Arc<PerWorkerStats>,
}

/// Persistence (ipvsadm `-p timeout -M netmask`): a client network sticks to a real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persistence {
    pub timeout_s: u32,
    /// Prefix length applied to the client address (32/128 = per client).
    pub prefix_len: u8,
}

/// Slot index meaning "the sorry server".
pub const SORRY_SLOT: u16 = u16::MAX;

/// A virtual service as workers see it.
pub struct ServiceRt {
    pub id: u16,
    pub key: ServiceKey,
    pub name: String,
    pub sched: Scheduler,
    pub sched_name: &'static str,
    /// Live counters shared with the scheduler, slot-indexed, carried across reloads.
    pub live: Arc<[ServerLive]>,
    /// Real servers by slot (`None` = free slot).
    pub reals: Vec<Option<RealRt>>,
    /// The scheduler's view of each slot (weight, thresholds), for connection accounting.
    pub specs: Vec<ServerSpec>,
    pub persistence: Option<Persistence>,
    pub one_packet: bool,
    /// TCP SYN proxy (`dataplane/src/synproxy/`).
    pub syn_proxy: bool,
    /// The SYN proxy sends a PROXY protocol v2 header first to the server.
    pub proxy_protocol: bool,
    pub timeouts: Timeouts,
    pub fullnat_pool: Vec<IpKey>,
    pub sorry: Option<RealRt>,
    pub stats: Arc<PerWorkerStats>,
}

impl ServiceRt {
    #[inline]
    pub fn real(&self, slot: u16) -> Option<&RealRt> {
        if slot == SORRY_SLOT {
            self.sorry.as_ref()
        } else {
            self.reals.get(usize::from(slot)).and_then(Option::as_ref)
        }
    }
}

/// The immutable snapshot.
pub struct Tables {
    pub generation: u64,
    pub ifaces: Vec<IfaceRt>,
    /// Services by id; `None` = removed (ids are not reused while connections may refer
    /// to them).
    pub services: Vec<Option<Arc<ServiceRt>>>,
    index: FastMap<ServiceKey, u16>,
    /// Firewall marks that have a service, in configuration order (the first match wins).
    marks: Vec<MarkRt>,
    /// Addresses the slow path answers ARP/NDP/echo for: VIPs, local addresses, FullNAT pools.
    owned: FastMap<IpKey, ()>,
    /// One-packet-scheduling services by (real server address, port, protocol): their
    /// replies have no connection entry and are translated by this map alone.
    ops_reverse: FastMap<(IpKey, u16, u8), u16>,
    routes: Vec<Route>,
}

impl Tables {
    /// The service for a destination: a firewall-mark service whose mark matches it first (as
    /// IPVS looks a packet's mark up before its address), then the exact port, then the port-0
    /// (all ports) service.
    #[inline]
    pub fn service_for(&self, vip: IpKey, proto: u8, port: u16) -> Option<&Arc<ServiceRt>> {
        if !self.marks.is_empty() {
            if let Some(s) = self.mark_service(&vip, proto, port) {
                return Some(s);
            }
        }
        let id = self
            .index
            .get(&ServiceKey { vip, proto, port })
            .or_else(|| {
                self.index.get(&ServiceKey {
                    vip,
                    proto,
                    port: 0,
                })
            })?;
        self.services.get(usize::from(*id))?.as_ref()
    }

    /// The firewall-mark service of the first mark matching the destination, of its family.
    #[cold]
    fn mark_service(&self, dst: &IpKey, proto: u8, port: u16) -> Option<&Arc<ServiceRt>> {
        self.marks.iter().find_map(|m| {
            let id = m.services[usize::from(dst.v6)]?;
            if m.spec.matches(dst, proto, port) {
                self.service(id)
            } else {
                None
            }
        })
    }

    #[inline]
    pub fn service(&self, id: u16) -> Option<&Arc<ServiceRt>> {
        self.services.get(usize::from(id))?.as_ref()
    }

    /// The one-packet-scheduling service a reply from `real:port` belongs to.
    #[inline]
    pub fn ops_service_of_reply(
        &self,
        real: IpKey,
        port: u16,
        proto: u8,
    ) -> Option<&Arc<ServiceRt>> {
        if self.ops_reverse.is_empty() {
            return None;
        }
        let id = self.ops_reverse.get(&(real, port, proto))?;
        self.service(*id)
    }

    #[inline]
    /// Whether `addr` is one of the interfaces' own (local) addresses: the source of TUN's
    /// outer packets.
    pub fn is_local(&self, addr: &IpKey) -> bool {
        self.ifaces.iter().any(|i| {
            if addr.v6 {
                i.local6 == Some(addr.addr)
            } else {
                i.local4.is_some_and(|a| a[..] == addr.addr[..4])
            }
        })
    }

    /// The UDP port GUE is sent to for the TUN real server at `addr`, if one tunnels with
    /// GUE (the first found; the same address with two GUE ports in two services is not
    /// told apart here).
    pub fn gue_port_of(&self, addr: &IpKey) -> Option<u16> {
        self.services
            .iter()
            .flatten()
            .flat_map(|s| s.reals.iter().flatten())
            .find_map(|r| match r.tun {
                TunEncap::Gue { port, .. } if r.method == Method::Tun && r.addr == *addr => {
                    Some(port)
                }
                _ => None,
            })
    }

    pub fn owns(&self, addr: &IpKey) -> bool {
        self.owned.contains_key(addr)
    }

    /// Owned addresses (for the XDP program's maps).
    pub fn owned_addresses(&self) -> impl Iterator<Item = IpKey> + '_ {
        self.owned.keys().copied()
    }

    /// Longest-prefix match: egress port and next hop for `dst`.
    #[inline]
    pub fn route(&self, dst: &IpKey) -> Option<(u8, IpKey)> {
        lookup_route(&self.routes, dst)
    }

    pub fn service_count(&self) -> usize {
        self.services.iter().flatten().count()
    }
}

/// What control says about a real server.
#[derive(Clone, Debug, PartialEq)]
pub struct RealSpec {
    pub addr: IpKey,
    pub port: u16,
    pub method: Method,
    /// TUN only: the encapsulation.
    pub tun: TunEncap,
    pub weight: u32,
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    /// geo scheduler: the site id (index of the service's site) clients are mapped to;
    /// 0 for every other scheduler.
    pub site: u16,
}

/// What control says about a virtual service.
#[derive(Clone, Debug)]
pub struct ServiceSpec {
    pub key: ServiceKey,
    pub name: String,
    pub sched: SchedConfig,
    pub reals: Vec<RealSpec>,
    pub persistence: Option<Persistence>,
    pub one_packet: bool,
    /// TCP SYN proxy (`dataplane/src/synproxy/`).
    pub syn_proxy: bool,
    /// The SYN proxy sends a PROXY protocol v2 header first to the server.
    pub proxy_protocol: bool,
    pub timeouts: Timeouts,
    pub fullnat_pool: Vec<IpKey>,
    pub sorry: Option<RealSpec>,
}

/// Everything a snapshot is built from.
#[derive(Clone, Debug, Default)]
pub struct TablesSpec {
    pub ifaces: Vec<IfaceRt>,
    /// Directly connected networks and gateways; `port` indexes `ifaces`.
    pub routes: Vec<Route>,
    pub services: Vec<ServiceSpec>,
    /// Firewall marks, in configuration order; a mark no service uses is ignored.
    pub marks: Vec<MarkSpec>,
    pub workers: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error("service {0}: {1}")]
    Scheduler(String, String),
    #[error("service {service}: no route to real server {real}")]
    NoRoute { service: String, real: String },
    #[error("service {0}: one-packet scheduling cannot be combined with FullNAT (a reply would carry no trace of its client)")]
    OnePacketFullNat(String),
    #[error("too many services (max {max})")]
    TooManyServices { max: usize },
    #[error("service {service}: too many real servers (max {max})")]
    TooManyReals { service: String, max: usize },
}

/// Real-server slots per service (the live-counter array is sized once per service).
pub const MAX_REALS: usize = 1024;
const MAX_SERVICES: usize = u16::MAX as usize - 1;

/// Builds snapshots, carrying identities from the previous one.
pub struct TablesBuilder;

impl TablesBuilder {
    pub fn build(spec: &TablesSpec, prev: Option<&Tables>) -> Result<Tables, TablesError> {
        let mut routes = spec.routes.clone();
        // Longest prefix first; stable so the operator's order breaks ties.
        routes.sort_by_key(|r| std::cmp::Reverse(r.len));
        let route_of = |dst: &IpKey| lookup_route(&routes, dst);

        let mut services: Vec<Option<Arc<ServiceRt>>> = Vec::new();
        let mut index = FastMap::default();
        let mut owned = FastMap::default();
        let mut ops_reverse = FastMap::default();
        for iface in &spec.ifaces {
            if let Some(a) = iface.local4 {
                owned.insert(IpKey::from_ip(std::net::IpAddr::from(a)), ());
            }
            if let Some(a) = iface.local6 {
                owned.insert(IpKey { v6: true, addr: a }, ());
            }
        }
        let workers = spec.workers.max(1);

        // Ids of services that persist are kept; new ones take free ids.
        let mut used_ids: Vec<bool> = Vec::new();
        let prev_ids: HashMap<ServiceKey, Arc<ServiceRt>> = prev
            .map(|t| {
                t.services
                    .iter()
                    .flatten()
                    .map(|s| (s.key, s.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(t) = prev {
            used_ids.resize(t.services.len(), false);
        }
        for s in &spec.services {
            if let Some(p) = prev_ids.get(&s.key) {
                let id = usize::from(p.id);
                if used_ids.len() <= id {
                    used_ids.resize(id + 1, false);
                }
                used_ids[id] = true;
            }
        }

        for s in &spec.services {
            let old = prev_ids.get(&s.key);
            let id = match old {
                Some(p) => p.id,
                None => {
                    let id = used_ids.iter().position(|u| !u).unwrap_or(used_ids.len());
                    if id >= MAX_SERVICES {
                        return Err(TablesError::TooManyServices { max: MAX_SERVICES });
                    }
                    if id == used_ids.len() {
                        used_ids.push(true);
                    } else {
                        used_ids[id] = true;
                    }
                    id as u16
                }
            };
            let svc = Self::build_service(s, id, old.map(|a| a.as_ref()), workers, &route_of)?;
            if s.one_packet {
                for r in &s.reals {
                    if r.method == Method::FullNat {
                        return Err(TablesError::OnePacketFullNat(s.name.clone()));
                    }
                    let port = if r.port == 0 { s.key.port } else { r.port };
                    // A real server answering for two one-packet services on one port is
                    // ambiguous without state: the first service listed wins.
                    ops_reverse.entry((r.addr, port, s.key.proto)).or_insert(id);
                }
            }
            if s.key.fwmark().is_none() {
                owned.insert(s.key.vip, ());
            }
            for a in &s.fullnat_pool {
                owned.insert(*a, ());
            }
            index.insert(s.key, id);
            let id = usize::from(id);
            if services.len() <= id {
                services.resize_with(id + 1, || None);
            }
            services[id] = Some(Arc::new(svc));
        }
        let marks = spec
            .marks
            .iter()
            .filter_map(|m| {
                let id = |v6| index.get(&ServiceKey::mark(m.mark, v6)).copied();
                let services = [id(false), id(true)];
                (services != [None, None]).then(|| MarkRt {
                    spec: m.clone(),
                    services,
                })
            })
            .collect();
        Ok(Tables {
            generation: prev.map_or(1, |t| t.generation + 1),
            ifaces: spec.ifaces.clone(),
            services,
            index,
            marks,
            owned,
            ops_reverse,
            routes,
        })
    }

    fn build_service(
        s: &ServiceSpec,
        id: u16,
        old: Option<&ServiceRt>,
        workers: usize,
        route_of: &dyn Fn(&IpKey) -> Option<(u8, IpKey)>,
    ) -> Result<ServiceRt, TablesError> {
        if s.reals.len() > MAX_REALS {
            return Err(TablesError::TooManyReals {
                service: s.name.clone(),
                max: MAX_REALS,
            });
        }
        let live: Arc<[ServerLive]> = match old {
            Some(o) => o.live.clone(),
            None => (0..MAX_REALS).map(|_| ServerLive::default()).collect(),
        };
        // Keep each surviving real server's slot; new ones take the lowest free slot.
        let mut reals: Vec<Option<RealRt>> = Vec::new();
        let mut slot_of: Vec<Option<usize>> = vec![None; s.reals.len()];
        if let Some(o) = old {
            for (i, r) in s.reals.iter().enumerate() {
                slot_of[i] = o.reals.iter().position(|x| {
                    x.as_ref()
                        .is_some_and(|x| x.addr == r.addr && x.port == r.port)
                });
            }
        }
        let mut taken = vec![false; MAX_REALS];
        for slot in slot_of.iter().flatten() {
            taken[*slot] = true;
        }
        // A removed server's slot stays reserved while its live counters show connections,
        // so a newcomer does not inherit them.
        if let Some(o) = old {
            for (slot, r) in o.reals.iter().enumerate() {
                if r.is_some() && !taken[slot] && live[slot].total_conns() > 0 {
                    taken[slot] = true;
                }
            }
        }
        for slot in slot_of.iter_mut() {
            if slot.is_none() {
                let free =
                    taken
                        .iter()
                        .position(|t| !t)
                        .ok_or_else(|| TablesError::TooManyReals {
                            service: s.name.clone(),
                            max: MAX_REALS,
                        })?;
                taken[free] = true;
                *slot = Some(free);
            }
        }
        let used = taken.iter().rposition(|t| *t).map_or(0, |p| p + 1);
        reals.resize_with(used, || None);
        let mut specs = vec![ServerSpec::new(0, 0); used];
        let mk_real = |r: &RealSpec, old: Option<&RealRt>| -> Result<RealRt, TablesError> {
            let (egress, next_hop) = route_of(&r.addr).ok_or_else(|| TablesError::NoRoute {
                service: s.name.clone(),
                real: format!("{}:{}", r.addr.to_ip(), r.port),
            })?;
            Ok(RealRt {
                addr: r.addr,
                port: r.port,
                method: r.method,
                tun: r.tun,
                weight: r.weight,
                egress,
                next_hop,
                stats: old
                    .map(|o| o.stats.clone())
                    .unwrap_or_else(|| Arc::new(PerWorkerStats::new(workers))),
            })
        };
        for (r, slot) in s.reals.iter().zip(&slot_of) {
            let slot = slot.expect("assigned above");
            let prev_rt = old.and_then(|o| o.reals.get(slot)).and_then(Option::as_ref);
            reals[slot] = Some(mk_real(r, prev_rt)?);
            specs[slot] = ServerSpec {
                weight: r.weight,
                upper_threshold: r.upper_threshold,
                lower_threshold: r.lower_threshold,
                key: real_hash_key(&r.addr, r.port),
                site: r.site,
            };
        }
        let sched = Scheduler::build(&s.sched, &specs)
            .map_err(|e| TablesError::Scheduler(s.name.clone(), e.to_string()))?;
        let sorry = match &s.sorry {
            Some(r) => Some(mk_real(r, old.and_then(|o| o.sorry.as_ref()))?),
            None => None,
        };
        Ok(ServiceRt {
            id,
            key: s.key,
            name: s.name.clone(),
            sched_name: s.sched.kind.name(),
            sched,
            live,
            reals,
            specs,
            persistence: s.persistence,
            one_packet: s.one_packet,
            syn_proxy: s.syn_proxy,
            proxy_protocol: s.proxy_protocol,
            timeouts: s.timeouts,
            fullnat_pool: s.fullnat_pool.clone(),
            sorry,
            stats: old
                .map(|o| o.stats.clone())
                .unwrap_or_else(|| Arc::new(PerWorkerStats::new(workers))),
        })
    }
}

/// A stable hash of a real server's address and port: the key Maglev and the hashing
/// schedulers permute on, so every node computes the same table.
pub fn real_hash_key(addr: &IpKey, port: u16) -> u64 {
    let mut h = FastHasher::default();
    h.write(&addr.addr);
    h.write_u8(u8::from(addr.v6));
    h.write_u16(port);
    h.finish()
}
