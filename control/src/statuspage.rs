//! The read-only status page (`GET /` at `metrics.listen`, as HAProxy's stats page) and its
//! data (`GET /status.json`): services, real servers with health and weight, connection
//! counts, rates with a short history for sparklines, drops by reason, per-worker load and
//! the cluster roles.
//!
//! The history is a ring of the last [`SAMPLES`] once-a-second rates the daemon already
//! computes (`status::RateSampler`), the same rates `uvsadm` and `/metrics` render, so the
//! page never shows figures of its own making. The control loop hands over only what
//! changed ([`Sample`]): a series whose rate stays zero is not touched each second. The page itself is one self-contained file (inline CSS and script, no external
//! assets) that polls `/status.json` every second.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use serde::Serialize;

use crate::announce::NodeSnapshot;
use crate::cluster::ClusterStatus;
use crate::snapshot::{Rates, RealSnapshot, Snapshot, SyncSnapshot, Traffic};

/// The page: HTML with its CSS and script inline.
pub const PAGE: &str = include_str!("statuspage.html");

/// Samples kept per series: a minute of the once-a-second rates.
pub const SAMPLES: usize = 60;

/// The identity of a service (protocol, VIP, port, mark) or of one of its real servers:
/// what survives a reload, as the metrics' labels do.
pub type Key = (String, IpAddr, u16, u32, Option<(IpAddr, u16)>);

/// Rates over time, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Series {
    pub cps: Vec<f64>,
    pub inpps: Vec<f64>,
    pub outpps: Vec<f64>,
    pub inbps: Vec<f64>,
    pub outbps: Vec<f64>,
}

/// `x` to three significant digits: plenty for a sparkline, and it keeps `/status.json` small
/// (a rate such as 294.01734104046244 prints as 294).
fn sig3(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    format!("{x:.2e}").parse().unwrap_or(x)
}

impl Series {
    fn of(ring: &Ring, tick: u64) -> Series {
        // The samples recorded, then a zero for each second since the last one.
        let zeros = usize::try_from(tick.saturating_sub(ring.last)).unwrap_or(SAMPLES);
        let skip = (ring.samples.len() + zeros.min(SAMPLES)).saturating_sub(SAMPLES);
        let all: Vec<Rates> = ring
            .samples
            .iter()
            .copied()
            .chain(std::iter::repeat_n(Rates::default(), zeros.min(SAMPLES)))
            .skip(skip)
            .collect();
        let col = |f: fn(&Rates) -> f64| all.iter().map(|r| sig3(f(r))).collect();
        Series {
            cps: col(|r| r.cps),
            inpps: col(|r| r.inpps),
            outpps: col(|r| r.outpps),
            inbps: col(|r| r.inbps),
            outbps: col(|r| r.outbps),
        }
    }
}

/// One series' ring: the samples up to the one of tick `last`, and zeros implied for every
/// tick after it, so a series whose rate stays zero costs nothing per second.
#[derive(Default)]
struct Ring {
    samples: VecDeque<Rates>,
    last: u64,
}

impl Ring {
    fn push(&mut self, tick: u64, r: Rates) {
        let gap = tick.saturating_sub(self.last).saturating_sub(1);
        for _ in 0..gap.min(SAMPLES as u64) {
            push(&mut self.samples, Rates::default());
        }
        push(&mut self.samples, r);
        self.last = tick;
    }
}

/// What one second brings the history: the series when they changed (a reload or an
/// edit; `None`: the same as before), the rates that changed (a series not listed kept its
/// rate, which was zero), each worker's busy share and the drops so far.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub series: Option<Vec<Key>>,
    pub changed: Vec<(Key, Rates)>,
    pub busy: Vec<f64>,
    pub drops: u64,
}

impl Sample {
    /// Every series of `s` with its rate, as if all had changed.
    pub fn of(s: &Snapshot) -> Sample {
        let mut changed = Vec::new();
        for svc in &s.services {
            changed.push((service_key(svc, None), svc.rates));
            for r in &svc.reals {
                changed.push((service_key(svc, Some(r)), r.rates));
            }
        }
        Sample {
            series: Some(changed.iter().map(|(k, _)| k.clone()).collect()),
            changed,
            busy: s.workers.iter().map(|w| w.busy_ratio).collect(),
            drops: s.drops.iter().map(|(_, n)| n).sum(),
        }
    }
}

/// The rings, fed once a second by the control loop.
pub struct History {
    started: Instant,
    /// Samples recorded (the current tick).
    tick: u64,
    rates: HashMap<Key, Ring>,
    busy: Vec<VecDeque<f64>>,
    drops: VecDeque<f64>,
    last_drops: Option<(Instant, u64)>,
}

impl Default for History {
    fn default() -> Self {
        History {
            started: Instant::now(),
            tick: 0,
            rates: HashMap::new(),
            busy: Vec::new(),
            drops: VecDeque::new(),
            last_drops: None,
        }
    }
}

fn push<T>(ring: &mut VecDeque<T>, v: T) {
    if ring.len() == SAMPLES {
        ring.pop_front();
    }
    ring.push_back(v);
}

fn service_key(s: &crate::snapshot::ServiceSnapshot, real: Option<&RealSnapshot>) -> Key {
    (
        s.protocol.clone(),
        s.vip,
        s.port,
        s.fwmark,
        real.map(|r| (r.address, r.port)),
    )
}

impl History {
    /// Appends the rates of `s` (taken just after the rates were sampled); series of services
    /// and real servers no longer configured are forgotten. Costs what changed: a series
    /// whose rate stays zero is not touched.
    pub fn record(&mut self, s: &Sample) {
        self.record_at(s, Instant::now());
    }

    fn record_at(&mut self, s: &Sample, now: Instant) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(series) = &s.series {
            let mut rates = std::mem::take(&mut self.rates);
            for key in series {
                let ring = rates.remove(key).unwrap_or(Ring {
                    samples: VecDeque::new(),
                    last: tick - 1,
                });
                self.rates.insert(key.clone(), ring);
            }
        }
        for (key, r) in &s.changed {
            if let Some(ring) = self.rates.get_mut(key) {
                ring.push(tick, *r);
            }
        }
        self.busy.resize_with(s.busy.len(), VecDeque::new);
        for (ring, b) in self.busy.iter_mut().zip(&s.busy) {
            push(ring, *b);
        }
        let total = s.drops;
        if let Some((then, before)) = self.last_drops {
            let dt = now.duration_since(then).as_secs_f64();
            if dt > 0.0 {
                push(&mut self.drops, total.saturating_sub(before) as f64 / dt);
            }
        }
        self.last_drops = Some((now, total));
    }

    fn series(&self, key: &Key) -> Series {
        self.rates
            .get(key)
            .map(|r| Series::of(r, self.tick))
            .unwrap_or_default()
    }
}

/// `/status.json`.
#[derive(Clone, Debug, Serialize)]
pub struct StatusDoc {
    pub version: String,
    /// Tables generation: moves on every reload or admin change.
    pub generation: u64,
    /// Seconds since the status history started (with the daemon's side services).
    pub uptime_s: u64,
    /// Seconds between two samples of every series.
    pub interval_s: u64,
    /// When this document was made (Unix milliseconds, the daemon's clock): the page
    /// divides counter differences by the time between two documents, not by its own.
    pub time_ms: u64,
    pub conn_count: usize,
    pub conn_capacity: usize,
    pub services: Vec<ServiceStatus>,
    /// Packets dropped, by reason (only reasons that happened), since the start.
    pub drops: Vec<DropCount>,
    /// Drops per second over all reasons, oldest first.
    pub drops_per_s: Vec<f64>,
    pub workers: Vec<WorkerStatus>,
    /// Active/backup groups and this node's role in each; empty without `cluster:`.
    pub cluster: Vec<GroupRole>,
    pub node: Option<NodeSnapshot>,
    pub sync: Option<SyncSnapshot>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    pub protocol: String,
    pub vip: IpAddr,
    pub port: u16,
    pub fwmark: u32,
    pub scheduler: String,
    pub flags: String,
    pub persistent: Option<(u32, u8)>,
    /// Over the service's real servers.
    pub active: u64,
    pub inactive: u64,
    pub traffic: Traffic,
    pub rates: Rates,
    pub history: Series,
    pub reals: Vec<RealStatus>,
    /// A `layer: 7` service's pools: connections each took, and its members' state for it
    /// (a pool's own health check may hold a member down for that pool only).
    pub pools: Vec<crate::snapshot::PoolHits>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RealStatus {
    #[serde(flatten)]
    pub real: RealSnapshot,
    /// "down" (health check failed), "overloaded" (upper threshold reached), "drained"
    /// (weight 0 in effect: no new connections) or "up".
    pub state: &'static str,
    pub history: Series,
}

#[derive(Clone, Debug, Serialize)]
pub struct DropCount {
    pub reason: String,
    pub packets: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkerStatus {
    pub id: usize,
    pub core: Option<usize>,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub new_conns: u64,
    pub slow_path: u64,
    /// Share of polls that found packets over the last second (0..=1).
    pub busy_ratio: f64,
    /// `busy_ratio` over time, oldest first.
    pub busy: Vec<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupRole {
    pub name: String,
    /// "master" or "backup".
    pub role: String,
    pub for_secs: u64,
    pub switches: u64,
    pub vips: Vec<IpAddr>,
}

/// What a real server is doing, in one word.
pub fn real_state(r: &RealSnapshot) -> &'static str {
    if !r.health_up {
        "down"
    } else if r.overloaded {
        "overloaded"
    } else if r.weight == 0 {
        "drained"
    } else {
        "up"
    }
}

/// The document for `s`, with the series of `history` and the roles of `cluster`.
pub fn doc(s: Snapshot, history: &History, cluster: Option<&ClusterStatus>) -> StatusDoc {
    let services = s
        .services
        .iter()
        .map(|svc| {
            let reals: Vec<RealStatus> = svc
                .reals
                .iter()
                .map(|r| RealStatus {
                    real: r.clone(),
                    state: real_state(r),
                    history: history.series(&service_key(svc, Some(r))),
                })
                .collect();
            ServiceStatus {
                name: svc.name.clone(),
                protocol: svc.protocol.clone(),
                vip: svc.vip,
                port: svc.port,
                fwmark: svc.fwmark,
                scheduler: svc.scheduler.clone(),
                flags: svc.flags.clone(),
                persistent: svc.persistent,
                active: svc.reals.iter().map(|r| u64::from(r.active)).sum(),
                inactive: svc.reals.iter().map(|r| u64::from(r.inactive)).sum(),
                traffic: svc.traffic,
                rates: svc.rates,
                history: history.series(&service_key(svc, None)),
                reals,
                pools: s
                    .layer7_pools
                    .iter()
                    .filter(|p| p.service == svc.name)
                    .cloned()
                    .collect(),
            }
        })
        .collect();
    let workers = s
        .workers
        .iter()
        .map(|w| WorkerStatus {
            id: w.id,
            core: w.core,
            rx_packets: w.rx_packets,
            tx_packets: w.tx_packets,
            new_conns: w.new_conns,
            slow_path: w.slow_path,
            busy_ratio: w.busy_ratio,
            busy: history
                .busy
                .get(w.id)
                .map(|r| r.iter().copied().collect())
                .unwrap_or_default(),
        })
        .collect();
    let cluster = cluster
        .map(|c| {
            c.groups
                .iter()
                .map(|g| GroupRole {
                    name: g.name.clone(),
                    role: g.role.to_string(),
                    for_secs: g.for_secs,
                    switches: g.switches,
                    vips: g.vips.iter().map(|(v, _)| *v).collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    StatusDoc {
        version: s.version,
        generation: s.generation,
        uptime_s: history.started.elapsed().as_secs(),
        interval_s: 1,
        time_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        conn_count: s.conn_count,
        conn_capacity: s.conn_capacity,
        services,
        drops: s
            .drops
            .into_iter()
            .map(|(reason, packets)| DropCount { reason, packets })
            .collect(),
        drops_per_s: history.drops.iter().copied().collect(),
        workers,
        cluster,
        node: s.node,
        sync: s.sync,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ServiceSnapshot, WorkerSnapshot};
    use std::time::Duration;

    fn snap(cps: f64, drops: u64, with_real: bool) -> Snapshot {
        let real = RealSnapshot {
            address: "198.18.1.11".parse().unwrap(),
            port: 80,
            forward: "Masq".into(),
            tunnel: String::new(),
            weight: 1,
            active: 2,
            inactive: 3,
            health_up: true,
            overloaded: false,
            upper_threshold: 0,
            lower_threshold: 0,
            persistent: 0,
            response_time_us: 0,
            load: 0,
            traffic: Traffic::default(),
            rates: Rates {
                cps: cps / 2.0,
                ..Rates::default()
            },
        };
        Snapshot {
            services: vec![ServiceSnapshot {
                name: "web".into(),
                protocol: "TCP".into(),
                vip: "198.18.100.1".parse().unwrap(),
                port: 80,
                fwmark: 0,
                scheduler: "rr".into(),
                flags: String::new(),
                persistent: None,
                one_packet: false,
                reals: if with_real { vec![real] } else { vec![] },
                traffic: Traffic::default(),
                rates: Rates {
                    cps,
                    ..Rates::default()
                },
            }],
            workers: vec![WorkerSnapshot {
                busy_ratio: cps / 100.0,
                ..WorkerSnapshot::default()
            }],
            drops: vec![("no_service".into(), drops)],
            ..Snapshot::default()
        }
    }

    /// The ring keeps the last SAMPLES samples in order, per service and real server, and
    /// forgets a real server that left the configuration.
    #[test]
    fn history_is_a_bounded_ring_per_entity() {
        let mut h = History::default();
        let t0 = Instant::now();
        for i in 0..(SAMPLES + 5) {
            let t = t0 + Duration::from_secs(i as u64);
            h.record_at(&Sample::of(&snap(i as f64, 10 * i as u64, true)), t);
        }
        let d = doc(snap(0.0, 0, true), &h, None);
        let cps = &d.services[0].history.cps;
        assert_eq!(cps.len(), SAMPLES);
        assert_eq!(cps[0], 5.0);
        assert_eq!(*cps.last().unwrap(), (SAMPLES + 4) as f64);
        assert_eq!(d.services[0].reals[0].history.cps[0], 2.5);
        assert_eq!(d.workers[0].busy.len(), SAMPLES);
        assert!(d.drops_per_s.iter().all(|r| (*r - 10.0).abs() < 1e-9));
        assert_eq!(d.services[0].active, 2);
        assert_eq!(d.services[0].reals[0].state, "up");

        h.record_at(
            &Sample::of(&snap(1.0, 0, false)),
            t0 + Duration::from_secs(100),
        );
        let d = doc(snap(0.0, 0, true), &h, None);
        assert!(d.services[0].reals[0].history.cps.is_empty());
    }

    /// With `cluster:`, each group's role on this node; without, an empty list.
    #[test]
    fn cluster_roles() {
        use crate::cluster::GroupStatus;
        let vip: IpAddr = "198.18.100.1".parse().unwrap();
        let status = ClusterStatus {
            groups: vec![GroupStatus {
                name: "web".into(),
                role: uvs_config::ClusterRole::Backup,
                for_secs: 7,
                switches: 2,
                vips: vec![(vip, true)],
                pools: vec![],
            }],
            ..ClusterStatus::default()
        };
        let d = doc(snap(0.0, 0, true), &History::default(), Some(&status));
        assert_eq!(d.cluster.len(), 1);
        assert_eq!(d.cluster[0].role, "backup");
        assert_eq!(d.cluster[0].vips, [vip]);
        assert_eq!((d.cluster[0].for_secs, d.cluster[0].switches), (7, 2));
        assert!(doc(snap(0.0, 0, true), &History::default(), None)
            .cluster
            .is_empty());
    }

    #[test]
    fn series_keep_three_significant_digits() {
        assert_eq!(sig3(294.01734104046244), 294.0);
        assert_eq!(sig3(953_123.456), 953_000.0);
        assert_eq!(sig3(0.012345), 0.0123);
        assert_eq!(sig3(0.0), 0.0);
    }

    #[test]
    fn real_states() {
        let mut r = snap(0.0, 0, true).services[0].reals[0].clone();
        assert_eq!(real_state(&r), "up");
        r.weight = 0;
        assert_eq!(real_state(&r), "drained");
        r.overloaded = true;
        assert_eq!(real_state(&r), "overloaded");
        r.health_up = false;
        assert_eq!(real_state(&r), "down");
    }
}
