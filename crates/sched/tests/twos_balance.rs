//! twos (power of two choices): choices stay close to the best server.
//!
//! A closed-loop simulation: 12 servers of equal weight, each flow lasts a random number of
//! picks. Under uniform random choice the busiest server drifts well above the mean; with
//! two choices the gap stays small (Mitzenmacher: O(log log n)). Also a static check: the
//! mean load of the chosen server is far closer to the best than a random pick.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;

use uvs_sched::{FlowHashKey, SchedConfig, Scheduler, SchedulerKind, ServerLive, ServerSpec};

fn build(weights: &[u32]) -> Scheduler {
    let specs: Vec<ServerSpec> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| ServerSpec::new(w, i as u64))
        .collect();
    Scheduler::build(&SchedConfig::new(SchedulerKind::Twos), &specs).unwrap()
}

/// Worst (busiest − mean) active count over a closed-loop run where `choose` places flows.
fn closed_loop_worst_gap(live: &[ServerLive], mut choose: impl FnMut() -> usize) -> u32 {
    let n = live.len() as u32;
    let mut flows: VecDeque<usize> = VecDeque::new();
    let mut worst_gap = 0u32;
    for step in 0..40_000usize {
        let i = choose();
        live[i].active.fetch_add(1, Relaxed);
        flows.push_back(i);
        // Keep 600 concurrent flows (50 per server on average).
        if flows.len() > 600 {
            let j = flows.pop_front().unwrap();
            live[j].active.fetch_sub(1, Relaxed);
        }
        if step > 1000 {
            let loads: Vec<u32> = live.iter().map(|l| l.active.load(Relaxed)).collect();
            let max = *loads.iter().max().unwrap();
            worst_gap = worst_gap.max(max - loads.iter().sum::<u32>() / n);
        }
    }
    worst_gap
}

#[test]
fn closed_loop_gap_stays_small() {
    let n = 12;
    let s = build(&vec![1; n]);
    let live: Vec<ServerLive> = (0..n).map(|_| ServerLive::new()).collect();
    let twos = closed_loop_worst_gap(&live, || s.pick(&FlowHashKey::default(), &live, 0).unwrap());
    let live: Vec<ServerLive> = (0..n).map(|_| ServerLive::new()).collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let random = closed_loop_worst_gap(&live, || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    });
    assert!(twos <= 8, "twos: busiest server {twos} above the mean");
    assert!(
        twos * 2 < random,
        "twos gap {twos} vs uniform random {random}"
    );
}

#[test]
fn static_choices_are_near_the_best() {
    // Loads/weights: server i has active 10·i, weight 1 (server 0 is best).
    let n = 12;
    let s = build(&vec![1; n]);
    let live: Vec<ServerLive> = (0..n as u32)
        .map(|i| ServerLive::with_conns(10 * i, 0))
        .collect();
    let picks = 20_000;
    let mean: f64 = (0..picks)
        .map(|_| f64::from(10 * s.pick(&FlowHashKey::default(), &live, 0).unwrap() as u32))
        .sum::<f64>()
        / f64::from(picks);
    // Uniform choice averages 55; the min of two uniform draws averages ~35.4 (E[min] of
    // two of 12 = Σ_k P(min ≥ k) = Σ ((12-k)/12)^2 · 10). Allow sampling noise.
    let expected_min_of_two: f64 = (1..n)
        .map(|k| ((n - k) as f64 / n as f64).powi(2))
        .sum::<f64>()
        * 10.0;
    assert!(
        (mean - expected_min_of_two).abs() < 1.5,
        "mean {mean}, expected {expected_min_of_two}"
    );
    assert!(mean < 55.0 - 15.0);
}

#[test]
fn weights_shape_the_draws() {
    // Idle servers (overhead 0 ties → first choice kept): picks follow the weights.
    let s = build(&[1, 3]);
    let live: Vec<ServerLive> = (0..2).map(|_| ServerLive::new()).collect();
    let mut c = [0usize; 2];
    for _ in 0..40_000 {
        c[s.pick(&FlowHashKey::default(), &live, 0).unwrap()] += 1;
    }
    let share = c[1] as f64 / 40_000.0;
    assert!((share - 0.75).abs() < 0.015, "{c:?}");
}
