//! SCTP through the burst path (tables of 2^18 entries or more, uvsd's default, prefetch a
//! burst's association lookups) forwards, drops and counts exactly as frame by frame: a
//! lab with burst lookups forced on against one without, fed the same random bursts of
//! many associations' chunks — data and SACKs both ways, heartbeats, wrong verification
//! tags, shutdowns and aborts, and new associations' INITs — compared frame by frame, then
//! by counter and by association.

mod sctp_support;

use sctp_support::*;
use uvs_dataplane::{DropReason, Method};

fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// One random frame of association `a`: the port it arrives on and its bytes.
fn pick_frame(a: &Assoc, r: u64) -> (usize, Vec<u8>) {
    let sack = chunk(SACK, 0, &[0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    match r % 20 {
        0..=6 => (0, a.client_frame(a.server_tag, &[data_chunk(b"request")])),
        7..=10 => (1, a.server_frame(a.client_tag, &[data_chunk(b"answer")])),
        11..=12 => (0, a.client_frame(a.server_tag, &[sack])),
        13 => (1, a.server_frame(a.client_tag, &[sack])),
        14 => (
            0,
            a.client_frame(a.server_tag, &[chunk(HEARTBEAT, 0, &param(1, b"hb"))]),
        ),
        // A wrong verification tag, either way.
        15 => (0, a.client_frame(a.server_tag ^ 0x55, &[data_chunk(b"x")])),
        16 => (1, a.server_frame(a.client_tag ^ 0x55, &[data_chunk(b"y")])),
        17 => (
            0,
            a.client_frame(a.server_tag, &[chunk(SHUTDOWN, 0, &[0, 0, 0, 1])]),
        ),
        18 => (
            1,
            a.server_frame(a.client_tag, &[chunk(SHUTDOWN_ACK, 0, &[])]),
        ),
        // ABORT carries the tag of its receiver (T bit clear).
        _ => (0, a.client_frame(a.server_tag, &[chunk(ABORT, 0, &[])])),
    }
}

fn same_with_and_without_bursts(method: Method, v6: bool, seed: u64) {
    let mut labs = [Lab::new(method), Lab::new(method)];
    labs[1].w.set_burst_lookups(true);
    let assocs: Vec<Assoc> = (0..24)
        .map(|i| {
            let cport = 40_000 + i;
            let a = handshake(&mut labs[0], v6, cport, PORT);
            let b = handshake(&mut labs[1], v6, cport, PORT);
            assert_eq!(
                (a.real, a.seen_sport),
                (b.real, b.seen_sport),
                "scheduled alike"
            );
            a
        })
        .collect();
    let mut rnd = xorshift(seed);
    let mut next_port = 41_000;
    let mut sent = 0;
    for round in 0..400 {
        let mut burst: Vec<(usize, Vec<u8>)> = Vec::new();
        for _ in 0..2 + rnd() % 40 {
            let r = rnd();
            if r.is_multiple_of(50) {
                // A new association's INIT, among the established ones' chunks.
                next_port += 1;
                let init = frame(
                    uvs_dataplane::lab::CLIENT_MAC,
                    uvs_dataplane::lab::LB0_MAC,
                    client(v6),
                    next_port,
                    vip(v6),
                    PORT,
                    0,
                    &[init_chunk(INIT, 0x3000_0000 | u32::from(next_port), &[])],
                );
                burst.push((0, init));
            } else {
                let a = &assocs[(rnd() % assocs.len() as u64) as usize];
                burst.push(pick_frame(a, r >> 8));
            }
        }
        sent += burst.len();
        let mut out = Vec::new();
        for lab in &mut labs {
            for (port, f) in &burst {
                assert!(lab.w.ports[*port].push_rx(f), "room for the burst");
            }
            lab.w.poll();
            out.push([lab.w.ports[0].take_tx(), lab.w.ports[1].take_tx()]);
        }
        for (port, (a, b)) in out[0].iter().zip(&out[1]).enumerate() {
            let first = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i));
            assert!(
                first.is_none(),
                "{method:?} v6={v6} seed={seed}: round {round}, port {port}: {} frames \
                 frame by frame, {} a burst at a time; the first difference, frame {first:?}: \
                 {:?} against {:?}",
                a.len(),
                b.len(),
                first.and_then(|i| a.get(i)),
                first.and_then(|i| b.get(i)),
            );
        }
    }
    let tallies = |lab: &Lab| {
        let c = &lab.shared.counters[0];
        let drops: Vec<(&str, u64)> = (0..DropReason::COUNT)
            .map(|i| (DropReason::name_of(i), c.drops[i].get()))
            .filter(|d| d.1 > 0)
            .collect();
        (c.tx_packets.get(), c.new_conns.get(), drops)
    };
    let (with, without) = (tallies(&labs[1]), tallies(&labs[0]));
    eprintln!("{method:?} v6={v6}: {sent} frames; {without:?}");
    assert_eq!(with, without, "counters");
    // Only the lab in burst mode prepared lookups with their burst, and it did for most
    // frames (its bursts' frames all carry a 5-tuple lookup; single-frame bursts do not).
    let prepared = |lab: &Lab| lab.shared.counters[0].burst_lookups.get();
    assert_eq!(prepared(&labs[0]), 0);
    assert!(
        prepared(&labs[1]) > sent as u64 / 2,
        "{} of {sent}",
        prepared(&labs[1])
    );
    let states = |lab: &Lab| {
        let mut v: Vec<_> = lab
            .associations()
            .iter()
            .map(|c| (c.orig.sport, c.state))
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(states(&labs[1]), states(&labs[0]), "associations");
    assert_eq!(labs[1].tag_records(), labs[0].tag_records(), "tag records");
    // The mix must have reached both verdicts: forwarded and refused for a wrong tag.
    assert!(without.0 > sent as u64 / 3, "{without:?}");
    assert!(
        without.2.iter().any(|(n, _)| n.contains("vtag")),
        "{without:?}"
    );
}

#[test]
fn nat_sctp_is_the_same_a_burst_at_a_time() {
    for (v6, seed) in [(false, 1), (true, 2), (false, 3)] {
        same_with_and_without_bursts(Method::Nat, v6, seed);
    }
}

#[test]
fn fullnat_sctp_is_the_same_a_burst_at_a_time() {
    for (v6, seed) in [(false, 4), (true, 5)] {
        same_with_and_without_bursts(Method::FullNat, v6, seed);
    }
}

/// The tag record the burst prepares for a frame (from the frame and its association's
/// index lane alone, before the lookup) is the one the tag check then looks up: otherwise
/// the check ignores the hint and the prefetch is lost, which no forwarding test sees.
fn the_burst_prepares_the_record_the_check_looks_up(method: Method, v6: bool) {
    use uvs_conntrack::Dir;
    use uvs_dataplane::sctp::tags::{key_for, own_key, Side};
    let mut lab = Lab::new(method);
    for cport in [40_100, 40_101] {
        let a = handshake(&mut lab, v6, cport, PORT);
        for (frame, tag) in [
            (
                a.client_frame(a.server_tag, &[data_chunk(b"q")]),
                a.server_tag,
            ),
            (
                a.server_frame(a.client_tag, &[data_chunk(b"a")]),
                a.client_tag,
            ),
        ] {
            let p = uvs_dataplane::pipeline::prepare(&frame).expect("parses");
            let key = uvs_dataplane::pipeline::lookup_key(&p).expect("an SCTP lookup");
            let conns = &lab.shared.conns;
            let hit = conns.lookup(&key, 0).expect("the association");
            let mut prepared = conns.prepare(&key);
            conns.prefetch_entry(&mut prepared);
            assert_eq!(prepared.likely_dir(), Some(hit.dir), "{method:?} v6={v6}");
            let side = match hit.dir {
                Dir::Original => Side::ToServer,
                Dir::Reply => Side::ToClient,
            };
            assert_eq!(p.sctp_vtag, tag);
            let record = own_key(&p, hit.dir);
            assert_eq!(
                record,
                key_for(&hit, side, tag),
                "{method:?} v6={v6} {:?}",
                hit.dir
            );
            assert!(conns.lookup(&record, 0).is_some(), "the record exists");
        }
    }
}

#[test]
fn the_burst_prepares_the_tag_record_the_check_looks_up() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            the_burst_prepares_the_record_the_check_looks_up(method, v6);
        }
    }
}
