//! The worker's cache of link-layer headers towards real servers (`dataplane/src/egress.rs`)
//! through a real `Worker` over in-memory ports: an established flow's packets follow a
//! neighbour's new MAC, wait for a forgotten neighbour, follow a reload's new route, keep
//! flowing (routed) when their server is removed or its slot reused, and are counted on
//! their service and real server on every packet (again once a removed server is back in
//! its reserved slot).

use std::net::IpAddr;
use std::sync::Arc;

use uvs_dataplane::lab::{self, ipk};
use uvs_dataplane::{Method, Route, Shared, Tables, TablesBuilder, TablesSpec, Worker};
use uvs_port::MemPort;
use uvs_sched::SchedulerKind;
use uvs_testkit::{self as tk, check_frame, Flags, Seen};

const GATEWAY: &str = "198.18.1.254";
const GATEWAY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x12, 0x54];

struct Lab {
    shared: Arc<Shared>,
    w: Worker<MemPort>,
}

impl Lab {
    fn new() -> Lab {
        let tables = TablesBuilder::build(&spec(), None).unwrap();
        let shared = Arc::new(Shared::new(tables, 4096, 1));
        lab::learn_neighbours(&shared.neigh, 0);
        let ports = vec![MemPort::new("client", 256), MemPort::new("server", 256)];
        let w = Worker::new(0, ports, shared.clone());
        Lab { shared, w }
    }

    /// The client's segment from `sport`: every frame that left towards the servers.
    fn client(&mut self, sport: u16, flags: Flags) -> Vec<Vec<u8>> {
        let f = tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            lab::CLIENT4.parse().unwrap(),
            sport,
            lab::VIP4.parse().unwrap(),
            80,
            flags,
            b"data",
        );
        assert!(self.w.ports[0].push_rx(&f));
        self.w.poll();
        self.w.ports[0].take_tx();
        self.w.ports[1].take_tx()
    }

    /// The one segment that reached a server.
    fn forwarded(&mut self, sport: u16, flags: Flags) -> Seen {
        let out = self.client(sport, flags);
        assert_eq!(out.len(), 1, "one frame to the servers");
        check_frame(&out[0]).unwrap()
    }

    fn reload(&self, spec: &TablesSpec) {
        let cur = self.shared.tables.load();
        let t = TablesBuilder::build(spec, Some(&cur)).unwrap();
        self.shared.tables.store(Arc::new(t));
    }

    /// (service packets in, real server `slot`'s packets in) of the IPv4 TCP service.
    fn packets_in(&self, slot: usize) -> (u64, Option<u64>) {
        let t = self.shared.tables.load();
        let svc = tcp4(&t);
        let real = svc.reals[slot]
            .as_ref()
            .map(|r| r.stats.worker(0).packets_in.get());
        (svc.stats.worker(0).packets_in.get(), real)
    }
}

/// Zeroes the live counters of the IPv4 TCP service's `slot`, as if its flows' counts had
/// been lost: the next reload may give the slot to another server while they last.
fn forget_counts(lab: &Lab, slot: usize) {
    tcp4(&lab.shared.tables.load()).live[slot].reset_conns();
}

fn tcp4(t: &Tables) -> &uvs_dataplane::tables::ServiceRt {
    t.services
        .iter()
        .flatten()
        .find(|s| s.key.proto == 6 && !s.key.vip.v6)
        .unwrap()
}

fn spec() -> TablesSpec {
    lab::spec(Method::Nat, SchedulerKind::Rr, 1)
}

/// Real server 1's address reached through the gateway (a host route before the others).
fn route_real1_via_gateway(s: &mut TablesSpec) {
    s.routes.insert(
        0,
        Route {
            prefix: lab::real(1, false),
            len: 32,
            port: 1,
            via: Some(ipk(GATEWAY)),
        },
    );
}

fn real1() -> IpAddr {
    lab::real(1, false).to_ip()
}

/// An established flow to real server 1 (round robin starts there).
fn open(lab: &mut Lab, sport: u16) {
    let syn = lab.forwarded(sport, tk::SYN);
    assert_eq!(syn.dst, real1());
    assert_eq!(syn.dst_mac, lab::real_mac(1));
}

#[test]
fn a_new_neighbour_mac_is_used_from_the_next_burst() {
    let mut lab = Lab::new();
    open(&mut lab, 41000);
    for _ in 0..3 {
        let s = lab.forwarded(41000, tk::ACK);
        assert_eq!((s.dst_mac, s.src_mac), (lab::real_mac(1), lab::LB1_MAC));
    }
    let moved = [0x02, 0, 0, 0, 0x99, 0x01];
    lab.shared.neigh.learn(lab::real(1, false), moved, 5);
    for _ in 0..3 {
        let s = lab.forwarded(41000, tk::ACK);
        assert_eq!(s.dst, real1());
        assert_eq!((s.dst_mac, s.src_mac), (moved, lab::LB1_MAC));
    }
}

#[test]
fn a_forgotten_neighbour_is_asked_for_not_taken_from_the_cache() {
    let mut lab = Lab::new();
    open(&mut lab, 41001);
    assert_eq!(
        lab.forwarded(41001, tk::ACK).dst_mac,
        lab::real_mac(1),
        "header cached"
    );
    lab.shared.neigh.clear();
    let out = lab.client(41001, tk::ACK);
    // The frame waits for the neighbour; what leaves is the ARP request for it.
    assert_eq!(out.len(), 1);
    assert_eq!(
        &out[0][12..14],
        &[0x08, 0x06],
        "an ARP request, not the segment"
    );
    assert_eq!(&out[0][..6], &[0xff; 6]);
}

#[test]
fn a_reload_that_changes_the_route_changes_the_next_hop() {
    let mut lab = Lab::new();
    lab.shared.neigh.learn(ipk(GATEWAY), GATEWAY_MAC, 0);
    open(&mut lab, 41002);
    assert_eq!(lab.forwarded(41002, tk::ACK).dst_mac, lab::real_mac(1));
    // Same services, same slots; real server 1 is now reached through a gateway.
    let mut s = spec();
    route_real1_via_gateway(&mut s);
    lab.reload(&s);
    for _ in 0..2 {
        let seen = lab.forwarded(41002, tk::ACK);
        assert_eq!(seen.dst, real1());
        assert_eq!(seen.dst_mac, GATEWAY_MAC);
    }
    lab.reload(&spec());
    assert_eq!(lab.forwarded(41002, tk::ACK).dst_mac, lab::real_mac(1));
}

#[test]
fn a_removed_or_replaced_server_keeps_its_flows_routed() {
    let mut lab = Lab::new();
    lab.shared.neigh.learn(ipk(GATEWAY), GATEWAY_MAC, 0);
    open(&mut lab, 41003);
    assert_eq!(lab.forwarded(41003, tk::ACK).dst_mac, lab::real_mac(1));
    // Real server 1 removed; its address now routed through the gateway: the flow keeps
    // going (IPVS keeps forwarding to a removed dest), by the route, not the cached hop.
    let mut s = spec();
    s.services[0].reals.remove(0);
    route_real1_via_gateway(&mut s);
    lab.reload(&s);
    assert!(tcp4(&lab.shared.tables.load()).reals[0].is_none());
    for _ in 0..2 {
        let seen = lab.forwarded(41003, tk::ACK);
        assert_eq!(seen.dst, real1());
        assert_eq!(seen.dst_mac, GATEWAY_MAC);
    }
    // Its slot given to another server (at another address), which a reload does only
    // once the slot's counters show no connection: as if the flow's count had been lost.
    // Still routed by the flow's own address, never sent with the new server's header.
    forget_counts(&lab, 0);
    let mut s = spec();
    s.services[0].reals[0].addr = ipk("198.18.1.19");
    route_real1_via_gateway(&mut s);
    lab.shared
        .neigh
        .learn(ipk("198.18.1.19"), [0x02, 0, 0, 0, 0x11, 0x19], 0);
    lab.reload(&s);
    let t = lab.shared.tables.load();
    assert_eq!(tcp4(&t).reals[0].as_ref().unwrap().addr, ipk("198.18.1.19"));
    drop(t);
    for _ in 0..2 {
        let seen = lab.forwarded(41003, tk::ACK);
        assert_eq!(seen.dst, real1());
        assert_eq!(seen.dst_mac, GATEWAY_MAC);
    }
}

#[test]
fn every_packet_is_counted_on_its_service_and_real_server() {
    let mut lab = Lab::new();
    open(&mut lab, 41004);
    let (svc0, real0) = lab.packets_in(0);
    for _ in 0..5 {
        lab.forwarded(41004, tk::ACK);
    }
    let (svc1, real1) = lab.packets_in(0);
    assert_eq!(svc1 - svc0, 5);
    assert_eq!(real1.unwrap() - real0.unwrap(), 5);
    // After a reload that keeps the server, its counters still see every packet.
    lab.reload(&spec());
    for _ in 0..3 {
        lab.forwarded(41004, tk::ACK);
    }
    let (svc2, real2) = lab.packets_in(0);
    assert_eq!(svc2 - svc1, 3);
    assert_eq!(real2.unwrap() - real1.unwrap(), 3);
}

/// Counters stay with the configuration, not with what a cached line once served: once a
/// reload removes the server, or gives its slot to a server at another address, the flow's
/// packets count on the service alone (the flow has no configured server), never on the
/// old server's counters, nor on the slot's new server, nor once the server is back in
/// another slot. (A cache that also held the counters, bench/README's "Eighth pass", must
/// pass this too.)
#[test]
fn a_removed_or_replaced_server_is_no_longer_counted_from_the_line() {
    let mut lab = Lab::new();
    open(&mut lab, 41005);
    for _ in 0..3 {
        lab.forwarded(41005, tk::ACK);
    }
    let t = lab.shared.tables.load();
    let old = Arc::clone(&tcp4(&t).reals[0].as_ref().unwrap().stats);
    drop(t);
    let old_in = || old.worker(0).packets_in.get();
    let before = old_in();
    // Removed.
    let mut s = spec();
    s.services[0].reals.remove(0);
    lab.reload(&s);
    let (svc0, none) = lab.packets_in(0);
    assert_eq!(none, None);
    for _ in 0..4 {
        assert_eq!(lab.forwarded(41005, tk::ACK).dst, real1());
    }
    assert_eq!(lab.packets_in(0).0 - svc0, 4, "counted on the service");
    assert_eq!(old_in(), before, "not on the removed server");
    // Its slot given to a server at another address (once its counters show nothing, as
    // above).
    forget_counts(&lab, 0);
    let mut s = spec();
    s.services[0].reals[0].addr = ipk("198.18.1.19");
    lab.reload(&s);
    let (svc1, new1) = lab.packets_in(0);
    for _ in 0..4 {
        assert_eq!(lab.forwarded(41005, tk::ACK).dst, real1());
    }
    let (svc2, new2) = lab.packets_in(0);
    assert_eq!(svc2 - svc1, 4, "counted on the service");
    assert_eq!(new2, new1, "not on the slot's new server");
    assert_eq!(old_in(), before, "nor on the old one");
    // Back at its address, with 198.18.1.19 removed: slot 0, the one the flow's entry
    // names, stays reserved for 198.18.1.19 at its removal, so real server 1 comes back in
    // another slot and the flow still counts on the service alone.
    lab.reload(&spec());
    let t = lab.shared.tables.load();
    let reals = &tcp4(&t).reals;
    assert!(reals[0].is_none());
    let slot = reals
        .iter()
        .position(|r| r.as_ref().is_some_and(|r| r.addr == lab::real(1, false)))
        .unwrap();
    drop(t);
    let (svc3, back3) = lab.packets_in(slot);
    for _ in 0..2 {
        assert_eq!(lab.forwarded(41005, tk::ACK).dst, real1());
    }
    let (svc4, back4) = lab.packets_in(slot);
    assert_eq!(svc4 - svc3, 2, "counted on the service");
    assert_eq!(back4, back3, "not on the server's new slot");
    assert_eq!(old_in(), before);
}

/// A server removed while its flow runs and re-added (same address and port) before the
/// flow ends takes its reserved slot back, the one the flow's entry names: the flow counts
/// on it again, on every packet.
#[test]
fn a_server_back_in_its_reserved_slot_counts_its_flow_again() {
    let mut lab = Lab::new();
    open(&mut lab, 41006);
    let mut s = spec();
    s.services[0].reals.remove(0);
    lab.reload(&s);
    assert!(tcp4(&lab.shared.tables.load()).reals[0].is_none());
    lab.forwarded(41006, tk::ACK);
    lab.reload(&spec());
    let (svc0, back0) = lab.packets_in(0);
    for _ in 0..3 {
        assert_eq!(lab.forwarded(41006, tk::ACK).dst, real1());
    }
    let (svc1, back1) = lab.packets_in(0);
    assert_eq!(svc1 - svc0, 3);
    assert_eq!(
        back1.unwrap() - back0.unwrap(),
        3,
        "counted on the server again"
    );
}
