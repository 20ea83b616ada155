//! Property tests: the `load` scheduler does not herd. Between two agent reports the
//! loads it reads are frozen; whatever they are, a burst of new flows is shared out in
//! proportion to each server's weight × headroom, never piled onto the server that last
//! looked idle (what the previous, report-only `load` did).

use std::sync::atomic::Ordering::Relaxed;

use proptest::prelude::*;
use uvs_sched::{
    FlowHashKey, LoadFilter, SchedConfig, Scheduler, SchedulerKind, ServerLive, ServerSpec,
    LOAD_HEADROOM_FLOOR,
};

fn capacity(weight: u32, pct: u32, load: u32) -> f64 {
    let headroom = (1000 - u64::from(load.min(1000))).max(LOAD_HEADROOM_FLOOR);
    f64::from(weight) * f64::from(pct) * headroom as f64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Greedy least `(n + 1) / capacity` keeps every pair within one flow of the ideal
    /// split, so after `n` flows server `i` holds at most `(n + servers) · c_i / Σc`
    /// and at least `n · c_i / Σc − 1`.
    #[test]
    fn a_burst_between_reports_is_shared_by_capacity(
        servers in prop::collection::vec((1u32..20, 0u32..=1100, prop_oneof![3 => Just(100u32), 1 => 1u32..200]), 1..8),
        flows in 1usize..400,
    ) {
        let specs: Vec<ServerSpec> =
            servers.iter().enumerate().map(|(i, s)| ServerSpec::new(s.0, i as u64)).collect();
        let live: Vec<ServerLive> = servers
            .iter()
            .map(|&(weight, load, pct)| {
                let l = ServerLive::new();
                l.load.store(load, Relaxed);
                l.set_agent(&ServerSpec::new(weight, 0), pct, 0);
                l
            })
            .collect();
        let sched = Scheduler::build(&SchedConfig::new(SchedulerKind::Load), &specs).unwrap();
        for _ in 0..flows {
            let i = sched.pick(&FlowHashKey::default(), &live, 0).unwrap();
            live[i].bind_conn(&specs[i], true);
        }
        let caps: Vec<f64> = servers.iter().map(|&(w, l, p)| capacity(w, p, l)).collect();
        let total: f64 = caps.iter().sum();
        let n = flows as f64;
        for (i, l) in live.iter().enumerate() {
            let got = f64::from(l.active.load(Relaxed));
            let share = caps[i] / total;
            let hi = (n + servers.len() as f64) * share;
            let lo = n * share - 1.0;
            prop_assert!(got <= hi + 1e-9 && got >= lo - 1e-9,
                "server {i}: {got} flows, expected {lo:.2}..={hi:.2} of {flows}; {servers:?}");
        }
    }

    /// The filter never publishes more than the largest report, and a report's weight
    /// only shrinks as it ages.
    #[test]
    fn filtered_load_is_bounded_and_fades(
        reports in prop::collection::vec(0u32..3000, 1..20),
        interval_ms in 10u64..5000,
        ages in prop::collection::vec(0u64..30_000, 2..10),
    ) {
        let interval = std::time::Duration::from_millis(interval_ms);
        let mut f = LoadFilter::new(interval);
        let mut t = std::time::Duration::ZERO;
        for &r in &reports {
            f.report(r, t);
            t += interval;
        }
        let last = t - interval;
        let max = reports.iter().map(|&r| r.min(1000)).max().unwrap();
        let mut ages = ages;
        ages.sort_unstable();
        let mut prev = u32::MAX;
        for a in ages {
            let v = f.current(last + std::time::Duration::from_millis(a));
            prop_assert!(v <= max);
            prop_assert!(v <= prev, "{v} after {prev}");
            prev = v;
        }
        prop_assert_eq!(f.current(last + interval * 4), 0);
    }
}
