//! The geo scheduler through a real `Worker`: two clients from different prefixes land on
//! different sites (a local NAT site and a remote site reached through a tunnel), and a
//! site with nothing available spills over to the other.

use std::net::IpAddr;
use std::sync::Arc;

use uvs_dataplane::lab::{self, ipk};
use uvs_dataplane::{Method, Shared, TablesBuilder, TablesSpec, Worker};
use uvs_port::MemPort;
use uvs_sched::{SchedulerKind, SitePrefix};
use uvs_testkit as tk;

const LOCAL: u16 = 0;
const REMOTE: u16 = 1;
/// Client of the local site (198.18.0.0/25, 2001:2::/65).
const NEAR4: &str = "198.18.0.2";
const NEAR6: &str = "2001:2::2";
/// Client of the remote site (198.18.0.128/25, 2001:2:0:0:8000::/65).
const FAR4: &str = "198.18.0.200";
const FAR6: &str = "2001:2::8000:0:0:2";

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The lab with every service on `geo`: real server 1 is the local site (NAT), 2 and 3 the
/// remote one (tun).
fn geo_spec() -> TablesSpec {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Geo, 1);
    for s in &mut spec.services {
        s.sched.sites = vec![
            SitePrefix::new(a("198.18.0.0"), 25, LOCAL),
            SitePrefix::new(a("198.18.0.128"), 25, REMOTE),
            SitePrefix::new(a("2001:2::"), 65, LOCAL),
            SitePrefix::new(a("2001:2::8000:0:0:0"), 65, REMOTE),
        ];
        for (n, r) in s.reals.iter_mut().enumerate() {
            if n == 0 {
                r.site = LOCAL;
            } else {
                r.site = REMOTE;
                r.method = Method::Tun;
            }
        }
    }
    spec
}

struct Lab {
    w: Worker<MemPort>,
}

impl Lab {
    fn new(spec: &TablesSpec) -> Lab {
        let tables = TablesBuilder::build(spec, None).unwrap();
        let shared = Arc::new(Shared::new(tables, 1024, 1));
        lab::learn_neighbours(&shared.neigh, 0);
        for c in [FAR4, FAR6] {
            shared.neigh.learn(ipk(c), lab::CLIENT_MAC, 0);
        }
        let ports = vec![MemPort::new("client", 256), MemPort::new("server", 256)];
        Lab {
            w: Worker::new(0, ports, shared),
        }
    }

    /// A SYN from `client` to the VIP: which real server (1..=3) it was sent to, by the
    /// frame's destination MAC (the same for NAT and tun).
    fn syn(&mut self, client: &str, sport: u16) -> u8 {
        let c = a(client);
        let vip = a(if c.is_ipv6() { lab::VIP6 } else { lab::VIP4 });
        let frame = tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            c,
            sport,
            vip,
            80,
            tk::SYN,
            b"",
        );
        assert!(self.w.ports[0].push_rx(&frame));
        self.w.poll();
        assert!(
            self.w.ports[0].take_tx().is_empty(),
            "{client}: nothing back"
        );
        let out = self.w.ports[1].take_tx();
        assert_eq!(out.len(), 1, "{client}:{sport}: one frame to the servers");
        (1..=3)
            .find(|&n| out[0][..6] == lab::real_mac(n))
            .unwrap_or_else(|| panic!("{client}: sent to an unknown MAC {:02x?}", &out[0][..6]))
    }
}

#[test]
fn clients_of_different_prefixes_land_on_different_sites() {
    let mut lab = Lab::new(&geo_spec());
    for (near, far) in [(NEAR4, FAR4), (NEAR6, FAR6)] {
        let mut remote_used = [false; 4];
        for sport in 40000..40008 {
            assert_eq!(lab.syn(near, sport), 1, "{near}:{sport} stays local");
            let n = lab.syn(far, sport);
            assert!(
                n == 2 || n == 3,
                "{far}:{sport} went to {n}, not the remote site"
            );
            remote_used[usize::from(n)] = true;
        }
        assert!(
            remote_used[2] && remote_used[3],
            "wlc spreads {far} over both remote servers"
        );
    }
}

#[test]
fn a_site_with_nothing_available_spills_over() {
    let mut spec = geo_spec();
    for s in &mut spec.services {
        s.reals[0].weight = 0; // the local site is quiesced
    }
    let mut lab = Lab::new(&spec);
    for near in [NEAR4, NEAR6] {
        let n = lab.syn(near, 41000);
        assert!(n == 2 || n == 3, "{near} spilled to {n}");
    }
    // And the remote site gone too: nothing to schedule to.
    for s in &mut spec.services {
        for r in &mut s.reals {
            r.weight = 0;
        }
    }
    let mut lab = Lab::new(&spec);
    let frame = tk::tcp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        a(FAR4),
        41001,
        a(lab::VIP4),
        80,
        tk::SYN,
        b"",
    );
    assert!(lab.w.ports[0].push_rx(&frame));
    lab.w.poll();
    assert!(lab.w.ports[1].take_tx().is_empty());
}
