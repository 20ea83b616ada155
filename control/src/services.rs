//! The daemon's side services: health checks, the admin socket and the metrics endpoint,
//! started after the workers and restarted (health) when the configuration changes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use uvs_dataplane::wake::Stop;

use anyhow::{Context, Result};
use uvs_config::Config;

use crate::admin::{self, AdminBackend};
use crate::daemon::{Core, Options};
use crate::health::{HealthMonitor, HealthState, HealthTarget, Start};
use crate::snapshot::{ConnSnapshot, Snapshot};
use crate::spec::service_key;
use crate::status;
use uvs_agent::AgentState;
use uvs_config::HealthCheckKind;

pub struct Services {
    health: Mutex<Option<HealthMonitor>>,
    /// The static-weight schedulers of the configuration the checks were started for
    /// (their agents' weights are warned about).
    health_static: Mutex<HashMap<uvs_config::ServiceKey, uvs_sched::SchedulerKind>>,
    /// Held while the checks' verdicts go to the dataplane, by the checkers and by a
    /// new configuration that keeps them: a verdict is never overwritten by an older one.
    health_apply: Arc<Mutex<()>>,
    /// The status page's rate history, when the HTTP endpoint runs.
    history: Option<Arc<Mutex<crate::statuspage::History>>>,
    stop: Arc<Stop>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// The admin socket's view of the daemon.
struct Backend(Arc<Core>);

pub fn snapshot(core: &Core) -> Snapshot {
    snapshot_with(core, None)
}

fn snapshot_with(
    core: &Core,
    persistent: Option<&std::collections::HashMap<(u16, u16), u32>>,
) -> Snapshot {
    let cfg = core.running.lock().expect("running lock").config.clone();
    let rates = core.rates.lock().expect("rates lock");
    let flags = scheduler_flags(&cfg);
    let flags_of = |key: &uvs_dataplane::ServiceKey| flags.get(key).cloned().unwrap_or_default();
    let mut snap = status::snapshot_with(&core.shared, &rates, &core.cores, flags_of, persistent);
    snap.sync = core
        .sync
        .lock()
        .expect("sync lock")
        .as_ref()
        .map(|d| d.snapshot());
    snap.node = Some(core.node.snapshot(&cfg));
    snap.client_lookup = core
        .client_lookup
        .lock()
        .expect("client lookup lock")
        .as_ref()
        .map(|l| l.stats.snapshot());
    snap.cluster = Some(core.cluster_status());
    for (w, s) in snap.workers.iter_mut().zip(&core.standing_by) {
        w.standing_by = s.load(std::sync::atomic::Ordering::Relaxed);
    }
    snap.attached_again = core
        .programs()
        .iter()
        .zip(&core.attached_again)
        .map(|(p, n)| {
            (
                p.ifname().to_string(),
                n.load(std::sync::atomic::Ordering::Relaxed),
            )
        })
        .collect();
    // Per interface: its XDP program's counters.
    let counters: Vec<_> = core
        .programs()
        .iter()
        .map(|p| (p.ifname().to_string(), p.counters().unwrap_or_default()))
        .collect();
    snap.unclaimed = counters
        .iter()
        .map(|(i, c)| (i.clone(), c.unclaimed))
        .collect();
    if cfg.workers.kernel_fast_path {
        // The frames the XDP programs rewrote for the kernel to forward.
        snap.fast_path = counters.iter().map(|(i, c)| (i.clone(), c.fast)).collect();
        snap.fast_path_sent = counters
            .into_iter()
            .map(|(i, c)| (i, c.fast_sent))
            .collect();
    }
    snap
}

/// Each service's scheduler flags as ipvsadm lists them (`sh-fallback,sh-port`), by key:
/// looked up once per service of a snapshot, which runs every second.
fn scheduler_flags(cfg: &Config) -> HashMap<uvs_dataplane::ServiceKey, String> {
    cfg.services
        .iter()
        .filter(|s| !s.scheduler_flags.is_empty())
        .map(|s| {
            let names: Vec<&str> = s.scheduler_flags.iter().map(|f| f.name()).collect();
            (service_key(&s.key()), names.join(","))
        })
        .collect()
}

/// `/status.json`: the snapshot with the rate history and, with `cluster:`, the roles.
fn status_doc(
    core: &Core,
    history: &Mutex<crate::statuspage::History>,
) -> crate::statuspage::StatusDoc {
    let snap = snapshot(core);
    let has_groups = !core
        .running
        .lock()
        .expect("running lock")
        .config
        .cluster
        .groups
        .is_empty();
    let cluster = has_groups.then(|| core.cluster_status());
    let h = history.lock().expect("history lock");
    crate::statuspage::doc(snap, &h, cluster.as_ref())
}

impl AdminBackend for Backend {
    fn snapshot(&self) -> Snapshot {
        snapshot(&self.0)
    }
    fn config(&self) -> Config {
        self.0.running.lock().expect("running lock").config.clone()
    }
    fn apply_config(&self, new: Config) -> Result<(), String> {
        self.0.apply_admin_edit(new)
    }
    fn host_addresses(&self) -> Result<Vec<std::net::IpAddr>, String> {
        crate::host::host_addresses().map_err(|e| {
            format!("rejected, nothing changed: cannot check the host's addresses: {e:#}")
        })
    }
    fn zero_counters(&self, service: Option<&uvs_config::ServiceKey>) {
        let Some(key) = service else {
            self.0.shared.zero_traffic_counters();
            return;
        };
        let key = service_key(key);
        let tables = self.0.shared.tables.load();
        for s in tables.services.iter().flatten().filter(|s| s.key == key) {
            s.stats.reset();
            for r in s.reals.iter().flatten() {
                r.stats.reset();
            }
        }
    }
    fn connections(&self) -> Vec<ConnSnapshot> {
        status::connections(&self.0.shared)
    }
    fn snapshot_persistent(&self) -> Snapshot {
        snapshot_with(&self.0, Some(&status::persistent_counts(&self.0.shared)))
    }
    fn node(&self, cmd: &admin::node::NodeCommand) -> Result<String, String> {
        match cmd {
            admin::node::NodeCommand::Status => {
                let cfg = self.config();
                Ok(crate::announce::format(&self.0.node.snapshot(&cfg)))
            }
            admin::node::NodeCommand::Drain { timeout, .. } => self.0.node.drain(&self.0, *timeout),
        }
    }
    fn cluster(&self) -> Option<&dyn admin::cluster::ClusterControl> {
        Some(self)
    }
}

impl admin::cluster::ClusterControl for Backend {
    fn cluster_status(&self) -> crate::cluster::ClusterStatus {
        self.0.cluster_status()
    }
    fn set_role(&self, group: &str, role: uvs_config::ClusterRole) -> Result<String, String> {
        self.0.set_role(group, role)
    }
}

/// What the previous monitor knew, carried into the next one.
#[derive(Default)]
struct Previous {
    health: Vec<(HealthTarget, bool)>,
    /// Each target's hysteresis and next check, for the same check to resume.
    progress: Vec<(HealthTarget, (HealthState, Instant))>,
    agents: Vec<(HealthTarget, AgentState)>,
}

/// Starts health checks for the running configuration; targets that were already being
/// checked keep their state (a reload does not bring a down server back, nor a drained
/// one into rotation).
fn start_health(
    core: &Arc<Core>,
    previous: &Previous,
    apply_lock: &Arc<Mutex<()>>,
) -> HealthMonitor {
    let cfg = core.running.lock().expect("running lock").config.clone();
    // What the previous monitor knew, by server: a reload of thousands of servers looks
    // each one up instead of scanning every target for each.
    let prev_health = by_server(&previous.health);
    let prev_agents = by_server(&previous.agents);
    let prev_progress = by_server(&previous.progress);
    let targets = crate::health::targets(&cfg)
        .into_iter()
        .map(|t| {
            // A server the checks knew keeps its state; a new one starts up, or down
            // until its first check passes with `start_down` (keepalived's alpha).
            let up = prev_health
                .get(&(t.service, t.real))
                .and_then(|v| v.iter().find(|(p, _)| p.pools == t.pools))
                .map_or(!t.check.start_down, |(_, up)| *up);
            // The same check resumes where it was (its counts towards rise/fall, its next
            // check); a changed one starts afresh from the server's state.
            let start = prev_progress
                .get(&(t.service, t.real))
                .and_then(|v| v.iter().find(|(p, _)| p == &t))
                .map_or(Start::Fresh(up), |(_, (state, next))| {
                    Start::Resume(*state, *next)
                });
            // Only the same agent check carries its state: a new port or send string is
            // another agent, which starts from scratch.
            let agent = prev_agents
                .get(&(t.service, t.real))
                .and_then(|v| v.iter().find(|(p, _)| p == &t))
                .map(|(_, a)| a.clone())
                .unwrap_or_default();
            (t, start, agent)
        })
        .collect::<Vec<_>>();
    apply_health(core, &cfg, &targets, previous);
    let static_of = static_schedulers(&cfg);
    let warned = std::sync::Mutex::new(std::collections::HashSet::new());
    let c = core.clone();
    let lock = Arc::clone(apply_lock);
    let on_agent = Arc::new(move |t: &HealthTarget, st: &AgentState| {
        let pct = st.effective_weight_pct();
        if pct != 0 && pct != 100 {
            if let Some(kind) = static_of.get(&t.service) {
                if warned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((t.service, t.real))
                {
                    log::warn!(
                        "{} {}: the agent asks for {pct} % of the weight, but {kind} builds its table from the configured weights: only 0 % (drain) applies; use a scheduler such as wlc for weights that follow the agent",
                        t.service,
                        t.real
                    );
                }
            }
        }
        let _applying = lock.lock().unwrap_or_else(|p| p.into_inner());
        apply_agent(&c, t, st);
    });
    let c = core.clone();
    let lock = Arc::clone(apply_lock);
    let on_change = Arc::new(move |t: &HealthTarget, up: bool| {
        let _applying = lock.lock().unwrap_or_else(|p| p.into_inner());
        let state = if up { "UP" } else { "DOWN" };
        if t.pools.is_empty() {
            log::info!("health: {} real server {} is {state}", t.service, t.real);
            c.set_health(service_key(&t.service), t.real, up);
        } else {
            let pools = t.pools.join(", ");
            log::info!(
                "health: {} real server {} is {state} for pool(s) {pools}",
                t.service,
                t.real
            );
            c.set_pool_health(t, up);
        }
    });
    HealthMonitor::start_resumed(targets, on_change, on_agent)
}

/// The services whose scheduler builds its table from the configured weights (an
/// agent's weight other than 0 % cannot apply there), with that scheduler.
fn static_schedulers(
    cfg: &uvs_config::Config,
) -> HashMap<uvs_config::ServiceKey, uvs_sched::SchedulerKind> {
    cfg.services
        .iter()
        .filter_map(|s| {
            s.scheduler
                .name()
                .parse::<uvs_sched::SchedulerKind>()
                .ok()
                .filter(|k| k.static_weights())
                .map(|k| (s.key(), k))
        })
        .collect()
}

/// An agent's weight and connection limit, on its server's live state.
fn apply_agent(core: &Core, t: &HealthTarget, st: &AgentState) {
    core.with_live(service_key(&t.service), t.real, |l, spec| {
        l.set_agent(spec, st.effective_weight_pct(), st.maxconn)
    });
}

/// Puts what the checks know (each target's state, each agent's weight) on the running
/// snapshot's servers, and what no check decides (servers without a check, or without an
/// agent) as their configuration says.
fn apply_health(
    core: &Arc<Core>,
    cfg: &uvs_config::Config,
    targets: &[(HealthTarget, Start, AgentState)],
    previous: &Previous,
) {
    // A server without an agent check takes its configured weight and thresholds, even
    // if its slot last held a drained one, or its check was an agent check before.
    for s in &cfg.services {
        if !matches!(
            s.health_check.as_ref().map(|h| &h.kind),
            Some(HealthCheckKind::Agent { .. })
        ) {
            let key = service_key(&s.key());
            for r in &s.real_servers {
                core.with_live(key, r.key(), |l, spec| {
                    l.set_agent(spec, uvs_sched::FULL_WEIGHT_PCT, 0)
                });
            }
        }
    }
    // The dataplane starts where each target starts, down or up (a slot may hold the state
    // of a server it no longer has); a server with no check of its own is up, as a
    // service without a health check has all its servers up (also after a reload removed
    // the check of a server that was down).
    for (t, start, _) in targets {
        if t.pools.is_empty() {
            core.set_health(service_key(&t.service), t.real, start.up());
        }
    }
    let checked: HashSet<(uvs_config::ServiceKey, std::net::SocketAddr)> = targets
        .iter()
        .filter(|(t, ..)| t.pools.is_empty())
        .map(|(t, ..)| (t.service, t.real))
        .collect();
    let prev_health = by_server(&previous.health);
    let same = |t: &HealthTarget| {
        prev_health
            .get(&(t.service, t.real))
            .is_some_and(|v| v.iter().any(|(p, _)| p == t))
    };
    let same_checks: HashSet<(uvs_config::ServiceKey, std::net::SocketAddr)> = targets
        .iter()
        .filter(|(t, ..)| same(t))
        .map(|(t, ..)| (t.service, t.real))
        .collect();
    for s in &cfg.services {
        for r in &s.real_servers {
            if !checked.contains(&(s.key(), r.key())) {
                core.set_health(service_key(&s.key()), r.key(), true);
            }
            // What the feedback schedulers read comes from the checks: a server whose
            // checks are not the ones it had (a new server, perhaps in a slot another
            // left; a check changed or removed) starts with none, as a fresh monitor
            // does, instead of keeping a response time or load no check will update.
            if !same_checks.contains(&(s.key(), r.key())) {
                core.set_feedback(service_key(&s.key()), r.key(), 0, Some(0));
            }
        }
    }
    core.reset_pool_health(
        targets
            .iter()
            .filter(|(t, start, _)| !start.up() && !t.pools.is_empty())
            .map(|(t, _, _)| t),
    );
}

/// Health targets (with what was known of each) grouped by (service, real server): one
/// each, or one per distinct check of a `layer: 7` server's pools.
type ByServer<'a, T> =
    HashMap<(uvs_config::ServiceKey, std::net::SocketAddr), Vec<&'a (HealthTarget, T)>>;

fn by_server<T>(items: &[(HealthTarget, T)]) -> ByServer<'_, T> {
    let mut map: ByServer<'_, T> = HashMap::new();
    for item in items {
        map.entry((item.0.service, item.0.real))
            .or_default()
            .push(item);
    }
    map
}

impl Services {
    pub fn start(core: &Arc<Core>, opts: &Options, stop: &Arc<Stop>) -> Result<Services> {
        let cfg = core.running.lock().expect("running lock").config.clone();
        let mut threads = Vec::new();
        let socket = opts
            .admin_socket
            .clone()
            .unwrap_or_else(|| cfg.admin.socket.clone());
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let handler = admin::handler(Arc::new(Backend(core.clone())));
        threads.push(
            admin::serve(&socket, cfg.admin.group.as_deref(), handler, stop.clone())
                .with_context(|| format!("admin socket {}", socket.display()))?,
        );
        let mut history = None;
        if let Some(listen) = cfg.metrics.listen {
            let h = Arc::new(Mutex::new(crate::statuspage::History::default()));
            let (c, s) = (core.clone(), core.clone());
            let hs = h.clone();
            let routes = crate::http::Routes {
                metrics: Arc::new(move || crate::metrics::render(&snapshot(&c))),
                status: Some(Arc::new(move || status_doc(&s, &hs))),
            };
            threads.push(crate::http::serve_routes(listen, routes, stop.clone())?);
            history = Some(h);
        }
        let health_apply = Arc::new(Mutex::new(()));
        Ok(Services {
            health: Mutex::new(Some(start_health(
                core,
                &Previous::default(),
                &health_apply,
            ))),
            health_static: Mutex::new(static_schedulers(&cfg)),
            health_apply,
            history,
            stop: stop.clone(),
            threads: Mutex::new(threads),
        })
    }

    /// Copies the health checks' response times and reported loads into the live server
    /// state the `fastest` and `load` schedulers read.
    pub fn feed_schedulers(&self, core: &Core) {
        let h = self.health.lock().expect("health lock");
        let Some(m) = h.as_ref() else { return };
        for (t, rtt, load) in m.feedback() {
            if rtt > 0 || load.is_some() {
                core.set_feedback(service_key(&t.service), t.real, rtt, load);
            }
        }
    }

    /// Appends the rates just sampled to the status page's history (once a second).
    pub fn record_status(&self, core: &Core) {
        if let Some(h) = &self.history {
            // From what the sampler saw change, not a whole snapshot: idle, with thousands
            // of services, this costs next to nothing.
            let drops = core.shared.counters.iter().map(|c| c.total_drops()).sum();
            let sample = core.rates.lock().expect("rates lock").history_sample(drops);
            h.lock().expect("history lock").record(&sample);
        }
    }

    /// Restarts the health checks for the new configuration.
    pub fn config_changed(&self, core: &Arc<Core>) {
        let mut h = self.health.lock().expect("health lock");
        let previous = h
            .as_ref()
            .map(|m| Previous {
                health: m.current(),
                progress: m
                    .progress()
                    .into_iter()
                    .map(|(t, state, next)| (t, (state, next)))
                    .collect(),
                agents: m.agent_states(),
            })
            .unwrap_or_default();
        let cfg = core.running.lock().expect("running lock").config.clone();
        let mut static_of = self.health_static.lock().expect("health lock");
        let new_static = static_schedulers(&cfg);
        if let Some(m) = h.as_ref() {
            // The same servers with the same checks (a weight edited, a timeout, another
            // service's change): the checkers go on, so a check under way is not cut
            // short — edits coming faster than a check's timeout would otherwise never
            // let a black-holed server's checks fail. The new snapshot's servers are
            // told what the checks know.
            if m.targets() == crate::health::targets(&cfg).as_slice() && *static_of == new_static {
                {
                    // Read under the lock: a verdict a checker is about to apply comes
                    // after this one, not before it (a checker sets its state, then
                    // applies it under the lock).
                    let _applying = self.health_apply.lock().expect("health apply lock");
                    let previous = Previous {
                        health: m.current(),
                        ..Previous::default()
                    };
                    let targets: Vec<(HealthTarget, Start, AgentState)> = previous
                        .health
                        .iter()
                        .map(|(t, up)| (t.clone(), Start::Fresh(*up), AgentState::default()))
                        .collect();
                    apply_health(core, &cfg, &targets, &previous);
                }
                // Each agent's word again, from its checker's lock (not under ours, which
                // a checker takes while holding its agent's state).
                m.reapply_agents();
                return;
            }
        }
        if let Some(old) = h.take() {
            old.stop();
        }
        *h = Some(start_health(core, &previous, &self.health_apply));
        *static_of = new_static;
    }

    pub fn stop(&self) {
        self.stop.raise();
        if let Some(h) = self.health.lock().expect("health lock").take() {
            h.stop();
        }
        for t in self.threads.lock().expect("threads lock").drain(..) {
            let _ = t.join();
        }
    }
}
