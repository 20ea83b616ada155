//! Connection lifecycle through a real `Worker` over in-memory ports: a new connection
//! that reuses a client port never follows an entry to a closing or dead real server
//! (IPVS conn_reuse_mode / expire_nodest_conn), active/inactive counters stay exact when
//! a burst holds several packets of one flow, half-open entries are neither extended by
//! the server's retransmits nor kept when the table is nearly full (drop_entry), and
//! persistence templates are per service (protocol included), per netmask and per port 0,
//! a template naming the sorry server lapses once a real server can take the client, and
//! a change of connection thresholds re-evaluates a server's overload at once.

mod lab_worker;

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use uvs_dataplane::lab::{self, ipk};
use uvs_dataplane::lifecycle::{self, Settings};
use uvs_dataplane::tables::Persistence;
use uvs_dataplane::{DropReason, Method, ServiceKey, Shared, TablesBuilder, TablesSpec};
use uvs_sched::SchedulerKind;
use uvs_testkit::{self as tk, check_frame, Flags};

use lab_worker::{a, client_tcp, server_tcp, Lab};

impl Lab {
    fn nat(capacity: usize) -> Lab {
        Self::with_spec(lab::spec(Method::Nat, SchedulerKind::Rr, 1), capacity)
    }

    /// Pushes every frame (port, bytes), then runs one burst; returns what left port 1.
    fn burst(&mut self, frames: &[(usize, Vec<u8>)]) -> Vec<Vec<u8>> {
        let [_, out] = self.burst_both(frames);
        out
    }

    /// The client's TCP segment `flags` from `sport`; returns the real server it reached.
    fn client(&mut self, sport: u16, flags: Flags) -> Option<IpAddr> {
        let out = self.burst(&[(0, client_tcp(sport, flags, b""))]);
        out.first().map(|f| check_frame(f).unwrap().dst)
    }

    /// Real server `n`'s TCP segment to the client's `sport`.
    fn server(&mut self, n: u8, sport: u16, flags: Flags) {
        self.burst(&[(1, server_tcp(n, sport, flags))]);
    }

    fn settings(&self, f: impl FnOnce(&mut Settings)) {
        let mut s = self.shared.settings.load();
        f(&mut s);
        self.shared.settings.store(s);
    }

    /// Expires everything: the clock jumps an hour, control's sweep releases counters.
    fn expire_all(&self) {
        self.shared.clock.advance(3600);
        let t = self.shared.tables.load();
        let now = self.shared.clock.now_ticks();
        self.shared
            .conns
            .expire_step(now, 1 << 20, |c| lifecycle::unbind(&t, c));
    }
}

fn real(n: u8) -> Option<IpAddr> {
    Some(lab::real(n, false).to_ip())
}

/// One whole connection through NAT from `sport` to real server `n`, ending in TIME_WAIT
/// (client closes first).
fn connect_and_close(lab: &mut Lab, sport: u16, n: u8) {
    assert_eq!(lab.client(sport, tk::SYN), real(n));
    lab.server(n, sport, tk::SYN_ACK);
    lab.client(sport, tk::ACK);
    lab.client(sport, tk::FIN_ACK);
    lab.server(n, sport, tk::FIN_ACK);
    lab.client(sport, tk::ACK);
}

#[test]
fn syn_on_a_time_wait_entry_is_scheduled_afresh() {
    let mut lab = Lab::nat(4096);
    connect_and_close(&mut lab, 40000, 1);
    assert_eq!(lab.counts(1), (0, 1), "the closed connection is inactive");
    // The same client port again: rr's next server, not the old entry's.
    assert_eq!(lab.client(40000, tk::SYN), real(2));
    assert_eq!(lab.counts(1), (0, 0), "the old entry was released");
    assert_eq!(lab.counts(2), (0, 1));
    assert_eq!(lab.shared.counters[0].reused_conns.get(), 1);
}

#[test]
fn conn_reuse_mode_0_lets_a_syn_follow_the_time_wait_entry() {
    let mut lab = Lab::nat(4096);
    lab.settings(|s| s.conn_reuse_mode = 0);
    connect_and_close(&mut lab, 40000, 1);
    assert_eq!(lab.client(40000, tk::SYN), real(1));
    assert_eq!(lab.shared.counters[0].reused_conns.get(), 0);
}

#[test]
fn syn_never_follows_an_entry_to_a_down_server() {
    for reuse_mode in [0, 1] {
        let mut lab = Lab::nat(4096);
        lab.settings(|s| s.conn_reuse_mode = reuse_mode);
        assert_eq!(lab.client(40000, tk::SYN), real(1));
        lab.server(1, 40000, tk::SYN_ACK);
        lab.client(40000, tk::ACK);
        assert_eq!(lab.counts(1), (1, 0));
        lab.set_health(1, false);
        // The client gave up and reconnects from the same port.
        assert_eq!(lab.client(40000, tk::SYN), real(2), "mode {reuse_mode}");
        assert_eq!(lab.counts(1), (0, 0), "mode {reuse_mode}");
    }
}

#[test]
fn expire_nodest_conn_drops_packets_of_a_down_servers_connections() {
    let mut lab = Lab::nat(4096);
    assert_eq!(lab.client(40000, tk::SYN), real(1));
    lab.server(1, 40000, tk::SYN_ACK);
    lab.client(40000, tk::ACK);
    lab.set_health(1, false);
    // Without expire_nodest_conn an established flow keeps its (down) server.
    assert_eq!(lab.client(40000, tk::ACK), real(1));
    lab.settings(|s| s.expire_nodest_conn = true);
    assert_eq!(lab.client(40000, tk::ACK), None);
    assert_eq!(lab.shared.counters[0].dropped(DropReason::NoRealServer), 1);
    assert_eq!(lab.shared.conns.len(), 0, "the entry went with the packet");
    assert_eq!(lab.counts(1), (0, 0));
}

/// With a table large enough for burst lookups, every packet of a burst was looked up
/// before the first was processed: three segments of one handshake in one burst all saw
/// SYN_RECV. The flow must become active once, not three times.
#[test]
fn a_burst_of_one_flow_moves_the_counters_once() {
    let mut lab = Lab::nat(1 << 16);
    lab.set_health(2, false);
    lab.set_health(3, false);
    // Two connections to server 1: both inactive.
    assert_eq!(lab.client(40001, tk::SYN), real(1));
    assert_eq!(lab.client(40002, tk::SYN), real(1));
    lab.server(1, 40001, tk::SYN_ACK);
    assert_eq!(lab.counts(1), (0, 2));
    let out = lab.burst(&[
        (0, client_tcp(40001, tk::ACK, b"")),
        (0, client_tcp(40001, tk::ACK, b"GET / HTTP/1.1\r\n\r\n")),
        (0, client_tcp(40001, tk::ACK, b"more")),
    ]);
    assert_eq!(out.len(), 3);
    assert_eq!(lab.counts(1), (1, 1), "one established, one half-open");
    // Both close; when the table drains the counters are back at zero.
    lab.burst(&[
        (0, client_tcp(40001, tk::RST, b"")),
        (0, client_tcp(40001, tk::RST, b"")),
        (0, client_tcp(40002, tk::RST, b"")),
    ]);
    assert_eq!(lab.counts(1), (0, 2));
    lab.expire_all();
    assert_eq!(lab.shared.conns.len(), 0);
    assert_eq!(lab.counts(1), (0, 0));
}

#[test]
fn server_retransmits_do_not_extend_a_half_open_entry() {
    let mut lab = Lab::nat(4096);
    assert_eq!(lab.client(40000, tk::SYN), real(1));
    let first = deadline(&lab.shared);
    lab.shared.clock.advance(30);
    lab.server(1, 40000, tk::SYN_ACK);
    assert_eq!(
        deadline(&lab.shared),
        first,
        "a SYN-ACK retransmit left the deadline alone"
    );
    // The client's ACK completes the handshake and does refresh it.
    lab.client(40000, tk::ACK);
    assert_ne!(deadline(&lab.shared), first);
}

/// Plain ACKs of an ESTABLISHED connection take TCP's shortcut past the state table: no
/// write while the deadline is fresh, a refresh to the ESTABLISHED timeout once it is more
/// than a second old; a FIN still goes through the state machine.
#[test]
fn established_acks_refresh_the_deadline_about_once_a_second() {
    let mut lab = Lab::nat(4096);
    assert_eq!(lab.client(40000, tk::SYN), real(1));
    lab.server(1, 40000, tk::SYN_ACK);
    lab.client(40000, tk::ACK);
    let established = uvs_conntrack::tcp::TcpState::Established as u8;
    assert_eq!(state(&lab.shared), established);
    let first = deadline(&lab.shared);
    lab.client(40000, tk::ACK);
    lab.server(1, 40000, tk::ACK);
    assert_eq!(
        deadline(&lab.shared),
        first,
        "a fresh deadline is not rewritten"
    );
    lab.shared.clock.advance(30);
    lab.client(40000, tk::ACK);
    let moved = deadline(&lab.shared).wrapping_sub(first);
    assert!(
        (30_000..31_000).contains(&moved),
        "refreshed to 15 min from now: moved {moved} ms"
    );
    assert_eq!(state(&lab.shared), established);
    lab.client(40000, tk::FIN_ACK);
    assert_eq!(
        state(&lab.shared),
        uvs_conntrack::tcp::TcpState::CloseWait as u8,
        "the client's FIN left ESTABLISHED"
    );
}

/// The state of the table's only entry.
fn state(shared: &Shared) -> u8 {
    let mut s = 0;
    shared.conns.for_each(|_, c, _| s = c.state);
    s
}

/// The deadline of the table's only entry.
fn deadline(shared: &Shared) -> u32 {
    let mut d = 0;
    shared.conns.for_each(|_, _, x| d = x);
    d
}

#[test]
fn drop_entry_makes_room_after_a_syn_flood() {
    let mut lab = Lab::nat(64);
    // One established connection that must survive.
    assert_eq!(lab.client(1000, tk::SYN), real(1));
    lab.server(1, 1000, tk::SYN_ACK);
    lab.client(1000, tk::ACK);
    // Spoofed SYNs fill the table.
    for sport in 2000..2100 {
        lab.client(sport, tk::SYN);
    }
    assert_eq!(lab.shared.conns.len_of(false), 64);
    assert!(lab.shared.counters[0].dropped(DropReason::TableFull) > 0);
    assert_eq!(lab.client(3000, tk::SYN), None, "the table is full");
    let t = lab.shared.tables.load();
    let dropped = lifecycle::drop_half_open(&lab.shared.conns, &t, lab.shared.clock.now_ticks());
    assert_eq!(
        dropped, 16,
        "half-open entries went until a quarter of the table was free"
    );
    assert!(
        lab.client(3000, tk::SYN).is_some(),
        "a new client is served"
    );
    assert_eq!(
        lab.client(1000, tk::ACK),
        real(1),
        "the established flow kept its server"
    );
    let total: u32 = (1..=3).map(|n| lab.counts(n).0 + lab.counts(n).1).sum();
    assert_eq!(
        total as usize,
        lab.shared.conns.len_of(false),
        "counters match the table"
    );
    assert_eq!(lab.counts(1).0, 1, "one established");
}

/// During a flood the defence drops the oldest half-open entries first: a client whose
/// handshake is under way (its ACK a round trip behind its SYN) completes it, where
/// dropping every half-open entry at each sweep cut it.
#[test]
fn drop_entry_spares_a_handshake_under_way() {
    let mut lab = Lab::nat(64);
    for sport in 2000..2100 {
        lab.client(sport, tk::SYN);
    }
    assert_eq!(lab.shared.conns.len_of(false), 64);
    lab.shared.clock.advance(1);
    let t = lab.shared.tables.load();
    let shared = lab.shared.clone();
    let now = || shared.clock.now_ticks();
    assert!(lifecycle::drop_half_open(&lab.shared.conns, &t, now()) > 0);
    let server = lab.client(3000, tk::SYN).expect("room for a client");
    // The flood goes on and fills the table again before the client's ACK comes.
    for sport in 4000..4100 {
        lab.client(sport, tk::SYN);
    }
    assert_eq!(lab.shared.conns.len_of(false), 64);
    assert!(lifecycle::drop_half_open(&lab.shared.conns, &t, now()) > 0);
    let n = match server.to_string().as_str() {
        "198.18.1.11" => 1,
        "198.18.1.12" => 2,
        _ => 3,
    };
    lab.server(n, 3000, tk::SYN_ACK);
    assert_eq!(
        lab.client(3000, tk::ACK),
        Some(server),
        "the handshake under way completed"
    );
}

/// The lab client's UDP datagram from `sport` to the IPv4 VIP's port 53.
fn client_udp(sport: u16) -> Vec<u8> {
    tk::udp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        a(lab::CLIENT4),
        sport,
        a(lab::VIP4),
        53,
        b"q",
    )
}

/// A UDP flood (one datagram from each of many ports, as a spoofed flood sends) fills the
/// table; UDP has no handshake to tell its flows from real clients', so, as IPVS's
/// `todrop_entry`, the defence drops the flows idle for 60 s and keeps the others: new
/// clients are served a minute after the flood, not when its entries time out (5 min).
#[test]
fn drop_entry_makes_room_after_a_udp_flood() {
    let mut lab = Lab::nat(64);
    for sport in 2000..2100 {
        lab.burst(&[(0, client_udp(sport))]);
    }
    assert_eq!(lab.shared.conns.len_of(false), 64);
    assert_eq!(lab.client(3000, tk::SYN), None, "the table is full");
    lab.shared.clock.advance(30);
    // A flow still in use: its client sends again.
    assert_eq!(lab.burst(&[(0, client_udp(2000))]).len(), 1);
    let t = lab.shared.tables.load();
    assert_eq!(
        lifecycle::drop_half_open(&lab.shared.conns, &t, lab.shared.clock.now_ticks()),
        0,
        "nothing idle for a minute yet"
    );
    lab.shared.clock.advance(31);
    let dropped = lifecycle::drop_half_open(&lab.shared.conns, &t, lab.shared.clock.now_ticks());
    assert_eq!(dropped, 63, "every flow idle for 61 s went");
    assert!(
        lab.client(3000, tk::SYN).is_some(),
        "a new client is served"
    );
    assert_eq!(
        lab.burst(&[(0, client_udp(2000))]).len(),
        1,
        "the flow in use kept its entry"
    );
    let tcp: u32 = (1..=3).map(|n| lab.counts(n).0 + lab.counts(n).1).sum();
    assert_eq!(tcp, 1, "TCP counters match the table: the new flow");
    let t = lab.shared.tables.load();
    let udp = t
        .services
        .iter()
        .flatten()
        .find(|s| s.key.proto == 17 && !s.key.vip.v6)
        .unwrap();
    let udp: u32 = udp.live.iter().map(|l| l.inactive.load(Relaxed)).sum();
    assert_eq!(udp, 1, "UDP counters match the table: the flow in use");
}

/// A segment with `flags` from spoofed source `198.19.0.n` to the IPv4 VIP's port 80.
fn spoofed(n: u8, flags: Flags) -> Vec<u8> {
    tk::tcp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        a(&format!("198.19.0.{n}")),
        40000,
        a(lab::VIP4),
        80,
        flags,
        b"",
    )
}

/// Entries in the IPv4 table that are persistence templates.
fn templates(lab: &Lab) -> usize {
    let mut n = 0;
    lab.shared.conns.for_each_of(false, |_, c, _| {
        n += usize::from(lifecycle::EntryKind::of(c) == lifecycle::EntryKind::Template)
    });
    n
}

/// A spoofed SYN flood at a persistent service leaves a template per source beside each
/// half-open entry: the defence drops the templates its dropped entries leave controlling
/// nothing, and templates with no connection idle for 60 s, or the table stays full of
/// templates for the persistence timeout (5 min) and every new client is refused. A
/// client with an established connection keeps its template, and its server.
#[test]
fn drop_entry_makes_room_after_a_syn_flood_at_a_persistent_service() {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    persistent(&mut spec, 32);
    let mut lab = Lab::with_spec(spec, 64);
    let server = lab.client(1000, tk::SYN);
    lab.server(1, 1000, tk::SYN_ACK);
    lab.client(1000, tk::ACK);
    for n in 1..=40 {
        lab.burst(&[(0, spoofed(n, tk::SYN))]);
    }
    assert_eq!(lab.shared.conns.len_of(false), 64, "full");
    assert_eq!(templates(&lab), 32, "a template per source");
    let t = lab.shared.tables.load();
    let shared = lab.shared.clone();
    let now = || shared.clock.now_ticks();
    lifecycle::drop_half_open(&lab.shared.conns, &t, now());
    assert_eq!(
        lab.shared.conns.len_of(false),
        32,
        "16 half-open entries went (a quarter of the table free), and the templates they \
         left controlling nothing"
    );
    assert_eq!(templates(&lab), 16);
    assert_eq!(
        lab.client(1001, tk::SYN),
        server,
        "the client kept its server"
    );
    lab.server(1, 1001, tk::SYN_ACK);
    lab.client(1001, tk::ACK);

    // Templates outlive their half-open entries (300 s against 60 s): those idle for a
    // minute stay while the table has room, and go once it is full again.
    lab.shared.clock.advance(61);
    let reclaimed = lab
        .shared
        .conns
        .expire_step(now(), 1 << 20, |c| lifecycle::unbind(&t, c));
    assert_eq!(reclaimed, 15, "the spoofed half-open entries left expired");
    assert_eq!(templates(&lab), 16, "their templates did not");
    for n in 41..=59 {
        lab.burst(&[(0, spoofed(n, tk::SYN))]);
    }
    assert_eq!(lab.shared.conns.len_of(false), 56, "7/8 full, not full");
    lifecycle::drop_half_open(&lab.shared.conns, &t, now());
    assert_eq!(
        lab.shared.conns.len_of(false),
        40,
        "8 half-open went, with their templates"
    );
    assert_eq!(
        templates(&lab),
        1 + 15 + 11,
        "the idle templates stay while there is room"
    );
    for n in 61..=72 {
        lab.burst(&[(0, spoofed(n, tk::SYN))]);
    }
    assert_eq!(lab.shared.conns.len_of(false), 64, "full");
    lifecycle::drop_half_open(&lab.shared.conns, &t, now());
    assert_eq!(
        templates(&lab),
        1 + 7,
        "the idle templates went, and those of the 16 half-open entries dropped: the \
         client's is left, and those of the 7 newest sources"
    );
    assert_eq!(lab.shared.conns.len_of(false), 17);
    assert!(
        lab.client(2000, tk::SYN).is_some(),
        "a new client is served"
    );
}

/// A consistent-hash service (mh, sh) adopts a mid-flow segment it has no entry for, so a
/// spoofed ACK flood opens ESTABLISHED entries — for 15 minutes under DR, where uvs never
/// sees the server's RST — that would refuse every new client as long. The defence drops
/// such a service's connections once idle for a minute: a real one is adopted again at
/// its next segment, by the same server.
#[test]
fn drop_entry_makes_room_after_an_ack_flood_at_a_hash_service() {
    let mut lab = Lab::with_spec(lab::spec(Method::Dr, SchedulerKind::Mh, 1), 64);
    let server = lab.client(1000, tk::SYN);
    assert!(server.is_some());
    lab.client(1000, tk::ACK);
    for n in 1..=80 {
        lab.burst(&[(0, spoofed(n, tk::ACK))]);
    }
    assert_eq!(lab.shared.conns.len_of(false), 64, "full");
    assert_eq!(lab.client(3000, tk::SYN), None, "the table is full");
    let t = lab.shared.tables.load();
    let shared = lab.shared.clone();
    let now = || shared.clock.now_ticks();
    lab.shared.clock.advance(30);
    assert_eq!(lab.client(1000, tk::ACK), server);
    assert_eq!(
        lifecycle::drop_half_open(&lab.shared.conns, &t, now()),
        0,
        "nothing idle for a minute yet"
    );
    lab.shared.clock.advance(31);
    assert_eq!(
        lifecycle::drop_half_open(&lab.shared.conns, &t, now()),
        63,
        "the flood's entries, idle for 61 s, went"
    );
    assert!(
        lab.client(3000, tk::SYN).is_some(),
        "a new client is served"
    );
    assert_eq!(
        lab.client(1000, tk::ACK),
        server,
        "the connection in use kept its server"
    );
    let (active, inactive) = (1..=3).fold((0, 0), |(a, i), n| {
        let (x, y) = lab.counts(n);
        (a + x, i + y)
    });
    assert_eq!(
        (active, inactive),
        (1, 1),
        "ActiveConn/InActConn match the table: the connection in use, the new one"
    );
}

#[test]
fn drop_entry_leaves_a_table_below_seven_eighths_alone() {
    let mut lab = Lab::nat(64);
    for sport in 2000..2050 {
        lab.client(sport, tk::SYN);
    }
    let t = lab.shared.tables.load();
    assert_eq!(
        lifecycle::drop_half_open(&lab.shared.conns, &t, lab.shared.clock.now_ticks()),
        0
    );
    assert_eq!(lab.shared.conns.len(), 50);
}

fn persistent(spec: &mut TablesSpec, prefix_len: u8) {
    for s in &mut spec.services {
        s.persistence = Some(Persistence {
            timeout_s: 300,
            prefix_len,
        });
    }
}

/// A TCP and a UDP service on one VIP:port keep separate templates: a client's UDP flow
/// is scheduled by the UDP service, not sent to the TCP template's slot.
#[test]
fn persistence_templates_are_per_protocol() {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    spec.services.retain(|s| !s.key.vip.v6);
    for s in &mut spec.services {
        s.key.port = 80;
        for r in &mut s.reals {
            r.port = 80;
        }
    }
    persistent(&mut spec, 32);
    let mut lab = Lab::with_spec(spec, 4096);
    // Another client's datagram moves the UDP service's rr on to server 2.
    let other = tk::udp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        a("198.18.0.77"),
        5000,
        a(lab::VIP4),
        80,
        b"x",
    );
    let out = lab.burst(&[(0, other)]);
    assert_eq!(check_frame(&out[0]).unwrap().dst, real(1).unwrap());
    assert_eq!(lab.client(40000, tk::SYN), real(1), "TCP: its own rr");
    let udp = tk::udp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        a(lab::CLIENT4),
        40000,
        a(lab::VIP4),
        80,
        b"q",
    );
    let out = lab.burst(&[(0, udp)]);
    assert_eq!(
        check_frame(&out[0]).unwrap().dst,
        real(2).unwrap(),
        "UDP: scheduled by the UDP service"
    );
}

/// Persistence netmask /24: two clients of one /24 share a server; one outside it does not
/// (rr moves on).
#[test]
fn persistence_netmask_groups_clients() {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    persistent(&mut spec, 24);
    let mut lab = Lab::with_spec(spec, 4096);
    let syn_from = |src: &str, sport: u16| {
        tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            a(src),
            sport,
            a(lab::VIP4),
            80,
            tk::SYN,
            b"",
        )
    };
    let dst = |lab: &mut Lab, src: &str, sport: u16| {
        let out = lab.burst(&[(0, syn_from(src, sport))]);
        check_frame(&out[0]).unwrap().dst
    };
    let first = dst(&mut lab, "198.18.0.2", 1000);
    assert_eq!(dst(&mut lab, "198.18.0.77", 1001), first);
    assert_eq!(dst(&mut lab, "198.18.0.2", 1002), first);
    assert_ne!(dst(&mut lab, "198.19.0.2", 1003), first);
}

/// A port-0 service with persistence: a client's connections to different ports go to
/// one real server (ipvsadm -p on port 0, e.g. FTP control and data).
#[test]
fn port_zero_persistence_spans_ports() {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    spec.services.retain(|s| s.key.proto == 6 && !s.key.vip.v6);
    spec.services[0].key = ServiceKey {
        vip: ipk(lab::VIP4),
        proto: 6,
        port: 0,
    };
    for r in &mut spec.services[0].reals {
        r.port = 0;
    }
    persistent(&mut spec, 32);
    let mut lab = Lab::with_spec(spec, 4096);
    let mut seen = Vec::new();
    for (sport, dport) in [(1000, 21), (1001, 20), (1002, 443), (1003, 8080)] {
        let f = tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            a(lab::CLIENT4),
            sport,
            a(lab::VIP4),
            dport,
            tk::SYN,
            b"",
        );
        let out = lab.burst(&[(0, f)]);
        let s = check_frame(&out[0]).unwrap();
        assert_eq!(s.dport, dport, "port 0: the destination port is kept");
        seen.push(s.dst);
    }
    assert!(seen.iter().all(|d| *d == seen[0]), "{seen:?}");
}

/// A quiesced (weight 0) server keeps its persistent clients unless
/// expire_quiescent_template says otherwise.
#[test]
fn quiesced_server_keeps_templates_unless_expire_quiescent_template() {
    for expire in [false, true] {
        let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
        persistent(&mut spec, 32);
        let mut lab = Lab::with_spec(spec.clone(), 4096);
        lab.settings(|s| s.expire_quiescent_template = expire);
        assert_eq!(lab.client(1000, tk::SYN), real(1));
        for s in &mut spec.services {
            s.reals[0].weight = 0;
        }
        let current = lab.shared.tables.load_full();
        let t = TablesBuilder::build(&spec, Some(&current)).unwrap();
        lab.shared.tables.store(Arc::new(t));
        let got = lab.client(1001, tk::SYN);
        if expire {
            assert_ne!(got, real(1), "template dropped, rescheduled");
        } else {
            assert_eq!(got, real(1), "template honoured while quiesced");
        }
    }
}

/// A persistence template lives while connections it placed do (IPVS's `n_control`): a
/// client whose one long connection outlasts the persistence timeout keeps its server for
/// its next connection; once its connections have ended, the template lapses `timeout`
/// later and the client is scheduled afresh.
#[test]
fn a_template_lives_while_its_connections_do() {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    persistent(&mut spec, 32);
    let mut lab = Lab::with_spec(spec, 4096);
    lab.sweep();
    establish(&mut lab, 1000);
    // 400 s on (persistence 300 s, established 900 s), control sweeping every 2 s.
    for _ in 0..200 {
        lab.shared.clock.advance(2);
        lab.sweep();
    }
    assert_eq!(lab.counts(1), (1, 0), "the connection is still open");
    assert_eq!(
        lab.client(1001, tk::SYN),
        real(1),
        "its template still holds the client"
    );
    // Both connections end (reset: CLOSE lasts 10 s); 300 s later the template is gone.
    assert_eq!(lab.client(1000, tk::RST), real(1));
    assert_eq!(lab.client(1001, tk::RST), real(1));
    for _ in 0..160 {
        lab.shared.clock.advance(2);
        lab.sweep();
    }
    assert_eq!(lab.counts(1), (0, 0));
    assert_eq!(lab.client(1002, tk::SYN), real(2), "scheduled afresh (rr)");
}

// ---------------------------------------------------------------------------------------
// A removed real server's connections (IPVS's trash list of dests): they keep counting on
// its slot, which stays reserved for it, until they end; a server re-added meanwhile gets
// the slot back with exactly those connections; no other server ever inherits them.

impl Lab {
    /// Publishes the snapshot `spec` builds on top of the current one (a reload).
    fn reload(&self, spec: &TablesSpec) {
        let cur = self.shared.tables.load_full();
        let t = TablesBuilder::build(spec, Some(&cur)).unwrap();
        self.shared.tables.store(Arc::new(t));
    }

    /// (slot, (active, inactive)) of the IPv4 TCP service's real server at `addr`, if
    /// configured.
    fn counts_of(&self, addr: &str) -> Option<(usize, (u32, u32))> {
        use std::sync::atomic::Ordering::Relaxed;
        let t = self.shared.tables.load();
        let svc = t
            .services
            .iter()
            .flatten()
            .find(|s| s.key.proto == 6 && !s.key.vip.v6)
            .unwrap();
        let slot = svc
            .reals
            .iter()
            .position(|r| r.as_ref().is_some_and(|r| r.addr == ipk(addr)))?;
        let l = &svc.live[slot];
        Some((slot, (l.active.load(Relaxed), l.inactive.load(Relaxed))))
    }
}

const REAL1: &str = "198.18.1.11";

/// The NAT lab's spec with the IPv4 services' real servers `reals` (addresses of
/// 198.18.1.0/24, in that order).
fn spec_with(reals: &[&str]) -> TablesSpec {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    for s in spec.services.iter_mut().filter(|s| !s.key.vip.v6) {
        let model = s.reals[0].clone();
        s.reals = reals
            .iter()
            .map(|a| uvs_dataplane::tables::RealSpec {
                addr: ipk(a),
                ..model.clone()
            })
            .collect();
    }
    spec
}

/// An established connection from `sport` to real server 1.
fn establish(lab: &mut Lab, sport: u16) {
    assert_eq!(lab.client(sport, tk::SYN), real(1));
    lab.server(1, sport, tk::SYN_ACK);
    lab.client(sport, tk::ACK);
}

/// The client resets its connection from `sport` (forwarded to the removed server all the
/// same, as IPVS forwards a removed dest's connections), then control's sweep takes it.
fn reset_and_expire(lab: &mut Lab, sport: u16) {
    assert_eq!(lab.client(sport, tk::RST), real(1));
    lab.expire_all();
}

/// The operator's case: a connection established when its server is removed ends while
/// the server is out; re-added (same address and port), the server shows no connection.
#[test]
fn a_removed_servers_ended_connection_is_not_counted_when_it_comes_back() {
    let mut lab = Lab::nat(4096);
    let all = spec_with(&[REAL1, "198.18.1.12", "198.18.1.13"]);
    let without = spec_with(&["198.18.1.12", "198.18.1.13"]);
    for round in 0..3 {
        establish(&mut lab, 40000 + round);
        assert_eq!(lab.counts_of(REAL1), Some((0, (1, 0))), "round {round}");
        lab.reload(&without);
        assert_eq!(lab.counts_of(REAL1), None);
        reset_and_expire(&mut lab, 40000 + round);
        assert_eq!(lab.shared.conns.len(), 0);
        lab.reload(&all);
        assert_eq!(
            lab.counts_of(REAL1),
            Some((0, (0, 0))),
            "round {round}: re-added without the ended connection"
        );
    }
}

/// Two connections when the server is removed: one ends while it is out, the other still
/// runs when it comes back — it shows exactly that one, which leaves it when it ends.
#[test]
fn a_server_re_added_shows_its_still_live_connections_only() {
    let mut lab = Lab::nat(4096);
    lab.set_health(2, false);
    lab.set_health(3, false);
    establish(&mut lab, 40001);
    establish(&mut lab, 40002);
    assert_eq!(lab.counts_of(REAL1), Some((0, (2, 0))));
    lab.reload(&spec_with(&["198.18.1.12", "198.18.1.13"]));
    // The client closes one: FIN, the server's FIN-ACK, the last ACK (TIME_WAIT).
    assert_eq!(lab.client(40001, tk::FIN_ACK), real(1));
    lab.server(1, 40001, tk::FIN_ACK);
    lab.client(40001, tk::ACK);
    // A reload that changes nothing about server 1 keeps its slot reserved.
    lab.reload(&spec_with(&["198.18.1.12", "198.18.1.13"]));
    lab.reload(&spec_with(&[REAL1, "198.18.1.12", "198.18.1.13"]));
    assert_eq!(
        lab.counts_of(REAL1),
        Some((0, (1, 1))),
        "back in its slot with its live connections: one established, one in TIME_WAIT"
    );
    lab.expire_all();
    assert_eq!(lab.shared.conns.len(), 0);
    assert_eq!(lab.counts_of(REAL1), Some((0, (0, 0))));
}

/// The same with the connection still running at the re-add, ended afterwards.
#[test]
fn a_connection_that_outlives_the_removal_leaves_the_re_added_server_when_it_ends() {
    let mut lab = Lab::nat(4096);
    establish(&mut lab, 40003);
    lab.reload(&spec_with(&["198.18.1.12", "198.18.1.13"]));
    lab.reload(&spec_with(&[REAL1, "198.18.1.12", "198.18.1.13"]));
    assert_eq!(lab.counts_of(REAL1), Some((0, (1, 0))));
    reset_and_expire(&mut lab, 40003);
    assert_eq!(lab.counts_of(REAL1), Some((0, (0, 0))));
}

/// Another server added while the removed one's connection runs does not take its slot
/// (nor its count); once the connection has ended the slot is free for a newcomer, which
/// starts at zero.
#[test]
fn a_newcomer_never_inherits_a_removed_servers_connections() {
    let mut lab = Lab::nat(4096);
    establish(&mut lab, 40004);
    lab.reload(&spec_with(&["198.18.1.12", "198.18.1.13"]));
    lab.reload(&spec_with(&["198.18.1.12", "198.18.1.13", "198.18.1.19"]));
    let (slot, counts) = lab.counts_of("198.18.1.19").unwrap();
    assert_ne!(slot, 0, "slot 0 stays reserved while its connection lasts");
    assert_eq!(counts, (0, 0));
    reset_and_expire(&mut lab, 40004);
    assert_eq!(lab.counts_of("198.18.1.19"), Some((slot, (0, 0))));
    // The connection is gone: at the next reload slot 0 is free again.
    lab.reload(&spec_with(&["198.18.1.12", "198.18.1.13", "198.18.1.19"]));
    lab.reload(&spec_with(&[
        "198.18.1.12",
        "198.18.1.13",
        "198.18.1.19",
        "198.18.1.20",
    ]));
    assert_eq!(lab.counts_of("198.18.1.20"), Some((0, (0, 0))));
    assert_eq!(lab.counts_of("198.18.1.19"), Some((slot, (0, 0))));
}

/// A worker still on the previous snapshot may schedule a flow to a server while control
/// builds the snapshot that removes it (its counters showed nothing yet): that flow, too,
/// leaves the counters when it ends, and no newcomer inherits it.
#[test]
fn a_flow_bound_from_the_old_snapshot_during_a_removal_is_released() {
    let mut lab = Lab::nat(4096);
    let cur = lab.shared.tables.load_full();
    let without = spec_with(&["198.18.1.12", "198.18.1.13"]);
    let next = TablesBuilder::build(&without, Some(&cur)).unwrap();
    // The worker still sees `cur`: the new flow goes to server 1.
    establish(&mut lab, 40005);
    lab.shared.tables.store(Arc::new(next));
    reset_and_expire(&mut lab, 40005);
    lab.reload(&spec_with(&["198.18.1.12", "198.18.1.13", "198.18.1.19"]));
    let (_, counts) = lab.counts_of("198.18.1.19").unwrap();
    assert_eq!(counts, (0, 0));
    lab.reload(&spec_with(&[
        REAL1,
        "198.18.1.12",
        "198.18.1.13",
        "198.18.1.19",
    ]));
    assert_eq!(lab.counts_of(REAL1).unwrap().1, (0, 0));
}

/// A server removed while down (or drained by its agent) and added back is a new server
/// to health checking, which starts it up: its reserved slot's down state and agent
/// weight do not come back with it (control pushes only a down start state, so a stale
/// down would never be lifted), while its still-live connection's count does.
#[test]
fn a_server_re_added_after_being_removed_down_starts_up() {
    use std::sync::atomic::Ordering::Relaxed;
    let mut lab = Lab::nat(4096);
    establish(&mut lab, 40005);
    lab.set_health(1, false);
    {
        let t = lab.shared.tables.load();
        for svc in t.services.iter().flatten() {
            svc.live[0].set_agent(&svc.specs[0], 0, 5);
        }
    }
    lab.reload(&spec_with(&["198.18.1.12", "198.18.1.13"]));
    lab.reload(&spec_with(&[REAL1, "198.18.1.12", "198.18.1.13"]));
    let (slot, counts) = lab.counts_of(REAL1).unwrap();
    assert_eq!(
        (slot, counts),
        (0, (1, 0)),
        "its connection is still counted"
    );
    let t = lab.shared.tables.load();
    let svc = t
        .services
        .iter()
        .flatten()
        .find(|s| s.key.proto == 6 && !s.key.vip.v6)
        .unwrap();
    let l = &svc.live[slot];
    assert!(l.health_up.load(Relaxed), "back up, as any new server");
    assert_eq!(
        (l.weight_pct.load(Relaxed), l.agent_maxconn.load(Relaxed)),
        (uvs_sched::FULL_WEIGHT_PCT, 0),
        "no agent verdict carried over"
    );
}

// ---------------------------------------------------------------------------------------
// The sorry server and persistence: a template naming the sorry server holds only while no
// real server can take a new connection (IPVS + keepalived: the sorry server leaves when a
// real server is back, and ip_vs_check_template expires the templates of a dest that is
// no longer available).

const SORRY4: &str = "198.18.1.99";

/// The NAT lab's spec, rr, every service persistent with a sorry server
/// (198.18.1.99:8080 for IPv4).
fn persistent_sorry_spec() -> TablesSpec {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    persistent(&mut spec, 32);
    for s in &mut spec.services {
        s.sorry = Some(uvs_dataplane::tables::RealSpec {
            addr: ipk(if s.key.vip.v6 {
                "2001:2:0:1::99"
            } else {
                SORRY4
            }),
            port: 8080,
            ..s.reals[0].clone()
        });
    }
    spec
}

/// The lab of `spec` with the sorry server learnt as a neighbour.
fn lab_with_sorry(spec: TablesSpec) -> Lab {
    let lab = Lab::with_spec(spec, 4096);
    lab.shared.neigh.learn(ipk(SORRY4), lab::real_mac(9), 0);
    lab
}

/// `src`'s TCP segment from `sport` to the IPv4 VIP's port 80; the real server it reached.
fn client_from(lab: &mut Lab, src: &str, sport: u16, flags: Flags) -> Option<IpAddr> {
    let f = tk::tcp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        a(src),
        sport,
        a(lab::VIP4),
        80,
        flags,
        b"",
    );
    let out = lab.burst(&[(0, f)]);
    out.first().map(|f| check_frame(f).unwrap().dst)
}

/// The reported case: every real server fails its health check, the persistent client's
/// connections go to the sorry server (and keep going there while none is back: the
/// template holds); one server comes back and the client's next connection goes to it,
/// whose template the following ones then follow, however often the client connects.
#[test]
fn a_persistent_client_leaves_the_sorry_server_once_a_real_server_is_back() {
    let mut lab = lab_with_sorry(persistent_sorry_spec());
    let sorry = Some(a(SORRY4));
    for n in 1..=3 {
        lab.set_health(n, false);
    }
    assert_eq!(lab.client(1000, tk::SYN), sorry);
    assert_eq!(
        lab.client(1001, tk::SYN),
        sorry,
        "none back: the template holds"
    );
    lab.set_health(2, true);
    assert_eq!(
        lab.client(1002, tk::SYN),
        real(2),
        "a real server can take it: the sorry server's template is not used"
    );
    lab.set_health(1, true);
    lab.set_health(3, true);
    for sport in 1003..1009 {
        assert_eq!(
            lab.client(sport, tk::SYN),
            real(2),
            "sport {sport}: the new template holds"
        );
    }
    // Established connections to the sorry server carry on (only new ones move).
    assert_eq!(lab.client(1000, tk::ACK), sorry);
}

/// The same when the real servers were unusable for the scheduler's other reasons:
/// quiesced (weight 0) by a reload and given their weight back by the next, or over their
/// upper connection threshold until one of their connections ends.
#[test]
fn the_sorry_servers_template_lapses_when_quiesced_or_overloaded_servers_can_take_again() {
    let sorry = Some(a(SORRY4));
    let spec = persistent_sorry_spec();
    let mut quiesced = spec.clone();
    for s in &mut quiesced.services {
        for r in &mut s.reals {
            r.weight = 0;
        }
    }
    let mut lab = lab_with_sorry(quiesced);
    assert_eq!(lab.client(1000, tk::SYN), sorry);
    assert_eq!(
        lab.client(1001, tk::SYN),
        sorry,
        "all quiesced: the template holds"
    );
    lab.reload(&spec);
    let back = lab.client(1002, tk::SYN);
    assert!(back.is_some() && back != sorry, "weights back: {back:?}");
    assert_eq!(lab.client(1003, tk::SYN), back, "the new template holds");

    // Each real server at its upper threshold (1) with another client's connection.
    let mut limited = spec.clone();
    for s in &mut limited.services {
        for r in &mut s.reals {
            r.upper_threshold = 1;
        }
    }
    let mut lab = lab_with_sorry(limited);
    for (n, other) in [(1, "198.18.0.71"), (2, "198.18.0.72"), (3, "198.18.0.73")] {
        assert_eq!(client_from(&mut lab, other, 3000, tk::SYN), real(n));
    }
    assert_eq!(lab.client(1000, tk::SYN), sorry, "every server overloaded");
    assert_eq!(
        lab.client(1001, tk::SYN),
        sorry,
        "still: the template holds"
    );
    // Server 2's connection is reset and leaves it (CLOSE times out long before the
    // templates do): no longer overloaded.
    assert_eq!(client_from(&mut lab, "198.18.0.72", 3000, tk::RST), real(2));
    lab.shared.clock.advance(60);
    let t = lab.shared.tables.load();
    let now = lab.shared.clock.now_ticks();
    lab.shared
        .conns
        .expire_step(now, 1 << 20, |c| lifecycle::unbind(&t, c));
    assert_eq!(lab.counts(2), (0, 0));
    assert_eq!(
        lab.client(1002, tk::SYN),
        real(2),
        "server 2 can take it again"
    );
}

// ---------------------------------------------------------------------------------------
// Connection thresholds changed while a server holds connections (ipvsadm -e -x/-y, a
// reload): the overload flag follows the new thresholds at once, as IPVS's
// __ip_vs_update_dest clears it for a raised or removed upper threshold, instead of
// waiting for the server's next connection to end.

impl Lab {
    /// Real server `n` of the IPv4 TCP service: overloaded?
    fn overloaded(&self, n: u8) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let t = self.shared.tables.load();
        let svc = t
            .services
            .iter()
            .flatten()
            .find(|s| s.key.proto == 6 && !s.key.vip.v6)
            .unwrap();
        svc.live[usize::from(n - 1)].overloaded.load(Relaxed)
    }
}

/// The lab (NAT, rr) with real server 1's thresholds set to (`upper`, `lower`).
fn thresholds(upper: u32, lower: u32) -> TablesSpec {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    for s in &mut spec.services {
        s.reals[0].upper_threshold = upper;
        s.reals[0].lower_threshold = lower;
    }
    spec
}

/// The reported case: server 1 at `upper_threshold: 1` holds a connection and is
/// overloaded; `-x 0 -y 0` (or any higher limit) takes it out of overload at once, and
/// new connections reach it again while that connection still runs.
#[test]
fn raising_or_removing_the_upper_threshold_clears_overload_at_once() {
    for (upper, lower) in [(0, 0), (5, 0), (2, 1), (3, 2)] {
        let mut lab = Lab::with_spec(thresholds(1, 0), 4096);
        establish(&mut lab, 40000);
        assert!(lab.overloaded(1));
        lab.reload(&thresholds(upper, lower));
        assert_eq!(lab.counts(1), (1, 0), "its connection still runs");
        assert!(
            !lab.overloaded(1),
            "-x {upper} -y {lower}: no longer overloaded"
        );
        let next: Vec<_> = (40002..40005).map(|p| lab.client(p, tk::SYN)).collect();
        assert!(next.contains(&real(1)), "-x {upper} -y {lower}: {next:?}");
    }
}

/// The other direction, and the hysteresis kept: an upper threshold lowered to what the
/// server holds makes it overloaded at once (as its next connection would); a server
/// still draining after its overload (at or above the lower threshold) stays overloaded
/// through a reload that does not raise its upper threshold, and leaves overload at once
/// when the new lower threshold is above what it holds.
#[test]
fn lowering_a_threshold_applies_at_once_and_the_hysteresis_is_kept() {
    let mut lab = Lab::with_spec(thresholds(0, 0), 4096);
    lab.set_health(2, false);
    lab.set_health(3, false);
    for sport in 40000..40003 {
        establish(&mut lab, sport);
    }
    assert!(!lab.overloaded(1));
    lab.reload(&thresholds(3, 0));
    assert!(lab.overloaded(1), "3 connections at -x 3");
    lab.reload(&thresholds(4, 2));
    assert!(!lab.overloaded(1), "raised above what it holds");
    establish(&mut lab, 40003);
    assert!(lab.overloaded(1), "4 at -x 4");
    // One ends (the client resets it; control's sweep takes it after CLOSE's 10 s).
    assert_eq!(lab.client(40003, tk::RST), real(1));
    lab.shared.clock.advance(60);
    {
        let t = lab.shared.tables.load();
        let now = lab.shared.clock.now_ticks();
        lab.shared
            .conns
            .expire_step(now, 1 << 20, |c| lifecycle::unbind(&t, c));
    }
    assert_eq!(lab.counts(1), (3, 0));
    assert!(lab.overloaded(1), "3 >= -y 2: still draining");
    lab.reload(&thresholds(4, 2));
    assert!(
        lab.overloaded(1),
        "an unchanged reload keeps the hysteresis"
    );
    lab.reload(&thresholds(4, 3));
    assert!(lab.overloaded(1), "3 >= -y 3: still draining");
    lab.reload(&thresholds(4, 1));
    assert!(lab.overloaded(1), "3 >= -y 1: still draining");
    lab.reload(&thresholds(4, 4));
    assert!(
        !lab.overloaded(1),
        "3 < -y 4: out of overload, as the end of its next connection would take it"
    );
}

/// (active, inactive) over every live slot of the IPv4 TCP service, and how many slots.
fn live_totals(lab: &Lab) -> ((u32, u32), usize) {
    let t = lab.shared.tables.load();
    let svc = t
        .services
        .iter()
        .flatten()
        .find(|s| s.key.proto == 6 && !s.key.vip.v6)
        .unwrap();
    let sum = svc.live.iter().fold((0, 0), |(a, i), l| {
        (a + l.active.load(Relaxed), i + l.inactive.load(Relaxed))
    });
    (sum, svc.live.len())
}

/// Live slots (64 bytes each) fit a service's servers — 16 for three — rather than the
/// 1 024 a service may have: 5 000 services of three servers took 320 MB of them. Servers
/// added beyond them move the service to a larger array with its connections' counts;
/// what workers still on the previous snapshot count meanwhile (a connection ending, one
/// starting) is carried over when control settles the growth, so no count is lost or
/// stuck, and the counters end at zero with the connections.
#[test]
fn live_slots_fit_the_servers_and_grow_with_their_connections() {
    let mut lab = Lab::nat(4096);
    lab.reload(&spec_with(&[REAL1, "198.18.1.12", "198.18.1.13"]));
    assert_eq!(live_totals(&lab), ((0, 0), 16));
    establish(&mut lab, 41000);
    assert_eq!(live_totals(&lab), ((1, 0), 16));

    let addrs: Vec<String> = (11..40).map(|i| format!("198.18.1.{i}")).collect();
    let many = spec_with(&addrs.iter().map(String::as_str).collect::<Vec<_>>());
    let cur = lab.shared.tables.load_full();
    let mut grown = TablesBuilder::build(&many, Some(&cur)).unwrap();
    let growth = std::mem::take(&mut grown.grown);
    assert_eq!(growth.len(), 2, "the IPv4 TCP and UDP services grow");
    // Still on the previous snapshot: the client resets its connection (active →
    // inactive) and another one starts (inactive).
    lab.client(41000, tk::RST);
    assert!(lab.client(41001, tk::SYN).is_some());
    lab.shared.tables.store(Arc::new(grown));
    assert_eq!(live_totals(&lab), ((1, 0), 32), "as copied");
    for g in &growth {
        g.settle();
    }
    assert_eq!(live_totals(&lab), ((0, 2), 32), "settled");
    lab.expire_all();
    assert_eq!(live_totals(&lab), ((0, 0), 32));
}
