//! The uvsd daemon: turns a configuration into running workers and keeps them fed.
//!
//! Startup order matters: the tables and the XDP programs' address maps are ready before
//! any socket is registered, so the first redirected frame already finds its service.
//! Each worker opens its own AF_XDP socket per interface inside its pinned thread and
//! registers it; then the control loop runs: connection expiry (and the live counters it
//! releases), reload on SIGHUP or file change, health events, rates, admin and metrics.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use uvs_dataplane::wake::Stop;

use anyhow::{anyhow, bail, Context, Result};
use arc_swap::ArcSwap;
use uvs_config::Config;
use uvs_dataplane::lifecycle;
use uvs_dataplane::{IpKey, Shared, Tables, TablesBuilder, Worker};
use uvs_xsk::{FastRoute, FastRoute6, XdpMode, XdpProgram, XskConfig, XskPort};

use crate::spec::{self, LinkInfo};

/// The running configuration and what was built from it.
pub struct Running {
    pub config: Config,
}

/// Everything the control thread, the admin socket and the metrics endpoint share.
pub struct Core {
    pub shared: Arc<Shared>,
    pub running: Mutex<Running>,
    /// Each interface's MAC and MTU, in the configuration's order (read again when the
    /// interface is made again).
    pub links: Mutex<Vec<LinkInfo>>,
    /// Each interface's XDP program, in the configuration's order: replaced when the
    /// interface is made again (`Core::reattach`).
    pub programs: Vec<ArcSwap<XdpProgram>>,
    /// The kernel's own addresses, given to every program (its `host` map).
    host: Vec<IpAddr>,
    /// Workers that could not open a port on an interface made again, and why.
    reopen_failures: Mutex<Vec<String>>,
    /// Per interface (the configuration's order), the times uvsd attached to it again.
    pub attached_again: Vec<AtomicU64>,
    /// Per worker: standing by, its queue missing on an interface made again with fewer
    /// queues (`stand_by`).
    pub standing_by: Vec<AtomicBool>,
    pub config_path: PathBuf,
    pub cores: Vec<Option<usize>>,
    pub rates: Mutex<crate::status::RateSampler>,
    /// The expiry sweep's memory between rounds (which templates still place flows).
    expiry: Mutex<lifecycle::Expiry>,
    /// Addresses currently in the XDP maps, to diff on reload.
    maps: Mutex<MapState>,
    /// Bumped by every configuration applied (reload or uvsadm edit): the control loop
    /// restarts the health checks when it moves, so a server added by uvsadm is checked.
    generation: std::sync::atomic::AtomicU64,
    /// uvsadm edits applied since the file was last loaded (a reload discards them).
    runtime_edits: std::sync::atomic::AtomicU64,
    /// The VIP groups' running roles (active/backup). Locked after `running`, before `maps`.
    cluster: Mutex<crate::cluster::Roles>,
    /// The connection-sync daemon the running configuration asks for.
    pub sync: Mutex<Option<crate::sync::SyncDaemon>>,
    /// BGP announcement of the VIPs and the drain state (`crate::announce`).
    pub node: crate::announce::Node,
    /// The client lookup service the running configuration asks for (`crate::clientof`).
    pub client_lookup: Mutex<Option<crate::clientof::LookupService>>,
    /// Real servers down for some `layer: 7` pools only (`crate::poolhealth`).
    pub pool_health: crate::poolhealth::PoolHealth,
    /// Each real server's slot, for [`Core::with_live`]; held while a snapshot is built
    /// and published ([`Core::publish`]).
    slots: Mutex<SlotIndex>,
    /// Live slots moved to larger arrays, with when: settled a second later
    /// ([`Core::settle_growth`]).
    growing: Mutex<Vec<(Instant, uvs_dataplane::tables::LiveGrowth)>>,
}

/// The slot of each real server of each service in one tables snapshot, rebuilt when the
/// snapshot changes (a reload or an edit), so finding one costs a hash, not a scan.
#[derive(Default)]
pub(crate) struct SlotIndex {
    /// The snapshot indexed ([`Tables::epoch`]; 0: none).
    epoch: u64,
    of: HashMap<(uvs_dataplane::ServiceKey, std::net::SocketAddr), usize>,
}

impl SlotIndex {
    /// The slot of `real` in the service `key` of `tables`.
    fn slot(
        &mut self,
        tables: &Tables,
        key: uvs_dataplane::ServiceKey,
        real: std::net::SocketAddr,
    ) -> Option<usize> {
        if self.epoch != tables.epoch {
            self.epoch = tables.epoch;
            self.of.clear();
            for svc in tables.services.iter().flatten() {
                for (slot, r) in svc.reals.iter().enumerate() {
                    if let Some(r) = r {
                        let at = std::net::SocketAddr::new(r.addr.to_ip(), r.port);
                        self.of.entry((svc.key, at)).or_insert(slot);
                    }
                }
            }
        }
        // As the index holds it: no flow label or scope id.
        let real = std::net::SocketAddr::new(real.ip(), real.port());
        self.of.get(&(key, real)).copied()
    }
}

#[derive(Default, Clone, PartialEq, Eq)]
struct MapState {
    owned: BTreeSet<IpAddr>,
    reals: BTreeSet<IpAddr>,
    /// Real servers gone from the configuration whose connections still run: their replies
    /// must keep reaching uvs until the last one ends (unless expire_nodest_conn).
    lingering: BTreeSet<IpAddr>,
    /// (real server, protocol, port) of every service: the XDP program sends a real
    /// server's packets to uvs only from these (port 0: any), the rest to the kernel.
    ports: BTreeSet<RealPort>,
    /// Service ports gone from the configuration whose connections still run (the address
    /// may still serve other services): kept until their last connection ends.
    lingering_ports: BTreeSet<RealPort>,
    /// Firewall marks' destination prefixes and what of them goes to uvs.
    marks: crate::fwmark::Steering,
}

type RealPort = (IpAddr, u8, u16);

/// The XDP maps' contents for `cfg`, leaving out the addresses of backup groups (`silent`):
/// their traffic and ARP/NDP then go to the kernel, which does not hold them either.
fn map_state(cfg: &Config, silent: &BTreeSet<IpAddr>) -> MapState {
    let mut m = MapState::default();
    for i in &cfg.interfaces {
        m.owned.extend(i.local.iter().copied());
    }
    for s in &cfg.services {
        if s.fwmark == 0 {
            m.owned.insert(s.vip);
        }
        m.owned.extend(s.fullnat_pool.iter().copied());
        m.reals.extend(s.real_servers.iter().map(|r| r.address));
        for proto in crate::fwmark::reply_protocols(cfg, s) {
            let proto = spec::proto_number(proto);
            m.ports
                .extend(s.real_servers.iter().map(|r| (r.address, proto, r.port)));
            if let Some(o) = s.sorry_server {
                m.reals.insert(o.address);
                m.ports.insert((o.address, proto, o.port));
            }
        }
    }
    m.marks = crate::fwmark::steering(cfg);
    m.owned.retain(|a| !silent.contains(a));
    m
}

impl MapState {
    /// Every real server address in the maps: configured or lingering.
    fn all_reals(&self) -> BTreeSet<IpAddr> {
        self.reals.union(&self.lingering).copied().collect()
    }

    /// Every real server port in the maps: configured or lingering.
    fn all_ports(&self) -> BTreeSet<RealPort> {
        self.ports.union(&self.lingering_ports).copied().collect()
    }

    /// The maps' next state: `self` (the configuration's, from [`map_state`]) plus what of
    /// `have` lingers. Without expire_nodest_conn a real server address, or a service port
    /// of one, that leaves the configuration stays in the maps while its connections run,
    /// so their replies keep reaching uvs: a port lingers on its own when its address still
    /// serves another service (the same server in a TCP and a UDP service, say).
    fn with_lingering(mut self, have: &MapState, expire_nodest_conn: bool) -> MapState {
        if !expire_nodest_conn {
            self.lingering = have.all_reals().difference(&self.reals).copied().collect();
            self.lingering_ports = have.all_ports().difference(&self.ports).copied().collect();
        }
        self
    }

    /// What of the lingering addresses and ports no connection uses any more, given the
    /// (real server, protocol, real port) of every flow in the table. A port-0 entry (a
    /// service of every port) is in use while any flow of its address and protocol is.
    fn released(&self, busy: &BTreeSet<RealPort>) -> (Vec<IpAddr>, Vec<RealPort>) {
        let addr_busy = |a: &IpAddr| busy.range((*a, 0, 0)..=(*a, u8::MAX, u16::MAX)).next();
        let port_busy = |&(a, proto, port): &RealPort| {
            if port == 0 {
                busy.range((a, proto, 0)..=(a, proto, u16::MAX))
                    .next()
                    .is_some()
            } else {
                busy.contains(&(a, proto, port))
            }
        };
        let addrs = self
            .lingering
            .iter()
            .filter(|a| addr_busy(a).is_none())
            .copied()
            .collect();
        let ports = self
            .lingering_ports
            .iter()
            .filter(|p| !port_busy(p))
            .copied()
            .collect();
        (addrs, ports)
    }
}

impl Core {
    /// Every interface's XDP program as it is now.
    pub fn programs(&self) -> Vec<Arc<XdpProgram>> {
        self.programs.iter().map(ArcSwap::load_full).collect()
    }

    /// Attaches a new XDP program to interface `i` (made again: another index), taking
    /// over the old one's counters and fast-path table and given what else it held (the
    /// host's addresses, the owned addresses, real servers, their ports and the firewall
    /// marks), puts it in place and has every worker open its AF_XDP socket there again
    /// (`Shared::reopen_ports`). The connection table and the workers' counters stay; the
    /// neighbours are learnt again. With the kernel fast path on, the fast path is turned
    /// on in the new program and every interface's TC routes are written again.
    fn reattach(&self, i: usize) -> Result<()> {
        let config = self.running.lock().expect("running lock").config.clone();
        let iface = config
            .interfaces
            .get(i)
            .ok_or_else(|| anyhow!("no interface {i}"))?;
        let info = spec::link_info(&iface.name).map_err(|e| anyhow!(e))?;
        let mode = xdp_mode(iface.xdp_mode);
        // The new program takes over the old one's counters, and its fast-path table: the
        // workers' mapping of it stays good, and so do the lines they wrote (a flow's
        // tuples are the same on the interface made again).
        let fast = config.workers.kernel_fast_path;
        let p = XdpProgram::attach_in_place_of(&iface.name, mode, &self.programs[i].load())
            .map_err(|e| anyhow!("{e}"))?;
        {
            let have = self.maps.lock().expect("map state lock");
            let err = |e: uvs_xsk::XskError| anyhow!("{e}");
            for a in &self.host {
                p.add_host(*a).map_err(err)?;
            }
            for a in &have.owned {
                p.add_owned(*a).map_err(err)?;
            }
            for a in have.all_reals() {
                p.add_real(a).map_err(err)?;
            }
            for (a, proto, port) in have.all_ports() {
                p.add_real_port(a, proto, port).map_err(err)?;
            }
            for (&(prefix, len), ranges) in &have.marks {
                p.add_mark(prefix, len, ranges).map_err(err)?;
            }
            if fast {
                p.set_fast_path(true).map_err(err)?;
            }
        }
        self.programs[i].store(Arc::new(p));
        if fast {
            set_fast6(&self.programs(), &self.shared.tables.load());
            // Every interface's routes name the one made again by its new index, and its
            // TC program is attached here the first time.
            set_fast_routes(&self.programs(), &self.shared.tables.load());
        }
        // A new interface has its own MAC (a veth made again gets a random one) and maybe
        // another MTU: the tables are built again with them. Its peers may be new too
        // (another container, another MAC): the neighbours are learnt again.
        if let Some(l) = self.links.lock().expect("links lock").get_mut(i) {
            *l = info;
        }
        self.publish_pool_health();
        self.shared.neigh.clear();
        self.reopen_failures.lock().expect("reopen lock").clear();
        for (w, flag) in self.shared.reopen_ports.iter().enumerate() {
            flag.store(true, Ordering::Release);
            if let Some(bell) = self.shared.doorbells.get(w) {
                bell.ring();
            }
        }
        let t0 = Instant::now();
        while self
            .shared
            .reopen_ports
            .iter()
            .any(|f| f.load(Ordering::Acquire))
        {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("the workers did not open their sockets again within 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let failed = self.reopen_failures.lock().expect("reopen lock");
        if !failed.is_empty() {
            bail!("{}", failed.join("; "));
        }
        if let Some(n) = self.attached_again.get(i) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn sync_maps(&self, cfg: &Config, silent: &BTreeSet<IpAddr>) -> Result<()> {
        let mut have = self.maps.lock().expect("map state lock");
        let want = map_state(cfg, silent).with_lingering(&have, cfg.expire_nodest_conn);
        let (previous, want_reals) = (have.all_reals(), want.all_reals());
        let (prev_ports, want_ports) = (have.all_ports(), want.all_ports());
        for p in &self.programs() {
            for a in want.owned.difference(&have.owned) {
                p.add_owned(*a)?;
            }
            for a in have.owned.difference(&want.owned) {
                p.remove_owned(*a)?;
            }
            for a in want_reals.difference(&previous) {
                p.add_real(*a)?;
            }
            for a in previous.difference(&want_reals) {
                p.remove_real(*a)?;
            }
            for &(a, proto, port) in want_ports.difference(&prev_ports) {
                p.add_real_port(a, proto, port)?;
            }
            for &(a, proto, port) in prev_ports.difference(&want_ports) {
                p.remove_real_port(a, proto, port)?;
            }
            for (&(prefix, len), ranges) in &want.marks {
                if have.marks.get(&(prefix, len)) != Some(ranges) {
                    p.add_mark(prefix, len, ranges)?;
                }
            }
            for &(prefix, len) in have.marks.keys() {
                if !want.marks.contains_key(&(prefix, len)) {
                    p.remove_mark(prefix, len)?;
                }
            }
        }
        *have = want;
        Ok(())
    }

    /// Lets go of removed real servers, and removed service ports of real servers, whose
    /// last connection has ended.
    fn release_lingering(&self) {
        let mut have = self.maps.lock().expect("map state lock");
        if have.lingering.is_empty() && have.lingering_ports.is_empty() {
            return;
        }
        let mut busy = BTreeSet::new();
        self.shared.conns.for_each(|_, c, _| {
            if lifecycle::is_flow(c) {
                let a = lifecycle::real_addr(c).to_ip();
                busy.insert((a, c.orig.proto, c.reply.sport));
            }
        });
        let (addrs, ports) = have.released(&busy);
        for rp @ &(a, proto, port) in &ports {
            have.lingering_ports.remove(rp);
            for p in &self.programs() {
                if let Err(e) = p.remove_real_port(a, proto, port) {
                    log::warn!("removing {a} port {port} from the XDP map: {e}");
                }
            }
            log::info!("removed service port {port} of real server {a} has no connections left");
        }
        for a in addrs {
            have.lingering.remove(&a);
            for p in &self.programs() {
                if let Err(e) = p.remove_real(a) {
                    log::warn!("removing {a} from the XDP map: {e}");
                }
            }
            log::info!("removed real server {a} has no connections left");
        }
    }

    /// Validates, builds and publishes `new`. Interfaces, workers and the table size are
    /// fixed for the daemon's life: a change there is refused (restart to apply it).
    pub fn apply_config(&self, mut new: Config) -> Result<(), String> {
        let mut running = self.running.lock().expect("running lock");
        let d = uvs_config::diff(&running.config, &new);
        if d.global_changed {
            return Err(
                "interfaces, workers or the connection table size changed: these need a restart of uvsd"
                    .into(),
            );
        }
        if let Some(held) = hold_restart_only(&running.config, &mut new) {
            log::warn!("{held}");
        }
        crate::privileges::check_users(&new)?;
        crate::webcheck::check_ca_files(&new)?;
        let links = self.links.lock().expect("links lock").clone();
        let mut spec = spec::tables_spec(&new, Some(&links));
        self.pool_health.apply(&mut spec);
        // Held from the build to the publication: a health verdict or an agent's report is
        // not told to live slots a growing service leaves behind (`Core::with_live`).
        let slots = self.lock_slots();
        let current = self.shared.tables.load_full();
        let tables = TablesBuilder::build(&spec, Some(&current)).map_err(|e| e.to_string())?;
        let mut roles = self.cluster.lock().expect("cluster lock");
        let new_roles = roles.reconcile(&running.config, &new);
        let silent = crate::cluster::silent_addresses(&new, &new_roles);
        // Silence first, then the maps: an address going backup is never answered for
        // once it is no longer claimed, and one going master is answered once claimed.
        self.shared
            .cluster
            .set_silent(crate::cluster::addr_set(&silent));
        if let Err(e) = self.sync_maps(&new, &silent) {
            let old = crate::cluster::silent_addresses(&running.config, &roles);
            self.shared
                .cluster
                .set_silent(crate::cluster::addr_set(&old));
            return Err(format!("updating the XDP maps: {e}"));
        }
        for g in new_roles.new_masters(&roles) {
            log::info!("cluster: group {g} is master (configuration)");
            announce(&self.shared, &new, &g);
        }
        *roles = new_roles;
        drop(roles);
        if tables.services.iter().flatten().any(|s| s.syn_proxy) {
            // The SYN proxy's splice table is allocated here, by control, rather than by
            // the first proxied handshake on a worker.
            self.shared.synproxy.splices(&self.shared.conns);
        }
        self.publish(tables, slots);
        self.shared.settings.store(lifecycle_settings(&new));
        if new.expire_nodest_conn {
            self.expire_nodest();
        }
        running.config = new;
        self.generation.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// `uvsadm cluster role GROUP ROLE`: switches a VIP group. Master claims the group's
    /// addresses and announces them (also when it was master already: keepalived re-runs
    /// notify_master and the neighbours may have missed the last announcement); backup
    /// releases them. Returns what changed, for the log and uvsadm.
    pub fn set_role(&self, group: &str, role: uvs_config::ClusterRole) -> Result<String, String> {
        let running = self.running.lock().expect("running lock");
        let cfg = &running.config;
        let mut roles = self.cluster.lock().expect("cluster lock");
        let Some(i) = roles.groups.iter().position(|g| g.name == group) else {
            let names: Vec<&str> = roles.groups.iter().map(|g| g.name.as_str()).collect();
            return Err(if names.is_empty() {
                format!("no cluster group '{group}': the configuration has no `cluster.groups`")
            } else {
                format!(
                    "no cluster group '{group}': the groups are {}",
                    names.join(", ")
                )
            });
        };
        let before = roles.groups[i].role;
        let mut next = roles.clone();
        next.groups[i].role = role;
        next.groups[i].since = Instant::now();
        if before != role {
            next.groups[i].switches += 1;
        }
        let silent = crate::cluster::silent_addresses(cfg, &next);
        self.shared
            .cluster
            .set_silent(crate::cluster::addr_set(&silent));
        if let Err(e) = self.sync_maps(cfg, &silent) {
            // Put the previous silent set back: the maps may be half updated, and the
            // next change retries from what `maps` records.
            let old = crate::cluster::silent_addresses(cfg, &roles);
            self.shared
                .cluster
                .set_silent(crate::cluster::addr_set(&old));
            return Err(format!("updating the XDP maps: {e}"));
        }
        *roles = next;
        let claimed = cfg
            .cluster
            .groups
            .iter()
            .position(|g| g.name == group)
            .map(|gi| crate::cluster::group_addresses(cfg, gi).len())
            .unwrap_or(0);
        let what = format!("group {group}: {before} → {role} ({claimed} address(es))");
        log::info!("cluster: {what}");
        if role == uvs_config::ClusterRole::Master {
            announce(&self.shared, cfg, group);
        }
        Ok(what)
    }

    /// What `uvsadm cluster` lists.
    pub fn cluster_status(&self) -> crate::cluster::ClusterStatus {
        let running = self.running.lock().expect("running lock");
        let roles = self.cluster.lock().expect("cluster lock");
        let sent = self
            .shared
            .counters
            .iter()
            .map(|c| c.announcements.get())
            .sum();
        crate::cluster::status(&running.config, &roles, sent)
    }

    /// Starts, restarts or stops the sync daemon to match the running configuration.
    pub fn sync_follow_config(self: &Arc<Self>) {
        let want = self
            .running
            .lock()
            .expect("running lock")
            .config
            .sync
            .clone();
        let mut sync = self.sync.lock().expect("sync lock");
        if sync.as_ref().map(|d| &d.config) == want.as_ref() {
            return;
        }
        // A direction started or stopped beside the other: only that one.
        if let (Some(d), Some(cfg)) = (sync.as_mut(), want.as_ref()) {
            match d.change_mode(cfg) {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    log::error!("{e:#}");
                    return;
                }
            }
        }
        // Stop the old one first: the new one binds the same port.
        *sync = None;
        if let Some(cfg) = want {
            match crate::sync::SyncDaemon::start(self.shared.clone(), cfg) {
                Ok(d) => *sync = Some(d),
                Err(e) => log::error!("connection sync not started: {e:#}"),
            }
        }
        if sync.is_none() {
            // Nothing will come from peers: segments without an entry are reset again.
            self.shared.sync_learning.store(false, Ordering::Relaxed);
        }
    }

    /// Starts, restarts or stops the client lookup service to match the configuration.
    pub fn client_lookup_follow_config(&self) {
        let want = self
            .running
            .lock()
            .expect("running lock")
            .config
            .client_lookup
            .clone();
        let mut svc = self.client_lookup.lock().expect("client lookup lock");
        if svc.as_ref().map(|s| &s.config) == want.as_ref() {
            return;
        }
        // Stop the old one first: the new one may bind the same port.
        *svc = None;
        if let Some(cfg) = want {
            match crate::clientof::LookupService::start(self.shared.clone(), cfg) {
                Ok(s) => *svc = Some(s),
                Err(e) => log::error!("client lookup not started: {e:#}"),
            }
        }
    }

    /// Applies a uvsadm edit: as a reload, and remembered so that a later reload of the
    /// file, which does not contain it, says that it discards it.
    pub fn apply_admin_edit(&self, new: Config) -> Result<(), String> {
        self.apply_config(new)?;
        self.runtime_edits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// IPVS expire_nodest_conn: drop the connections whose real server is gone or down.
    fn expire_nodest(&self) -> usize {
        let tables = self.shared.tables.load();
        let mut gone = Vec::new();
        self.shared.conns.for_each(|id, c, _| {
            if lifecycle::is_flow(c) && !lifecycle::conn_alive(&tables, c) {
                gone.push((id, *c));
            }
        });
        let fast = self.shared.fast.active();
        let mut n = 0;
        for (id, c) in gone {
            if self.shared.conns.remove(id) {
                lifecycle::unbind(&tables, &c);
                // Its kernel fast-path lines go too: the XDP program must not forward the
                // removed connection's packets to the server for the rest of a window.
                if let Some(fast) = fast {
                    uvs_dataplane::fastpath::expire_conn(fast, &c);
                }
                n += 1;
            }
        }
        n
    }

    /// One round of connection expiry; reclaimed entries release their live counters, and
    /// persistence templates stay while their connections do (`lifecycle::Expiry`).
    /// With `drop_entry` and a table at least 7/8 full, half-open connections go too.
    pub fn expire(&self, budget: usize) -> usize {
        let tables = self.shared.tables.load();
        // Deadlines are connection-table ticks (milliseconds), not seconds.
        let now = self.shared.clock.now_ticks();
        let conns = &self.shared.conns;
        let mut n = self
            .expiry
            .lock()
            .expect("expiry lock")
            .round(conns, &tables, now, budget);
        if self.shared.settings.load().drop_entry {
            let dropped = lifecycle::drop_half_open(conns, &tables, now);
            self.shared
                .conns_dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
            n += dropped;
        }
        n
    }

    /// Locks the slot index: held while a snapshot is built and published.
    pub(crate) fn lock_slots(&self) -> std::sync::MutexGuard<'_, SlotIndex> {
        self.slots.lock().expect("slots lock")
    }

    /// Publishes `tables`, built while `_slots` was held, keeping the live slots it moved
    /// to larger arrays to settle later.
    pub(crate) fn publish(&self, mut tables: Tables, _slots: std::sync::MutexGuard<'_, SlotIndex>) {
        let grown = std::mem::take(&mut tables.grown);
        if self.shared.fast.active().is_some() {
            if self.shared.tables.load().routes() != tables.routes() {
                set_fast_routes(&self.programs(), &tables);
            }
            set_fast6(&self.programs(), &tables);
        }
        self.shared.tables.store(Arc::new(tables));
        if !grown.is_empty() {
            let now = Instant::now();
            let mut growing = self.growing.lock().expect("growing lock");
            growing.extend(grown.into_iter().map(|g| (now, g)));
        }
    }

    /// Carries over the connections workers still on an earlier snapshot counted on live
    /// slots since moved to a larger array, once a second has passed (a worker takes the
    /// snapshot afresh at every poll).
    pub fn settle_growth(&self) {
        let mut growing = self.growing.lock().expect("growing lock");
        growing.retain(|(when, g)| {
            if when.elapsed() < Duration::from_secs(1) {
                return true;
            }
            g.settle();
            false
        });
    }

    /// Runs `f` on the live state of a real server of a service, with what the running
    /// snapshot configures for it (weight, thresholds).
    pub(crate) fn with_live(
        &self,
        key: uvs_dataplane::ServiceKey,
        real: std::net::SocketAddr,
        f: impl Fn(&uvs_sched::ServerLive, &uvs_sched::ServerSpec),
    ) {
        // Locked before the tables are loaded and until `f` is done: a snapshot being
        // built meanwhile, which may copy live slots to a larger array, is published
        // before or after, never with `f`'s write left behind.
        let mut slots = self.lock_slots();
        let tables = self.shared.tables.load();
        // By the indexes: the health checks' start calls this three times for every real
        // server and their feedback once a second, so a scan of the services, or of a
        // service's servers, would make a reload (and the idle second) quadratic.
        let Some(svc) = tables.service_by_key(&key) else {
            return;
        };
        if let Some(slot) = slots.slot(&tables, key, real) {
            f(&svc.live[slot], &svc.specs[slot]);
        }
    }

    /// Applies a health verdict to a real server's live state.
    /// A server that went down loses its connections at once under expire_nodest_conn
    /// (IPVS, where keepalived removes a failed server, does the same) — once, when it
    /// goes down: a reload or edit that tells a down server's state again expires nothing
    /// more (a configuration that turns expire_nodest_conn on expires at once, in
    /// [`Core::apply_config`]) and logs nothing.
    pub fn set_health(&self, key: uvs_dataplane::ServiceKey, real: std::net::SocketAddr, up: bool) {
        let went_down = std::cell::Cell::new(false);
        self.with_live(key, real, |l, _| {
            if l.health_up.swap(up, Ordering::Relaxed) && !up {
                went_down.set(true);
            }
        });
        if went_down.get() && self.shared.settings.load().expire_nodest_conn {
            let n = self.expire_nodest();
            log::info!("{real} is down: expired {n} of its connections (expire_nodest_conn)");
        }
    }

    /// Feeds measured response time (`fastest`) and reported load (`load`) to the schedulers.
    pub fn set_feedback(
        &self,
        key: uvs_dataplane::ServiceKey,
        real: std::net::SocketAddr,
        rtt_us: u32,
        load: Option<u32>,
    ) {
        self.with_live(key, real, |l, _| {
            l.rtt_us.store(rtt_us, Ordering::Relaxed);
            if let Some(load) = load {
                l.load.store(load, Ordering::Relaxed);
            }
        });
    }
}

/// Asks the workers to announce `group`'s addresses (gratuitous ARP, unsolicited NA).
fn announce(shared: &Shared, cfg: &Config, group: &str) {
    let Some(i) = cfg.cluster.groups.iter().position(|g| g.name == group) else {
        return;
    };
    if let Some(a) = crate::cluster::announcement(cfg, i) {
        shared.announce(a);
    }
}

/// The connection-lifecycle sysctls of a configuration, as the workers read them.
fn lifecycle_settings(c: &Config) -> lifecycle::Settings {
    lifecycle::Settings {
        conn_reuse_mode: c.conn_reuse_mode,
        expire_nodest_conn: c.expire_nodest_conn,
        expire_quiescent_template: c.expire_quiescent_template,
        drop_entry: c.drop_entry,
    }
}

/// Command-line overrides.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub admin_socket: Option<PathBuf>,
    /// Stop after this long (demos and tests).
    pub run_for: Option<Duration>,
}

/// The capabilities uvsd needs, not root as such (`crate::privileges`).
fn check_privileges() -> Result<()> {
    crate::privileges::check_daemon().map_err(|e| anyhow!(e))
}

/// `net.ipv6.conf.all.forwarding` in uvsd's network namespace as the file holds it; `None`
/// without it (a kernel without IPv6).
fn ipv6_forwarding() -> Option<String> {
    std::fs::read_to_string(IPV6_FORWARDING)
        .ok()
        .map(|s| s.trim().to_string())
}

const IPV6_FORWARDING: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

/// Whether `tables` has an IPv6 service (a VIP or an IPv6 firewall-mark service).
fn has_ipv6_services(tables: &Tables) -> bool {
    tables.services.iter().flatten().any(|s| s.key.vip.v6)
}

/// Whether the fast path's IPv6 half was left off while IPv6 services exist (warned once).
static FAST6_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns the kernel fast path's IPv6 half on in every program where the kernel forwards
/// IPv6 (`net.ipv6.conf.all.forwarding`, read again at each new snapshot), off where it
/// does not: the IPv6 frames the program rewrites that the TC program does not send on
/// are the kernel's to forward, and with forwarding off it would drop them. uvsd refuses
/// to start with IPv6 services and IPv6 forwarding off (`start_fast_path`); one that gets
/// its first IPv6 service at a reload, or loses IPv6 forwarding while it runs, keeps those
/// flows with the workers and warns.
fn set_fast6(programs: &[Arc<XdpProgram>], tables: &Tables) {
    use std::sync::atomic::Ordering;
    let on = ipv6_forwarding().as_deref() == Some("1");
    if on {
        FAST6_WARNED.store(false, Ordering::Relaxed);
    } else if has_ipv6_services(tables) && !FAST6_WARNED.swap(true, Ordering::Relaxed) {
        log::warn!(
            "workers.kernel_fast_path: net.ipv6.conf.all.forwarding is not 1 in uvsd's \
             network namespace: IPv6 flows stay with the workers until it is"
        );
    }
    for p in programs {
        if let Err(e) = p.set_fast_path6(on) {
            log::warn!("{}: {e}", p.ifname());
        }
    }
}

/// `workers.kernel_fast_path`: the kernel forwards the fast path's packets, so uvsd
/// refuses to start unless IPv4 forwarding is on in its network namespace, and IPv6
/// forwarding too when an IPv6 service exists; then each interface's tables are mapped
/// for the workers and its program told to read them (IPv6's where the kernel forwards
/// IPv6, `set_fast6`).
fn start_fast_path(shared: &Shared, programs: &[Arc<XdpProgram>]) -> Result<()> {
    const FORWARDING: &str = "/proc/sys/net/ipv4/ip_forward";
    let forwarding = std::fs::read_to_string(FORWARDING)
        .with_context(|| format!("workers.kernel_fast_path: reading {FORWARDING}"))?;
    if forwarding.trim() != "1" {
        bail!(
            "workers.kernel_fast_path: the kernel forwards the fast path's packets, but \
             net.ipv4.ip_forward is {} in uvsd's network namespace; set it to 1 \
             (sysctl -w net.ipv4.ip_forward=1, as IPVS's NAT needs) or turn the fast path off",
            forwarding.trim()
        );
    }
    let v6 = ipv6_forwarding();
    if has_ipv6_services(&shared.tables.load()) && v6.as_deref() != Some("1") {
        bail!(
            "workers.kernel_fast_path: the kernel forwards the fast path's packets, but \
             net.ipv6.conf.all.forwarding is {} in uvsd's network namespace and IPv6 \
             services are configured; set it to 1 (sysctl -w \
             net.ipv6.conf.all.forwarding=1, as IPVS's NAT needs for IPv6) or turn the fast \
             path off",
            v6.as_deref().unwrap_or("missing (no IPv6)")
        );
    }
    let mut tables: Vec<Arc<dyn uvs_port::fast::FastTable>> = Vec::new();
    for p in programs {
        tables.push(Arc::new(p.fast_table().map_err(|e| anyhow!("{e}"))?));
    }
    shared.fast.set_tables(tables);
    shared.fast.set_on(true);
    for p in programs {
        p.set_fast_path(true).map_err(|e| anyhow!("{e}"))?;
    }
    set_fast_routes(programs, &shared.tables.load());
    set_fast6(programs, &shared.tables.load());
    log::info!(
        "kernel fast path on: established IPv4 and IPv6 TCP/UDP NAT and FullNAT flows are \
         rewritten by the XDP program and sent on past the workers"
    );
    Ok(())
}

/// Gives every interface's fast-path TC program uvs's IPv4 and IPv6 routes of `tables`
/// (the workers' own: the interfaces' networks and configured routes), so the frames the
/// fast path rewrote leave by them past the kernel's forwarding. On failure (a kernel
/// without TCX links) the kernel forwards them, as before, with a warning.
fn set_fast_routes(programs: &[Arc<XdpProgram>], tables: &Tables) {
    let ifindexes: Vec<u32> = programs.iter().map(|p| p.ifindex()).collect();
    let routes = fast_routes(tables, &ifindexes);
    let routes6 = fast_routes6(tables, &ifindexes);
    for p in programs {
        if let Err(e) = p.set_fast_routes(&routes, &routes6) {
            log::warn!(
                "{}: the kernel fast path's frames stay with the kernel's forwarding: {e}",
                p.ifname()
            );
        }
    }
}

/// The IPv4 routes of `tables` as the fast path's TC program takes them, `ifindexes` the
/// interfaces' indexes by port (the order of the configuration's `interfaces`).
fn fast_routes(tables: &Tables, ifindexes: &[u32]) -> Vec<FastRoute> {
    let v4 = |k: &IpKey| match k.to_ip() {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    };
    tables
        .routes()
        .iter()
        .filter_map(|r| {
            let port = usize::from(r.port);
            Some(FastRoute {
                prefix: v4(&r.prefix)?,
                len: r.len,
                ifindex: *ifindexes.get(port)?,
                via: match &r.via {
                    Some(v) => Some(v4(v)?),
                    None => None,
                },
                mtu: tables.ifaces.get(port)?.mtu,
            })
        })
        .collect()
}

/// The IPv6 routes of `tables` as the fast path's TC program takes them ([`fast_routes`]).
fn fast_routes6(tables: &Tables, ifindexes: &[u32]) -> Vec<FastRoute6> {
    let v6 = |k: &IpKey| match k.to_ip() {
        IpAddr::V6(a) => Some(a),
        IpAddr::V4(_) => None,
    };
    tables
        .routes()
        .iter()
        .filter_map(|r| {
            let port = usize::from(r.port);
            Some(FastRoute6 {
                prefix: v6(&r.prefix)?,
                len: r.len,
                ifindex: *ifindexes.get(port)?,
                via: match &r.via {
                    Some(v) => Some(v6(v)?),
                    None => None,
                },
                mtu: tables.ifaces.get(port)?.mtu,
            })
        })
        .collect()
}

pub(crate) fn xdp_mode(m: uvs_config::XdpMode) -> XdpMode {
    match m {
        uvs_config::XdpMode::Auto => XdpMode::Auto,
        uvs_config::XdpMode::Native => XdpMode::Native,
        uvs_config::XdpMode::Generic => XdpMode::Generic,
    }
}

fn zero_copy(z: uvs_config::ZeroCopy) -> uvs_xsk::ZeroCopy {
    match z {
        uvs_config::ZeroCopy::Auto => uvs_xsk::ZeroCopy::Auto,
        uvs_config::ZeroCopy::On => uvs_xsk::ZeroCopy::On,
        uvs_config::ZeroCopy::Off => uvs_xsk::ZeroCopy::Off,
    }
}

/// Runs uvsd until SIGINT/SIGTERM (or `run_for`).
/// SIGTERM/SIGINT and SIGHUP as flags, set from uvsd's first moment: a signal that comes
/// while it starts (systemd's `reload` right after `start`) is handled once it runs — a
/// stop stops it, a reload reloads — instead of killing it by the default action.
pub struct Signals {
    pub term: Arc<AtomicBool>,
    pub hup: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> Result<Signals> {
        let s = Signals {
            term: Arc::new(AtomicBool::new(false)),
            hup: Arc::new(AtomicBool::new(false)),
        };
        signal_hook::flag::register(signal_hook::consts::SIGTERM, s.term.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGINT, s.term.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGHUP, s.hup.clone())?;
        Ok(s)
    }
}

pub fn run(config_path: &Path, opts: Options) -> Result<()> {
    let signals = Signals::register()?;
    // Before any thread starts: they inherit the emptied sets.
    crate::privileges::keep_capabilities_from_children();
    // The host's addresses first: a VIP, local or pool address the kernel holds (or a real
    // server that is this host) is refused at its line and column like any other mistake.
    let host = crate::host::host_addresses()?;
    let config = uvs_config::load_file_for_host(config_path, &host).map_err(|e| anyhow!("{e}"))?;
    check_privileges()?;
    if config.member.is_some() {
        return crate::member::run(config, config_path, &opts, &signals);
    }
    crate::privileges::check_users(&config)
        .and_then(|()| crate::webcheck::check_ca_files(&config))
        .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;

    let mut links = Vec::new();
    for i in &config.interfaces {
        let mut l = spec::link_info(&i.name).map_err(|e| anyhow!(e))?;
        if usize::from(l.mtu) > uvs_port::MAX_MTU {
            // A longer frame does not fit uvs's frame buffers: it is dropped on arrival.
            // uvs's own answers (fragments, fragmentation needed) use what it can carry.
            log::warn!(
                "interface '{}' has MTU {}, but uvs carries packets of at most {} bytes: \
                 longer ones are dropped and counted as frame_too_large; set the MTU of \
                 '{}' (and of the links beyond it) to {} or less",
                i.name,
                l.mtu,
                uvs_port::MAX_MTU,
                i.name,
                uvs_port::MAX_MTU
            );
            l.mtu = uvs_port::MAX_MTU as u16;
        }
        links.push(l);
    }
    let spec = spec::tables_spec(&config, Some(&links));
    let tables = TablesBuilder::build(&spec, None).map_err(|e| anyhow!("{e}"))?;
    let workers = config.workers.count.max(1);
    for i in &config.interfaces {
        if (i.queues as usize) < workers {
            bail!(
                "interface '{}' has queues: {} but workers: {workers} — each worker needs its own queue on every interface",
                i.name,
                i.queues
            );
        }
        let have = std::fs::read_dir(format!("/sys/class/net/{}/queues", i.name))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                    .count()
            })
            .unwrap_or(1);
        if have < workers {
            bail!(
                "interface '{}' has {have} receive queue(s) but {workers} workers were asked for: lower workers.count or add queues (ethtool -L {} combined {workers})",
                i.name,
                i.name
            );
        }
        if have > i.queues as usize {
            // Frames the NIC (or a veth's sender) steers to a queue nobody reads pass to the
            // kernel unbalanced: whole flows, and the neighbour answers uvsd waits for.
            log::warn!(
                "interface '{}' has {have} receive queues but uvsd serves {} (queues: {}): frames steered to the others are not balanced; set its queues to {have} or reduce the interface's (ethtool -L {} combined {})",
                i.name,
                i.queues,
                i.queues,
                i.name,
                i.queues
            );
        }
    }
    let shared = Arc::new(Shared::new(
        tables,
        config.conn_table.capacity as usize,
        workers,
    ));
    shared.settings.store(lifecycle_settings(&config));
    shared.flow_cache.store(
        config.workers.flow_cache,
        std::sync::atomic::Ordering::Relaxed,
    );

    let mut programs = Vec::new();
    for i in &config.interfaces {
        let p = XdpProgram::attach(&i.name, xdp_mode(i.xdp_mode)).map_err(|e| anyhow!("{e}"))?;
        programs.push(Arc::new(p));
    }
    for p in &programs {
        for a in &host {
            p.add_host(*a).map_err(|e| anyhow!("{e}"))?;
        }
    }
    if config.workers.kernel_fast_path {
        start_fast_path(&shared, &programs)?;
    }
    let cores: Vec<Option<usize>> = (0..workers)
        .map(|w| {
            config
                .workers
                .cores
                .as_ref()
                .and_then(|c| c.get(w).copied())
        })
        .collect();
    let core = Arc::new(Core {
        shared: shared.clone(),
        running: Mutex::new(Running {
            config: config.clone(),
        }),
        links: Mutex::new(links),
        programs: programs.into_iter().map(ArcSwap::new).collect(),
        host: host.clone(),
        reopen_failures: Mutex::default(),
        attached_again: config
            .interfaces
            .iter()
            .map(|_| AtomicU64::new(0))
            .collect(),
        standing_by: (0..workers).map(|_| AtomicBool::new(false)).collect(),
        config_path: config_path.to_path_buf(),
        cores: cores.clone(),
        rates: Mutex::new(crate::status::RateSampler::default()),
        expiry: Mutex::new(lifecycle::Expiry::default()),
        maps: Mutex::new(MapState::default()),
        generation: Default::default(),
        runtime_edits: Default::default(),
        cluster: Mutex::new(crate::cluster::Roles::from_config(&config)),
        sync: Mutex::new(None),
        node: Default::default(),
        client_lookup: Mutex::new(None),
        pool_health: Default::default(),
        slots: Default::default(),
        growing: Default::default(),
    });
    {
        let roles = core.cluster.lock().expect("cluster lock");
        let silent = crate::cluster::silent_addresses(&config, &roles);
        shared.cluster.set_silent(crate::cluster::addr_set(&silent));
        core.sync_maps(&config, &silent)?;
        for g in &roles.groups {
            log::info!("cluster: group {} starts as {}", g.name, g.role);
            if g.role == uvs_config::ClusterRole::Master {
                // Picked up by worker 0's first burst.
                announce(&shared, &config, &g.name);
            }
        }
    }

    // A node restarted under live flows learns their entries from its sync peers moments
    // after its workers start; until its receiver has listened a while, the workers drop
    // the flows' segments rather than reset them (`Shared::sync_learning`).
    shared.sync_learning.store(
        crate::sync::learns_from_peers(config.sync.as_ref()),
        Ordering::Relaxed,
    );
    let stop = Arc::new(Stop::new());
    let handles = start_workers(&core, &config, &stop)?;
    log::info!(
        "uvsd running: {} interface(s) [{}], {} worker(s), {} service(s), connection table {}",
        config.interfaces.len(),
        core.programs()
            .iter()
            .map(|p| format!("{} {:?}", p.ifname(), p.mode()))
            .collect::<Vec<_>>()
            .join(", "),
        workers,
        config.services.len(),
        config.conn_table.capacity
    );

    let result = control_loop(&core, &opts, &stop, &signals);
    stop.raise();
    for h in handles {
        let _ = h.join();
    }
    log::info!("uvsd stopped");
    result
}

fn start_workers(
    core: &Arc<Core>,
    config: &Config,
    stop: &Arc<Stop>,
) -> Result<Vec<JoinHandle<()>>> {
    let workers = config.workers.count.max(1);
    let mut handles = Vec::new();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, String>>();
    for w in 0..workers {
        let core = core.clone();
        let stop = stop.clone();
        let ready = ready_tx.clone();
        let ifaces: Vec<(String, uvs_xsk::ZeroCopy, u32)> = config
            .interfaces
            .iter()
            .map(|i| (i.name.clone(), zero_copy(i.zero_copy), i.ring_size))
            .collect();
        let pin = core.cores[w];
        let busy_poll = config.workers.busy_poll;
        let spin = std::time::Duration::from_micros(u64::from(config.workers.spin_us));
        let h = std::thread::Builder::new()
            .name(format!("uvs-worker-{w}"))
            .spawn(move || {
                if let Some(c) = pin {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
                        log::warn!("worker {w}: could not pin to core {c}");
                    }
                }
                // This worker's queue of interface `i`, its socket in the interface's
                // program now (at the start, and again once the interface is made again).
                let open = |i: usize| -> Result<(XskPort, u32), uvs_xsk::XskError> {
                    let (name, zc, ring) = &ifaces[i];
                    let cfg = XskConfig {
                        zero_copy: *zc,
                        ring_size: *ring,
                    };
                    let p = XskPort::open(name, w as u32, &cfg)?;
                    let program = core.programs[i].load();
                    program.register_socket(w as u32, p.fd())?;
                    log::info!(
                        "worker {w}: {name} queue {w} ({})",
                        if p.is_zero_copy() {
                            "zero-copy"
                        } else {
                            "copy mode"
                        }
                    );
                    Ok((p, program.ifindex()))
                };
                let mut ports = Vec::new();
                let mut registered = Vec::new();
                for i in 0..ifaces.len() {
                    match open(i) {
                        Ok((p, index)) => {
                            ports.push(p);
                            registered.push(index);
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e.to_string()));
                            return;
                        }
                    }
                }
                let _ = ready.send(Ok(w));
                let mut worker = Worker::new(w, ports, core.shared.clone());
                worker.busy_poll = busy_poll;
                worker.spin = spin;
                // Interfaces made again without this worker's queue (`QueueGone`): until
                // every interface has it again the worker stands by (`stand_by`).
                let mut gone: Vec<QueueGone> = Vec::new();
                loop {
                    if gone.is_empty() {
                        worker.run(&stop);
                    } else {
                        wait_for_reopen(&stop, &core.shared.reopen_ports[w]);
                    }
                    if stop.is_raised() {
                        break;
                    }
                    // An interface made again (`Core::reattach`): a socket on the new one,
                    // in its new program's map, in place of the old.
                    let mut now_gone = Vec::new();
                    for i in 0..ifaces.len() {
                        if core.programs[i].load().ifindex() == registered[i] {
                            continue;
                        }
                        let name = &ifaces[i].0;
                        match open(i) {
                            Ok((p, index)) => {
                                worker.replace_port(i, p);
                                registered[i] = index;
                            }
                            // Fewer queues than this worker's number: it stands by.
                            Err(uvs_xsk::XskError::QueueOutOfRange { count, .. }) => {
                                now_gone.push(QueueGone {
                                    iface: i,
                                    have: count as usize,
                                })
                            }
                            Err(e) => core
                                .reopen_failures
                                .lock()
                                .expect("reopen lock")
                                .push(format!("worker {w}: {name}: {e}")),
                        }
                    }
                    if !now_gone.is_empty() {
                        stand_by(w, &core.programs, &ifaces, &now_gone, gone.is_empty());
                    } else if !gone.is_empty() {
                        // Every interface has this worker's queue again: its sockets on the
                        // interfaces that stayed go back in their programs' maps.
                        for (i, p) in worker.ports().iter().enumerate() {
                            let _ = core.programs[i].load().register_socket(w as u32, p.fd());
                        }
                        log::info!("worker {w}: every interface has queue {w} again: serving");
                    }
                    gone = now_gone;
                    core.standing_by[w].store(!gone.is_empty(), Ordering::Relaxed);
                    core.shared.reopen_ports[w].store(false, Ordering::Release);
                }
                for (i, _) in ifaces.iter().enumerate() {
                    let _ = core.programs[i].load().unregister_socket(w as u32);
                }
            })
            .context("spawning a worker thread")?;
        handles.push(h);
    }
    drop(ready_tx);
    for _ in 0..workers {
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                stop.raise();
                for h in handles {
                    let _ = h.join();
                }
                bail!("{e}");
            }
            Err(_) => {
                stop.raise();
                bail!("a worker did not start within 10 s");
            }
        }
    }
    Ok(handles)
}

/// An interface made again with fewer queues than the workers (a veth made with fewer, a
/// NIC's channels lowered): it has `have` (the open's `XskError::QueueOutOfRange`), and a
/// worker numbered `have` or more has no queue of its own to open there.
struct QueueGone {
    iface: usize,
    have: usize,
}

/// Worker `w` stands by: it takes its sockets out of every interface's program (the frames
/// its queue of an interface that still has one get `XDP_PASS`, counted as unclaimed,
/// rather than waiting in a ring nobody reads) and serves nothing until an interface made
/// again has its queue again. The other workers go on: the connection table is shared, so
/// any of them serves any connection whose packets reach its queues. `first`: it was
/// serving until now (the warning is logged once, and again for another interface).
fn stand_by(
    w: usize,
    programs: &[ArcSwap<XdpProgram>],
    ifaces: &[(String, uvs_xsk::ZeroCopy, u32)],
    gone: &[QueueGone],
    first: bool,
) {
    for p in programs {
        let _ = p.load().unregister_socket(w as u32);
    }
    if first {
        for g in gone {
            log::warn!(
                "worker {w}: interface '{}' was made again with {} queue(s), fewer than the workers: worker {w} stands by until it has queue {w} again (the other workers serve on)",
                ifaces[g.iface].0,
                g.have
            );
        }
    }
}

/// Waits until `stop` is raised or control asks for new ports (`Shared::reopen_ports`).
fn wait_for_reopen(stop: &Stop, reopen: &AtomicBool) {
    while !stop.is_raised() && !reopen.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Least time between two warnings about a full connection table.
const TABLE_WARN_EVERY: Duration = Duration::from_secs(10);

/// Tells the log when the connection table refuses new flows or the `drop_entry` defence
/// makes room, as the kernel's "nf_conntrack: table full, dropping packet" does: at most
/// one warning every [`TABLE_WARN_EVERY`], with what happened since the last one.
struct TableWatch {
    refused: u64,
    dropped: u64,
    /// When the last warning was logged.
    warned: Option<Instant>,
}

impl TableWatch {
    fn new(shared: &Shared) -> Self {
        let (refused, dropped) = Self::counts(shared);
        TableWatch {
            refused,
            dropped,
            warned: None,
        }
    }

    /// New flows refused for want of room (every worker) and entries `drop_entry` removed.
    fn counts(shared: &Shared) -> (u64, u64) {
        let refused = shared
            .counters
            .iter()
            .map(|c| c.dropped(uvs_dataplane::DropReason::TableFull))
            .sum();
        (refused, shared.conns_dropped.load(Ordering::Relaxed))
    }

    /// The warning due at `now`, if any.
    fn observe(&mut self, shared: &Shared, now: Instant) -> Option<String> {
        if self
            .warned
            .is_some_and(|t| now.duration_since(t) < TABLE_WARN_EVERY)
        {
            return None;
        }
        let (refused, dropped) = Self::counts(shared);
        let (new_refused, new_dropped) = (
            refused.saturating_sub(self.refused),
            dropped.saturating_sub(self.dropped),
        );
        if new_refused == 0 && new_dropped == 0 {
            return None;
        }
        let conns = &shared.conns;
        let fill = |v6| format!("{} of {}", conns.len_of(v6), conns.capacity_of(v6));
        let what = if new_refused > 0 {
            "connection table full"
        } else {
            "connection table at least 7/8 full"
        };
        let since = match self.warned {
            Some(t) => format!("in the last {} s", now.duration_since(t).as_secs()),
            None => "since start".to_string(),
        };
        (self.refused, self.dropped, self.warned) = (refused, dropped, Some(now));
        Some(format!(
            "{what}: {new_refused} new flows refused (conn_table_full) and {new_dropped} \
             entries dropped by drop_entry {since}; entries: IPv4 {}, IPv6 {}",
            fill(false),
            fill(true),
        ))
    }
}

/// What became of an interface uvsd attached to, by name, at `index`: made again
/// (another index: a veth whose peer was recreated, a container's network restarted, a
/// driver reloaded) or removed. Its XDP program and AF_XDP sockets went with the old
/// interface; a link only down and up again keeps them, and is not reported.
enum InterfaceChange<'a> {
    /// Made again: it has index `now`.
    Remade {
        name: &'a str,
        index: u32,
        now: u32,
    },
    Removed {
        name: &'a str,
        index: u32,
    },
}

impl std::fmt::Display for InterfaceChange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Remade { name, index, now } => {
                write!(
                    f,
                    "{name} was removed and made again (index {index}, now {now})"
                )
            }
            Self::Removed { name, index } => write!(f, "{name} (index {index}) was removed"),
        }
    }
}

/// `None` while `name` is still the interface at `index`.
fn interface_change(name: &str, index: u32) -> Option<InterfaceChange<'_>> {
    match nix::net::if_::if_nametoindex(name) {
        Ok(now) if now == index => None,
        Ok(now) => Some(InterfaceChange::Remade { name, index, now }),
        Err(_) => Some(InterfaceChange::Removed { name, index }),
    }
}

/// How long an interface uvsd serves may be gone before uvsd stops ([`follow_interfaces`]):
/// long enough for a peer to be made again (a container restarting), short enough that a
/// supervisor or a cluster's other nodes take over soon.
pub(crate) const GONE_WAIT: Duration = Duration::from_secs(30);

/// Once a second (the control loop, and member mode's): an interface made again (another
/// index) among `attached` (position, name, index when attached) is attached to again in
/// place by `reattach(position)` ([`Core::reattach`]: the connections, neighbours and
/// counters stay; member mode's filter with its table); one that is gone is waited for up
/// to [`GONE_WAIT`] (`gone_since`: since when one is). `Err` (logged) when uvsd must stop:
/// gone for longer, or attaching again failed.
pub(crate) fn follow_interfaces<'a>(
    attached: impl IntoIterator<Item = (usize, &'a str, u32)>,
    mut reattach: impl FnMut(usize) -> Result<()>,
    gone_since: &mut Option<Instant>,
) -> Result<()> {
    let mut gone = None;
    for (i, ifname, ifindex) in attached {
        match interface_change(ifname, ifindex) {
            None => {}
            Some(c @ InterfaceChange::Remade { name, now, .. }) => {
                log::warn!("{c}: attaching to it again");
                match reattach(i) {
                    Ok(()) => {
                        log::info!("{name}: attached again (index {now}); the connections go on")
                    }
                    Err(e) => {
                        return Err(interface_lost(&format!(
                            "{c} and attaching to it again failed ({e})"
                        )))
                    }
                }
            }
            Some(c @ InterfaceChange::Removed { .. }) => gone = Some(c.to_string()),
        }
    }
    match gone {
        None => *gone_since = None,
        Some(what) => {
            let since = *gone_since.get_or_insert_with(|| {
                log::warn!(
                    "{what}: waiting up to {} s for it to come back",
                    GONE_WAIT.as_secs()
                );
                Instant::now()
            });
            if since.elapsed() >= GONE_WAIT {
                return Err(interface_lost(&format!(
                    "{what} {} s ago",
                    GONE_WAIT.as_secs()
                )));
            }
        }
    }
    Ok(())
}

/// uvsd's answer to an interface it cannot serve any more (gone for [`GONE_WAIT`], or not
/// attached to again): it stops with an error (logged here), so that its service manager
/// starts it again on the interface as it now is (the packaged unit restarts it on
/// failure, 2 s later; a node in a cluster hands its traffic to the others meanwhile),
/// rather than serving nothing until someone notices.
pub(crate) fn interface_lost(lost: &str) -> anyhow::Error {
    let e = anyhow!(
        "{lost}: its XDP program and AF_XDP sockets went with it and no packet reaches uvsd; \
         stopping so that the service manager starts uvsd again"
    );
    log::error!("{e}");
    e
}

fn control_loop(
    core: &Arc<Core>,
    opts: &Options,
    stop: &Arc<Stop>,
    signals: &Signals,
) -> Result<()> {
    let (term, hup) = (&signals.term, &signals.hup);

    let services = crate::services::Services::start(core, opts, stop)?;
    core.sync_follow_config();
    core.client_lookup_follow_config();
    // Workers serve and the admin socket answers: systemd may start what depends on uvsd.
    let mut notify = crate::notify::Notifier::from_env();
    notify.ready(&serving_status(core));
    let started = Instant::now();
    let mut watch = crate::filewatch::FileWatch::new(crate::filewatch::stamp(&core.config_path));
    let mut applied_generation = core.generation.load(Ordering::Relaxed);
    let mut last_rate = Instant::now();
    let mut table_watch = TableWatch::new(&core.shared);
    let mut result = Ok(());
    let mut gone_since = None;
    while !term.load(Ordering::Relaxed) {
        if opts.run_for.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        // Expiry: enough per round to visit the whole table about every 10 s.
        let budget = (core.shared.conns.capacity() / 100).max(1024);
        core.expire(budget);
        if let Some(warning) = table_watch.observe(&core.shared, Instant::now()) {
            log::warn!("{warning}");
        }
        if last_rate.elapsed() >= Duration::from_secs(1) {
            last_rate = Instant::now();
            let programs = core.programs();
            let attached = programs
                .iter()
                .enumerate()
                .map(|(i, p)| (i, p.ifname(), p.ifindex()));
            if let Err(e) = follow_interfaces(attached, |i| core.reattach(i), &mut gone_since) {
                // Stopped as for a signal (a BGP speaker withdraws first), with the error.
                result = Err(e);
                break;
            }
            core.rates.lock().expect("rates lock").sample(&core.shared);
            core.release_lingering();
            core.settle_growth();
            services.feed_schedulers(core);
            services.record_status(core);
        }
        let now_stamp = crate::filewatch::stamp(&core.config_path);
        let reload = if hup.swap(false, Ordering::Relaxed) {
            watch.loaded(now_stamp);
            true
        } else {
            watch.observe(now_stamp, Instant::now())
        };
        if reload {
            notify.reloading();
            let status = if reload_file(core) {
                serving_status(core)
            } else {
                format!(
                    "{}; the last reload was rejected (see the log)",
                    serving_status(core)
                )
            };
            notify.ready(&status);
        }
        notify.tick();
        // Any new configuration (a reload, a uvsadm edit) restarts the health checks on
        // its real servers.
        let generation = core.generation.load(Ordering::Relaxed);
        if generation != applied_generation {
            applied_generation = generation;
            services.config_changed(core);
            core.sync_follow_config();
            core.client_lookup_follow_config();
        }
        if core.node.tick(core) {
            break;
        }
    }
    notify.stopping();
    // Withdraw from BGP while still forwarding, before anything stops.
    core.node.shutdown(core);
    services.stop();
    *core.sync.lock().expect("sync lock") = None;
    *core.client_lookup.lock().expect("client lookup lock") = None;
    result
}

/// The STATUS= line systemd shows for a serving uvsd.
fn serving_status(core: &Core) -> String {
    let running = core.running.lock().expect("running lock");
    format!(
        "serving {} service(s) from {}",
        running.config.services.len(),
        core.config_path.display()
    )
}

/// Reloads the configuration file; a bad one is logged (and `false` returned) and the
/// running one keeps serving. The file replaces the running configuration whole, as keepalived's
/// reload does: uvsadm edits made since it was loaded are discarded, with a warning that
/// says so.
pub fn reload_file(core: &Arc<Core>) -> bool {
    // Read again: the host's addresses may have changed since the start.
    let host = match crate::host::host_addresses() {
        Ok(h) => h,
        Err(e) => {
            log::error!("reload rejected, still serving the previous configuration: {e:#}");
            return false;
        }
    };
    let new = match uvs_config::load_file_for_host(&core.config_path, &host) {
        Ok(new) => new,
        Err(e) => {
            log::error!("reload rejected, still serving the previous configuration: {e}");
            return false;
        }
    };
    // A file that holds what runs (after `uvsadm save` into it, say) discards no runtime
    // edit.
    let holds_running = {
        let running = core.running.lock().expect("running lock");
        let mut file = new.clone();
        hold_restart_only(&running.config, &mut file);
        uvs_config::diff(&running.config, &file).is_empty()
    };
    if let Err(e) = core.apply_config(new) {
        log::error!("reload rejected, still serving the previous configuration: {e}");
        return false;
    }
    let edits = core.runtime_edits.swap(0, Ordering::Relaxed);
    if edits > 0 && !holds_running {
        log::warn!(
            "the reload discarded {edits} runtime edit(s) made with uvsadm since {} was loaded; `uvsadm save > {}` before a reload keeps them",
            core.config_path.display(),
            core.config_path.display()
        );
    }
    log::info!("configuration reloaded from {}", core.config_path.display());
    true
}

/// The admin socket and the metrics endpoint are bound once, at the start: a new file's
/// `admin` or `metrics` is held back (the running values stay in `new`, so `uvsadm save`
/// and the status show what is in effect) and the returned message says so; it takes effect
/// when uvsd restarts.
fn hold_restart_only(running: &Config, new: &mut Config) -> Option<String> {
    let mut held = Vec::new();
    if new.admin != running.admin {
        held.push(format!(
            "admin (socket {}, group {}; still {}, {})",
            new.admin.socket.display(),
            new.admin.group.as_deref().unwrap_or("none"),
            running.admin.socket.display(),
            running.admin.group.as_deref().unwrap_or("none"),
        ));
        new.admin = running.admin.clone();
    }
    if new.metrics != running.metrics {
        let listen = |m: &uvs_config::Metrics| {
            m.listen
                .map_or_else(|| "none".to_string(), |a| a.to_string())
        };
        held.push(format!(
            "metrics.listen ({}; still {})",
            listen(&new.metrics),
            listen(&running.metrics)
        ));
        new.metrics = running.metrics;
    }
    (!held.is_empty()).then(|| {
        format!(
            "{} changed: bound at the start, so they take effect when uvsd restarts",
            held.join(" and ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An interface uvsd attached to is reported once it is gone or has another index;
    /// one that is still the same is not.
    #[test]
    fn a_removed_or_remade_interface_is_reported() {
        let lo = nix::net::if_::if_nametoindex("lo").unwrap();
        let said = |name, index| interface_change(name, index).map(|c| c.to_string());
        assert_eq!(said("lo", lo), None);
        assert_eq!(
            said("lo", lo + 1000).as_deref(),
            Some(
                format!(
                    "lo was removed and made again (index {}, now {lo})",
                    lo + 1000
                )
                .as_str()
            )
        );
        assert_eq!(
            said("uvs-gone0", 7).as_deref(),
            Some("uvs-gone0 (index 7) was removed")
        );
    }

    /// The watch attaches to a remade interface again (and goes on when that works, stops
    /// when it fails), and waits for a removed one.
    #[test]
    fn a_remade_interface_is_attached_to_again_and_a_removed_one_waited_for() {
        let lo = nix::net::if_::if_nametoindex("lo").unwrap();
        let mut gone_since = None;
        let mut asked = Vec::new();
        let remade = [(0, "lo", lo), (1, "lo", lo + 1000)];
        let ok = follow_interfaces(
            remade,
            |i| {
                asked.push(i);
                Ok(())
            },
            &mut gone_since,
        );
        assert!(ok.is_ok() && asked == [1] && gone_since.is_none());
        let failed = follow_interfaces(remade, |_| Err(anyhow!("refused")), &mut gone_since);
        let e = failed
            .expect_err("a failed reattach stops uvsd")
            .to_string();
        assert!(e.contains("attaching to it again failed (refused)"), "{e}");
        let gone = [(0, "uvs-gone0", 7)];
        assert!(follow_interfaces(gone, |_| Ok(()), &mut gone_since).is_ok());
        assert!(gone_since.is_some(), "waited for, not stopped at once");
        follow_interfaces([(0, "lo", lo)], |_| Ok(()), &mut gone_since).unwrap();
        assert!(gone_since.is_none(), "back: the wait ends");
    }

    /// The fast path's TC program gets the routes of each family (`fast_routes`,
    /// `fast_routes6`), each with its interface's index and MTU and its gateway; the other
    /// family's routes and routes of a port without an interface are left out (their
    /// frames go to the kernel's forwarding).
    #[test]
    fn fast_routes_are_the_routes_by_interface_and_family() {
        use std::net::Ipv4Addr;
        use uvs_dataplane::tables::{Route, TablesBuilder};
        let mut spec =
            uvs_dataplane::lab::spec(uvs_dataplane::Method::Nat, uvs_sched::SchedulerKind::Rr, 1);
        spec.ifaces[1].mtu = 9000;
        let ip = |s: &str| IpKey::from_ip(s.parse().unwrap());
        spec.routes.push(Route {
            prefix: ip("203.0.113.0"),
            len: 24,
            port: 1,
            via: Some(ip("198.18.1.254")),
        });
        spec.routes.push(Route {
            prefix: ip("192.0.2.0"),
            len: 24,
            port: 5,
            via: None,
        });
        let tables = TablesBuilder::build(&spec, None).unwrap();
        let mut got = fast_routes(&tables, &[11, 12]);
        got.sort_by_key(|r| (r.prefix, r.len));
        let route = |p: [u8; 4], via: Option<[u8; 4]>, ifindex, mtu| FastRoute {
            prefix: Ipv4Addr::from(p),
            len: 24,
            ifindex,
            via: via.map(Ipv4Addr::from),
            mtu,
        };
        assert_eq!(
            got,
            vec![
                route([198, 18, 0, 0], None, 11, 1500),
                route([198, 18, 1, 0], None, 12, 9000),
                route([203, 0, 113, 0], Some([198, 18, 1, 254]), 12, 9000),
            ]
        );
        // The IPv6 ones (the lab's two networks and this one) for fast_routes6.
        let mut spec =
            uvs_dataplane::lab::spec(uvs_dataplane::Method::Nat, uvs_sched::SchedulerKind::Rr, 1);
        spec.routes.push(Route {
            prefix: ip("2001:2:0:7::"),
            len: 64,
            port: 1,
            via: Some(ip("2001:2:0:1::fe")),
        });
        let tables = TablesBuilder::build(&spec, None).unwrap();
        let mut got = fast_routes6(&tables, &[11, 12]);
        got.sort_by_key(|r| (r.prefix, r.len));
        let route6 = |p: &str, via: Option<&str>, ifindex| FastRoute6 {
            prefix: p.parse().unwrap(),
            len: 64,
            ifindex,
            via: via.map(|v| v.parse().unwrap()),
            mtu: 1500,
        };
        assert_eq!(
            got,
            vec![
                route6("2001:2::", None, 11),
                route6("2001:2:0:1::", None, 12),
                route6("2001:2:0:7::", Some("2001:2:0:1::fe"), 12),
            ]
        );
    }

    /// 10 services of 1 000 real servers each: the index finds every server's slot, three
    /// times over as starting their health checks on a reload does, and nothing else.
    /// (Measured, not asserted here — speed lives in benchmarks, not timed tests: 30 000
    /// lookups ~20 ms against 875 ms for the scan it replaced, debug build.)
    #[test]
    fn slots_of_ten_thousand_servers_are_found_without_scanning() {
        use uvs_dataplane::tables::TablesBuilder;
        use uvs_dataplane::Method;
        let mut spec = uvs_dataplane::lab::spec(Method::Nat, uvs_sched::SchedulerKind::Rr, 1);
        let template = spec.services[0].clone();
        spec.services = (0..10u8)
            .map(|i| {
                let mut s = template.clone();
                s.key.vip = IpKey::from_ip(IpAddr::from([198, 18, 100, i + 1]));
                s.name = format!("s{i}");
                let r = s.reals[0].clone();
                s.reals = (0..1000u16)
                    .map(|p| uvs_dataplane::tables::RealSpec {
                        addr: IpKey::from_ip(IpAddr::from([198, 18, 1, 11 + (p % 3) as u8])),
                        port: 1000 + p,
                        ..r.clone()
                    })
                    .collect();
                s
            })
            .collect();
        let tables = TablesBuilder::build(&spec, None).unwrap();
        let mut index = SlotIndex::default();
        let mut found = 0;
        for _ in 0..3 {
            for svc in tables.services.iter().flatten() {
                for (slot, r) in svc.reals.iter().enumerate() {
                    let r = r.as_ref().unwrap();
                    let at = std::net::SocketAddr::new(r.addr.to_ip(), r.port);
                    assert_eq!(index.slot(&tables, svc.key, at), Some(slot));
                    found += 1;
                }
            }
        }
        assert_eq!(found, 30_000);
        let other = "198.18.1.99:80".parse().unwrap();
        assert_eq!(index.slot(&tables, spec.services[0].key, other), None);
    }

    const TCP: u8 = 6;
    const UDP: u8 = 17;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A real server in a TCP service on port 80 and a UDP one on 53 (the demo's shape).
    fn both(a: IpAddr) -> MapState {
        MapState {
            reals: [a].into(),
            ports: [(a, TCP, 80), (a, UDP, 53)].into(),
            ..MapState::default()
        }
    }

    #[test]
    fn a_removed_service_port_lingers_while_its_address_serves_another_service() {
        let a = ip("198.18.1.11");
        let have = both(a);
        // Out of the TCP service only: the address stays, TCP 80's replies must too.
        let want = MapState {
            reals: [a].into(),
            ports: [(a, UDP, 53)].into(),
            ..MapState::default()
        }
        .with_lingering(&have, false);
        assert!(want.lingering.is_empty());
        assert_eq!(want.lingering_ports, [(a, TCP, 80)].into());
        assert_eq!(
            want.all_ports(),
            have.all_ports(),
            "nothing leaves the maps yet"
        );

        // Kept while a TCP flow to port 80 runs (a UDP one does not keep it), then let go.
        let (addrs, ports) = want.released(&[(a, TCP, 80)].into());
        assert!(addrs.is_empty() && ports.is_empty());
        let (addrs, ports) = want.released(&[(a, UDP, 53)].into());
        assert!(addrs.is_empty());
        assert_eq!(ports, [(a, TCP, 80)]);

        // Configured again: no longer lingering.
        let again = both(a).with_lingering(&want, false);
        assert!(again.lingering_ports.is_empty());
    }

    #[test]
    fn a_removed_server_lingers_with_its_ports_and_expire_nodest_conn_keeps_nothing() {
        let (a, b) = (ip("198.18.1.11"), ip("198.18.1.12"));
        let mut have = both(a);
        have.reals.insert(b);
        have.ports.insert((b, TCP, 80));
        let want = both(b).with_lingering(&have, false);
        assert_eq!(want.lingering, [a].into());
        assert_eq!(want.lingering_ports, [(a, TCP, 80), (a, UDP, 53)].into());
        // Any flow of the address keeps it; each port goes with its own last flow.
        let (addrs, ports) = want.released(&[(a, UDP, 53)].into());
        assert!(addrs.is_empty());
        assert_eq!(ports, [(a, TCP, 80)]);
        let (addrs, ports) = want.released(&BTreeSet::new());
        assert_eq!(addrs, [a]);
        assert_eq!(ports.len(), 2);

        let expire = both(b).with_lingering(&have, true);
        assert!(expire.lingering.is_empty() && expire.lingering_ports.is_empty());
    }

    #[test]
    fn a_port_0_service_port_is_busy_with_any_flow_of_its_protocol() {
        let a = ip("2001:2:0:1::11");
        let have = MapState {
            reals: [a].into(),
            ports: [(a, TCP, 0), (a, UDP, 53)].into(),
            ..MapState::default()
        };
        let want = MapState {
            reals: [a].into(),
            ports: [(a, UDP, 53)].into(),
            ..MapState::default()
        }
        .with_lingering(&have, false);
        assert_eq!(want.lingering_ports, [(a, TCP, 0)].into());
        assert!(want.released(&[(a, TCP, 8443)].into()).1.is_empty());
        assert_eq!(want.released(&[(a, UDP, 8443)].into()).1, [(a, TCP, 0)]);
    }
}

#[cfg(test)]
mod restart_only_tests {
    use super::*;

    #[test]
    fn admin_and_metrics_changes_are_held_until_a_restart_and_named() {
        let running =
            uvs_config::load_str(include_str!("../../configs/demo.yaml"), "demo.yaml").unwrap();
        let mut same = running.clone();
        assert_eq!(hold_restart_only(&running, &mut same), None);

        let mut new = running.clone();
        new.metrics.listen = Some("127.0.0.1:9101".parse().unwrap());
        new.admin.socket = "/run/uvs/other.sock".into();
        new.workers.count += 1;
        let said = hold_restart_only(&running, &mut new).expect("a message");
        assert!(
            said.contains("metrics.listen (127.0.0.1:9101; still 127.0.0.1:9100)"),
            "{said}"
        );
        assert!(said.contains("socket /run/uvs/other.sock"), "{said}");
        assert!(said.contains("when uvsd restarts"), "{said}");
        assert_eq!(
            new.metrics, running.metrics,
            "the running endpoint stays in the config"
        );
        assert_eq!(new.admin, running.admin);
        assert_ne!(
            new.workers, running.workers,
            "only admin and metrics are held"
        );
    }

    /// The log tells a full table at once, then at most every 10 s with what happened
    /// since, and says nothing while nothing is refused or dropped.
    #[test]
    fn a_full_table_is_told_at_most_every_ten_seconds() {
        use uvs_dataplane::tables::TablesBuilder;
        use uvs_dataplane::{DropReason, Method};
        let spec = uvs_dataplane::lab::spec(Method::Nat, uvs_sched::SchedulerKind::Rr, 1);
        let shared = Shared::new(TablesBuilder::build(&spec, None).unwrap(), 1000, 1);
        let mut watch = TableWatch::new(&shared);
        let t0 = Instant::now();
        assert_eq!(watch.observe(&shared, t0), None, "nothing happened");
        let full = &shared.counters[0].drops[DropReason::TableFull.index()];
        full.add(7);
        shared.conns_dropped.fetch_add(3, Ordering::Relaxed);
        let first = watch.observe(&shared, t0).expect("told at once");
        assert!(
            first.starts_with("connection table full: 7 new flows refused (conn_table_full) and 3 entries dropped by drop_entry since start"),
            "{first}"
        );
        full.add(5);
        assert_eq!(
            watch.observe(&shared, t0 + Duration::from_secs(9)),
            None,
            "not twice within 10 s"
        );
        let second = watch
            .observe(&shared, t0 + Duration::from_secs(10))
            .expect("told again after 10 s");
        assert!(
            second.starts_with("connection table full: 5 new flows refused (conn_table_full) and 0 entries dropped by drop_entry in the last 10 s"),
            "{second}"
        );
        shared.conns_dropped.fetch_add(2, Ordering::Relaxed);
        let third = watch
            .observe(&shared, t0 + Duration::from_secs(20))
            .expect("a drop alone is told too");
        assert!(
            third.starts_with("connection table at least 7/8 full: 0 new flows refused"),
            "{third}"
        );
        assert_eq!(watch.observe(&shared, t0 + Duration::from_secs(40)), None);
    }
}
