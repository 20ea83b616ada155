//! Connection-table throughput: inserts/s, lookups/s (hits in both directions, misses) at
//! 1 000 and 1 000 000 IPv4 entries, 1 and 2 threads, against `std::collections::HashMap`
//! as the single-threaded baseline; plus memory per entry.
//!
//! `cargo run --release -p uvs-conntrack --example ct_bench [-- --quick]`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use uvs_conntrack::{Conn, ConnTable, FlowKey, InsertError};

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn conn(i: u32) -> Conn {
    // clients spread over 198.18.0.0/15 and ports, NAT to 16 reals
    let client = (0xC612_0000u32 | (i >> 8) & 0x1_ffff).to_be_bytes();
    let cport = 1024 + (i & 0xff) as u16 * 200 + (i >> 25) as u16;
    Conn {
        orig: FlowKey::v4(6, client, cport, [198, 18, 100, 1], 80),
        reply: FlowKey::v4(6, [198, 18, 1, 10 + (i % 16) as u8], 8080, client, cport),
        service: 0,
        real: (i % 16) as u16,
        method: 0,
        state: 1,
        flags: 0,
    }
}

fn rate(n: usize, t: Instant) -> f64 {
    n as f64 / t.elapsed().as_secs_f64()
}

fn bench(n: usize, lookups: usize) {
    let conns: Vec<Conn> = (0..n as u32).map(conn).collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let order: Vec<usize> = (0..lookups)
        .map(|_| (xorshift(&mut x) % n as u64) as usize)
        .collect();

    let t = Arc::new(ConnTable::with_capacities(n, 0));
    let start = Instant::now();
    let mut refused = 0;
    let mut stored = vec![true; n];
    for (i, c) in conns.iter().enumerate() {
        match t.insert(c, 0, 1_000_000) {
            Ok(_) => {}
            Err(InsertError::Overflow) => {
                refused += 1;
                stored[i] = false;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let ins = rate(n, start);

    let start = Instant::now();
    let mut found = 0usize;
    for (k, &i) in order.iter().enumerate() {
        let key = if k & 1 == 0 {
            &conns[i].orig
        } else {
            &conns[i].reply
        };
        found += t.lookup(black_box(key), 10).is_some() as usize;
    }
    let hit = rate(lookups, start);
    assert_eq!(found, order.iter().filter(|&&i| stored[i]).count());

    // the same lookups in bursts of 32, as a worker does them
    let keys: Vec<FlowKey> = order
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            if k & 1 == 0 {
                conns[i].orig
            } else {
                conns[i].reply
            }
        })
        .collect();
    let mut out = [None; 32];
    let start = Instant::now();
    let mut found_b = 0usize;
    for burst in keys.chunks(32) {
        t.lookup_burst(black_box(burst), 10, &mut out);
        found_b += out[..burst.len()].iter().filter(|h| h.is_some()).count();
    }
    let hit_b = rate(lookups, start);
    assert_eq!(found_b, found);

    let start = Instant::now();
    let mut missed = 0usize;
    for &i in &order {
        let mut k = conns[i].orig;
        k.dport = 81; // same client, another port: not stored
        missed += t.lookup(black_box(&k), 10).is_none() as usize;
    }
    let miss = rate(lookups, start);
    assert_eq!(missed, lookups);

    // two threads, each its own shuffled half (the machine has 2 cores)
    let start = Instant::now();
    std::thread::scope(|s| {
        for half in order.chunks(lookups / 2) {
            let (t, conns) = (&t, &conns);
            s.spawn(move || {
                let mut f = 0usize;
                for &i in half {
                    f += t.lookup(black_box(&conns[i].reply), 10).is_some() as usize;
                }
                black_box(f)
            });
        }
    });
    let hit2 = rate(lookups, start);

    // baseline: std HashMap, single thread, no concurrency at all
    let mut hm: HashMap<FlowKey, u32> = HashMap::with_capacity(2 * n);
    for (i, c) in conns.iter().enumerate() {
        hm.insert(c.orig, i as u32);
        hm.insert(c.reply, i as u32);
    }
    let start = Instant::now();
    let mut f = 0usize;
    for (k, &i) in order.iter().enumerate() {
        let key = if k & 1 == 0 {
            &conns[i].orig
        } else {
            &conns[i].reply
        };
        f += hm.contains_key(black_box(key)) as usize;
    }
    let base = rate(lookups, start);
    black_box(f);

    println!(
        "| {n:>9} | {:>6.2} | {:>6.2} | {:>6.2} | {:>6.2} | {:>6.2} | {:>6.2} | {:>5.2} | {:>5.2} | {:>5.1} | {refused} |",
        ins / 1e6,
        hit / 1e6,
        hit_b / 1e6,
        miss / 1e6,
        hit2 / 1e6,
        base / 1e6,
        hit / base,
        hit_b / base,
        t.bytes_per_entry(false),
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!("| entries | insert M/s | lookup hit M/s | burst-32 hit M/s | lookup miss M/s | hit M/s 2 thr | HashMap hit M/s | ours/HashMap | burst/HashMap | B/entry v4 | overflow refusals |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    bench(1_000, if quick { 200_000 } else { 2_000_000 });
    bench(1_000_000, if quick { 200_000 } else { 2_000_000 });
    let t = ConnTable::with_capacities(1_000_000, 1_000_000);
    println!(
        "\nbytes per entry incl. index: IPv4 {:.1} (entry {} B), IPv6 {:.1} (entry {} B); table of 1M+1M = {:.0} MiB",
        t.bytes_per_entry(false),
        t.entry_bytes(false),
        t.bytes_per_entry(true),
        t.entry_bytes(true),
        t.memory_bytes() as f64 / (1 << 20) as f64
    );
}
