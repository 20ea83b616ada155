//! Connection sync without sockets: flows opened on node A's dataplane are turned into
//! IPVS sync records, sent through the wire codec and installed on node B, whose dataplane
//! then forwards mid-flow packets of those flows to the same real servers (without sync
//! they are dropped: a stray ACK schedules nothing). Records for services or real servers
//! B does not have are refused, never installed.

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use uvs_conntrack::tcp::TcpState;
use uvs_dataplane::lab;
use uvs_dataplane::tables::Persistence;
use uvs_dataplane::{Method, Shared, TablesBuilder, TablesSpec, Worker};
use uvs_port::MemPort;
use uvs_sched::SchedulerKind;
use uvs_sync::install::{self, Refused};
use uvs_sync::wire::{self, MessageWriter};
use uvs_testkit::{self as tk, check_frame, Flags};

struct Node {
    shared: Arc<Shared>,
    w: Worker<MemPort>,
}

impl Node {
    fn new(spec: &TablesSpec) -> Node {
        let tables = TablesBuilder::build(spec, None).unwrap();
        let shared = Arc::new(Shared::new(tables, 4096, 1));
        lab::learn_neighbours(&shared.neigh, 0);
        let ports = vec![MemPort::new("client", 256), MemPort::new("server", 256)];
        let w = Worker::new(0, ports, shared.clone());
        Node { shared, w }
    }

    /// A client TCP segment from `sport`; the real server it reached, if any.
    fn client(&mut self, v6: bool, sport: u16, flags: Flags) -> Option<(IpAddr, u16)> {
        let (c, v) = if v6 {
            (lab::CLIENT6, lab::VIP6)
        } else {
            (lab::CLIENT4, lab::VIP4)
        };
        let f = tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            c.parse().unwrap(),
            sport,
            v.parse().unwrap(),
            80,
            flags,
            b"",
        );
        assert!(self.w.ports[0].push_rx(&f));
        self.w.poll();
        self.w.ports[0].take_tx();
        self.w.ports[1]
            .take_tx()
            .first()
            .map(|f| check_frame(f).unwrap())
            .map(|s| (s.dst, s.sport))
    }

    /// Every entry as sync records, through the codec, as B's receiver gets them.
    fn sent(&self) -> Vec<wire::SyncConn> {
        let tables = self.shared.tables.load();
        let now = self.shared.clock.now_ticks();
        let mut w = MessageWriter::new(0, 1472, None);
        let mut msgs = Vec::new();
        self.shared.conns.for_each(|_, c, d| {
            if let Some(r) = install::record(&tables, c, d.wrapping_sub(now)) {
                msgs.extend(w.push(&r, 0));
            }
        });
        msgs.extend(w.finish(0));
        msgs.iter()
            .flat_map(|m| wire::parse(m, 0, None).unwrap().conns)
            .collect()
    }

    fn install_all(&self, recs: &[wire::SyncConn]) -> Vec<Result<(), Refused>> {
        let tables = self.shared.tables.load();
        let now = self.shared.clock.now_ticks();
        recs.iter()
            .map(|r| install::install(&tables, &self.shared.conns, r, now))
            .collect()
    }

    fn counts(&self, v6: bool) -> Vec<(u32, u32)> {
        let t = self.shared.tables.load();
        let svc = t
            .services
            .iter()
            .flatten()
            .find(|s| s.key.proto == 6 && s.key.vip.v6 == v6)
            .unwrap();
        svc.live
            .iter()
            .take(3)
            .map(|l| (l.active.load(Relaxed), l.inactive.load(Relaxed)))
            .collect()
    }
}

fn established(node: &mut Node, v6: bool, sport: u16) -> IpAddr {
    let (real, _) = node.client(v6, sport, tk::SYN).unwrap();
    node.client(v6, sport, tk::ACK);
    real
}

#[test]
fn synced_flows_keep_their_real_server_on_the_backup() {
    for method in [Method::Nat, Method::Dr, Method::FullNat] {
        let spec = lab::spec(method, SchedulerKind::Rr, 1);
        let mut a = Node::new(&spec);
        let mut b = Node::new(&spec);
        let mut on_a = Vec::new();
        for (i, v6) in [false, true, false, true, false].into_iter().enumerate() {
            let sport = 40000 + i as u16;
            on_a.push((v6, sport, established(&mut a, v6, sport)));
        }
        let recs = b.install_all(&a.sent());
        assert!(recs.iter().all(Result::is_ok), "{method:?}: {recs:?}");
        assert_eq!(b.shared.conns.len(), a.shared.conns.len(), "{method:?}");
        // The same counters on both nodes.
        assert_eq!(b.counts(false), a.counts(false), "{method:?}");
        assert_eq!(b.counts(true), a.counts(true), "{method:?}");
        // Mid-flow packets reach the same servers through B.
        for (v6, sport, real) in on_a {
            let got = b.client(v6, sport, tk::ACK).map(|(d, _)| d);
            assert_eq!(got, Some(real), "{method:?} v6={v6} sport={sport}");
        }
        // FullNAT: B also uses A's local port for the flow (the server's side of it).
        if method == Method::FullNat {
            let sa: Vec<_> = a.sent().iter().map(|r| r.fullnat).collect();
            let sb: Vec<_> = b.sent().iter().map(|r| r.fullnat).collect();
            assert!(sa.iter().all(Option::is_some));
            let mut sa = sa;
            let mut sb = sb;
            sa.sort();
            sb.sort();
            assert_eq!(sa, sb);
        }
    }
}

#[test]
fn without_sync_a_mid_flow_packet_is_dropped_on_the_other_node() {
    let spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    let mut a = Node::new(&spec);
    let mut b = Node::new(&spec);
    established(&mut a, false, 40000);
    assert_eq!(b.client(false, 40000, tk::ACK), None);
}

#[test]
fn persistence_templates_are_synced() {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    for s in &mut spec.services {
        s.persistence = Some(Persistence {
            timeout_s: 300,
            prefix_len: 24,
        });
    }
    let mut a = Node::new(&spec);
    let b = Node::new(&spec);
    let first = established(&mut a, false, 40000);
    let recs = a.sent();
    assert!(recs.iter().any(|r| r.flags & wire::flags::TEMPLATE != 0));
    assert!(b.install_all(&recs).iter().all(Result::is_ok));
    // A new connection of the same client on B follows the template.
    let mut b = b;
    let (real, _) = b.client(false, 40001, tk::SYN).unwrap();
    assert_eq!(real, first);
}

#[test]
fn records_for_services_or_servers_we_do_not_have_are_refused() {
    let spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    let mut a = Node::new(&spec);
    established(&mut a, false, 40000);
    let good = a.sent()[0];
    let b = Node::new(&spec);
    let mut other_vip = good;
    other_vip.vaddr = "198.18.100.99".parse().unwrap();
    let mut other_port = good;
    other_port.vport = 8080;
    let mut other_real = good;
    other_real.daddr = "198.18.1.99".parse().unwrap();
    let mut bad_state = good;
    bad_state.state = 200;
    let mut mixed = good;
    mixed.daddr = "2001:2:0:1::11".parse().unwrap();
    let mut icmp = good;
    icmp.protocol = 1;
    assert_eq!(
        b.install_all(&[other_vip, other_port, other_real, bad_state, mixed, icmp]),
        vec![
            Err(Refused::NoService),
            Err(Refused::NoService),
            Err(Refused::NoRealServer),
            Err(Refused::BadState),
            Err(Refused::Family),
            Err(Refused::NoService),
        ]
    );
    assert_eq!(b.shared.conns.len(), 0, "nothing installed");
    assert!(b.counts(false).iter().all(|c| *c == (0, 0)));
}

#[test]
fn a_later_record_moves_the_state_and_the_counters() {
    let spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    let mut a = Node::new(&spec);
    let b = Node::new(&spec);
    a.client(false, 40000, tk::SYN).unwrap();
    assert!(b.install_all(&a.sent()).iter().all(Result::is_ok));
    assert_eq!(b.counts(false)[0], (0, 1), "SYN_RECV: inactive");
    a.client(false, 40000, tk::ACK);
    assert!(b.install_all(&a.sent()).iter().all(Result::is_ok));
    assert_eq!(b.counts(false)[0], (1, 0), "ESTABLISHED: active");
    // The same record again changes nothing.
    assert!(b.install_all(&a.sent()).iter().all(Result::is_ok));
    assert_eq!(b.counts(false)[0], (1, 0));
}

/// Active/active without sync: with a consistent-hash scheduler (mh) a mid-flow packet
/// that ECMP moved to the other node follows the hash to the same real server and is
/// tracked from then on; with a non-hash scheduler it is dropped (sync covers those).
#[test]
fn mid_flow_packets_follow_the_hash_on_another_node() {
    for (kind, follows) in [
        (SchedulerKind::Mh, true),
        (SchedulerKind::Sh, true),
        (SchedulerKind::Rr, false),
    ] {
        let spec = lab::spec(Method::Nat, kind, 1);
        let mut a = Node::new(&spec);
        let mut b = Node::new(&spec);
        for sport in 41000..41020 {
            let real = established(&mut a, false, sport);
            let got = b.client(false, sport, tk::ACK).map(|(d, _)| d);
            if follows {
                assert_eq!(got, Some(real), "{kind:?} sport {sport}");
                // Tracked: the next packet is a table hit.
                assert_eq!(b.client(false, sport, tk::ACK).map(|(d, _)| d), Some(real));
            } else {
                assert_eq!(got, None, "{kind:?}: a stray ACK pins nothing");
            }
        }
        let adopted = b.shared.counters[0].hash_adopted.get();
        assert_eq!(adopted, if follows { 20 } else { 0 }, "{kind:?}");
        // A RST of an unknown flow never creates one.
        assert_eq!(b.client(false, 42000, tk::RST), None, "{kind:?}");
    }
}

/// Connections of the SYN proxy stay on their node: a peer could not translate their
/// sequence numbers (the IPVS record has no room for the deltas).
#[test]
fn syn_proxy_connections_are_not_synced() {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    for s in &mut spec.services {
        s.syn_proxy = s.key.proto == 6;
    }
    let mut a = Node::new(&spec);
    assert_eq!(
        a.client(false, 4000, tk::SYN),
        None,
        "answered by uvs itself"
    );
    // The client's ACK echoes the cookie (tk's SYN: ISN 1000, no MSS option → index 0).
    let t = uvs_dataplane::synproxy::cookie::Tuple {
        client: lab::ipk(lab::CLIENT4).addr,
        vip: lab::ipk(lab::VIP4).addr,
        client_port: 4000,
        vip_port: 80,
    };
    let count = uvs_dataplane::synproxy::cookie::count_of(a.shared.clock.now_s());
    let cookie = a.shared.synproxy.secret.make(&t, 1000, 0, count);
    let ack = etherparse::PacketBuilder::ethernet2(lab::CLIENT_MAC, lab::LB0_MAC)
        .ipv4([198, 18, 0, 2], [198, 18, 100, 1], 64)
        .tcp(4000, 80, 1001, 65535)
        .ack(cookie.wrapping_add(1));
    let mut f = Vec::new();
    ack.write(&mut f, b"").unwrap();
    assert!(a.w.ports[0].push_rx(&f));
    a.w.poll();
    assert_eq!(
        a.w.ports[1].take_tx().len(),
        1,
        "the SYN to the real server"
    );
    assert_eq!(a.shared.conns.len(), 1);
    assert!(a.sent().is_empty(), "a proxied connection is not synced");
}

#[test]
fn nat64_flows_are_synced_and_translated_on_the_backup() {
    // The lab's IPv6 FullNAT services served by its IPv4 servers from the IPv4 pool.
    let mut spec = lab::spec(Method::FullNat, SchedulerKind::Rr, 1);
    for s in spec.services.iter_mut().filter(|s| s.key.vip.v6) {
        for (n, r) in s.reals.iter_mut().enumerate() {
            r.addr = lab::real(n as u8 + 1, false);
        }
        s.fullnat_pool = vec![lab::ipk(lab::POOL4)];
    }
    let mut a = Node::new(&spec);
    let mut b = Node::new(&spec);
    let real = established(&mut a, true, 40000);
    assert!(real.is_ipv4(), "NAT64 reaches an IPv4 server: {real}");
    let recs = a.sent();
    assert_eq!(recs.len(), 1);
    assert!(
        recs[0].daddr.to_string().starts_with("::ffff:"),
        "{:?}",
        recs[0]
    );
    assert!(b.install_all(&recs).iter().all(Result::is_ok));
    assert_eq!(b.counts(true), a.counts(true));
    // A mid-flow segment through B is translated to the same server and pool port.
    let on_a = a.client(true, 40000, tk::ACK);
    let on_b = b.client(true, 40000, tk::ACK);
    assert_eq!(on_b, on_a);
    assert_eq!(on_b.map(|(d, _)| d), Some(real));
}

/// The operator's failover: node A (master) gave B three FullNAT connections that ended
/// (TIME_WAIT on B, pool ports 1024–1026); A's uvsd restarted, its pool-port allocator
/// began again at 1024, and its next connection took a port one of B's stale entries still
/// holds (same real server, same local address and port: the same reply tuple). The
/// master is authoritative for its own connections: B replaces the stale entry, gives its
/// place on the real server back, and forwards the new connection as A does.
#[test]
fn a_restarted_masters_record_replaces_the_stale_entry_holding_its_tuple() {
    let spec = lab::spec(Method::FullNat, SchedulerKind::Rr, 1);
    let mut a = Node::new(&spec);
    let mut b = Node::new(&spec);
    for sport in 40000..40003 {
        established(&mut a, false, sport);
    }
    let mut ended = a.sent();
    for r in &mut ended {
        r.state = TcpState::TimeWait as u16;
    }
    assert!(b.install_all(&ended).iter().all(Result::is_ok));
    assert_eq!(b.counts(false), vec![(0, 1), (0, 1), (0, 1)]);
    let stale: Vec<_> = ended.iter().map(|r| r.fullnat).collect();

    // A restarts: an empty table, the allocator from the start.
    let mut a = Node::new(&spec);
    let real = established(&mut a, false, 41000);
    let fresh = a.sent();
    assert_eq!(fresh.len(), 1);
    assert!(
        stale.contains(&fresh[0].fullnat),
        "the test needs a reused pool port: {:?} / {stale:?}",
        fresh[0].fullnat
    );
    assert_eq!(b.install_all(&fresh), vec![Ok(())]);
    assert_eq!(b.shared.conns.len(), 3, "the stale entry was replaced");
    // Its real server lost the stale (inactive) entry and gained the new active one.
    assert_eq!(b.counts(false), vec![(1, 0), (0, 1), (0, 1)]);
    // After a failover the new connection goes through B as through A: the same real
    // server, the same local port.
    let on_b = b.client(false, 41000, tk::ACK);
    assert_eq!(on_b, a.client(false, 41000, tk::ACK));
    assert_eq!(on_b.map(|(d, _)| d), Some(real));

    // An established stale entry (a master that crashed mid-flow) is replaced the same way.
    let mut c = Node::new(&spec);
    let mut b = Node::new(&spec);
    established(&mut c, false, 40000);
    assert!(b.install_all(&c.sent()).iter().all(Result::is_ok));
    let mut c = Node::new(&spec);
    established(&mut c, false, 41000);
    assert_eq!(b.install_all(&c.sent()), vec![Ok(())]);
    assert_eq!(b.shared.conns.len(), 1);
    assert_eq!(b.counts(false), vec![(1, 0), (0, 0), (0, 0)]);
    assert_eq!(
        b.client(false, 41000, tk::ACK),
        c.client(false, 41000, tk::ACK)
    );
}

/// A record whose client tuple a stale synced entry holds for another real server (the
/// client reused its port after the master restarted): the master's word replaces it.
#[test]
fn a_record_replaces_a_stale_synced_entry_of_the_same_client_tuple() {
    let spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    let mut a = Node::new(&spec);
    let mut b = Node::new(&spec);
    let first = established(&mut a, false, 40000);
    assert!(b.install_all(&a.sent()).iter().all(Result::is_ok));
    // Restarted A sends the same client port to the second real server.
    let mut a = Node::new(&spec);
    established(&mut a, false, 39999);
    let second = established(&mut a, false, 40000);
    assert_ne!(first, second);
    let recs: Vec<_> = a.sent().into_iter().filter(|r| r.cport == 40000).collect();
    assert_eq!(b.install_all(&recs), vec![Ok(())]);
    assert_eq!(b.shared.conns.len(), 1);
    assert_eq!(b.counts(false), vec![(0, 0), (1, 0), (0, 0)]);
    assert_eq!(
        b.client(false, 40000, tk::ACK).map(|(d, _)| d),
        Some(second)
    );
}

/// Sync mode both: a record never takes the reply tuple of a live connection this node
/// forwards itself (its packets pass here; the record's flow is elsewhere): refused as a
/// tuple clash, the local flow untouched. Once the local flow is closing (TIME_WAIT,
/// CLOSE), the record replaces it, as a new local connection would (`conn_reuse_mode`).
#[test]
fn a_record_does_not_replace_a_live_connection_of_this_node() {
    let spec = lab::spec(Method::FullNat, SchedulerKind::Rr, 1);
    let mut a = Node::new(&spec);
    let mut b = Node::new(&spec);
    let own = b.client(false, 42000, tk::SYN).unwrap();
    b.client(false, 42000, tk::ACK);
    let theirs = a.client(false, 40000, tk::SYN).unwrap();
    a.client(false, 40000, tk::ACK);
    assert_eq!(
        own, theirs,
        "the same real server and pool port on both nodes"
    );
    assert_eq!(b.install_all(&a.sent()), vec![Err(Refused::TupleClash)]);
    assert_eq!(b.counts(false), vec![(1, 0), (0, 0), (0, 0)]);
    assert_eq!(b.client(false, 42000, tk::ACK), Some(own), "B's own flow");
    // B's flow ends (a client RST: CLOSE): A's record may take its tuple now.
    b.client(false, 42000, tk::RST);
    assert_eq!(b.install_all(&a.sent()), vec![Ok(())]);
    assert_eq!(b.shared.conns.len(), 1);
    assert_eq!(b.counts(false), vec![(1, 0), (0, 0), (0, 0)]);
    assert_eq!(
        b.client(false, 40000, tk::ACK),
        a.client(false, 40000, tk::ACK)
    );
}

/// A persistence template the master changed (its restart scheduled the client afresh)
/// replaces the backup's synced copy instead of only refreshing its timer.
#[test]
fn a_synced_template_takes_the_masters_latest_real_server() {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    for s in &mut spec.services {
        s.persistence = Some(Persistence {
            timeout_s: 300,
            prefix_len: 24,
        });
    }
    let mut a = Node::new(&spec);
    let mut b = Node::new(&spec);
    let first = established(&mut a, false, 40000);
    let mut template = *a
        .sent()
        .iter()
        .find(|r| r.flags & wire::flags::TEMPLATE != 0)
        .unwrap();
    assert_eq!(b.install_all(&[template]), vec![Ok(())]);
    let other = lab::real(2, false).to_ip();
    assert_ne!(other, first);
    template.daddr = other;
    assert_eq!(b.install_all(&[template]), vec![Ok(())]);
    let (real, _) = b.client(false, 40001, tk::SYN).unwrap();
    assert_eq!(real, other, "B follows the master's latest template");
}

/// After a failover the backup carries the master's flows on their synced entries: the
/// first packet of each through it makes the flow its own (reported to its sync tap at
/// once, no longer marked synced, so its refresh sends it too), as IPVS's master syncs
/// every connection whose packets pass it. A master that restarted meanwhile (an empty
/// table) learns them back from it, and a failback keeps them.
#[test]
fn flows_a_backup_carries_after_a_failover_are_synced_back_to_a_restarted_master() {
    use uvs_dataplane::pipeline::conn_flags;
    for method in [Method::Nat, Method::Dr, Method::FullNat] {
        let spec = lab::spec(method, SchedulerKind::Rr, 1);
        let mut a = Node::new(&spec);
        let mut b = Node::new(&spec);
        b.shared.sync.set_enabled(true);
        let mut on_a = Vec::new();
        for (i, v6) in [false, true, false, true].into_iter().enumerate() {
            let sport = 40000 + i as u16;
            on_a.push((v6, sport, established(&mut a, v6, sport)));
        }
        assert!(b.install_all(&a.sent()).iter().all(Result::is_ok));
        let mut ids = Vec::new();
        b.shared.sync.drain(&mut ids, 1 << 16);
        assert!(ids.is_empty(), "{method:?}: installing reports nothing");

        // A dies; B takes the flows' packets.
        for (v6, sport, real) in &on_a {
            let got = b.client(*v6, *sport, tk::ACK).map(|(d, _)| d);
            assert_eq!(got, Some(*real), "{method:?} v6={v6} sport={sport}");
        }
        b.shared.sync.drain(&mut ids, 1 << 16);
        assert_eq!(ids.len(), on_a.len(), "{method:?}: each flow reported once");
        let mut synced = 0;
        b.shared.conns.for_each(|_, c, _| {
            synced += usize::from(c.flags & conn_flags::SYNCED != 0);
        });
        assert_eq!(synced, 0, "{method:?}: B's refresh sends them all");

        // A restarts empty and hears B's records: a failback keeps every flow.
        let mut a = Node::new(&spec);
        let tables = b.shared.tables.load();
        let now = b.shared.clock.now_ticks();
        let recs: Vec<_> = ids
            .iter()
            .filter_map(|id| b.shared.conns.get(*id))
            .filter_map(|(c, d)| install::record(&tables, &c, d.wrapping_sub(now)))
            .collect();
        assert!(a.install_all(&recs).iter().all(Result::is_ok));
        for (v6, sport, real) in &on_a {
            let got = a.client(*v6, *sport, tk::ACK).map(|(d, _)| d);
            assert_eq!(
                got,
                Some(*real),
                "{method:?} failback v6={v6} sport={sport}"
            );
        }
    }
}

/// The same for a persistent client: the backup that carries its flow after a failover
/// owns the flow's persistence template too (IPVS syncs a connection's template with it),
/// so a restarted master learns both and, after the failback, sends the client's next
/// connection to the same real server. A template a new connection uses is owned likewise.
#[test]
fn a_flows_template_goes_with_it_when_the_backup_takes_it_over() {
    use uvs_dataplane::pipeline::conn_flags;
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    for s in &mut spec.services {
        s.persistence = Some(Persistence {
            timeout_s: 300,
            prefix_len: 24,
        });
    }
    // Through the flow's packets, or through a new connection's use of the template.
    for new_conn in [false, true] {
        let mut a = Node::new(&spec);
        let mut b = Node::new(&spec);
        b.shared.sync.set_enabled(true);
        let real = established(&mut a, false, 40000);
        assert!(b.install_all(&a.sent()).iter().all(Result::is_ok));
        if new_conn {
            assert_eq!(b.client(false, 40001, tk::SYN).map(|(d, _)| d), Some(real));
        } else {
            assert_eq!(b.client(false, 40000, tk::ACK).map(|(d, _)| d), Some(real));
        }
        let mut synced = 0;
        b.shared.conns.for_each(|_, c, _| {
            synced += usize::from(c.flags & conn_flags::SYNCED != 0);
        });
        let left = usize::from(new_conn); // the flow no packet passed
        assert_eq!(synced, left, "new_conn={new_conn}: the template is B's now");
        let mut ids = Vec::new();
        b.shared.sync.drain(&mut ids, 1 << 16);
        let tables = b.shared.tables.load();
        let now = b.shared.clock.now_ticks();
        let recs: Vec<_> = ids
            .iter()
            .filter_map(|id| b.shared.conns.get(*id))
            .filter_map(|(c, d)| install::record(&tables, &c, d.wrapping_sub(now)))
            .collect();
        assert!(
            recs.iter().any(|r| r.flags & wire::flags::TEMPLATE != 0),
            "new_conn={new_conn}: the template is reported"
        );
        // A restarted, learns B's records; the client's next connection after the
        // failback keeps its real server.
        let mut a = Node::new(&spec);
        assert!(a.install_all(&recs).iter().all(Result::is_ok));
        assert_eq!(
            a.client(false, 40002, tk::SYN).map(|(d, _)| d),
            Some(real),
            "new_conn={new_conn}"
        );
    }
}
