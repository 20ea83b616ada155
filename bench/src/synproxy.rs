//! `uvs-bench pipeline --synproxy`: the SYN proxy's cost on the in-memory pipeline, beside
//! plain NAT in the same run.
//!
//! - `synproxycookies`: distinct SYNs, each answered with a cookie SYN-ACK (cookie
//!   handshakes per second per core).
//! - `synproxynewflows`: whole proxied openings, timed phase by phase over the same
//!   connections — the SYNs, then the clients' ACKs (cookie check, entry, SYN to the
//!   server), then the servers' SYN-ACKs (ACK back) — as ns and millions per second per
//!   *connection*, against NAT's new flows (one SYN per connection).
//! - `synproxyestablished`: client packets of spliced connections (acknowledgement
//!   translated before the NAT rewrite), against NAT's established flows over the same
//!   frames and a table of the same size, the two in alternating rounds timed in the
//!   thread's CPU time; each row is its median round, and the cost ratio is the median of
//!   the rounds' ratios (the machine is shared: a round pair sees the same load, the median
//!   drops the pairs a burst of other work split).
//!
//! A summary line per family gives the cookie handshakes per second on the core (the SYN
//! and the client's ACK: cookie SYN-ACK, cookie check, entry, SYN to the server) and the
//! spliced packet's cost ratio with its range over the rounds.

use std::net::IpAddr;
use std::sync::Arc;
use uvs_conntrack::ConnView;

use etherparse::PacketBuilder;
use uvs_conntrack::FlowKey;
use uvs_dataplane::lab;
use uvs_dataplane::synproxy::cookie;
use uvs_dataplane::{Method, Shared, TablesBuilder, Worker, BURST};
use uvs_port::MemPort;
use uvs_sched::SchedulerKind;
use uvs_testkit as tk;
use uvs_wire::tcp_options;

use crate::pipeline::{
    client_addr, family_name, measure, outcome, tallies, Kind, Outcome, Scenario,
};

fn setup(v6: bool, capacity: usize) -> Arc<Shared> {
    setup_with(v6, capacity, true)
}

fn setup_with(v6: bool, capacity: usize, syn_proxy: bool) -> Arc<Shared> {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    for s in &mut spec.services {
        s.syn_proxy = syn_proxy && s.key.proto == 6;
    }
    let tables = TablesBuilder::build(&spec, None).expect("lab tables");
    let shared = Arc::new(Shared::new(tables, capacity, 1));
    lab::learn_neighbours(&shared.neigh, 0);
    for i in (0..12_000_000).step_by(60_000) {
        let (ip, _) = client_addr(i, v6);
        shared
            .neigh
            .learn(uvs_dataplane::IpKey::from_ip(ip), lab::CLIENT_MAC, 0);
    }
    shared
}

fn vip(v6: bool) -> IpAddr {
    if v6 { lab::VIP6 } else { lab::VIP4 }.parse().expect("vip")
}

fn octets(a: IpAddr) -> [u8; 16] {
    uvs_dataplane::IpKey::from_ip(a).addr
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    macs: ([u8; 6], [u8; 6]),
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    seq: u32,
    ack: u32,
    syn: bool,
    options: &[u8],
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(macs.0, macs.1);
    let ip = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => unreachable!("mixed families"),
    };
    let mut b = ip.tcp(sport, dport, seq, 65535);
    if syn {
        b = b.syn();
    }
    let b = b.ack(ack).options_raw(options).expect("options fit");
    let mut out = Vec::new();
    b.write(&mut out, b"").expect("tcp frame");
    out
}

/// A worker whose ports replay `from_client` and `from_server`: each frame once, in order
/// (`once`: a phase that must see every frame exactly once, then nothing), or round robin
/// without end (timed rounds).
fn worker(
    shared: &Arc<Shared>,
    from_client: Vec<Vec<u8>>,
    from_server: Vec<Vec<u8>>,
    once: bool,
) -> Worker<MemPort> {
    let slots = 4 * BURST + 64;
    let port = |name: &str, t: Vec<Vec<u8>>| {
        if t.is_empty() {
            MemPort::sink(name, slots)
        } else if once {
            MemPort::replay_once(name, slots, t)
        } else {
            MemPort::replay(name, slots, t)
        }
    };
    Worker::new(
        0,
        vec![
            port("mem-client", from_client),
            port("mem-server", from_server),
        ],
        shared.clone(),
    )
}

fn syns_of(clients: &[(IpAddr, u16)], vip: IpAddr) -> Vec<Vec<u8>> {
    clients
        .iter()
        .map(|&(c, p)| tk::tcp(lab::CLIENT_MAC, lab::LB0_MAC, c, p, vip, 80, tk::SYN, b""))
        .collect()
}

fn scenario(kind: Kind, v6: bool, flows: usize, frame_len: usize) -> Scenario {
    Scenario {
        kind,
        method: "nat".into(),
        family: family_name(v6),
        protocol: "tcp",
        flows,
        frame_len,
        workers: 1,
        l4_checksum: None,
        stage: None,
    }
}

/// The SYN proxy rows, each after the plain-NAT row it compares with: NAT new flows,
/// cookie SYN-ACKs, proxied openings; NAT established, spliced established.
pub fn run(v6: bool, count: usize, flows: usize, seconds: f64) -> Vec<Outcome> {
    // Whole bursts, so that no phase replays a frame twice (a second ACK of one
    // connection would meet its entry).
    let count = (count / BURST).max(1) * BURST;
    let mut out = vec![crate::pipeline::new_flows(Method::Nat, v6, 6, count)];
    // Room to spare: a table filled to the last slot may refuse an insert.
    let shared = setup(v6, 2 * count + 1024);
    let vip = vip(v6);
    let clients: Vec<(IpAddr, u16)> = (0..count).map(|i| client_addr(i, v6)).collect();

    // 1. SYNs: a cookie SYN-ACK each, no entry.
    let syns = syns_of(&clients, vip);
    let len = syns[0].len();
    let start = tallies(&shared);
    let mut w = worker(&shared, syns, Vec::new(), true);
    let (n, syn_secs) = measure(|| w.poll(), 3600.0, Some(count as u64));
    assert_eq!(shared.conns.len(), 0, "cookies store nothing");
    out.push(outcome(
        scenario(Kind::SynProxyCookies, v6, count, len),
        n,
        syn_secs,
        Some((&shared, start)),
    ));

    // 2. The clients' ACKs with their cookies (the bench computes them with the dataplane's
    // secret, as the clients would echo them): entry + SYN to the server each.
    let acks = cookie_acks(&shared, &clients, vip, false);
    let start = tallies(&shared);
    let mut w = worker(&shared, acks, Vec::new(), true);
    let (n_ack, ack_secs) = measure(|| w.poll(), 3600.0, Some(count as u64));
    assert_eq!(
        shared.conns.len(),
        count,
        "every valid cookie opened an entry"
    );
    let (_, ack_drops) = tallies(&shared);
    let ack_drops = ack_drops - start.1;

    // 3. The servers' SYN-ACKs, to the tuple each entry expects: an ACK back each.
    let synacks = server_synacks(&shared, &clients, vip, false);
    let start2 = tallies(&shared);
    let mut w = worker(&shared, Vec::new(), synacks, true);
    let (_, synack_secs) = measure(|| w.poll(), 3600.0, Some(count as u64));
    let (fwd, drops) = tallies(&shared);
    let total = syn_secs + ack_secs + synack_secs;
    let mut open = outcome(
        scenario(Kind::SynProxyNewFlows, v6, count, len),
        n_ack,
        total,
        None,
    );
    open.forwarded = fwd - start.0;
    open.drops = drops - start2.1 + ack_drops;
    // Forwarded: one SYN and one ACK per connection went to the servers.
    open.packets = 2 * n_ack;
    open.ns_per_packet = total * 1e9 / n_ack.max(1) as f64;
    open.mpps = n_ack as f64 / total / 1e6;
    open.bytes_per_conn = Some(shared.conns.bytes_per_entry(v6) + 16.0);
    out.push(open);

    let handshakes = n_ack as f64 / (syn_secs + ack_secs) / 1e6;

    println!(
        "{}: cookie handshakes {handshakes:.2} M/s per core (SYN and ACK: cookie SYN-ACK, \
         cookie check, entry, SYN to the server)",
        family_name(v6)
    );

    // 4. Established, with bare ACKs and with Linux's (NOP NOP timestamp: TSecr translated
    // too).
    let flows = flows.min(count);
    for ts in [false, true] {
        out.extend(established(v6, &clients[..flows], vip, seconds, ts));
    }
    out
}

/// Plain NAT flows and spliced ones, `clients.len()` of each in tables of the same size (the
/// opening phases' table holds all their connections: its lookups would miss the cache more
/// often than NAT's), the same client ACK frames, in alternating rounds so that both see the
/// same machine (it is shared). `ts`: the connections and frames carry timestamps.
fn established(
    v6: bool,
    clients: &[(IpAddr, u16)],
    vip: IpAddr,
    seconds: f64,
    ts: bool,
) -> [Outcome; 2] {
    let flows = clients.len();
    let nat = setup_with(v6, flows + 1024, false);
    let mut w = worker(&nat, syns_of(clients, vip), Vec::new(), true);
    let mut opened = 0;
    while opened < flows {
        opened += w.poll();
    }
    assert_eq!(nat.conns.len(), flows, "NAT opened every flow");
    let proxied = setup(v6, flows + 1024);
    let data = cookie_acks(&proxied, clients, vip, ts);
    let len = data[0].len();
    let mut w = worker(&proxied, data.clone(), Vec::new(), true);
    let mut sent = 0;
    while sent < flows {
        sent += w.poll();
    }
    let mut w = worker(
        &proxied,
        Vec::new(),
        server_synacks(&proxied, clients, vip, ts),
        true,
    );
    let mut acked = 0;
    while acked < flows {
        acked += w.poll();
    }
    let spliced_conns = proxied.counters[0].synproxy_spliced.get();
    assert_eq!(
        spliced_conns, flows as u64,
        "every proxied flow was spliced"
    );
    let mut plain = worker(&nat, data.clone(), Vec::new(), false);
    let mut spliced = worker(&proxied, data, Vec::new(), false);
    let rounds = 20;
    let per_round = seconds / f64::from(rounds);
    let (mut nat_rounds, mut proxy_rounds) = (Vec::new(), Vec::new());
    let (nat_start, proxy_start) = (tallies(&nat), tallies(&proxied));
    for i in 0..rounds {
        // Who goes first alternates too, so that a load that rises or falls through the
        // run favours neither.
        let mut nat_round = || on_cpu(|| measure(|| plain.poll(), per_round, None));
        let mut proxy_round = || on_cpu(|| measure(|| spliced.poll(), per_round, None));
        if i % 2 == 0 {
            nat_rounds.push(nat_round());
            proxy_rounds.push(proxy_round());
        } else {
            proxy_rounds.push(proxy_round());
            nat_rounds.push(nat_round());
        }
    }
    let ns = |(n, t): (u64, f64)| t / n.max(1) as f64;
    let mut ratios: Vec<f64> = nat_rounds
        .iter()
        .zip(&proxy_rounds)
        .map(|(&a, &b)| ns(b) / ns(a))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median_ratio = median(&ratios);
    println!(
        "{}{}: a spliced established packet costs {median_ratio:.2}x a NAT one (median of \
         {rounds} paired rounds, {:.2}x-{:.2}x)",
        family_name(v6),
        if ts { ", timestamps" } else { "" },
        ratios[0],
        ratios[ratios.len() - 1],
    );
    let row = |kind, rounds: &[(u64, f64)], sh: &Shared, start: (u64, u64)| {
        let mut by_ns = rounds.to_vec();
        by_ns.sort_by(|&a, &b| ns(a).total_cmp(&ns(b)));
        let (n, t) = by_ns[by_ns.len() / 2];
        let mut o = outcome(scenario(kind, v6, flows, len), n, t, None);
        // The median round's packets; frames not forwarded in any round are taken off.
        let all: u64 = rounds.iter().map(|r| r.0).sum();
        let (fwd, drops) = tallies(sh);
        o.forwarded = n.saturating_sub(all.saturating_sub(fwd - start.0));
        o.drops = drops - start.1;
        o.bytes_per_conn = Some(sh.conns.bytes_per_entry(v6));
        o
    };
    let plain_row = row(Kind::Established, &nat_rounds, &nat, nat_start);
    let mut est = row(
        Kind::SynProxyEstablished,
        &proxy_rounds,
        &proxied,
        proxy_start,
    );
    // The splice table's 16 bytes per connection slot come on top of the entry.
    est.bytes_per_conn = est.bytes_per_conn.map(|b| b + 16.0);
    [plain_row, est]
}

/// `f`'s packets with the thread's CPU time instead of the wall-clock time it returns: time
/// the core spent on other work (the machine is shared) is not counted against either side.
fn on_cpu(f: impl FnOnce() -> (u64, f64)) -> (u64, f64) {
    use nix::time::{clock_gettime, ClockId};
    let cpu = || {
        clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
            .map_or(f64::NAN, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
    };
    let start = cpu();
    let (n, wall) = f();
    let t = cpu() - start;
    (n, if t.is_finite() && t > 0.0 { t } else { wall })
}

/// The middle of sorted `v` (the mean of the two middle ones for an even length).
fn median(v: &[f64]) -> f64 {
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

/// The clients' ACKs of uvs's cookie SYN-ACKs (computed with `shared`'s secret, as each
/// client would echo its cookie). `ts`: with a timestamp echoing the TSval uvs's SYN-ACK
/// would carry for a Linux client's SYN (window scale 7, SACK), in Linux's layout.
fn cookie_acks(shared: &Shared, clients: &[(IpAddr, u16)], vip: IpAddr, ts: bool) -> Vec<Vec<u8>> {
    let now_count = cookie::count_of(shared.clock.now_s());
    let mut opts = Vec::new();
    if ts {
        let o = cookie::SynOptions {
            mss: cookie::mss_table(vip.is_ipv6())[0],
            wscale: Some(7),
            sack: true,
            ecn: false,
        };
        let mut b = [0u8; 12];
        let n = tcp_options::write_ts_option(&mut b, (1_000_000, cookie::ts_encode(123_456, &o)));
        opts.extend_from_slice(&b[..n]);
    }
    // tk's SYNs carry ISN 1000 and no MSS option: index 0 of the family's table.
    clients
        .iter()
        .map(|&(c, p)| {
            let t = cookie::Tuple {
                client: octets(c),
                vip: octets(vip),
                client_port: p,
                vip_port: 80,
            };
            let ck = shared.synproxy.secret.make(&t, 1000, 0, now_count);
            tcp(
                (lab::CLIENT_MAC, lab::LB0_MAC),
                c,
                p,
                vip,
                80,
                1001,
                ck.wrapping_add(1),
                false,
                &opts,
            )
        })
        .collect()
}

/// The real servers' SYN-ACKs to the SYNs uvs sent for `clients`, to the tuple each entry
/// expects. `ts`: with a Linux server's options (MSS, SACK permitted, timestamps, window
/// scale 7).
fn server_synacks(
    shared: &Shared,
    clients: &[(IpAddr, u16)],
    vip: IpAddr,
    ts: bool,
) -> Vec<Vec<u8>> {
    let now = shared.clock.now_ticks();
    let mut b = [0u8; 20];
    let n = if ts {
        tcp_options::write_syn_options(&mut b, 1460, Some(7), true, Some((777_000, 1)))
    } else {
        0
    };
    let opts = &b[..n];
    clients
        .iter()
        .map(|&(c, p)| {
            let key = match (c, vip) {
                (IpAddr::V4(a), IpAddr::V4(b)) => FlowKey::v4(6, a.octets(), p, b.octets(), 80),
                _ => FlowKey::v6(6, octets(c), p, octets(vip), 80),
            };
            let hit = shared.conns.lookup(&key, now).expect("entry");
            let r = hit.reply();
            let ip = |a: [u8; 16]| -> IpAddr {
                if c.is_ipv6() {
                    a.into()
                } else {
                    [a[0], a[1], a[2], a[3]].into()
                }
            };
            let real_mac = lab::real_mac(1 + hit.real() as u8);
            tcp(
                (real_mac, lab::LB1_MAC),
                ip(r.src),
                r.sport,
                ip(r.dst),
                r.dport,
                5000,
                1001,
                true,
                opts,
            )
        })
        .collect()
}
