//! `uvs-bench drop-entry`: what one sweep of the `drop_entry` defence costs the control
//! thread (`uvs_dataplane::lifecycle::drop_half_open`) on a table a SYN flood filled: every
//! entry a half-open TCP connection of a NAT service, as spoofed SYNs leave them. The
//! control thread runs a sweep every 100 ms while the table is at least 7/8 full; each
//! takes the oldest half-open entries until a quarter of the table is free, so under a
//! flood that refills it every sweep walks the whole table again. Beside it, the same
//! table walked without the defence's work (`for_each_of` alone): the least a sweep that
//! reads every entry can cost.

use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use uvs_conntrack::{tcp::TcpState, Conn, ConnTable, FlowKey};
use uvs_dataplane::{lab, lifecycle, Method, TablesBuilder};
use uvs_sched::SchedulerKind;

#[derive(Args, Debug)]
pub struct DropEntryArgs {
    /// Table capacities (IPv4 entries).
    #[arg(long, value_delimiter = ',', default_values_t = vec![65_536, 1_048_576],
          value_parser = crate::args::count)]
    pub capacity: Vec<usize>,
    /// Sweeps per capacity, the table filled again before each.
    #[arg(long, default_value_t = 5, value_parser = crate::args::count)]
    pub rounds: usize,
}

pub fn drop_entry_main(a: DropEntryArgs) -> Result<()> {
    if a.capacity.iter().any(|c| *c < 1024 || *c > 1 << 24) {
        bail!("--capacity takes 1024 to 16777216 entries");
    }
    if a.rounds > 100 {
        bail!("--rounds takes 1 to 100 sweeps");
    }
    let rounds = a.rounds;
    let tables = TablesBuilder::build(&lab::spec(Method::Nat, SchedulerKind::Rr, 1), None)?;
    println!(
        "{:>10} {:>10} {:>12} {:>12} {:>12}   ({rounds} sweeps each, median [range])",
        "capacity", "dropped", "sweep ms", "walk ms", "range ms"
    );
    for &cap in &a.capacity {
        let conns = ConnTable::new(cap);
        let mut next = 0u32;
        let (mut sweeps, mut walks, mut dropped) = (Vec::new(), Vec::new(), 0);
        for round in 0..rounds {
            fill(&conns, &mut next, round as u32);
            let at = Instant::now();
            let mut n = 0usize;
            conns.for_each_of(false, |_, c, d| n += usize::from(c.state ^ d as u8 == 0));
            walks.push(at.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(n);
            // Later than every deadline's start, so the oldest are told apart by age.
            let now = (round as u32 + 1) * 1_000_000;
            let at = Instant::now();
            dropped = lifecycle::drop_half_open(&conns, &tables, now);
            sweeps.push(at.elapsed().as_secs_f64() * 1e3);
        }
        let (s, w) = (median(&mut sweeps), median(&mut walks));
        println!(
            "{cap:>10} {dropped:>10} {s:>12.1} {w:>12.1} {:>5.1}–{:<6.1}",
            sweeps[0],
            sweeps[sweeps.len() - 1]
        );
    }
    Ok(())
}

/// Fills `conns` to capacity with half-open NAT connections from distinct spoofed
/// sources, their deadlines spread so that their ages differ.
fn fill(conns: &ConnTable, next: &mut u32, round: u32) {
    let cap = conns.capacity_of(false);
    let (vip, real) = ([198, 18, 0, 1], [198, 18, 1, 11]);
    let mut misses = 0;
    while conns.len_of(false) < cap && misses < cap {
        let n = *next;
        *next = next.wrapping_add(1);
        let src = (0xc612_0000u32 | (n >> 16) & 0xffff).to_be_bytes();
        let c = Conn {
            orig: FlowKey::v4(6, src, n as u16, vip, 80),
            reply: FlowKey::v4(6, real, 80, src, n as u16),
            service: 0,
            real: 0,
            method: Method::Nat as u8,
            state: TcpState::SynRecv as u8,
            flags: 0,
        };
        let start = round * 1_000_000 + n % 1_000;
        if conns.insert(&c, start, start + 30_000).is_err() {
            misses += 1;
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
