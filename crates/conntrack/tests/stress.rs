//! Concurrent stress: workers insert, look up (both directions), update and remove
//! overlapping flows while a control thread advances the clock and expires entries.
//!
//! Every connection is a pure function of its flow number, with a checksum of both tuples
//! in `service`/`real`, so a torn read (words from two different occupants of a slot) shows
//! up as a mismatch. At the end, per flow, inserts must equal removals + reclaims + what
//! is still stored, and no tuple may be held by two live entries.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uvs_conntrack::ConnView;

use uvs_conntrack::{Conn, ConnTable, Dir, FlowKey, InsertError};

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

fn key_sum(k: &FlowKey) -> u16 {
    let mut h = (k.proto as u64) << 40 | (k.sport as u64) << 16 | k.dport as u64;
    for c in k.src.chunks(8).chain(k.dst.chunks(8)) {
        h = mix(h ^ u64::from_be_bytes(c.try_into().unwrap()));
    }
    h as u16
}

/// Flow `i`: IPv4 for even, IPv6 for odd; NAT-like reply; checksums in service/real.
fn flow(i: u32) -> Conn {
    let cport = 1024 + (i % 50_000) as u16;
    let (orig, reply) = if i.is_multiple_of(2) {
        let c = (0xC612_0000u32 | (i >> 1)).to_be_bytes();
        (
            FlowKey::v4(6, c, cport, [198, 18, 100, 1], 80),
            FlowKey::v4(6, [198, 18, 1, (i % 7) as u8 + 10], 8080, c, cport),
        )
    } else {
        let mut c = [0u8; 16];
        c[..4].copy_from_slice(&[0x20, 0x01, 0x00, 0x02]);
        c[12..].copy_from_slice(&i.to_be_bytes());
        let mut v = [0u8; 16];
        v[..4].copy_from_slice(&[0x20, 0x01, 0x00, 0x02]);
        v[15] = 1;
        let mut r = v;
        r[14] = (i % 7) as u8;
        (
            FlowKey::v6(17, c, cport, v, 53),
            FlowKey::v6(17, r, 53, c, cport),
        )
    };
    Conn {
        orig,
        reply,
        service: key_sum(&orig),
        real: key_sum(&reply),
        method: (i % 4) as u8,
        state: 0,
        flags: (i % 251) as u8,
    }
}

fn flow_of(c: &Conn) -> u32 {
    // recover the flow number from the client address
    if c.orig.v6 {
        u32::from_be_bytes(c.orig.src[12..16].try_into().unwrap())
    } else {
        (u32::from_be_bytes(c.orig.src[..4].try_into().unwrap()) & 0xffff) << 1
    }
}

/// Panics unless `c` is exactly flow `flow_of(c)` in some state.
fn check(c: &Conn) -> u32 {
    let i = flow_of(c);
    let mut want = flow(i);
    want.state = c.state;
    assert_eq!(*c, want, "torn or foreign entry for flow {i}");
    i
}

struct Counters {
    inserted: Vec<AtomicU64>,
    gone: Vec<AtomicU64>,
}

fn run(cap_v4: usize, cap_v6: usize, flows: u32, workers: usize, for_time: Duration) {
    let t = Arc::new(ConnTable::with_capacities(cap_v4, cap_v6));
    let clock = Arc::new(AtomicU32::new(u32::MAX - 2000)); // cross the u32 wrap on the way
    let stop = Arc::new(AtomicBool::new(false));
    let ctr = Arc::new(Counters {
        inserted: (0..flows).map(|_| AtomicU64::new(0)).collect(),
        gone: (0..flows).map(|_| AtomicU64::new(0)).collect(),
    });
    let mut handles = Vec::new();
    for w in 0..workers {
        let (t, clock, stop, ctr) = (t.clone(), clock.clone(), stop.clone(), ctr.clone());
        handles.push(std::thread::spawn(move || {
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (w as u64 + 1);
            let mut ops = [0u64; 6];
            while !stop.load(Ordering::Relaxed) {
                x = mix(x.wrapping_add(1));
                let i = (x % flows as u64) as u32;
                let c = flow(i);
                let now = clock.load(Ordering::Relaxed);
                let (key, dir) = if x & (1 << 40) == 0 {
                    (c.orig, Dir::Original)
                } else {
                    (c.reply, Dir::Reply)
                };
                match t.lookup(&key, now) {
                    Some(h) => {
                        assert_eq!(h.dir, dir);
                        assert_eq!(check(&h.conn()), i);
                        ops[0] += 1;
                        match (x >> 20) % 16 {
                            0 => {
                                if t.remove(h.id) {
                                    ctr.gone[i as usize].fetch_add(1, Ordering::Relaxed);
                                    ops[1] += 1;
                                }
                            }
                            _ => {
                                let dl = now.wrapping_add(5 + (x >> 50) as u32 % 60);
                                t.update(h.id, ((x >> 8) % 11) as u8, dl);
                                ops[2] += 1;
                            }
                        }
                    }
                    None => {
                        let dl = now.wrapping_add(5 + (x >> 50) as u32 % 60);
                        match t.insert(&c, now, dl) {
                            Ok(id) => {
                                ctr.inserted[i as usize].fetch_add(1, Ordering::Relaxed);
                                ops[3] += 1;
                                if let Some((got, _)) = t.get(id) {
                                    check(&got);
                                }
                            }
                            Err(InsertError::Exists(id)) => {
                                ops[4] += 1;
                                if let Some((got, _)) = t.get(id) {
                                    assert_eq!(check(&got), i);
                                }
                            }
                            // Contended: a rival inserting the same tuple was preempted mid-insert (more
                            // threads than cores); the table never waits in a syscall.
                            Err(
                                InsertError::Full | InsertError::Overflow | InsertError::Contended,
                            ) => ops[5] += 1,
                            Err(e) => panic!("unexpected insert error {e:?}"),
                        }
                    }
                }
            }
            ops
        }));
    }
    let control = {
        let (t, clock, stop, ctr) = (t.clone(), clock.clone(), stop.clone(), ctr.clone());
        std::thread::spawn(move || {
            let mut reclaimed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let now = clock.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
                reclaimed += t.expire_step(now, 256, |c| {
                    let i = check(c);
                    ctr.gone[i as usize].fetch_add(1, Ordering::Relaxed);
                }) as u64;
                std::thread::sleep(Duration::from_micros(50));
            }
            reclaimed
        })
    };
    std::thread::sleep(for_time);
    stop.store(true, Ordering::Relaxed);
    let mut total = [0u64; 6];
    for h in handles {
        for (a, b) in total.iter_mut().zip(h.join().unwrap()) {
            *a += b;
        }
    }
    let reclaimed = control.join().unwrap();
    eprintln!(
        "cap {cap_v4}/{cap_v6} flows {flows}: hits {} removes {} updates {} inserts {} exists {} full {} reclaimed {reclaimed}",
        total[0], total[1], total[2], total[3], total[4], total[5]
    );
    assert!(
        total[3] > 100 && total[0] > 100 && reclaimed > 0,
        "the run did work"
    );

    // At most one live entry per flow, and stored entries match the books.
    let mut live = vec![0u32; flows as usize];
    t.for_each(|_, c, _| live[check(c) as usize] += 1);
    assert!(live.iter().all(|&n| n <= 1), "a flow is stored twice");
    // Reclaim everything (dead entries included) and balance the books.
    let far = clock.load(Ordering::Relaxed).wrapping_add(1_000_000);
    t.expire_step(far, cap_v4.max(cap_v6), |c| {
        ctr.gone[check(c) as usize].fetch_add(1, Ordering::Relaxed);
    });
    for i in 0..flows as usize {
        let ins = ctr.inserted[i].load(Ordering::Relaxed);
        let gone = ctr.gone[i].load(Ordering::Relaxed);
        assert_eq!(
            ins, gone,
            "flow {i}: {ins} inserted, {gone} removed or reclaimed"
        );
    }
    assert_eq!(t.len(), 0);
    assert_eq!(t.index_lanes_used(false), 0, "IPv4 index lanes leaked");
    assert_eq!(t.index_lanes_used(true), 0, "IPv6 index lanes leaked");
}

#[test]
fn stress_roomy_table() {
    run(4096, 4096, 2048, 4, Duration::from_millis(1200));
}

#[test]
fn stress_tiny_table_forces_slot_reuse_and_full() {
    // far more flows than slots: constant Full refusals, slot recycling and generation checks
    run(32, 32, 256, 6, Duration::from_millis(1200));
}
