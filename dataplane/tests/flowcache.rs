//! The worker's flow cache (`dataplane/src/flowcache.rs`) changes nothing but speed: two
//! labs on the same tables, one worker with the cache and one without, are given the same
//! long random sequence of events — client and server segments of many IPv4 and IPv6 flows
//! with every flag, UDP datagrams both ways, TTLs running out, packets over the link MTU, health
//! checks failing and recovering with `expire_nodest_conn` on and off, frames with wrong,
//! partial or zero checksums, padded or cut short, reloads that remove
//! and re-add a real server, a neighbour's new MAC, time passing and control's expiry
//! sweep — and must send the same bytes out of the same ports after every burst and end
//! with the same counters. The cache must also have forwarded a good share of the
//! packets, or the comparison proves nothing.

mod lab_worker;

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use uvs_dataplane::lab::{self, ipk};
use uvs_dataplane::{Method, TablesBuilder, TablesSpec};
use uvs_sched::SchedulerKind;
use uvs_testkit::{self as tk, Flags};

use lab_worker::{a, Lab};

/// One flow's client side: its client, port, protocol and family.
#[derive(Clone, Copy)]
struct Flow {
    /// 0: the lab's client; 1: another client on the same link, whose MAC changes now and
    /// then ([`OTHER_CLIENT`]); 2: a client on that link that never answers ARP or
    /// neighbour solicitations ([`SILENT_CLIENT`]).
    client: u8,
    sport: u16,
    udp: bool,
    v6: bool,
}

/// A second client on the lab's client link (IPv4, IPv6): replies to it leave with its
/// own MAC.
const OTHER_CLIENT: [&str; 2] = ["198.18.0.77", "2001:2::77"];
/// A client on that link whose neighbour entry never comes: replies to it wait for it.
const SILENT_CLIENT: [&str; 2] = ["198.18.0.78", "2001:2::78"];

/// A MAC of [`OTHER_CLIENT`]'s.
fn other_mac(k: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x66, k]
}

/// The flow's client's and the VIP's addresses.
fn client_vip(flow: &Flow) -> (IpAddr, IpAddr) {
    let fam = usize::from(flow.v6);
    let client = match flow.client {
        0 if flow.v6 => a(lab::CLIENT6),
        0 => a(lab::CLIENT4),
        1 => a(OTHER_CLIENT[fam]),
        _ => a(SILENT_CLIENT[fam]),
    };
    (client, a(if flow.v6 { lab::VIP6 } else { lab::VIP4 }))
}

/// Where the IP header's fields and the L4 header start in a frame of either family.
fn is_v6(f: &[u8]) -> bool {
    f[12..14] == [0x86, 0xdd]
}

fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn flags(pick: u64) -> Flags {
    match pick % 16 {
        0 => tk::SYN,
        1 => tk::FIN_ACK,
        2 => tk::RST,
        3 => tk::SYN_ACK,
        _ => tk::ACK,
    }
}

/// Sets a frame's TTL (IPv6: hop limit) and fixes an IPv4 header's checksum.
fn with_ttl(mut f: Vec<u8>, ttl: u8) -> Vec<u8> {
    if is_v6(&f) {
        f[21] = ttl;
        return f;
    }
    f[22] = ttl;
    f[24..26].copy_from_slice(&[0, 0]);
    let c = uvs_wire::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// Damages or reshapes an IPv4 TCP/UDP frame as a wire or a sender's offload does: a wrong
/// L4 or IPv4 header checksum, a partial L4 checksum (the folded pseudo-header sum a
/// socket behind veth leaves), a zero L4 checksum (UDP's "none"), Ethernet padding past
/// the IP packet, or a frame cut shorter than its IP length. The cache's reading of a
/// frame must come to the full path's verdict for each.
fn mutate(mut f: Vec<u8>, pick: u64) -> Vec<u8> {
    let v6 = is_v6(&f);
    let (proto, l4) = if v6 { (f[20], 54) } else { (f[23], 34) };
    let udp = proto == 17;
    let at = l4 + if udp { 6 } else { 16 };
    match pick % 6 {
        0 => f[at] ^= 0x5a,
        1 => {
            let len = if udp {
                u16::from_be_bytes([f[l4 + 4], f[l4 + 5]])
            } else if v6 {
                u16::from_be_bytes([f[18], f[19]])
            } else {
                u16::from_be_bytes([f[16], f[17]]) - 20
            };
            let sum = if v6 {
                let (src, dst) = (f[22..38].try_into().unwrap(), f[38..54].try_into().unwrap());
                uvs_wire::checksum::pseudo_header_v6(&src, &dst, proto, u32::from(len))
            } else {
                let (src, dst) = (f[26..30].try_into().unwrap(), f[30..34].try_into().unwrap());
                uvs_wire::checksum::pseudo_header_v4(&src, &dst, proto, len)
            };
            let partial = uvs_wire::checksum::fold(sum);
            f[at..at + 2].copy_from_slice(&partial.to_be_bytes());
        }
        // IPv4: a wrong header checksum; IPv6 (no header checksum): a wrong version.
        2 if v6 => f[14] ^= 0x10,
        2 => f[24] ^= 0x01,
        3 => f.extend_from_slice(&[0; 6]),
        4 => {
            f.pop();
        }
        _ => f[at..at + 2].copy_from_slice(&[0, 0]),
    }
    f
}

fn client_frame(flow: &Flow, pick: u64, payload: &[u8]) -> Vec<u8> {
    let (client, vip) = client_vip(flow);
    if flow.udp {
        tk::udp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            client,
            flow.sport,
            vip,
            53,
            payload,
        )
    } else {
        tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            client,
            flow.sport,
            vip,
            80,
            flags(pick),
            payload,
        )
    }
}

/// The real server's packet of `flow`, to the address and port its entry's reply tuple
/// holds (the client for NAT, the local address for FullNAT), if `lab` has the flow.
fn server_frame(lab: &Lab, flow: &Flow, pick: u64) -> Option<Vec<u8>> {
    let (proto, dport) = if flow.udp { (17, 53) } else { (6, 80) };
    let key = match client_vip(flow) {
        (IpAddr::V4(c), IpAddr::V4(v)) => {
            uvs_conntrack::FlowKey::v4(proto, c.octets(), flow.sport, v.octets(), dport)
        }
        (IpAddr::V6(c), IpAddr::V6(v)) => {
            uvs_conntrack::FlowKey::v6(proto, c.octets(), flow.sport, v.octets(), dport)
        }
        _ => unreachable!(),
    };
    let hit = lab
        .shared
        .conns
        .lookup(&key, lab.shared.clock.now_ticks())?;
    let r = uvs_conntrack::ConnView::conn(&hit).reply;
    let ip = |x: [u8; 16]| {
        if flow.v6 {
            IpAddr::from(x)
        } else {
            IpAddr::from([x[0], x[1], x[2], x[3]])
        }
    };
    let (server, sport, dst, dport) = (ip(r.src), r.sport, ip(r.dst), r.dport);
    Some(if flow.udp {
        tk::udp(
            lab::real_mac(1),
            lab::LB1_MAC,
            server,
            sport,
            dst,
            dport,
            b"answer",
        )
    } else {
        tk::tcp(
            lab::real_mac(1),
            lab::LB1_MAC,
            server,
            sport,
            dst,
            dport,
            flags(pick),
            b"",
        )
    })
}

/// The frames sent, without uvs's own ARP and neighbour solicitations: worker 0 asks
/// stale neighbours again on its own clock (`neigh::Refresh`), which the two labs do not
/// share to the millisecond.
fn packets(out: [Vec<Vec<u8>>; 2]) -> [Vec<Vec<u8>>; 2] {
    let asks = |f: &Vec<u8>| {
        f.get(12..14) == Some(&[0x08, 0x06])
            || (f.get(12..14) == Some(&[0x86, 0xdd])
                && f.get(20) == Some(&58)
                && f.get(54) == Some(&135))
    };
    out.map(|frames| frames.into_iter().filter(|f| !asks(f)).collect())
}

fn reload(lab: &Lab, spec: &TablesSpec) {
    let cur = lab.shared.tables.load();
    let t = TablesBuilder::build(spec, Some(&cur)).unwrap();
    lab.shared.tables.store(Arc::new(t));
}

/// Every service's and real server's traffic counters, and the worker's drops by reason.
fn counters(lab: &Lab) -> Vec<u64> {
    let t = lab.shared.tables.load();
    let mut out = Vec::new();
    for svc in t.services.iter().flatten() {
        let s = svc.stats.worker(0);
        out.extend([s.packets_in.get(), s.bytes_in.get(), s.packets_out.get()]);
        out.push(s.bytes_out.get());
        for r in svc.reals.iter().flatten() {
            let s = r.stats.worker(0);
            out.extend([s.packets_in.get(), s.bytes_in.get(), s.packets_out.get()]);
            out.push(s.bytes_out.get());
        }
    }
    let c = &lab.shared.counters[0];
    out.extend((0..uvs_dataplane::DropReason::COUNT).map(|i| c.drops[i].get()));
    out.extend([c.new_conns.get(), c.tx_packets.get(), c.rx_packets.get()]);
    out
}

/// Which of the cache's records the worker with the cache uses.
#[derive(Clone, Copy, PartialEq)]
enum Records {
    /// Both kinds, as uvsd does: a flow's own record first, then its class's.
    Both,
    /// Class records only: what they forward alone, where a flow's record would
    /// otherwise answer first (a table of more flows than the flow records hold).
    Classes,
    /// Class records only, and after the first quarter of the rounds the real servers
    /// fall silent: only the replayed client → server packets keep the connections'
    /// deadlines fresh, as the full path would.
    ClassesOneWay,
}

/// Runs the comparison; something changes around the flows in one round in `churn`, and
/// the cache must have forwarded more than `share` of the packets sent. `bursts`: both
/// workers look connections up a burst at a time (as on a table of 2^18 entries or more,
/// uvsd's default), where the cache is tried from the burst's loop, not frame by frame.
fn same_with_and_without(
    method: Method,
    seed: u64,
    churn: u64,
    share: f64,
    bursts: bool,
    records: Records,
) {
    let spec0 = lab::spec(method, SchedulerKind::Rr, 1);
    let mut with = Lab::with_spec(spec0.clone(), 4096);
    let mut without = Lab::with_spec(spec0.clone(), 4096);
    without.shared.flow_cache.store(false, Relaxed);
    with.w.set_flow_records(records == Records::Both);
    // One way, the clock's long steps are shorter than UDP's timeout (300 s): an entry the
    // replays failed to refresh expires in two of them, one the full path refreshed never.
    let (replies_until, big) = match records {
        Records::ClassesOneWay => (1_500, 200),
        _ => (u32::MAX, 400),
    };
    // One time for both, moved by the test alone: each real clock ticks over at its own
    // moment, and with it a worker's per-second budget of error answers (one lab's RSTs
    // for stray segments then outlast the other's).
    for lab in [&with, &without] {
        lab.shared.clock.stop();
        for c in OTHER_CLIENT {
            lab.shared.neigh.learn(ipk(c), other_mac(0), 0);
        }
    }
    with.w.set_burst_lookups(bursts);
    without.w.set_burst_lookups(bursts);
    let mut next = xorshift(seed);
    let flows: Vec<Flow> = (0..48)
        .map(|i| Flow {
            client: (i % 5).min(2) as u8,
            sport: 20_000 + i,
            udp: i % 4 == 3,
            v6: i % 3 == 1,
        })
        .collect();
    let mut removed = false;
    for round in 0..6_000u32 {
        let x = next();
        // Now and then, something changes around the flows (the same in both labs).
        match x % churn {
            0 => {
                let n = 1 + (x >> 8) as u8 % 3;
                let up = (x >> 16) & 1 == 0;
                with.set_health(n, up);
                without.set_health(n, up);
            }
            1 => {
                let nodest = (x >> 8) & 1 == 0;
                for lab in [&with, &without] {
                    let mut s = lab.shared.settings.load();
                    s.expire_nodest_conn = nodest;
                    lab.shared.settings.store(s);
                }
            }
            2 => {
                // A reload without real server 2, or with it back.
                let mut s = spec0.clone();
                if !removed {
                    for svc in &mut s.services {
                        svc.reals.retain(|r| r.addr != lab::real(2, false));
                    }
                }
                removed = !removed;
                reload(&with, &s);
                reload(&without, &s);
            }
            3 => {
                let mac = [0x02, 0, 0, 0, 0x77, (x >> 8) as u8];
                for lab in [&with, &without] {
                    let now = lab.shared.clock.now_s();
                    lab.shared.neigh.learn(ipk("198.18.1.11"), mac, now);
                    for c in OTHER_CLIENT {
                        lab.shared
                            .neigh
                            .learn(ipk(c), other_mac((x >> 16) as u8), now);
                    }
                }
            }
            4 => {
                let secs = if (x >> 8).is_multiple_of(8) { big } else { 2 };
                for lab in [&mut with, &mut without] {
                    lab.shared.clock.advance(secs);
                    lab.sweep();
                }
            }
            _ => {}
        }
        // A burst of up to 8 packets of random flows, from either side.
        let mut burst = Vec::new();
        for _ in 0..1 + (x >> 24) % 8 {
            let y = next();
            let flow = &flows[(y % flows.len() as u64) as usize];
            let size = match (y >> 8) % 64 {
                0 => 1600,
                1..=8 => 600,
                _ => 20,
            };
            let payload = vec![(y >> 16) as u8; size];
            let mut frame = if round < replies_until && (y >> 20).is_multiple_of(3) {
                match server_frame(&with, flow, y >> 24) {
                    Some(f) => (1, f),
                    None => continue,
                }
            } else {
                (0, client_frame(flow, y >> 24, &payload))
            };
            if (y >> 32).is_multiple_of(50) {
                frame.1 = with_ttl(frame.1, 1 + ((y >> 40) % 2) as u8);
            }
            if (y >> 44).is_multiple_of(12) {
                frame.1 = mutate(frame.1, y >> 50);
            }
            burst.push(frame);
        }
        let out_with = packets(with.burst_both(&burst));
        let out_without = packets(without.burst_both(&burst));
        assert_eq!(
            out_with, out_without,
            "round {round}: the frames sent differ"
        );
    }
    assert_eq!(counters(&with), counters(&without), "counters differ");
    let (flows, classes) = (with.w.flow_cache_hits(), with.w.class_replays());
    let hits = match records {
        Records::Both => flows + classes,
        Records::Classes | Records::ClassesOneWay => {
            assert_eq!(flows, 0, "flow records off");
            classes
        }
    };
    let forwarded = with.shared.counters[0].tx_packets.get();
    assert!(
        hits as f64 > share * forwarded as f64,
        "the cache forwarded {hits} of {forwarded} packets: too few for the comparison to mean much"
    );
    if method != Method::Nat {
        assert_eq!(classes, 0, "class records are NAT's alone");
    }
    assert_eq!(without.w.flow_cache_hits() + without.w.class_replays(), 0);
}

const SEEDS: [u64; 3] = [0x9e37_79b9_7f4a_7c15, 0x2545_f491_4f6c_dd1d, 7];

/// A change in one round in 50: the cache is forgotten often and its records go stale in
/// every way while packets keep coming.
/// Each seed runs once frame by frame and once a burst at a time.
#[test]
fn nat_forwards_the_same_with_and_without_the_flow_cache() {
    for (k, seed) in SEEDS.into_iter().enumerate() {
        same_with_and_without(Method::Nat, seed, 50, 0.02, k % 2 == 1, Records::Both);
        same_with_and_without(Method::Nat, seed, 1_500, 0.2, k % 2 == 0, Records::Both);
    }
}

/// The class records alone (client → server NAT packets: about two in five of those sent
/// here). They are used in the large-table burst loop only, so a burst at a time.
#[test]
fn nat_forwards_the_same_with_class_records_alone() {
    for seed in SEEDS {
        same_with_and_without(Method::Nat, seed, 50, 0.02, true, Records::Classes);
        same_with_and_without(Method::Nat, seed, 1_500, 0.1, true, Records::Classes);
        same_with_and_without(Method::Nat, seed, 50, 0.1, true, Records::ClassesOneWay);
    }
}

#[test]
fn fullnat_forwards_the_same_with_and_without_the_flow_cache() {
    for (k, seed) in SEEDS.into_iter().enumerate() {
        same_with_and_without(Method::FullNat, seed, 50, 0.02, k % 2 == 1, Records::Both);
        same_with_and_without(Method::FullNat, seed, 1_500, 0.2, k % 2 == 0, Records::Both);
    }
}
