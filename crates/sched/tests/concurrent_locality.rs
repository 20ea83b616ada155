//! Workers racing on shared lblc/lblcr tables, twos' random state and the rr cursor while
//! another thread flips health and load: every pick must still be a usable server.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use uvs_sched::{FlowHashKey, SchedConfig, Scheduler, SchedulerKind, ServerLive, ServerSpec};

#[test]
fn racing_workers_only_get_usable_servers() {
    let n = 8;
    let specs: Vec<ServerSpec> = (0..n as u64)
        .map(|i| ServerSpec::new(1 + (i as u32 % 3), i))
        .collect();
    for kind in [
        SchedulerKind::Lblc,
        SchedulerKind::Lblcr,
        SchedulerKind::Twos,
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
    ] {
        let mut cfg = SchedConfig::new(kind);
        cfg.locality_slots = 16; // force slot collisions between destinations
        cfg.locality_expiration_s = 3;
        let sched = Arc::new(Scheduler::build(&cfg, &specs).unwrap());
        let live: Arc<Vec<ServerLive>> = Arc::new((0..n).map(|_| ServerLive::new()).collect());
        // Server 0 is always up, so None is never correct.
        let stop = Arc::new(AtomicBool::new(false));
        let flipper = {
            let (live, stop) = (Arc::clone(&live), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut x = 7u64;
                while !stop.load(Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let i = 1 + (x >> 33) as usize % (n - 1);
                    live[i].health_up.store(x & 1 == 0, Relaxed);
                    live[i].active.store((x >> 40) as u32 % 8, Relaxed);
                }
            })
        };
        let workers: Vec<_> = (0..3u8)
            .map(|w| {
                let (sched, live) = (Arc::clone(&sched), Arc::clone(&live));
                std::thread::spawn(move || {
                    for i in 0..20_000u32 {
                        let mut dst = [0u8; 16];
                        dst[12..].copy_from_slice(&(i % 97).to_be_bytes());
                        dst[0] = w;
                        let key = FlowHashKey {
                            dst,
                            ..Default::default()
                        };
                        let s = sched
                            .pick(&key, &live, i / 1000)
                            .unwrap_or_else(|| panic!("{kind}: None with server 0 up"));
                        assert!(s < n, "{kind} returned {s}");
                        // Availability may have flipped since the pick read it; only the
                        // always-healthy server 0 and weights are stable facts to check.
                        assert!(specs_weight(s) > 0);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Relaxed);
        flipper.join().unwrap();
    }
}

fn specs_weight(i: usize) -> u32 {
    1 + (i as u32 % 3)
}
