//! dh, sh, mh: the same key always gets the same server; without fallback an unavailable
//! home server means no server; with fallback only the flows of unavailable servers move,
//! and they move to available ones. The `port` flag brings the source port into the hash.

use std::sync::atomic::Ordering::Relaxed;

use proptest::prelude::*;
use uvs_sched::{
    FlowHashKey, SchedConfig, SchedFlags, Scheduler, SchedulerKind, ServerLive, ServerSpec,
};

fn build(kind: SchedulerKind, flags: SchedFlags, weights: &[u32]) -> Scheduler {
    let specs: Vec<ServerSpec> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| ServerSpec::new(w, 0xabc0 + i as u64))
        .collect();
    let mut cfg = SchedConfig::new(kind).with_flags(flags);
    cfg.mh_table_size = 4093;
    Scheduler::build(&cfg, &specs).unwrap()
}

fn key(src: [u8; 16], dst: [u8; 16], sport: u16) -> FlowHashKey {
    FlowHashKey {
        src,
        dst,
        sport,
        dport: 80,
        proto: 6,
    }
}

fn live(n: usize, down: &[bool]) -> Vec<ServerLive> {
    (0..n)
        .map(|i| {
            let l = ServerLive::new();
            l.health_up
                .store(!down.get(i).copied().unwrap_or(false), Relaxed);
            l
        })
        .collect()
}

const HASHED: [SchedulerKind; 3] = [SchedulerKind::Dh, SchedulerKind::Sh, SchedulerKind::Mh];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn same_key_same_server(
        weights in prop::collection::vec(1u32..6, 1..10),
        src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), sport in any::<u16>(),
    ) {
        let l = live(weights.len(), &[]);
        for kind in HASHED {
            let flags = SchedFlags { fallback: kind != SchedulerKind::Dh, port: kind != SchedulerKind::Dh };
            let a = build(kind, flags, &weights);
            let b = build(kind, flags, &weights); // an independent rebuild agrees too
            let k = key(src, dst, sport);
            let first = a.pick(&k, &l, 0);
            prop_assert!(first.is_some());
            for _ in 0..3 {
                prop_assert_eq!(a.pick(&k, &l, 0), first);
            }
            prop_assert_eq!(b.pick(&k, &l, 0), first);
        }
    }

    #[test]
    fn fallback_moves_only_flows_of_unavailable_servers(
        weights in prop::collection::vec(1u32..6, 2..10),
        down in prop::collection::vec(prop::bool::weighted(0.3), 10),
        seed in any::<u64>(),
    ) {
        let n = weights.len();
        let all_up = live(n, &[]);
        let some_down = live(n, &down);
        let any_up = (0..n).any(|i| !down[i]);
        for kind in [SchedulerKind::Sh, SchedulerKind::Mh] {
            let plain = build(kind, SchedFlags { fallback: false, port: false }, &weights);
            let fb = build(kind, SchedFlags { fallback: true, port: false }, &weights);
            for j in 0..64u64 {
                let src = (seed ^ j.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes();
                let mut a = [0u8; 16];
                a[..8].copy_from_slice(&src);
                a[8..].copy_from_slice(&src);
                let k = key(a, [0; 16], 0);
                let home = plain.pick(&k, &all_up, 0).unwrap();
                prop_assert_eq!(fb.pick(&k, &all_up, 0), Some(home));
                if down[home] {
                    prop_assert_eq!(plain.pick(&k, &some_down, 0), None);
                    match fb.pick(&k, &some_down, 0) {
                        Some(s) => prop_assert!(!down[s], "{} fell back to a down server", kind),
                        None => prop_assert!(!any_up, "{} fallback found nothing", kind),
                    }
                } else {
                    prop_assert_eq!(plain.pick(&k, &some_down, 0), Some(home));
                    prop_assert_eq!(fb.pick(&k, &some_down, 0), Some(home));
                }
            }
        }
    }
}

#[test]
fn dh_hashes_destination_sh_and_mh_hash_source() {
    let w = [1u32; 8];
    let l = live(8, &[]);
    let spread = |kind: SchedulerKind, vary_src: bool, flags: SchedFlags| {
        let s = build(kind, flags, &w);
        let mut seen = std::collections::HashSet::new();
        for i in 0..=255u8 {
            // IPv4-mapped 198.18.0.i: IPVS's IPv6 fold would XOR [i; 16] down to 0.
            let v4 = |b: u8| {
                let mut a = [0u8; 16];
                a[10..].copy_from_slice(&[0xff, 0xff, 198, 18, 0, b]);
                a
            };
            let (src, dst) = if vary_src {
                (v4(i), v4(1))
            } else {
                (v4(1), v4(i))
            };
            seen.insert(s.pick(&key(src, dst, u16::from(i)), &l, 0).unwrap());
        }
        seen.len()
    };
    let none = SchedFlags::default();
    assert!(spread(SchedulerKind::Dh, false, none) > 4);
    assert_eq!(
        spread(SchedulerKind::Dh, true, none),
        1,
        "dh ignores the source"
    );
    for kind in [SchedulerKind::Sh, SchedulerKind::Mh] {
        assert!(spread(kind, true, none) > 4);
        assert_eq!(
            spread(kind, false, none),
            1,
            "{kind} ignores dst and port by default"
        );
        let port = SchedFlags {
            fallback: false,
            port: true,
        };
        assert!(
            spread(kind, false, port) > 4,
            "{kind} with port flag uses sport"
        );
    }
}

#[test]
fn quiesced_server_in_hash_table_refuses_without_fallback() {
    // sh keeps a bucket for weight 0 (IPVS `ip_vs_sh_reassign`), mh gives it none.
    let w = [0u32, 1, 1];
    let l = live(3, &[]);
    let sh = build(SchedulerKind::Sh, SchedFlags::default(), &w);
    let mh = build(SchedulerKind::Mh, SchedFlags::default(), &w);
    let (mut sh_none, mut mh_none) = (0, 0);
    for i in 0..=255u8 {
        let mut a = [0u8; 16];
        a[15] = i;
        a[0] = i.wrapping_mul(31);
        let k = key(a, [0; 16], 0);
        sh_none += usize::from(sh.pick(&k, &l, 0).is_none());
        mh_none += usize::from(mh.pick(&k, &l, 0).is_none());
    }
    assert!(sh_none > 0);
    assert_eq!(mh_none, 0);
    assert_eq!(
        mh.maglev_table()
            .unwrap()
            .iter()
            .filter(|&&e| e == 0)
            .count(),
        0
    );
}
