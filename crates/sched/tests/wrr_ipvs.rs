//! wrr against a transcription of IPVS `ip_vs_wrr_schedule` (mutable `cl`/`cw` state under
//! a lock), including servers skipped while overloaded, and rr/wrr shares under threads.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use proptest::prelude::*;
use uvs_sched::{FlowHashKey, SchedConfig, Scheduler, SchedulerKind, ServerLive, ServerSpec};

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// IPVS: `di = gcd`, `mw = max - (di - 1)`, `cw = mw`, `cl = head`. A scan continues after
/// `cl` for a non-overloaded server with `weight >= cw`; at the list end `cw -= di`,
/// wrapping to `mw` when it reaches 0.
fn ipvs_wrr(weights: &[u32], up: &[bool], picks: usize) -> Vec<usize> {
    let di = weights
        .iter()
        .filter(|&&w| w > 0)
        .fold(0, |g, &w| gcd(g, i64::from(w)));
    let n = weights.len();
    if di == 0 || !(0..n).any(|i| up[i] && weights[i] > 0) {
        return Vec::new();
    }
    let mw = i64::from(*weights.iter().max().unwrap()) - (di - 1);
    let (mut cl, mut cw) = (None::<usize>, mw);
    let mut out = Vec::new();
    while out.len() < picks {
        let from = cl.map_or(0, |c| c + 1);
        if let Some(i) = (from..n).find(|&i| up[i] && i64::from(weights[i]) >= cw) {
            cl = Some(i);
            out.push(i);
        } else {
            cl = None;
            cw -= di;
            if cw <= 0 {
                cw = mw;
            }
        }
    }
    out
}

fn build(kind: SchedulerKind, weights: &[u32]) -> Scheduler {
    let specs: Vec<ServerSpec> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| ServerSpec::new(w, i as u64))
        .collect();
    Scheduler::build(&SchedConfig::new(kind), &specs).unwrap()
}

#[test]
fn weights_4_3_2_give_a_a_b_a_b_c_a_b_c() {
    let s = build(SchedulerKind::Wrr, &[4, 3, 2]);
    let live: Vec<ServerLive> = (0..3).map(|_| ServerLive::new()).collect();
    let got: Vec<usize> = (0..18)
        .map(|_| s.pick(&FlowHashKey::default(), &live, 0).unwrap())
        .collect();
    let abc: String = got.iter().map(|&i| (b'a' + i as u8) as char).collect();
    assert_eq!(abc, "aababcabcaababcabc");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Sequential picks equal IPVS's for three cycles, with random servers overloaded.
    #[test]
    fn wrr_matches_ipvs(
        weights in prop::collection::vec(prop_oneof![Just(0u32), 1u32..8, 1u32..40], 1..10),
        up in prop::collection::vec(prop::bool::weighted(0.8), 10),
    ) {
        let s = build(SchedulerKind::Wrr, &weights);
        let live: Vec<ServerLive> = weights.iter().enumerate().map(|(i, _)| {
            let l = ServerLive::new();
            l.overloaded.store(!up[i], Relaxed);
            l
        }).collect();
        let cycle: u64 = {
            let g = weights.iter().filter(|&&w| w > 0).fold(0, |g, &w| gcd(g, i64::from(w)));
            if g == 0 { 0 } else { weights.iter().map(|&w| u64::from(w) / g as u64).sum() }
        };
        let picks = (3 * cycle as usize).max(3);
        let expect = ipvs_wrr(&weights, &up, picks);
        let got: Vec<usize> = (0..expect.len())
            .map(|_| s.pick(&FlowHashKey::default(), &live, 0).unwrap())
            .collect();
        prop_assert_eq!(&got, &expect);
        if expect.is_empty() {
            prop_assert_eq!(s.pick(&FlowHashKey::default(), &live, 0), None);
        }
        // With everyone available, one cycle reproduces the weight ratio exactly.
        if up[..weights.len()].iter().all(|&u| u) && cycle > 0 {
            let g = weights.iter().filter(|&&w| w > 0).fold(0, |g, &w| gcd(g, i64::from(w)));
            let seq = build(SchedulerKind::Wrr, &weights).wrr_cycle(10_000).unwrap();
            for (i, &w) in weights.iter().enumerate() {
                let n = seq.iter().filter(|&&x| x == i).count() as i64;
                prop_assert_eq!(n, i64::from(w) / g);
            }
        }
    }
}

/// Several threads sharing one snapshot: with everyone available, rr and wrr shares over
/// whole cycles are exact (the cursor is a single `fetch_add`).
#[test]
fn concurrent_rr_and_wrr_keep_exact_shares() {
    for (kind, weights) in [
        (SchedulerKind::Rr, vec![1u32, 1, 1, 1, 1]),
        (SchedulerKind::Wrr, vec![5, 1, 3, 2]),
    ] {
        let s = Arc::new(build(kind, &weights));
        let live: Arc<Vec<ServerLive>> =
            Arc::new(weights.iter().map(|_| ServerLive::new()).collect());
        let cycle: usize = if kind == SchedulerKind::Rr {
            weights.len()
        } else {
            weights.iter().map(|&w| w as usize).sum()
        };
        let per_thread = cycle * 2000;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (s, live) = (Arc::clone(&s), Arc::clone(&live));
                std::thread::spawn(move || {
                    let mut counts = vec![0usize; live.len()];
                    for _ in 0..per_thread {
                        counts[s.pick(&FlowHashKey::default(), &live, 0).unwrap()] += 1;
                    }
                    counts
                })
            })
            .collect();
        let mut total = vec![0usize; weights.len()];
        for t in threads {
            for (a, b) in total.iter_mut().zip(t.join().unwrap()) {
                *a += b;
            }
        }
        for (i, &w) in weights.iter().enumerate() {
            let expect = if kind == SchedulerKind::Rr {
                4 * per_thread / weights.len()
            } else {
                4 * 2000 * w as usize
            };
            assert_eq!(total[i], expect, "{kind} server {i}: {total:?}");
        }
    }
}
