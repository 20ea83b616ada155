//! Active/backup in the dataplane, through a real `Worker` over in-memory ports laid out
//! like the test network (port 0 = client side, port 1 = real servers): a backup group's
//! addresses get no ARP, NDP or echo answers while uvs's own addresses still do, and a group
//! becoming master is announced by worker 0 — gratuitous ARP and unsolicited neighbour
//! advertisements, `count` rounds `interval` apart, re-parsed by etherparse.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use etherparse::{ArpOperation, Icmpv6Type, NetHeaders, PacketHeaders, TransportHeader};
use uvs_dataplane::cluster::{AddrSet, AnnounceTarget, Announcement};
use uvs_dataplane::lab::{self, ipk};
use uvs_dataplane::{Method, Shared, TablesBuilder, Worker};
use uvs_port::MemPort;
use uvs_sched::SchedulerKind;
use uvs_wire::build;

struct Lab {
    shared: Arc<Shared>,
    w: Worker<MemPort>,
}

impl Lab {
    fn new(workers: usize, id: usize) -> Lab {
        let spec = lab::spec(Method::FullNat, SchedulerKind::Rr, workers);
        let tables = TablesBuilder::build(&spec, None).unwrap();
        let shared = Arc::new(Shared::new(tables, 4096, workers));
        lab::learn_neighbours(&shared.neigh, 0);
        let ports = vec![MemPort::new("client", 256), MemPort::new("server", 256)];
        let w = Worker::new(id, ports, shared.clone());
        Lab { shared, w }
    }

    fn send(&mut self, port: usize, frame: &[u8]) -> [Vec<Vec<u8>>; 2] {
        assert!(self.w.ports[port].push_rx(frame));
        self.poll()
    }

    fn poll(&mut self) -> [Vec<Vec<u8>>; 2] {
        self.w.poll();
        [self.w.ports[0].take_tx(), self.w.ports[1].take_tx()]
    }

    fn silence(&self, addrs: &[&str]) {
        self.shared
            .cluster
            .set_silent(addrs.iter().map(|a| ipk(a)).collect::<AddrSet>());
    }
}

fn v4(s: &str) -> [u8; 4] {
    match s.parse::<IpAddr>().unwrap() {
        IpAddr::V4(a) => a.octets(),
        _ => panic!("{s} is not IPv4"),
    }
}

fn arp_request(target: &str) -> Vec<u8> {
    let mut out = vec![0u8; 64];
    let n = build::arp_request(
        lab::CLIENT_MAC,
        v4(lab::CLIENT4),
        v4(target),
        None,
        &mut out,
    )
    .unwrap();
    out.truncate(n);
    out
}

fn neighbor_solicit(target: &str) -> Vec<u8> {
    let mut out = vec![0u8; 128];
    let n = build::ndp_neighbor_solicit(
        lab::CLIENT_MAC,
        &ipk(lab::CLIENT6).addr,
        &ipk(target).addr,
        None,
        &mut out,
    )
    .unwrap();
    out.truncate(n);
    out
}

fn ping(dst: &str) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(lab::CLIENT_MAC, lab::LB0_MAC);
    let mut out = Vec::new();
    match dst.parse::<IpAddr>().unwrap() {
        IpAddr::V4(d) => b
            .ipv4(v4(lab::CLIENT4), d.octets(), 64)
            .icmpv4_echo_request(7, 1)
            .write(&mut out, b"ping")
            .unwrap(),
        IpAddr::V6(d) => b
            .ipv6(ipk(lab::CLIENT6).addr, d.octets(), 64)
            .icmpv6_echo_request(7, 1)
            .write(&mut out, b"ping")
            .unwrap(),
    }
    out
}

/// What an announcement frame says, re-parsed by etherparse: (address, MAC it is at).
fn announced(frame: &[u8]) -> (IpAddr, [u8; 6]) {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("etherparse re-parse");
    let eth = h
        .link
        .clone()
        .and_then(|l| l.ethernet2())
        .expect("Ethernet II");
    match (&h.net, &h.transport) {
        (Some(NetHeaders::Arp(arp)), _) => {
            assert_eq!(eth.destination, [0xff; 6], "gratuitous ARP is broadcast");
            assert_eq!(arp.operation, ArpOperation::REQUEST);
            assert_eq!(
                arp.sender_protocol_addr(),
                arp.target_protocol_addr(),
                "sender = target"
            );
            assert_eq!(arp.target_hw_addr(), &[0; 6]);
            let mut a = [0u8; 4];
            a.copy_from_slice(arp.sender_protocol_addr());
            let mut mac = [0u8; 6];
            mac.copy_from_slice(arp.sender_hw_addr());
            assert_eq!(mac, eth.source);
            (IpAddr::from(a), mac)
        }
        (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Icmpv6(i))) => {
            assert_eq!(eth.destination, [0x33, 0x33, 0, 0, 0, 1], "all-nodes");
            assert_eq!(ip.hop_limit, 255, "NDP hop limit");
            assert_eq!(
                ip.destination,
                [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
            );
            assert!(matches!(
                i.icmp_type,
                Icmpv6Type::Unknown {
                    type_u8: 136,
                    code_u8: 0,
                    ..
                }
            ));
            // The checksum etherparse computes over the same pseudo-header and body.
            let body = h.payload.slice();
            assert_eq!(
                i.checksum,
                i.icmp_type
                    .calc_checksum(ip.source, ip.destination, body)
                    .unwrap(),
                "ICMPv6 checksum"
            );
            // Unknown-type header bytes 4..8: flags (Override only), reserved.
            let Icmpv6Type::Unknown { bytes5to8, .. } = i.icmp_type else {
                unreachable!()
            };
            assert_eq!(bytes5to8, [0x20, 0, 0, 0], "Override set, Solicited clear");
            assert_eq!(
                &body[..16],
                &ip.source,
                "target = source = the announced address"
            );
            assert_eq!(&body[16..18], &[2, 1], "target link-layer address option");
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&body[18..24]);
            assert_eq!(mac, eth.source);
            (IpAddr::from(ip.source), mac)
        }
        other => panic!("not an announcement: {other:?}"),
    }
}

#[test]
fn backup_addresses_get_no_answers_and_local_ones_still_do() {
    let mut lab = Lab::new(1, 0);
    lab.silence(&[lab::VIP4, lab::VIP6, lab::POOL4]);

    let [c, s] = lab.send(0, &arp_request(lab::VIP4));
    assert!(
        c.is_empty() && s.is_empty(),
        "no ARP reply for a backup VIP"
    );
    let [c, _] = lab.send(0, &neighbor_solicit(lab::VIP6));
    assert!(c.is_empty(), "no NA for a backup VIP");
    for vip in [lab::VIP4, lab::VIP6] {
        let [c, _] = lab.send(0, &ping(vip));
        assert!(c.is_empty(), "no echo reply from backup VIP {vip}");
    }
    let [_, s] = lab.send(1, &{
        let mut out = vec![0u8; 64];
        let n = build::arp_request(
            lab::real_mac(1),
            v4("198.18.1.11"),
            v4(lab::POOL4),
            None,
            &mut out,
        )
        .unwrap();
        out.truncate(n);
        out
    });
    assert!(
        s.is_empty(),
        "no ARP reply for a backup group's pool address"
    );
    // uvs's own local address is in no group: answered.
    let [c, _] = lab.send(0, &arp_request("198.18.0.3"));
    assert_eq!(c.len(), 1, "the local address is always answered");
    // A VIP of the same node that is not silent is answered.
    let [c, _] = lab.send(0, &neighbor_solicit("2001:2::3"));
    assert_eq!(c.len(), 1);

    // Master again: every answer comes back.
    lab.silence(&[]);
    let [c, _] = lab.send(0, &arp_request(lab::VIP4));
    assert_eq!(c.len(), 1, "ARP reply once master");
    let h = PacketHeaders::from_ethernet_slice(&c[0]).unwrap();
    let Some(NetHeaders::Arp(arp)) = h.net else {
        panic!()
    };
    assert_eq!(arp.operation, ArpOperation::REPLY);
    assert_eq!(arp.sender_hw_addr(), &lab::LB0_MAC);
    let [c, _] = lab.send(0, &neighbor_solicit(lab::VIP6));
    assert_eq!(c.len(), 1, "NA once master");
    let [c, _] = lab.send(0, &ping(lab::VIP4));
    assert_eq!(c.len(), 1, "echo reply once master");
}

fn web_announcement(count: u32, interval: Duration) -> Announcement {
    Announcement {
        targets: vec![
            AnnounceTarget {
                addr: ipk(lab::VIP4),
                ports: vec![0],
            },
            AnnounceTarget {
                addr: ipk(lab::VIP6),
                ports: vec![0],
            },
            AnnounceTarget {
                addr: ipk(lab::POOL4),
                ports: vec![1],
            },
        ],
        count,
        interval,
    }
}

#[test]
fn becoming_master_announces_every_address_count_times() {
    let mut lab = Lab::new(1, 0);
    // Nothing before an announcement is asked for.
    let [c, s] = lab.poll();
    assert!(c.is_empty() && s.is_empty());

    lab.shared
        .cluster
        .announce(web_announcement(3, Duration::from_secs(1)));
    for round in 1..=3u64 {
        let [c, s] = lab.poll();
        assert_eq!(
            c.len(),
            2,
            "round {round}: VIP4 and VIP6 on the client side"
        );
        assert_eq!(
            s.len(),
            1,
            "round {round}: the pool address on the server side"
        );
        let mut seen: Vec<IpAddr> = c
            .iter()
            .map(|f| announced(f))
            .map(|(a, mac)| {
                assert_eq!(mac, lab::LB0_MAC);
                a
            })
            .collect();
        let (pool, mac) = announced(&s[0]);
        assert_eq!(mac, lab::LB1_MAC, "each port announces with its own MAC");
        seen.push(pool);
        seen.sort();
        let mut want: Vec<IpAddr> = [lab::VIP4, lab::VIP6, lab::POOL4]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        want.sort();
        assert_eq!(seen, want);
        // Not again before the interval has passed.
        let [c, s] = lab.poll();
        assert!(c.is_empty() && s.is_empty(), "round {round} is sent once");
        lab.shared.clock.advance(1);
    }
    // All rounds sent: nothing more, however long we wait.
    lab.shared.clock.advance(5);
    let [c, s] = lab.poll();
    assert!(c.is_empty() && s.is_empty());
    assert_eq!(lab.shared.counters[0].announcements.get(), 9);

    // Becoming master again (keepalived re-runs notify_master) announces again.
    lab.shared
        .cluster
        .announce(web_announcement(1, Duration::from_millis(200)));
    let [c, s] = lab.poll();
    assert_eq!((c.len(), s.len()), (2, 1));
    assert_eq!(lab.shared.counters[0].announcements.get(), 12);
}

#[test]
fn only_worker_zero_announces() {
    let mut lab = Lab::new(2, 1);
    lab.shared
        .cluster
        .announce(web_announcement(2, Duration::from_millis(10)));
    for _ in 0..3 {
        let [c, s] = lab.poll();
        assert!(c.is_empty() && s.is_empty(), "worker 1 stays quiet");
        std::thread::sleep(Duration::from_millis(15));
    }
}

#[test]
fn a_second_group_joins_an_announcement_under_way() {
    let mut lab = Lab::new(1, 0);
    let one = |addr: &str, port: u8| Announcement {
        targets: vec![AnnounceTarget {
            addr: ipk(addr),
            ports: vec![port],
        }],
        count: 2,
        interval: Duration::from_secs(1),
    };
    lab.shared.cluster.announce(one(lab::VIP4, 0));
    let [c, _] = lab.poll();
    assert_eq!(c.len(), 1);
    // A second group becomes master before the first's rounds are over: both addresses
    // get their rounds from here on.
    lab.shared.cluster.announce(one(lab::VIP6, 0));
    let [c, _] = lab.poll();
    let mut got: Vec<IpAddr> = c.iter().map(|f| announced(f).0).collect();
    got.sort();
    assert_eq!(
        got,
        [
            lab::VIP4.parse::<IpAddr>().unwrap(),
            lab::VIP6.parse().unwrap()
        ]
    );
    lab.shared.clock.advance(1);
    let [c, _] = lab.poll();
    assert_eq!(c.len(), 2, "second round for both");
    lab.shared.clock.advance(1);
    let [c, _] = lab.poll();
    assert!(c.is_empty());
}
