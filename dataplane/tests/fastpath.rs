//! The kernel fast path's lines, as the workers write them (`dataplane/src/fastpath.rs`),
//! over in-memory tables: what the XDP program would read for each direction of a flow is
//! exactly the rewrite the worker itself made; the lines appear at the client's SYN (for
//! segments with data and the server's SYN-ACK only until the client's ACK completes the
//! handshake), go at FIN (written again for the close's ACKs), at RST, at a new snapshot
//! and when a new connection takes the tuple, and the packets counted on them reach the
//! service's and real server's counters. Each test runs for IPv4 flows and for IPv6 ones,
//! whose lines are written into the IPv6 tables at the same moments (and never into the
//! IPv4 ones). The program's side of the lines is tested in the kernel
//! (`crates/xsk/src/program_tests.rs`).

mod lab_worker;

use std::net::IpAddr;
use std::sync::Arc;

use uvs_dataplane::fastpath::now_ns;
use uvs_dataplane::lab;
use uvs_dataplane::{Method, TablesBuilder};
use uvs_port::fast::{Family, FastEntryOf, FastKeyOf, FastLineOf, FastTable, MemFastTable};
use uvs_sched::SchedulerKind;
use uvs_testkit::{self as tk, Flags};

use lab_worker::{a, client_tcp, Lab};

fn lab_with_fast(method: Method) -> (Lab, [Arc<MemFastTable>; 2]) {
    let lab = Lab::with_spec(lab::spec(method, SchedulerKind::Rr, 1), 1024);
    let t = [
        Arc::new(MemFastTable::default()),
        Arc::new(MemFastTable::default()),
    ];
    let dyns: Vec<Arc<dyn FastTable>> = t.iter().map(|x| x.clone() as Arc<dyn FastTable>).collect();
    assert!(lab.shared.fast.set_tables(dyns));
    lab.shared.fast.set_on(true);
    (lab, t)
}

/// An address as the fast path's key holds it: `N` words as they lie in the frame.
fn words<const N: usize>(a: IpAddr) -> [u32; N] {
    let o = match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    assert_eq!(o.len(), 4 * N, "a frame of the table's family");
    std::array::from_fn(|i| {
        u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
    })
}

/// The fast-path key of a frame as the program reads it (TCP or UDP; `N`: 1 for IPv4, 4
/// for IPv6).
fn key<const N: usize>(frame: &[u8]) -> FastKeyOf<N> {
    let s = tk::check_frame(frame).expect("a valid frame");
    let mut p = [0; 4];
    p[..2].copy_from_slice(&s.sport.to_be_bytes());
    p[2..].copy_from_slice(&s.dport.to_be_bytes());
    FastKeyOf {
        saddr: words(s.src),
        daddr: words(s.dst),
        ports: u32::from_ne_bytes(p),
        proto: s.proto,
    }
}

/// The line of `k` in `t`.
fn line<'a, const N: usize>(t: &'a MemFastTable, k: &FastKeyOf<N>) -> &'a FastLineOf<N>
where
    MemFastTable: Family<N>,
{
    Family::<N>::line_of(t, k)
}

/// What the line of `k` says now, in either table (both hold every line).
fn read<const N: usize>(t: &[Arc<MemFastTable>; 2], k: &FastKeyOf<N>) -> Option<FastEntryOf<N>>
where
    MemFastTable: Family<N>,
{
    let now = now_ns();
    let e = line(&t[0], k).read(k, now);
    assert_eq!(
        e,
        line(&t[1], k).read(k, now),
        "both tables hold the same lines"
    );
    e
}

/// Whether no line of the family `N` is in use (in either table).
fn empty<const N: usize>(t: &[Arc<MemFastTable>; 2]) -> bool
where
    MemFastTable: Family<N>,
{
    t.iter()
        .all(|t| Family::<N>::family_lines(&**t).iter().all(|l| !l.is_used()))
}

/// The lab client's TCP segment from `sport` to the VIP's port 80, of the family `N`.
fn client<const N: usize>(sport: u16, flags: Flags, payload: &[u8]) -> Vec<u8> {
    if N == 1 {
        return client_tcp(sport, flags, payload);
    }
    tk::tcp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        a(lab::CLIENT6),
        sport,
        a(lab::VIP6),
        80,
        flags,
        payload,
    )
}

/// The real server's segment answering `to_server` (the frame the worker sent it).
fn answer(to_server: &[u8], flags: Flags) -> Vec<u8> {
    let s = tk::check_frame(to_server).unwrap();
    tk::tcp(
        s.dst_mac, s.src_mac, s.dst, s.dport, s.src, s.sport, flags, b"",
    )
}

fn one(out: [Vec<Vec<u8>>; 2], port: usize) -> Vec<u8> {
    assert_eq!(out[port].len(), 1, "one frame out of port {port}: {out:?}");
    assert!(out[1 - port].is_empty());
    out[port][0].clone()
}

fn handshake_and_close<const N: usize>(method: Method)
where
    MemFastTable: Family<N>,
{
    let (mut lab, t) = lab_with_fast(method);
    let sport = 40000;
    let syn = client::<N>(sport, tk::SYN, b"");
    let to_server = one(lab.burst_both(&[(0, syn.clone())]), 1);
    let (k_client, k_left) = (key::<N>(&syn), key::<N>(&to_server));
    let syn_ack = answer(&to_server, tk::SYN_ACK);
    let k_server = key::<N>(&syn_ack);

    // The SYN leaves handshake lines: the client's for segments with data, the server's
    // taking its SYN-ACK too.
    let e = read(&t, &k_client).expect("the client's line at the SYN");
    assert!(e.data_only && e.inbound && !e.syn_ack && e.weak);
    assert_eq!(e.to, k_left, "the client's line rewrites as the worker did");
    let r = read(&t, &k_server).expect("the server's line at the SYN");
    assert!(!r.data_only && r.syn_ack && !r.inbound && r.weak);
    assert!(e.until_ns > now_ns());

    // A SYN-ACK that reaches a worker (the line ran out, say) leaves handshake lines
    // without the SYN-ACK.
    let to_client = one(lab.burst_both(&[(1, syn_ack.clone())]), 0);
    assert_eq!(
        r.to,
        key(&to_client),
        "the server's line rewrites as the worker did"
    );
    let e = read(&t, &k_client).expect("the client's line at the SYN-ACK");
    assert!(e.data_only && e.inbound && !e.syn_ack && e.weak);
    let r = read(&t, &k_server).expect("the server's line at the SYN-ACK");
    assert!(!r.data_only && !r.syn_ack && !r.inbound && r.weak);
    assert_eq!(r.to, key(&to_client));

    // The client's ACK completes the handshake: lines for every segment.
    let ack = client::<N>(sport, tk::ACK, b"");
    one(lab.burst_both(&[(0, ack)]), 1);
    let e = read(&t, &k_client).expect("the client's line after the handshake");
    assert!(!e.data_only && !e.weak);
    let r = read(&t, &k_server).unwrap();
    assert!(!r.data_only && !r.syn_ack && !r.weak);

    // A data segment forwarded by a worker (its line ran out, say) leaves the same lines.
    let data = client::<N>(sport, tk::ACK, b"GET / HTTP/1.1\r\n\r\n");
    let left = one(lab.burst_both(&[(0, data)]), 1);
    assert_eq!(read(&t, &k_client).unwrap().to, key(&left));

    // Packets the program forwarded by the lines reach the counters when a FIN clears them;
    // the lines are written again for the close's ACKs.
    let totals = |lab: &Lab| {
        let tables = lab.shared.tables.load();
        let svc = tables
            .services
            .iter()
            .flatten()
            .find(|s| s.key.proto == 6 && s.key.vip.v6 == (N == 4))
            .unwrap();
        svc.stats.totals()
    };
    let before = totals(&lab);
    line(&t[0], &k_client).count(1000);
    line(&t[0], &k_client).count(500);
    line(&t[1], &k_server).count(70);
    let fin = client::<N>(sport, tk::FIN_ACK, b"");
    one(lab.burst_both(&[(0, fin.clone())]), 1);
    let after = totals(&lab);
    assert_eq!(
        after.packets_in - before.packets_in,
        2 + 1,
        "two by the line, the FIN"
    );
    assert_eq!(after.bytes_in - before.bytes_in, 1500 + fin.len() as u64);
    assert_eq!(after.packets_out - before.packets_out, 1);
    assert_eq!(after.bytes_out - before.bytes_out, 70);
    for k in [&k_client, &k_server] {
        let e = read(&t, k).expect("the lines again after the FIN");
        assert!(
            !e.data_only && !e.syn_ack && e.weak,
            "closing lines are weak"
        );
        assert!(
            t.iter().all(|t| line(t, k).take().is_none()),
            "their counts were taken"
        );
    }

    // The server's FIN: the lines again; the last ACK passes by them.
    let fin = answer(&to_server, tk::FIN_ACK);
    one(lab.burst_both(&[(1, fin)]), 0);
    assert!(read(&t, &k_server).is_some() && read(&t, &k_client).is_some());

    // The client opens a new connection on the same port (TIME_WAIT reused): the old
    // connection's lines go before the new one's handshake lines are written.
    let syn = client::<N>(sport, tk::SYN, b"");
    let to_server2 = one(lab.burst_both(&[(0, syn)]), 1);
    let k_server2 = key::<N>(&answer(&to_server2, tk::SYN_ACK));
    assert_ne!(k_server2, k_server, "round robin: another real server");
    assert_eq!(read(&t, &k_server), None, "the old connection's line went");
    let e = read(&t, &k_client).expect("the new connection's line");
    assert!(e.data_only && !e.syn_ack);
    assert_eq!(e.to, key(&to_server2));
    assert!(read(&t, &k_server2).unwrap().syn_ack);
    // The other family's tables were never written.
    if N == 1 {
        assert!(empty::<4>(&t), "an IPv4 flow wrote an IPv6 line");
    } else {
        assert!(empty::<1>(&t), "an IPv6 flow wrote an IPv4 line");
    }
}

#[test]
fn nat_lines_follow_the_handshake_and_the_close() {
    handshake_and_close::<1>(Method::Nat);
}

#[test]
fn fullnat_lines_follow_the_handshake_and_the_close() {
    handshake_and_close::<1>(Method::FullNat);
}

#[test]
fn ipv6_nat_lines_follow_the_handshake_and_the_close() {
    handshake_and_close::<4>(Method::Nat);
}

#[test]
fn ipv6_fullnat_lines_follow_the_handshake_and_the_close() {
    handshake_and_close::<4>(Method::FullNat);
}

fn reset_clears<const N: usize>()
where
    MemFastTable: Family<N>,
{
    let (mut lab, t) = lab_with_fast(Method::Nat);
    let to_server = one(lab.burst_both(&[(0, client::<N>(7, tk::SYN, b""))]), 1);
    one(lab.burst_both(&[(1, answer(&to_server, tk::SYN_ACK))]), 0);
    let k = key::<N>(&client::<N>(7, tk::ACK, b""));
    assert!(read(&t, &k).is_some());
    lab.burst_both(&[(1, answer(&to_server, tk::RST))]);
    assert_eq!(read(&t, &k), None);
}

#[test]
fn a_reset_clears_the_lines() {
    reset_clears::<1>();
    reset_clears::<4>();
}

fn control_removes<const N: usize>()
where
    MemFastTable: Family<N>,
{
    let (mut lab, t) = lab_with_fast(Method::Nat);
    let to_server = one(lab.burst_both(&[(0, client::<N>(8, tk::SYN, b""))]), 1);
    let syn_ack = answer(&to_server, tk::SYN_ACK);
    one(lab.burst_both(&[(1, syn_ack.clone())]), 0);
    one(lab.burst_both(&[(0, client::<N>(8, tk::ACK, b""))]), 1);
    let (k, back) = (key::<N>(&client::<N>(8, tk::ACK, b"")), key::<N>(&syn_ack));
    assert!(read(&t, &k).is_some() && read(&t, &back).is_some());
    line(&t[0], &k).count(60);
    // What expire_nodest_conn does when the connection's server goes down: the entry
    // leaves the table, then its lines end.
    let mut conns = Vec::new();
    lab.shared.conns.for_each(|id, c, _| conns.push((id, *c)));
    assert_eq!(conns.len(), 1);
    let (id, c) = conns[0];
    assert!(lab.shared.conns.remove(id));
    let fast = lab.shared.fast.active().expect("on");
    assert_eq!(
        uvs_dataplane::fastpath::expire_conn(fast, &c),
        4,
        "2 lines × 2 tables"
    );
    assert_eq!(read(&t, &k), None, "the client's packets go to the workers");
    assert_eq!(read(&t, &back), None, "and the server's");
    assert_eq!(
        line(&t[0], &k).take().map(|x| x.packets),
        Some(1),
        "the counts wait for the harvest"
    );
}

#[test]
fn a_connection_the_control_thread_removes_loses_its_lines_at_once() {
    control_removes::<1>();
    control_removes::<4>();
}

fn udp_and_snapshot<const N: usize>()
where
    MemFastTable: Family<N>,
{
    let (mut lab, t) = lab_with_fast(Method::Nat);
    let (client, vip) = if N == 1 {
        (lab::CLIENT4, lab::VIP4)
    } else {
        (lab::CLIENT6, lab::VIP6)
    };
    let dgram = tk::udp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        a(client),
        5353,
        a(vip),
        53,
        b"query",
    );
    let k = key::<N>(&dgram);
    one(lab.burst_both(&[(0, dgram.clone())]), 1);
    assert_eq!(read(&t, &k), None, "the first is a new flow's");
    let left = one(lab.burst_both(&[(0, dgram.clone())]), 1);
    let e = read(&t, &k).expect("a datagram of the flow leaves lines");
    assert_eq!(e.to, key::<N>(&left));
    assert!(!e.data_only);
    line(&t[0], &k).count(100);

    let tables = TablesBuilder::build(&lab::spec(Method::Nat, SchedulerKind::Rr, 1), None).unwrap();
    lab.shared.tables.store(Arc::new(tables));
    lab.w.poll();
    assert_eq!(read(&t, &k), None, "a new snapshot empties the lines");
    assert!(empty::<1>(&t) && empty::<4>(&t));
}

#[test]
fn udp_flows_get_lines_and_a_new_snapshot_clears_every_line() {
    udp_and_snapshot::<1>();
    udp_and_snapshot::<4>();
}

#[test]
fn off_writes_no_line() {
    let (mut lab, t) = lab_with_fast(Method::Nat);
    lab.shared.fast.set_on(false);
    let to_server = one(lab.burst_both(&[(0, client_tcp(9, tk::SYN, b""))]), 1);
    one(lab.burst_both(&[(1, answer(&to_server, tk::SYN_ACK))]), 0);
    one(lab.burst_both(&[(0, client_tcp(9, tk::ACK, b""))]), 1);
    let to_server = one(lab.burst_both(&[(0, client::<4>(9, tk::SYN, b""))]), 1);
    one(lab.burst_both(&[(1, answer(&to_server, tk::SYN_ACK))]), 0);
    one(lab.burst_both(&[(0, client::<4>(9, tk::ACK, b""))]), 1);
    assert!(empty::<1>(&t) && empty::<4>(&t));
}

#[test]
fn direct_routing_writes_no_line() {
    let (mut lab, t) = lab_with_fast(Method::Dr);
    let to_server = one(lab.burst_both(&[(0, client_tcp(9, tk::SYN, b""))]), 1);
    let _ = to_server;
    one(lab.burst_both(&[(0, client_tcp(9, tk::ACK, b""))]), 1);
    one(lab.burst_both(&[(0, client_tcp(9, tk::ACK, b"data"))]), 1);
    one(lab.burst_both(&[(0, client::<4>(9, tk::SYN, b""))]), 1);
    one(lab.burst_both(&[(0, client::<4>(9, tk::ACK, b""))]), 1);
    one(lab.burst_both(&[(0, client::<4>(9, tk::ACK, b"data"))]), 1);
    assert!(empty::<1>(&t) && empty::<4>(&t));
}
