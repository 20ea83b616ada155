//! `uvs-bench schedulers`: a discrete-event simulation of a cluster of processor-sharing
//! servers (a web server shares its CPU among open requests) driving uvs's own scheduler
//! code (`uvs_sched::Scheduler::pick`, `ServerLive::bind_conn`/`unbind_conn`), to see
//! which scheduler suits which situation: heterogeneous speeds, exponential and
//! heavy-tailed (Pareto) request sizes, bursts, and a server slowing down mid-run.
//!
//! Control's feedback is simulated as uvsd would feed it: a probe every 100 ms stores the
//! time an idle request of mean size would take (`rtt_us`, for `fastest`), and an agent
//! every 500 ms reports `load` = 100 × open requests scaled by nominal/current speed (for
//! `load`), clamped to 1000 — both stale between reports, as in life. Load reports go
//! through uvs's own [`LoadFilter`] (smoothing, ageing) as uvsd passes them on.
//!
//! `load-herd` is the `load` scheduler as it was before it weighed connections: least
//! reported load per weight, ties to fewer connections, reports stored raw. It is kept
//! here, and only here, so one run gives the before and after figures of that change.

pub mod workload;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;

use anyhow::{Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;
use uvs_sched::{
    FlowHashKey, LoadFilter, SchedConfig, Scheduler, SchedulerKind, ServerLive, ServerSpec,
    MAX_AGENT_LOAD,
};

use workload::{Request, Situation};

const PROBE_INTERVAL_S: f64 = 0.1;
const AGENT_INTERVAL_S: f64 = 0.5;

/// One processor-sharing server: every open request gets speed/n. Finish tags in
/// attained-service ("virtual") time make each event O(log n).
struct PsServer {
    speed: f64,
    nominal: f64,
    /// Service each open request has received since the server was created.
    virt: f64,
    last: f64,
    open: BinaryHeap<Reverse<(u64, usize)>>,
}

impl PsServer {
    fn new(speed: f64) -> PsServer {
        PsServer {
            speed,
            nominal: speed,
            virt: 0.0,
            last: 0.0,
            open: BinaryHeap::new(),
        }
    }

    fn advance(&mut self, t: f64) {
        let n = self.open.len();
        if n > 0 {
            self.virt += (t - self.last) * self.speed / n as f64;
        }
        self.last = t;
    }

    /// When the first open request finishes, if any.
    fn next_completion(&self) -> Option<f64> {
        let Reverse((tag, _)) = self.open.peek()?;
        let left = (f64::from_bits(*tag) - self.virt).max(0.0);
        Some(self.last + left * self.open.len() as f64 / self.speed)
    }

    fn admit(&mut self, t: f64, size: f64, job: usize) {
        self.advance(t);
        // Finish tags are positive, so their bit patterns order like the values.
        self.open.push(Reverse(((self.virt + size).to_bits(), job)));
    }
}

/// Figures of one scheduler in one situation.
#[derive(Clone, Debug, Serialize)]
pub struct SimResult {
    pub situation: &'static str,
    pub scheduler: &'static str,
    pub requests: usize,
    pub completed: u64,
    /// Requests no server could take (`pick` returned `None`).
    pub rejected: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Fraction of requests each server received.
    pub share: Vec<f64>,
}

/// What picks the server: one of uvs's schedulers, or the study's `load-herd` baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Picker {
    Sched(SchedulerKind),
    /// The previous `load`: least `load / weight`, ties to the least `active*256 +
    /// inactive`, then to the earliest; reports used raw.
    LoadHerd,
}

impl Picker {
    pub fn name(&self) -> &'static str {
        match self {
            Picker::Sched(k) => k.name(),
            Picker::LoadHerd => "load-herd",
        }
    }

    fn parse(s: &str) -> Result<Picker> {
        if s == "load-herd" {
            return Ok(Picker::LoadHerd);
        }
        Ok(Picker::Sched(s.parse().map_err(anyhow::Error::from)?))
    }
}

/// The previous `load` scheduler (see [`Picker::LoadHerd`]).
fn load_herd_pick(weights: &[u32], live: &[ServerLive]) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None;
    for (i, l) in live.iter().enumerate() {
        let w = weights[i];
        if !l.available(w) {
            continue;
        }
        let ld = u64::from(l.load.load(Relaxed).min(MAX_AGENT_LOAD));
        let oh = l.conn_overhead();
        let better = best.is_none_or(|(b, bl, boh)| {
            let (lhs, rhs) = (ld * u64::from(weights[b]), bl * u64::from(w));
            lhs < rhs || (lhs == rhs && oh < boh)
        });
        if better {
            best = Some((i, ld, oh));
        }
    }
    best.map(|(i, _, _)| i)
}

/// Runs `picker` over `reqs` in situation `s`.
pub fn simulate_with(s: &Situation, picker: Picker, reqs: &[Request]) -> Result<SimResult> {
    let weights = s.weights();
    let specs: Vec<ServerSpec> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| ServerSpec::new(w, 0xa000 + i as u64))
        .collect();
    let sched = match picker {
        Picker::Sched(kind) => Some(
            Scheduler::build(&SchedConfig::new(kind), &specs)
                .with_context(|| format!("building {kind}"))?,
        ),
        Picker::LoadHerd => None,
    };
    let pick = |key: &FlowHashKey, live: &[ServerLive], now_s: u32| match &sched {
        Some(sc) => sc.pick(key, live, now_s),
        None => load_herd_pick(&weights, live),
    };
    let mut filters = vec![LoadFilter::new(Duration::from_secs_f64(AGENT_INTERVAL_S)); specs.len()];
    let live: Vec<ServerLive> = specs.iter().map(|_| ServerLive::new()).collect();
    let mut servers: Vec<PsServer> = s.speeds.iter().map(|&v| PsServer::new(v)).collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let mut sum_us = 0.0;
    let (mut completed, mut rejected) = (0u64, 0u64);
    let mut placed = vec![0u64; servers.len()];
    let mut arrived_at = vec![0.0f64; reqs.len()];
    let slow_at = s
        .slowdown
        .map(|(i, f)| (reqs.last().map_or(0.0, |r| r.at) / 2.0, i, f));
    let mut slowed = false;
    let (mut next_probe, mut next_agent) = (0.0f64, 0.0f64);
    let mut i = 0;
    loop {
        // The earliest completion over the servers (few servers: a scan).
        let done = servers
            .iter()
            .enumerate()
            .filter_map(|(k, sv)| sv.next_completion().map(|t| (t, k)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let arrival = reqs.get(i).map(|r| r.at);
        let tick = next_probe.min(next_agent);
        let slow = slow_at.filter(|_| !slowed).map(|(t, ..)| t);
        let t_done = done.map_or(f64::INFINITY, |d| d.0);
        let t_arr = arrival.unwrap_or(f64::INFINITY);
        if t_done.is_infinite() && t_arr.is_infinite() {
            break;
        }
        let t_slow = slow.unwrap_or(f64::INFINITY);
        let t = t_done.min(t_arr).min(tick).min(t_slow);
        if t == t_slow {
            let (_, k, f) = slow_at.expect("scheduled");
            for sv in servers.iter_mut() {
                sv.advance(t);
            }
            servers[k].speed = servers[k].nominal * f;
            slowed = true;
        } else if t == tick {
            let now = Duration::from_secs_f64(t);
            if next_probe <= next_agent {
                for (sv, l) in servers.iter().zip(&live) {
                    let idle_us = s.mean_size / sv.speed * 1e6;
                    l.rtt_us.store(idle_us.max(1.0) as u32, Relaxed);
                }
                // Control republishes aged load figures as often as it feeds RTTs.
                if picker != Picker::LoadHerd {
                    for (f, l) in filters.iter().zip(&live) {
                        l.load.store(f.current(now), Relaxed);
                    }
                }
                next_probe += PROBE_INTERVAL_S;
            } else {
                for ((sv, l), f) in servers.iter().zip(&live).zip(filters.iter_mut()) {
                    let load =
                        (100.0 * sv.open.len() as f64 * sv.nominal / sv.speed).min(1000.0) as u32;
                    if picker == Picker::LoadHerd {
                        l.load.store(load, Relaxed);
                    } else {
                        f.report(load, now);
                        l.load.store(f.current(now), Relaxed);
                    }
                }
                next_agent += AGENT_INTERVAL_S;
            }
        } else if t == t_done {
            let k = done.expect("a completion").1;
            let sv = &mut servers[k];
            sv.advance(t);
            let Reverse((_, job)) = sv.open.pop().expect("open request");
            live[k].unbind_conn(&specs[k], true);
            let us = ((t - arrived_at[job]) * 1e6).max(1.0);
            hist.saturating_record(us as u64);
            sum_us += us;
            completed += 1;
        } else {
            let r = &reqs[i];
            arrived_at[i] = r.at;
            match pick(&r.key, &live, r.at as u32) {
                Some(k) => {
                    live[k].bind_conn(&specs[k], true);
                    servers[k].admit(r.at, r.size, i);
                    placed[k] += 1;
                }
                None => rejected += 1,
            }
            i += 1;
        }
        if i >= reqs.len() && servers.iter().all(|sv| sv.open.is_empty()) {
            break;
        }
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1e3;
    Ok(SimResult {
        situation: s.name,
        scheduler: picker.name(),
        requests: reqs.len(),
        completed,
        rejected,
        mean_ms: if completed > 0 {
            sum_us / completed as f64 / 1e3
        } else {
            0.0
        },
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: hist.max() as f64 / 1e3,
        share: placed
            .iter()
            .map(|&p| p as f64 / reqs.len().max(1) as f64)
            .collect(),
    })
}

/// The schedulers compared by default: the ones that do not key on the destination
/// address (lblc, lblcr and dh send every flow to a single-VIP service to one server),
/// and the `load-herd` baseline.
pub const DEFAULT_SCHEDULERS: [&str; 13] = [
    "rr",
    "wrr",
    "lc",
    "wlc",
    "sed",
    "nq",
    "sh",
    "mh",
    "twos",
    "ovf",
    "fastest",
    "load",
    "load-herd",
];

#[derive(Args, Debug)]
pub struct SchedArgs {
    /// Requests per scheduler per situation.
    #[arg(long, default_value_t = 200_000, value_parser = crate::args::count)]
    pub requests: usize,
    /// Schedulers (names as ipvsadm -s, plus fastest, load and the load-herd baseline),
    /// or "all".
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_SCHEDULERS.map(String::from))]
    pub schedulers: Vec<String>,
    /// Situations (hetero-exp, hetero-pareto, bursts, slowdown); default all.
    #[arg(long, value_delimiter = ',')]
    pub situations: Vec<String>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn sched_main(a: SchedArgs) -> Result<()> {
    let kinds: Vec<Picker> = if a.schedulers.iter().any(|s| s == "all") {
        SchedulerKind::ALL
            .iter()
            .map(|&k| Picker::Sched(k))
            .chain([Picker::LoadHerd])
            .collect()
    } else {
        a.schedulers
            .iter()
            .map(|s| Picker::parse(s))
            .collect::<Result<_>>()?
    };
    let all = workload::situations();
    let sits: Vec<Situation> = if a.situations.is_empty() {
        all
    } else {
        a.situations
            .iter()
            .map(|n| {
                all.iter()
                    .find(|s| s.name == n)
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("unknown situation '{n}'"))
            })
            .collect::<Result<_>>()?
    };
    let start = std::time::Instant::now();
    let mut results = Vec::new();
    for s in &sits {
        eprintln!("schedulers: {} — {}", s.name, s.about);
        let reqs = workload::generate(s, a.requests, a.seed);
        println!(
            "{:<14} {:<8} {:>9} {:>9} {:>9} {:>10} {:>8}  share",
            "situation", "sched", "mean ms", "p50 ms", "p99 ms", "p99.9 ms", "rejected"
        );
        for &k in &kinds {
            let r = simulate_with(s, k, &reqs)?;
            println!(
                "{:<14} {:<8} {:>9.2} {:>9.2} {:>9.2} {:>10.2} {:>8}  {}",
                r.situation,
                r.scheduler,
                r.mean_ms,
                r.p50_ms,
                r.p99_ms,
                r.p999_ms,
                r.rejected,
                r.share
                    .iter()
                    .map(|x| format!("{:.2}", x))
                    .collect::<Vec<_>>()
                    .join("/")
            );
            results.push(r);
        }
        if let Some(b) = best(&results, s.name) {
            println!("  best p99 in {}: {b}", s.name);
        }
        if let Some(c) = herd_change(&results, s.name) {
            println!(
                "  load / load-herd in {}: mean {:.3}×, p99 {:.3}×, p99.9 {:.3}×, largest share {:.2} → {:.2}",
                s.name, c.mean, c.p99, c.p999, c.max_share_before, c.max_share_after
            );
        }
    }
    eprintln!("schedulers: done in {:.1} s", start.elapsed().as_secs_f64());
    if let Some(path) = &a.json {
        let doc = serde_json::json!({
            "benchmark": "schedulers",
            "environment": crate::environment::record(None, &[]),
            "settings": {
                "requests": a.requests,
                "seed": a.seed,
                "server_model": "processor sharing",
                "weights": "10 x nominal speed",
                "probe_interval_s": PROBE_INTERVAL_S,
                "agent_interval_s": AGENT_INTERVAL_S,
                "situations": &sits,
            },
            "results": &results,
            "best_p99": sits.iter().map(|s| (s.name, best(&results, s.name))).collect::<std::collections::BTreeMap<_, _>>(),
            "load_over_load_herd": sits.iter().filter_map(|s| herd_change(&results, s.name).map(|c| (s.name, c))).collect::<std::collections::BTreeMap<_, _>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// `load` against the `load-herd` baseline in one situation: response-time ratios
/// (after / before; below 1 is better) and the largest share one server received.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct HerdChange {
    pub mean: f64,
    pub p99: f64,
    pub p999: f64,
    pub max_share_before: f64,
    pub max_share_after: f64,
}

/// [`HerdChange`] when both `load` and `load-herd` ran in `situation`.
pub fn herd_change(results: &[SimResult], situation: &str) -> Option<HerdChange> {
    let find = |name: &str| {
        results
            .iter()
            .find(|r| r.situation == situation && r.scheduler == name)
    };
    let (after, before) = (find("load")?, find("load-herd")?);
    let max_share = |r: &SimResult| r.share.iter().copied().fold(0.0, f64::max);
    Some(HerdChange {
        mean: after.mean_ms / before.mean_ms,
        p99: after.p99_ms / before.p99_ms,
        p999: after.p999_ms / before.p999_ms,
        max_share_before: max_share(before),
        max_share_after: max_share(after),
    })
}

/// The scheduler with the lowest p99 in a situation among those that rejected nothing.
pub fn best(results: &[SimResult], situation: &str) -> Option<&'static str> {
    results
        .iter()
        .filter(|r| r.situation == situation && r.rejected == 0)
        .min_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms))
        .map(|r| r.scheduler)
}

#[cfg(test)]
mod tests {
    use super::*;
    use workload::{Arrivals, Sizes};

    fn simulate(s: &Situation, kind: SchedulerKind, reqs: &[Request]) -> Result<SimResult> {
        simulate_with(s, Picker::Sched(kind), reqs)
    }

    fn one_server(load: f64) -> Situation {
        Situation {
            name: "mm1",
            about: "",
            speeds: vec![1.0],
            sizes: Sizes::Exponential,
            arrivals: Arrivals::Poisson,
            load,
            mean_size: 0.01,
            slowdown: None,
        }
    }

    #[test]
    fn single_ps_server_matches_mm1_mean() {
        // M/M/1-PS: mean response = mean service / (1 - rho) = 10 ms / 0.5 = 20 ms.
        let s = one_server(0.5);
        let reqs = workload::generate(&s, 100_000, 11);
        let r = simulate(&s, SchedulerKind::Rr, &reqs).unwrap();
        assert_eq!(r.completed, 100_000);
        assert!((r.mean_ms - 20.0).abs() < 2.0, "{}", r.mean_ms);
    }

    #[test]
    fn weighted_beats_plain_round_robin_on_heterogeneous_servers() {
        let s = &workload::situations()[0];
        let reqs = workload::generate(s, 20_000, 5);
        let rr = simulate(s, SchedulerKind::Rr, &reqs).unwrap();
        let wlc = simulate(s, SchedulerKind::Wlc, &reqs).unwrap();
        // rr overloads the speed-1 servers at 85% load (each gets 1/4 of 6.8 units/s).
        assert!(
            wlc.p99_ms * 3.0 < rr.p99_ms,
            "wlc {} rr {}",
            wlc.p99_ms,
            rr.p99_ms
        );
        assert!((rr.share[0] - 0.25).abs() < 0.02);
    }

    #[test]
    fn load_no_longer_herds() {
        // Equal servers: the herd shows as a p99 far above wlc's; without it `load`
        // stays close to the connection-counting schedulers.
        let s = &workload::situations()[0];
        let reqs = workload::generate(s, 20_000, 5);
        let herd = simulate_with(s, Picker::LoadHerd, &reqs).unwrap();
        let load = simulate(s, SchedulerKind::Load, &reqs).unwrap();
        let wlc = simulate(s, SchedulerKind::Wlc, &reqs).unwrap();
        assert!(
            load.p99_ms * 5.0 < herd.p99_ms,
            "load {} herd {}",
            load.p99_ms,
            herd.p99_ms
        );
        assert!(
            load.p99_ms < wlc.p99_ms * 2.0,
            "load {} wlc {}",
            load.p99_ms,
            wlc.p99_ms
        );
        let c = herd_change(&[herd, load], s.name).unwrap();
        assert!(c.p99 < 0.2, "{c:?}");
    }

    #[test]
    fn feedback_reacts_to_a_slowdown() {
        let s = &workload::situations()[3];
        let reqs = workload::generate(s, 40_000, 9);
        let wrr = simulate(s, SchedulerKind::Wrr, &reqs).unwrap();
        let fastest = simulate(s, SchedulerKind::Fastest, &reqs).unwrap();
        assert!(
            fastest.share[0] < wrr.share[0],
            "{:?} vs {:?}",
            fastest.share,
            wrr.share
        );
        assert!(fastest.p99_ms < wrr.p99_ms);
    }
}
