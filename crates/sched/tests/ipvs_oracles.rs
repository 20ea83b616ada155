//! Property tests: each connection-count scheduler against its IPVS formula, written here
//! independently (find the minimum/maximum of the formula over the eligible servers, then
//! take the lowest index among those that reach it), over generated live states —
//! including agent weight percentages, which scale every weight in the formulas (0 %
//! quiesces).

use std::sync::atomic::Ordering::Relaxed;

use proptest::prelude::*;
use uvs_sched::{FlowHashKey, SchedConfig, Scheduler, SchedulerKind, ServerLive, ServerSpec};

#[derive(Debug, Clone)]
struct Srv {
    weight: u32,
    active: u32,
    inactive: u32,
    up: bool,
    overloaded: bool,
    rtt: u32,
    load: u32,
    /// The agent's weight percentage (100 = none said).
    pct: u32,
}

fn srv() -> impl Strategy<Value = Srv> {
    (
        prop_oneof![Just(0u32), 1u32..5, 1u32..200, Just(u32::MAX)],
        prop_oneof![Just(0u32), 0u32..4, 0u32..5000, Just(u32::MAX)],
        prop_oneof![Just(0u32), 0u32..600, Just(u32::MAX)],
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.1),
        prop_oneof![Just(0u32), 1u32..2000],
        prop_oneof![0u32..=1000, Just(5000)],
        prop_oneof![6 => Just(100u32), 1 => Just(0u32), 2 => 1u32..300, 1 => Just(u32::MAX)],
    )
        .prop_map(
            |(weight, active, inactive, up, overloaded, rtt, load, pct)| Srv {
                weight,
                active,
                inactive,
                up,
                overloaded,
                rtt,
                load,
                pct,
            },
        )
}

fn state() -> impl Strategy<Value = Vec<Srv>> {
    prop::collection::vec(srv(), 0..12)
}

fn materialise(s: &[Srv]) -> (Vec<ServerSpec>, Vec<ServerLive>) {
    let specs = s
        .iter()
        .enumerate()
        .map(|(i, x)| ServerSpec::new(x.weight, i as u64))
        .collect();
    let live = s
        .iter()
        .map(|x| {
            let l = ServerLive::with_conns(x.active, x.inactive);
            l.health_up.store(x.up, Relaxed);
            l.overloaded.store(x.overloaded, Relaxed);
            l.rtt_us.store(x.rtt, Relaxed);
            l.load.store(x.load, Relaxed);
            l.set_agent(&ServerSpec::new(x.weight, 0), x.pct, 0);
            l
        })
        .collect();
    (specs, live)
}

fn usable(x: &Srv) -> bool {
    x.weight > 0 && x.pct > 0 && x.up && !x.overloaded
}

/// The weight in effect for ratios: configured × percentage (clamped to 25600 %).
fn w(x: &Srv) -> u128 {
    u128::from(x.weight) * u128::from(x.pct.min(25_600))
}

/// The weight in effect as a number of connections: × pct / 100, at least 1.
fn abs_w(x: &Srv) -> u128 {
    if x.pct == 100 {
        u128::from(x.weight)
    } else {
        (w(x) / 100).clamp(1, u128::from(u32::MAX))
    }
}

/// An exact non-negative fraction num/den, compared by cross-multiplication.
#[derive(Clone, Copy, Debug)]
struct Frac(u128, u128);
impl Frac {
    fn lt(self, o: Frac) -> bool {
        self.0 * o.1 < o.0 * self.1
    }
    fn eq(self, o: Frac) -> bool {
        self.0 * o.1 == o.0 * self.1
    }
}

/// Lowest index among usable servers whose key equals the minimum key.
fn argmin(s: &[Srv], key: impl Fn(&Srv) -> Frac) -> Option<usize> {
    let cands: Vec<usize> = (0..s.len()).filter(|&i| usable(&s[i])).collect();
    let min = cands
        .iter()
        .map(|&i| key(&s[i]))
        .reduce(|a, b| if b.lt(a) { b } else { a })?;
    cands.into_iter().find(|&i| key(&s[i]).eq(min))
}

fn overhead(x: &Srv) -> u128 {
    u128::from(x.active) * 256 + u128::from(x.inactive)
}

fn pick(kind: SchedulerKind, s: &[Srv]) -> Option<usize> {
    let (specs, live) = materialise(s);
    let sched = Scheduler::build(&SchedConfig::new(kind), &specs).unwrap();
    sched.pick(&FlowHashKey::default(), &live, 0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn lc_is_least_overhead(s in state()) {
        prop_assert_eq!(pick(SchedulerKind::Lc, &s), argmin(&s, |x| Frac(overhead(x), 1)));
    }

    #[test]
    fn wlc_is_least_overhead_per_weight(s in state()) {
        prop_assert_eq!(
            pick(SchedulerKind::Wlc, &s),
            argmin(&s, |x| Frac(overhead(x), w(x)))
        );
    }

    #[test]
    fn sed_is_least_expected_delay(s in state()) {
        prop_assert_eq!(
            pick(SchedulerKind::Sed, &s),
            argmin(&s, |x| Frac(u128::from(x.active) + 1, w(x)))
        );
    }

    #[test]
    fn nq_prefers_first_idle_then_sed(s in state()) {
        let idle = (0..s.len()).find(|&i| usable(&s[i]) && s[i].active == 0);
        let expect = idle.or_else(|| {
            argmin(&s, |x| Frac(u128::from(x.active) + 1, w(x)))
        });
        prop_assert_eq!(pick(SchedulerKind::Nq, &s), expect);
    }

    #[test]
    fn fo_is_first_highest_weight(s in state()) {
        let max = s.iter().filter(|x| usable(x)).map(w).max();
        let expect = max.and_then(|m| (0..s.len()).find(|&i| usable(&s[i]) && w(&s[i]) == m));
        prop_assert_eq!(pick(SchedulerKind::Fo, &s), expect);
    }

    #[test]
    fn ovf_is_first_highest_weight_not_over_weight(s in state()) {
        let ok = |x: &Srv| usable(x) && u128::from(x.active) <= abs_w(x);
        let max = s.iter().filter(|x| ok(x)).map(w).max();
        let expect = max.and_then(|m| (0..s.len()).find(|&i| ok(&s[i]) && w(&s[i]) == m));
        prop_assert_eq!(pick(SchedulerKind::Ovf, &s), expect);
    }

    #[test]
    fn fastest_is_least_weighted_rtt(s in state()) {
        let min_rtt = s.iter().filter(|x| usable(x) && x.rtt > 0).map(|x| x.rtt).min().unwrap_or(1);
        let expect = argmin(&s, |x| {
            let rtt = if x.rtt == 0 { min_rtt } else { x.rtt };
            Frac(u128::from(rtt) * (u128::from(x.active) + 1), w(x))
        });
        prop_assert_eq!(pick(SchedulerKind::Fastest, &s), expect);
    }

    #[test]
    fn load_is_least_connections_per_weighted_headroom(s in state()) {
        let expect = argmin(&s, |x| {
            let headroom = (1000 - u128::from(x.load.min(1000))).max(50);
            Frac(overhead(x) + 256, w(x) * headroom)
        });
        prop_assert_eq!(pick(SchedulerKind::Load, &s), expect);
    }

    /// rr and twos and every other kind: the pick is usable, or None exactly when no
    /// server is usable (dh, sh, mh without fallback and ovf may refuse with some usable).
    #[test]
    fn picks_are_usable_and_none_only_when_allowed(s in state(), sport in any::<u16>()) {
        let (specs, live) = materialise(&s);
        let any_usable = s.iter().any(usable);
        for &kind in SchedulerKind::ALL {
            let sched = Scheduler::build(&SchedConfig::new(kind), &specs).unwrap();
            for i in 0..4u8 {
                let key = FlowHashKey { src: [i; 16], dst: [i ^ 0x55; 16], sport, ..Default::default() };
                match sched.pick(&key, &live, 0) {
                    Some(p) => prop_assert!(usable(&s[p]), "{} picked unusable {}", kind, p),
                    None => prop_assert!(
                        !any_usable || matches!(kind, SchedulerKind::Dh | SchedulerKind::Sh
                            | SchedulerKind::Mh | SchedulerKind::Ovf),
                        "{} refused with a usable server", kind
                    ),
                }
            }
        }
    }
}
