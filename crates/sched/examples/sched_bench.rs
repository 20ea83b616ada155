//! Scheduling decisions per second for every scheduler: 12 servers, random flow keys,
//! varied live counters, one thread (and a ratio against `rr`, the cheapest meaningful
//! baseline, since absolute rates depend on the machine).
//!
//! `cargo run --release -p uvs-sched --example sched_bench [-- picks_per_scheduler]`
//!
//! Method: keys are generated up front into a ring of 4096 (so key generation is not
//! timed); each scheduler runs a warm-up pass and then 5 timed runs, and the median run is
//! reported. Live counters are perturbed between runs only, so the picks read real
//! atomics but the state does not drift during a run.

use std::hint::black_box;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use uvs_sched::{
    FlowHashKey, SchedConfig, SchedFlags, Scheduler, SchedulerKind, ServerLive, ServerSpec,
};

const SERVERS: usize = 12;
const KEYS: usize = 4096;

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn main() {
    let picks: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let keys: Vec<FlowHashKey> = (0..KEYS)
        .map(|_| {
            let a = xorshift(&mut rng).to_be_bytes();
            let b = xorshift(&mut rng).to_be_bytes();
            let mut src = [0u8; 16];
            src[10] = 0xff;
            src[11] = 0xff;
            src[12..].copy_from_slice(&a[..4]);
            let mut dst = [0u8; 16];
            dst[10] = 0xff;
            dst[11] = 0xff;
            dst[12..].copy_from_slice(&b[..4]);
            FlowHashKey {
                src,
                dst,
                sport: u16::from_be_bytes([a[4], a[5]]),
                dport: 80,
                proto: 6,
            }
        })
        .collect();
    let specs: Vec<ServerSpec> = (0..SERVERS as u64)
        .map(|i| ServerSpec::new(1 + (i as u32 % 4), 0x1000 + i))
        .collect();
    let live: Vec<ServerLive> = (0..SERVERS).map(|_| ServerLive::new()).collect();
    let perturb = |rng: &mut u64| {
        for l in &live {
            l.active.store((xorshift(rng) % 200) as u32, Relaxed);
            l.inactive.store((xorshift(rng) % 500) as u32, Relaxed);
            l.rtt_us.store(100 + (xorshift(rng) % 900) as u32, Relaxed);
            l.load.store((xorshift(rng) % 1001) as u32, Relaxed);
        }
    };

    println!("{SERVERS} servers, weights 1..4, {picks} picks per run, median of 5 runs");
    println!(
        "{:<8} {:>14} {:>10} {:>10}",
        "sched", "picks/s", "ns/pick", "vs rr"
    );
    let mut rr_rate = None;
    for &kind in SchedulerKind::ALL {
        let cfg = SchedConfig::new(kind).with_flags(SchedFlags {
            fallback: kind.takes_hash_flags(),
            port: kind.takes_hash_flags(),
        });
        let sched = Scheduler::build(&cfg, &specs).expect("build");
        let run = |n: usize| {
            let t0 = Instant::now();
            for i in 0..n {
                let k = &keys[i % KEYS];
                black_box(sched.pick(black_box(k), &live, (i >> 20) as u32));
            }
            t0.elapsed().as_secs_f64()
        };
        perturb(&mut rng);
        run(picks / 10);
        let mut times: Vec<f64> = (0..5)
            .map(|_| {
                perturb(&mut rng);
                run(picks)
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let rate = picks as f64 / times[2];
        let base = *rr_rate.get_or_insert(rate);
        println!(
            "{:<8} {:>14.0} {:>10.1} {:>10.2}",
            kind.name(),
            rate,
            1e9 / rate,
            rate / base
        );
    }
}
