//! Maglev against the NSDI 2016 paper, swept over every backend count N = 3..=1000 with
//! M = 65537: balance (relative deviation of each backend's table share from M/N, for
//! N ≤ 655 where M > 100·N), disruption when one backend is removed (entries that change
//! owner, as a fraction of M, against the 1/N + 1% bound), and build time at N = 1000.
//!
//! `cargo run --release -p uvs-sched --example maglev_study`

use std::time::Instant;

use uvs_sched::{SchedConfig, Scheduler, SchedulerKind, ServerSpec};

const M: u32 = 65_537;

fn table(keys: &[u64]) -> Vec<u64> {
    let specs: Vec<ServerSpec> = keys.iter().map(|&k| ServerSpec::new(1, k)).collect();
    let s = Scheduler::build(&SchedConfig::new(SchedulerKind::Mh), &specs).unwrap();
    // Map entries to backend keys so tables with different lists compare by identity.
    s.maglev_table()
        .unwrap()
        .iter()
        .map(|&i| keys[usize::from(i)])
        .collect()
}

fn main() {
    let mut worst_share = (0.0f64, 0usize);
    let mut worst_excess = (f64::MIN, 0usize);
    for n in 3..=1000usize {
        let keys: Vec<u64> = (0..n as u64).map(|i| 0x5eed_0000 + i * 7919).collect();
        let t = table(&keys);
        if n <= 655 {
            let ideal = f64::from(M) / n as f64;
            let mut counts = std::collections::HashMap::new();
            for &k in &t {
                *counts.entry(k).or_insert(0usize) += 1;
            }
            for &c in counts.values() {
                let dev = (c as f64 - ideal).abs() / ideal;
                if dev > worst_share.0 {
                    worst_share = (dev, n);
                }
            }
        }
        // Remove the backend in the middle of the list.
        let mut fewer = keys.clone();
        fewer.remove(n / 2);
        let t2 = table(&fewer);
        let moved = t.iter().zip(&t2).filter(|(a, b)| a != b).count();
        let excess = moved as f64 / f64::from(M) - 1.0 / n as f64;
        if excess > worst_excess.0 {
            worst_excess = (excess, n);
        }
    }
    println!(
        "balance, N = 3..=655: worst relative |share - M/N| / (M/N) = {:.4}% (N = {})",
        worst_share.0 * 100.0,
        worst_share.1
    );
    println!(
        "disruption, remove 1 of N, N = 3..=1000: worst moved/M - 1/N = {:+.4}% (N = {})",
        worst_excess.0 * 100.0,
        worst_excess.1
    );

    let specs: Vec<ServerSpec> = (0..1000u64).map(|i| ServerSpec::new(1, i)).collect();
    let cfg = SchedConfig::new(SchedulerKind::Mh);
    let mut times = Vec::new();
    for _ in 0..21 {
        let t0 = Instant::now();
        let s = Scheduler::build(&cfg, &specs).unwrap();
        times.push(t0.elapsed());
        assert_eq!(s.maglev_table().unwrap().len(), M as usize);
    }
    times.sort();
    println!(
        "build M = 65537, N = 1000: median {:.3} ms, min {:.3} ms (21 builds; paper: 1.8 ms)",
        times[10].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
}
