//! Building a snapshot: what control says (`TablesSpec`) becomes `Tables`, carrying service
//! ids, real-server slots (a removed server's reserved while its connections last) and live
//! counters over from the previous snapshot.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use uvs_conntrack::Timeouts;
use uvs_sched::{SchedConfig, Scheduler, ServerLive, ServerSpec, NO_THRESHOLDS};

use super::*;
use crate::counters::PerWorkerStats;

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
    /// `layer: 7`: pools and content rules (with `syn_proxy`).
    pub layer7: Option<crate::synproxy::layer7::Layer7Spec>,
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

/// Real-server slots per service, at most.
pub const MAX_REALS: usize = 1024;
/// Live slots a service starts with, at least: its servers' slots are rounded up to a
/// power of two, so a few servers added later fit without growing.
const MIN_LIVE_SLOTS: usize = 16;

/// The live slots (one 64-byte cache line each) for a service using `used` slots: the
/// previous ones while they are enough, never fewer (a connection keeps its slot for its
/// life); otherwise a larger array holding a copy of them ([`LiveGrowth`]). Sized to the
/// servers, not to [`MAX_REALS`]: 5 000 services of three servers each took 64 KiB each
/// (320 MB), 1 KiB now.
fn live_for(
    prev: Option<&Arc<[ServerLive]>>,
    used: usize,
) -> (Arc<[ServerLive]>, Option<LiveGrowth>) {
    if let Some(p) = prev.filter(|p| p.len() >= used) {
        return (p.clone(), None);
    }
    let len = used.next_power_of_two().clamp(MIN_LIVE_SLOTS, MAX_REALS);
    let live: Arc<[ServerLive]> = (0..len).map(|_| ServerLive::default()).collect();
    let Some(from) = prev else {
        return (live, None);
    };
    let copied = from
        .iter()
        .zip(live.iter())
        .map(|(f, t)| {
            let counts = (f.active.load(Relaxed), f.inactive.load(Relaxed));
            t.active.store(counts.0, Relaxed);
            t.inactive.store(counts.1, Relaxed);
            for (a, b) in [
                (&f.rtt_us, &t.rtt_us),
                (&f.load, &t.load),
                (&f.weight_pct, &t.weight_pct),
                (&f.agent_maxconn, &t.agent_maxconn),
            ] {
                b.store(a.load(Relaxed), Relaxed);
            }
            t.health_up.store(f.health_up.load(Relaxed), Relaxed);
            t.overloaded.store(f.overloaded.load(Relaxed), Relaxed);
            counts
        })
        .collect();
    let growth = LiveGrowth {
        from: from.clone(),
        to: live.clone(),
        copied,
    };
    (live, Some(growth))
}

/// A service's live slots moved to a larger array by a snapshot (servers added beyond
/// what it had). Workers still on the previous snapshot may count connections made or
/// ended there on the old array meanwhile: [`LiveGrowth::settle`] carries them over once
/// none can any more. Whoever publishes the snapshot keeps it ([`Tables::grown`]) and
/// settles it a moment later (a worker takes the snapshot afresh at every poll).
#[derive(Debug)]
pub struct LiveGrowth {
    from: Arc<[ServerLive]>,
    to: Arc<[ServerLive]>,
    /// `(active, inactive)` of each slot of `from` when it was copied.
    copied: Box<[(u32, u32)]>,
}

impl LiveGrowth {
    /// Adds to the new array the connections counted on, or released from, the old one
    /// since the copy.
    pub fn settle(&self) {
        let shift = |c: &std::sync::atomic::AtomicU32, was: u32, now: u32| {
            if now > was {
                c.fetch_add(now - was, Relaxed);
            } else if was > now {
                let _ = c.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(was - now)));
            }
        };
        for ((f, t), &(active, inactive)) in self.from.iter().zip(self.to.iter()).zip(&*self.copied)
        {
            shift(&t.active, active, f.active.load(Relaxed));
            shift(&t.inactive, inactive, f.inactive.load(Relaxed));
        }
    }
}
const MAX_SERVICES: usize = u16::MAX as usize - 1;

/// Source of [`Tables::epoch`]: unique per snapshot built in this process.
static NEXT_EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

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
        let mut nat64_pool = Vec::new();
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
        let mut grown = Vec::new();

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
            let (svc, growth) =
                Self::build_service(s, id, old.map(|a| a.as_ref()), workers, &route_of)?;
            grown.extend(growth);
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
                // An IPv4 pool of an IPv6 service: NAT64 (`pipeline/nat64.rs`).
                if s.key.vip.v6 && !a.v6 && !nat64_pool.contains(a) {
                    nat64_pool.push(*a);
                }
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
        // Nothing can fail any more: the live state this snapshot carries over may follow
        // its thresholds.
        for svc in services.iter().flatten() {
            if let Some(old) = prev_ids.get(&svc.key) {
                Self::update_thresholds(svc, old);
            }
        }
        Ok(Tables {
            generation: prev.map_or(1, |t| t.generation + 1),
            epoch: NEXT_EPOCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ifaces: spec.ifaces.clone(),
            services,
            index,
            marks,
            owned,
            nat64_pool,
            ops_reverse,
            routes,
            grown,
        })
    }

    fn build_service(
        s: &ServiceSpec,
        id: u16,
        old: Option<&ServiceRt>,
        workers: usize,
        route_of: &dyn Fn(&IpKey) -> Option<(u8, IpKey)>,
    ) -> Result<(ServiceRt, Option<LiveGrowth>), TablesError> {
        if s.reals.len() > MAX_REALS {
            return Err(TablesError::TooManyReals {
                service: s.name.clone(),
                max: MAX_REALS,
            });
        }
        // The previous snapshot's live slots (the counts of the connections they hold);
        // chosen for this snapshot once the slots are (`live_for`).
        let prev_live: Option<&Arc<[ServerLive]>> = old.map(|o| &o.live);
        // Keep each surviving real server's slot, and give a removed one re-added at the
        // same address and port the slot still reserved for it (with the counts of the
        // connections it still has, as IPVS takes a dest back from its trash); new ones
        // take the lowest free slot.
        let mut reals: Vec<Option<RealRt>> = Vec::new();
        let mut slot_of: Vec<Option<usize>> = vec![None; s.reals.len()];
        // Servers the previous snapshot had: their health and agent state stay.
        let mut carried = vec![false; s.reals.len()];
        if let Some(o) = old {
            // By address and port, not a scan per server: a service may have a thousand.
            let mut was_at: HashMap<(IpKey, u16), usize> = HashMap::new();
            for (slot, x) in o.reals.iter().enumerate().rev() {
                if let Some(x) = x {
                    was_at.insert((x.addr, x.port), slot);
                }
            }
            let mut retired_at: HashMap<(IpKey, u16), usize> = HashMap::new();
            for x in o.retired.iter().rev() {
                retired_at.insert((x.addr, x.port), usize::from(x.slot));
            }
            for (i, r) in s.reals.iter().enumerate() {
                let was = was_at.get(&(r.addr, r.port)).copied();
                carried[i] = was.is_some();
                slot_of[i] = was.or_else(|| retired_at.get(&(r.addr, r.port)).copied());
            }
        }
        let mut taken = vec![false; MAX_REALS];
        for slot in slot_of.iter().flatten() {
            taken[*slot] = true;
        }
        // A removed server's slot stays reserved for its connections: they keep counting
        // on it and leave it as they end (`lifecycle::unbind`), so no newcomer inherits
        // them. Reserved at its removal whatever its counters show (a worker still on the
        // previous snapshot may be binding a flow to it), then while they show any.
        let mut retired = Vec::new();
        if let Some(o) = old {
            let removed = o.reals.iter().enumerate().filter_map(|(slot, r)| {
                r.as_ref().map(|r| Retired {
                    slot: slot as u16,
                    addr: r.addr,
                    port: r.port,
                })
            });
            let still = o.retired.iter().copied().filter(|r| {
                prev_live
                    .and_then(|l| l.get(usize::from(r.slot)))
                    .is_some_and(|l| l.total_conns() > 0)
            });
            for r in removed.chain(still) {
                let slot = usize::from(r.slot);
                if !taken[slot] {
                    taken[slot] = true;
                    retired.push(r);
                }
            }
        }
        let mut newcomers = Vec::new();
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
                newcomers.push(free);
                *slot = Some(free);
            }
        }
        let used = taken.iter().rposition(|t| *t).map_or(0, |p| p + 1);
        let (live, growth) = live_for(prev_live, used);
        for free in newcomers {
            // A newcomer starts from zero: a free slot's counters show nothing, unless a
            // flow was counted there that no table can release any more (a worker two
            // snapshots behind); such counts are not the newcomer's.
            live[free].reset_conns();
        }
        // Any server the previous snapshot did not have (new, or back from removal) starts
        // up with no agent verdict, as health checking starts it: the state its slot's last
        // holder left is not its own. Its overload flag follows its own thresholds once the
        // snapshot is built (`update_thresholds`).
        for (slot, carried) in slot_of.iter().zip(carried) {
            if !carried {
                live[slot.expect("assigned above")].reset_health();
            }
        }
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
        let layer7 = match &s.layer7 {
            Some(l) => Some(Self::build_layer7(s, l, &reals, &specs, old, workers)?),
            None => None,
        };
        let sorry = match &s.sorry {
            Some(r) => Some(mk_real(r, old.and_then(|o| o.sorry.as_ref()))?),
            None => None,
        };
        let svc = ServiceRt {
            id,
            key: s.key,
            name: s.name.clone(),
            sched_name: s.sched.kind.name(),
            sched,
            live,
            reals,
            retired: retired.into_boxed_slice(),
            specs,
            persistence: s.persistence,
            one_packet: s.one_packet,
            syn_proxy: s.syn_proxy,
            proxy_protocol: s.proxy_protocol,
            layer7,
            timeouts: s.timeouts,
            fullnat_pool: s.fullnat_pool.clone(),
            sorry,
            stats: old
                .map(|o| o.stats.clone())
                .unwrap_or_else(|| Arc::new(PerWorkerStats::new(workers))),
        };
        Ok((svc, growth))
    }

    /// Re-evaluates each real server's overload flag from the connections it holds and its
    /// thresholds in `svc` (ipvsadm `-e -x/-y`, a reload), compared with those it had in
    /// `old` (IPVS's `__ip_vs_update_dest`, `ServerSpec::overloaded_after_update`):
    /// otherwise a raised or removed threshold would keep the server out of rotation
    /// until one of its connections ends. A server the previous snapshot did not have
    /// (new, or back in its reserved slot with live connections) is compared with no
    /// thresholds.
    fn update_thresholds(svc: &ServiceRt, old: &ServiceRt) {
        for (slot, r) in svc.reals.iter().enumerate() {
            let Some(r) = r else { continue };
            let before = match (old.reals.get(slot), old.specs.get(slot)) {
                (Some(Some(o)), Some(spec)) if o.addr == r.addr && o.port == r.port => spec,
                _ => &NO_THRESHOLDS,
            };
            svc.live[slot].update_thresholds(before, &svc.specs[slot]);
        }
    }

    /// A `layer: 7` service's pools: each a scheduler over the service's slots with the
    /// servers outside the pool, or down for its own check, weighted 0 (never picked,
    /// IPVS's quiesced weight), so live counters and the service's health are shared; hit
    /// counters carried over by pool name.
    fn build_layer7(
        s: &ServiceSpec,
        l: &crate::synproxy::layer7::Layer7Spec,
        reals: &[Option<RealRt>],
        specs: &[ServerSpec],
        old: Option<&ServiceRt>,
        workers: usize,
    ) -> Result<crate::synproxy::layer7::Layer7Rt, TablesError> {
        use crate::synproxy::layer7::{Layer7Rt, PoolRt};
        let mut pools = Vec::with_capacity(l.pools.len());
        for p in &l.pools {
            let mut ps = specs.to_vec();
            for (slot, spec) in ps.iter_mut().enumerate() {
                // Down for this pool's own check: as if outside it, for this pool only.
                let member = reals[slot].as_ref().is_some_and(|r| {
                    p.members.contains(&r.addr) && !p.down.contains(&(r.addr, r.port))
                });
                if !member {
                    spec.weight = 0;
                }
            }
            let sched = Scheduler::build(&p.sched, &ps).map_err(|e| {
                TablesError::Scheduler(s.name.clone(), format!("pool {}: {e}", p.name))
            })?;
            let hits = old
                .and_then(|o| o.layer7.as_ref())
                .and_then(|o| o.pools.iter().find(|q| q.name == p.name))
                .map(|q| q.hits.clone())
                .unwrap_or_else(|| Arc::new(PerWorkerStats::new(workers)));
            pools.push(PoolRt {
                name: p.name.clone(),
                sched,
                hits,
                members: p.members.clone(),
                down: p.down.clone(),
            });
        }
        Ok(Layer7Rt {
            pools,
            rules: l.rules.clone(),
            default_pool: l.default_pool.min(l.pools.len().saturating_sub(1)),
            head_limit: l.head_limit.max(1) as usize,
            head_timeout_ms: l.head_timeout_s.saturating_mul(1000).max(1),
        })
    }
}
