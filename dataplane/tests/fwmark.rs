//! Firewall-mark services through a real `Worker`: the cache-cluster case dh, lblc and lblcr
//! exist for. A mark takes traffic to a whole destination prefix; those schedulers hash (or
//! remember) each packet's own destination, so destinations spread over the caches and each
//! destination always reaches the same one. Persistence on a mark keeps a client on one server
//! across all the mark's destinations, as IPVS's fwmark templates do.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use uvs_dataplane::lab::{self, ipk};
use uvs_dataplane::tables::{MarkSpec, Persistence, ServiceKey};
use uvs_dataplane::{DropReason, Method, Shared, TablesBuilder, TablesSpec, Worker};
use uvs_port::MemPort;
use uvs_sched::{SchedConfig, SchedulerKind};
use uvs_testkit as tk;

const MARK: u32 = 1;

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Destination `i` of the mark in a family: 198.18.128.0/17 or 2001:2:0:8000::/49.
fn dest(i: u16, v6: bool) -> IpAddr {
    if v6 {
        a(&format!("2001:2:0:8000::{:x}", i + 1))
    } else {
        a(&format!("198.18.{}.{}", 128 + i / 200, 1 + i % 200))
    }
}

/// The lab, plus mark 1 (TCP port 80 to the two prefixes above) with one firewall-mark
/// service per family on `sched`, whose three real servers take it by `method` (port 0:
/// each packet keeps its port).
fn spec(sched: SchedulerKind, method: Method, persistence: Option<Persistence>) -> TablesSpec {
    let mut spec = lab::spec(method, SchedulerKind::Rr, 1);
    let mut marked = Vec::new();
    for v6 in [false, true] {
        let mut s = spec
            .services
            .iter()
            .find(|s| s.key.vip.v6 == v6 && s.key.proto == 6)
            .unwrap()
            .clone();
        s.key = ServiceKey::mark(MARK, v6);
        s.name = format!("fwmark/{MARK}{}", if v6 { "/ipv6" } else { "" });
        s.sched = SchedConfig::new(sched);
        s.persistence = persistence;
        for r in &mut s.reals {
            r.port = 0;
        }
        marked.push(s);
    }
    spec.services.extend(marked);
    spec.marks = vec![MarkSpec {
        mark: MARK,
        destinations: vec![(ipk("198.18.128.0"), 17), (ipk("2001:2:0:8000::"), 49)],
        protos: vec![6],
        ports: vec![(80, 80)],
    }];
    spec
}

struct Lab {
    shared: Arc<Shared>,
    w: Worker<MemPort>,
}

impl Lab {
    fn new(spec: &TablesSpec) -> Lab {
        let tables = TablesBuilder::build(spec, None).unwrap();
        let shared = Arc::new(Shared::new(tables, 4096, 1));
        lab::learn_neighbours(&shared.neigh, 0);
        let ports = vec![MemPort::new("client", 256), MemPort::new("server", 256)];
        Lab {
            w: Worker::new(0, ports, shared.clone()),
            shared,
        }
    }

    /// A TCP SYN from the lab's client (source port `sport`) to `dst:dport`; the frames that
    /// left towards the servers.
    fn syn(&mut self, dst: IpAddr, dport: u16, sport: u16) -> Vec<Vec<u8>> {
        let client = a(if dst.is_ipv6() {
            lab::CLIENT6
        } else {
            lab::CLIENT4
        });
        let frame = tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            client,
            sport,
            dst,
            dport,
            tk::SYN,
            b"",
        );
        assert!(self.w.ports[0].push_rx(&frame));
        self.w.poll();
        // A SYN no service takes is answered with a RST (fixtures.rs); not looked at here.
        self.w.ports[0].take_tx();
        self.w.ports[1].take_tx()
    }

    /// The real server (1..=3) a SYN to `dst:80` went to, by destination MAC.
    fn server_for(&mut self, dst: IpAddr, sport: u16) -> u8 {
        let out = self.syn(dst, 80, sport);
        assert_eq!(out.len(), 1, "{dst}: one frame to the servers");
        let seen = tk::check_frame(&out[0]).unwrap();
        (1..=3)
            .find(|&n| seen.dst_mac == lab::real_mac(n))
            .unwrap_or_else(|| panic!("{dst}: unknown MAC {:02x?}", seen.dst_mac))
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.shared.counters[0].dropped(r)
    }
}

/// dh, lblc and lblcr: 120 destinations of the mark reach all three caches, and a
/// destination asked for again (by another connection) reaches the same cache.
#[test]
fn destination_schedulers_spread_destinations_over_the_servers() {
    for sched in [SchedulerKind::Dh, SchedulerKind::Lblc, SchedulerKind::Lblcr] {
        for v6 in [false, true] {
            let mut lab = Lab::new(&spec(sched, Method::Dr, None));
            let mut first: HashMap<IpAddr, u8> = HashMap::new();
            let mut per_server = [0usize; 4];
            for i in 0..120 {
                let d = dest(i, v6);
                let n = lab.server_for(d, 20000 + i);
                per_server[usize::from(n)] += 1;
                first.insert(d, n);
            }
            assert!(
                per_server[1..].iter().all(|&c| c >= 10),
                "{sched:?} v6={v6}: destinations per server {:?}",
                &per_server[1..]
            );
            for i in 0..120 {
                let d = dest(i, v6);
                assert_eq!(
                    lab.server_for(d, 40000 + i),
                    first[&d],
                    "{sched:?}: {d} again, same server"
                );
            }
        }
    }
}

/// DR to a firewall-mark service: only the MAC changes, the packet keeps its own destination
/// address and port. Traffic the mark does not match (another port, another protocol, another
/// prefix) finds no service; address services are untouched.
#[test]
fn the_mark_decides_what_the_service_takes() {
    let mut lab = Lab::new(&spec(SchedulerKind::Dh, Method::Dr, None));
    let d = dest(7, false);
    let out = lab.syn(d, 80, 30000);
    assert_eq!(out.len(), 1);
    let seen = tk::check_frame(&out[0]).unwrap();
    assert_eq!((seen.dst, seen.dport), (d, 80), "DR: destination unchanged");

    let before = lab.drops(DropReason::NoService);
    assert!(
        lab.syn(d, 443, 30001).is_empty(),
        "port 443 is not in the mark"
    );
    assert!(
        lab.syn(a("198.18.127.9"), 80, 30002).is_empty(),
        "outside the prefix"
    );
    let udp = tk::udp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        a(lab::CLIENT4),
        30003,
        d,
        80,
        b"x",
    );
    assert!(lab.w.ports[0].push_rx(&udp));
    lab.w.poll();
    assert!(
        lab.w.ports[1].take_tx().is_empty(),
        "UDP is not in the mark"
    );
    assert_eq!(lab.drops(DropReason::NoService), before + 3);

    // The VIP's own service still answers to its address.
    assert_eq!(lab.syn(a(lab::VIP4), 80, 30004).len(), 1);
}

/// NAT with port-0 real servers: the real server gets the packet on its own port, and its
/// reply leaves with the original destination as source (not a VIP).
#[test]
fn nat_replies_carry_the_original_destination() {
    for v6 in [false, true] {
        let mut lab = Lab::new(&spec(SchedulerKind::Dh, Method::Nat, None));
        let d = dest(42, v6);
        let out = lab.syn(d, 80, 31000);
        assert_eq!(out.len(), 1);
        let fwd = tk::check_frame(&out[0]).unwrap();
        assert_eq!(fwd.dport, 80, "port 0: the packet's own port");
        let n = (1..=3).find(|&n| fwd.dst_mac == lab::real_mac(n)).unwrap();
        assert_eq!(fwd.dst, lab::real(n, v6).to_ip());
        let reply = tk::tcp(
            lab::real_mac(n),
            lab::LB1_MAC,
            fwd.dst,
            80,
            fwd.src,
            31000,
            tk::SYN_ACK,
            b"",
        );
        assert!(lab.w.ports[1].push_rx(&reply));
        lab.w.poll();
        let back = lab.w.ports[0].take_tx();
        assert_eq!(back.len(), 1, "reply to the client");
        let seen = tk::check_frame(&back[0]).unwrap();
        assert_eq!((seen.src, seen.sport), (d, 80));
    }
}

/// Persistence on a mark: one client stays on one server across every destination of the mark
/// (the template holds the mark, as IPVS's), where plain dh would spread it.
#[test]
fn persistence_spans_the_marks_destinations() {
    let pers = Persistence {
        timeout_s: 300,
        prefix_len: 128,
    };
    for v6 in [false, true] {
        let mut lab = Lab::new(&spec(SchedulerKind::Dh, Method::Dr, Some(pers)));
        let servers: HashSet<u8> = (0..40)
            .map(|i| lab.server_for(dest(i, v6), 32000 + i))
            .collect();
        assert_eq!(
            servers.len(),
            1,
            "v6={v6}: one server for the client: {servers:?}"
        );

        let mut lab = Lab::new(&spec(SchedulerKind::Dh, Method::Dr, None));
        let servers: HashSet<u8> = (0..40)
            .map(|i| lab.server_for(dest(i, v6), 32000 + i))
            .collect();
        assert_eq!(servers.len(), 3, "v6={v6}: without persistence dh spreads");
    }
}
