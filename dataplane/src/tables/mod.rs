//! The tables control publishes and workers read: virtual services, real servers,
//! interfaces and routes, as one immutable snapshot swapped atomically (pingora's
//! `ArcSwap` of backends). Workers load it once per poll and never wait for control.
//!
//! Identity that outlives a snapshot: a service keeps its id and a real server keeps its
//! slot for as long as it exists, so connection entries (which store service id and real
//! slot) and live counters (active/inactive connections, shared with the scheduler) stay
//! valid across reloads. [`TablesBuilder::build`] takes the previous snapshot to carry them.
//! A removed server's slot stays reserved for it ([`Retired`]) while its connections last:
//! they leave its counters as they end, and no other server is placed there meanwhile.

mod build;
mod keys;

pub use build::*;
pub use keys::*;

use std::hash::Hasher;
use std::sync::Arc;

use uvs_conntrack::Timeouts;
use uvs_sched::{Scheduler, ServerLive, ServerSpec};

use crate::counters::PerWorkerStats;

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

/// A removed real server whose slot stays reserved while its connections last (IPVS's
/// trash list of dests): they still count on the slot's live counters and leave them as
/// they end; re-added at the same address and port, the server takes the slot back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retired {
    pub slot: u16,
    pub addr: IpKey,
    pub port: u16,
}

/// A virtual service as workers see it.
pub struct ServiceRt {
    pub id: u16,
    pub key: ServiceKey,
    pub name: String,
    pub sched: Scheduler,
    pub sched_name: &'static str,
    /// Live counters shared with the scheduler, slot-indexed, carried across reloads.
    pub live: Arc<[ServerLive]>,
    /// Real servers by slot (`None` = free slot, or one [`retired`](Self::retired)).
    pub reals: Vec<Option<RealRt>>,
    /// Removed real servers whose slots are reserved for their remaining connections
    /// (usually none). Their slots are `None` in `reals` and weight 0 in `specs`.
    pub retired: Box<[Retired]>,
    /// The scheduler's view of each slot (weight, thresholds), for connection accounting.
    pub specs: Vec<ServerSpec>,
    pub persistence: Option<Persistence>,
    pub one_packet: bool,
    /// TCP SYN proxy (`dataplane/src/synproxy/`).
    pub syn_proxy: bool,
    /// The SYN proxy sends a PROXY protocol v2 header first to the server.
    pub proxy_protocol: bool,
    /// `layer: 7`: pools and content rules (`crate::synproxy::layer7`).
    pub layer7: Option<crate::synproxy::layer7::Layer7Rt>,
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

    /// Whether a flow of real server `addr` recorded at `slot` is counted on that slot's
    /// live counters: the slot holds that server, or keeps it reserved since its removal
    /// ([`Retired`]). A flow whose slot now holds another server is not (the slot went to
    /// it only once its counters showed no connection: this flow's count had been lost),
    /// nor the sorry server's.
    #[inline]
    pub fn counts_flow_of(&self, slot: u16, addr: IpKey) -> bool {
        match self.reals.get(usize::from(slot)) {
            Some(Some(r)) => r.addr == addr,
            _ => slot != SORRY_SLOT && self.retired_at(slot, addr),
        }
    }

    /// Whether `slot` is reserved for the removed real server at `addr`.
    #[cold]
    fn retired_at(&self, slot: u16, addr: IpKey) -> bool {
        self.retired
            .iter()
            .any(|r| r.slot == slot && r.addr == addr)
    }
}

/// The immutable snapshot.
pub struct Tables {
    pub generation: u64,
    /// Unique per snapshot built in this process (`generation` restarts at 1 when a
    /// snapshot is built without a previous one): what a worker's caches of values derived
    /// from a snapshot compare (`crate::egress`).
    pub epoch: u64,
    pub ifaces: Vec<IfaceRt>,
    /// Services by id; `None` = removed (ids are not reused while connections may refer
    /// to them).
    pub services: Vec<Option<Arc<ServiceRt>>>,
    index: FastMap<ServiceKey, u16>,
    /// Firewall marks that have a service, in configuration order (the first match wins).
    marks: Vec<MarkRt>,
    /// Addresses the slow path answers ARP/NDP/echo for: VIPs, local addresses, FullNAT pools.
    owned: FastMap<IpKey, ()>,
    /// IPv4 FullNAT pool addresses of IPv6 services: replies to them may belong to NAT64
    /// flows, kept in the IPv6 connection table (`pipeline/nat64.rs`).
    nat64_pool: Vec<IpKey>,
    /// One-packet-scheduling services by (real server address, port, protocol): their
    /// replies have no connection entry and are translated by this map alone.
    ops_reverse: FastMap<(IpKey, u16, u8), u16>,
    routes: Vec<Route>,
    /// Services whose live slots this snapshot moved to a larger array: the publisher takes
    /// them (`std::mem::take`) and settles each a moment after publishing.
    pub grown: Vec<LiveGrowth>,
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

    /// The service configured under `key` (an address service or a firewall mark's), by
    /// the index: control's per-server updates look services up without scanning them.
    pub fn service_by_key(&self, key: &ServiceKey) -> Option<&Arc<ServiceRt>> {
        self.service(*self.index.get(key)?)
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

    /// Whether `addr` is an IPv4 pool address of a NAT64 service.
    #[inline]
    pub fn is_nat64_pool(&self, addr: &IpKey) -> bool {
        !self.nat64_pool.is_empty() && self.nat64_pool.contains(addr)
    }

    pub fn owns(&self, addr: &IpKey) -> bool {
        self.owned.contains_key(addr)
    }

    /// Owned addresses (for the XDP program's maps).
    pub fn owned_addresses(&self) -> impl Iterator<Item = IpKey> + '_ {
        self.owned.keys().copied()
    }

    /// The routes, longest prefix first (the order [`Tables::route`] searches them in).
    pub fn routes(&self) -> &[Route] {
        &self.routes
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

/// A stable hash of a real server's address and port: the key Maglev and the hashing
/// schedulers permute on, so every node computes the same table.
pub fn real_hash_key(addr: &IpKey, port: u16) -> u64 {
    let mut h = FastHasher::default();
    h.write(&addr.addr);
    h.write_u8(u8::from(addr.v6));
    h.write_u16(port);
    h.finish()
}
