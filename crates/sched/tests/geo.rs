//! The geo scheduler: clients go to their site's servers (wlc among them), spill over to
//! every server when their site has none available, and unmatched clients use all.

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

use proptest::prelude::*;
use uvs_sched::{
    FlowHashKey, SchedConfig, Scheduler, SchedulerKind, ServerLive, ServerSpec, SitePrefix,
};

const SITE_A: u16 = 0;
const SITE_B: u16 = 1;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Site A: 198.18.0.0/24 and 2001:2::/64. Site B: 198.18.8.0/21 and 2001:2:0:8::/61, with
/// 198.18.9.0/24 carved back out to A (longest prefix wins).
fn config() -> SchedConfig {
    let mut cfg = SchedConfig::new(SchedulerKind::Geo);
    cfg.sites = vec![
        SitePrefix::new(ip("198.18.0.0"), 24, SITE_A),
        SitePrefix::new(ip("198.18.8.0"), 21, SITE_B),
        SitePrefix::new(ip("198.18.9.0"), 24, SITE_A),
        SitePrefix::new(ip("2001:2::"), 64, SITE_A),
        SitePrefix::new(ip("2001:2:0:8::"), 61, SITE_B),
    ];
    cfg
}

/// Servers 0, 1 in A; 2, 3, 4 in B.
fn servers() -> Vec<ServerSpec> {
    [SITE_A, SITE_A, SITE_B, SITE_B, SITE_B]
        .iter()
        .enumerate()
        .map(|(i, &site)| ServerSpec {
            site,
            ..ServerSpec::new(1 + i as u32 % 2, 100 + i as u64)
        })
        .collect()
}

fn key(src: &str) -> FlowHashKey {
    let vip = if src.contains(':') {
        ip("2001:2:0:100::1")
    } else {
        ip("198.18.100.1")
    };
    FlowHashKey::new(ip(src), vip, 40000, 80, 6)
}

fn live(n: usize) -> Vec<ServerLive> {
    (0..n).map(|_| ServerLive::new()).collect()
}

fn site_of(specs: &[ServerSpec], i: usize) -> u16 {
    specs[i].site
}

#[test]
fn clients_go_to_their_own_site() {
    let specs = servers();
    let s = Scheduler::build(&config(), &specs).unwrap();
    let l = live(specs.len());
    for (client, site) in [
        ("198.18.0.7", SITE_A),
        ("198.18.9.1", SITE_A),
        ("198.18.10.1", SITE_B),
        ("198.18.15.255", SITE_B),
        ("2001:2::9", SITE_A),
        ("2001:2:0:f::1", SITE_B),
    ] {
        for n in 0..20 {
            let i = s.pick(&key(client), &l, 0).unwrap();
            assert_eq!(site_of(&specs, i), site, "{client} flow {n} went to {i}");
            l[i].bind_conn(&specs[i], true);
        }
    }
    // wlc within the site: A's two servers (weights 1, 2) took the 40 A flows 1:2-ish,
    // B's three the rest, all of them used.
    for (i, sl) in l.iter().enumerate() {
        assert!(sl.active.load(Relaxed) > 0, "server {i} never picked");
    }
}

#[test]
fn a_site_with_nothing_available_spills_to_the_others() {
    let specs = servers();
    let s = Scheduler::build(&config(), &specs).unwrap();
    let l = live(specs.len());
    l[0].health_up.store(false, Relaxed);
    l[1].overloaded.store(true, Relaxed);
    for n in 0..10 {
        let i = s.pick(&key("198.18.0.7"), &l, 0).unwrap();
        assert_eq!(site_of(&specs, i), SITE_B, "flow {n}");
        l[i].bind_conn(&specs[i], true);
    }
    // A quiesced site (weight 0) also spills; B's clients are unaffected.
    let mut quiesced = servers();
    quiesced[0].weight = 0;
    quiesced[1].weight = 0;
    let s = Scheduler::build(&config(), &quiesced).unwrap();
    let l = live(quiesced.len());
    assert_eq!(
        site_of(&quiesced, s.pick(&key("2001:2::1"), &l, 0).unwrap()),
        SITE_B
    );
    // One A server back: A's clients return to it.
    let mut one_back = quiesced.clone();
    one_back[1].weight = 3;
    let s = Scheduler::build(&config(), &one_back).unwrap();
    assert_eq!(s.pick(&key("2001:2::1"), &l, 0), Some(1));
    // Nothing anywhere: nothing picked.
    let l = live(specs.len());
    for sl in &l {
        sl.health_up.store(false, Relaxed);
    }
    let s = Scheduler::build(&config(), &specs).unwrap();
    assert_eq!(s.pick(&key("198.18.0.7"), &l, 0), None);
}

#[test]
fn unmatched_clients_use_every_server_by_wlc() {
    let specs = servers();
    let s = Scheduler::build(&config(), &specs).unwrap();
    let l = live(specs.len());
    let mut seen = [0u32; 5];
    for n in 0..50u32 {
        let client = if n % 2 == 0 {
            "203.0.113.9"
        } else {
            "2001:db8::1"
        };
        let i = s.pick(&key(client), &l, 0).unwrap();
        seen[i] += 1;
        l[i].bind_conn(&specs[i], true);
    }
    // Plain wlc over weights 1,2,1,2,1 (sum 7): 50 flows → ≈ 7, 14, 7, 14, 7.
    for (i, &n) in seen.iter().enumerate() {
        let want = 50 * specs[i].weight / 7;
        assert!(n.abs_diff(want) <= 1, "server {i}: {n} flows, want ≈{want}");
    }
}

#[test]
fn sites_are_refused_by_other_schedulers() {
    let mut cfg = config();
    cfg.kind = SchedulerKind::Wlc;
    let err = Scheduler::build(&cfg, &servers()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "client sites apply only to the geo scheduler, not wlc"
    );
    // geo without sites is plain wlc.
    let s = Scheduler::build(&SchedConfig::new(SchedulerKind::Geo), &servers()).unwrap();
    let l = live(5);
    l[0].bind_conn(&servers()[0], true);
    assert_eq!(s.pick(&key("198.18.0.7"), &l, 0), Some(1));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever is up: a pick is available; it is in the client's site whenever that site
    /// has an available server; otherwise it is anywhere available; None only when
    /// nothing is.
    #[test]
    fn pick_respects_site_and_availability(
        sites in prop::collection::vec(0u16..3, 1..8),
        up in prop::collection::vec(any::<bool>(), 8),
        weights in prop::collection::vec(0u32..4, 8),
        conns in prop::collection::vec(0u32..50, 8),
        client in any::<u32>(),
        v6 in any::<bool>(),
    ) {
        let mut cfg = SchedConfig::new(SchedulerKind::Geo);
        // Site k owns the /2 whose top bits are k (k = 0, 1, 2); the last quarter is
        // unmatched.
        for k in 0..3u8 {
            let v4 = IpAddr::from([k << 6, 0, 0, 0]);
            let v6a = IpAddr::from([u16::from(k) << 14, 0, 0, 0, 0, 0, 0, 0]);
            cfg.sites.push(SitePrefix::new(v4, 2, u16::from(k)));
            cfg.sites.push(SitePrefix::new(v6a, 2, u16::from(k)));
        }
        let specs: Vec<ServerSpec> = sites
            .iter()
            .enumerate()
            .map(|(i, &site)| ServerSpec { site, ..ServerSpec::new(weights[i], i as u64) })
            .collect();
        let n = specs.len();
        let l: Vec<ServerLive> = (0..n)
            .map(|i| {
                let s = ServerLive::with_conns(conns[i], 0);
                s.health_up.store(up[i], Relaxed);
                s
            })
            .collect();
        let src: IpAddr = if v6 {
            IpAddr::from(std::net::Ipv6Addr::from(u128::from(client) << 96))
        } else {
            IpAddr::from(client.to_be_bytes())
        };
        let dst = if v6 { ip("2001:2:0:100::1") } else { ip("198.18.100.1") };
        let k = FlowHashKey::new(src, dst, 1, 80, 6);
        let site = match client >> 30 {
            3 => None,
            s => Some(s as u16),
        };
        let avail = |i: usize| l[i].available(specs[i].weight);
        let s = Scheduler::build(&cfg, &specs).unwrap();
        match s.pick(&k, &l, 0) {
            None => prop_assert!((0..n).all(|i| !avail(i))),
            Some(i) => {
                prop_assert!(avail(i));
                let local = (0..n).any(|j| avail(j) && Some(specs[j].site) == site);
                if local {
                    prop_assert_eq!(Some(specs[i].site), site);
                }
                // wlc: no candidate in the chosen pool has less overhead per weight.
                let pool = |j: usize| avail(j) && (!local || Some(specs[j].site) == site);
                for j in (0..n).filter(|&j| pool(j)) {
                    let (oi, oj) = (u64::from(conns[i]) << 8, u64::from(conns[j]) << 8);
                    prop_assert!(
                        u128::from(oi) * u128::from(specs[j].weight)
                            <= u128::from(oj) * u128::from(specs[i].weight)
                    );
                }
            }
        }
    }
}
