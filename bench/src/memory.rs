//! `uvs-bench memory`: what a random cache line costs on this machine, by working-set size
//! (`uvs_conntrack::memprobe`). It gives the platform figure under the pipeline's
//! large-table rows. At 1 000 000 flows the `pipeline` scenario's index is 65 MiB, read at
//! one random line a packet. Its entries and frames are read in order, which the hardware
//! prefetcher follows. So the prefetched cost at that size is roughly the least time a
//! packet can take there beyond the in-cache path (bench/README.md, "What a random line
//! costs").

use anyhow::{bail, Result};
use clap::Args;
use uvs_conntrack::memprobe::memory_cost;

#[derive(Args, Debug)]
pub struct MemoryArgs {
    /// Working-set sizes in MiB.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 4, 8, 16, 32, 64, 128, 256])]
    pub mib: Vec<usize>,
    /// Loads per figure.
    #[arg(long, default_value_t = 2_000_000)]
    pub loads: usize,
    /// How many loads ahead the prefetched figure prefetches (0: none).
    #[arg(long, default_value_t = 16)]
    pub ahead: usize,
    /// Pin the measuring thread to this core.
    #[arg(long)]
    pub core: Option<usize>,
}

pub fn memory_main(a: MemoryArgs) -> Result<()> {
    if a.mib.iter().any(|m| *m == 0 || *m > 16 << 10) {
        bail!("--mib takes sizes from 1 to 16384 MiB");
    }
    if let Some(c) = a.core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
            bail!("could not pin to core {c}");
        }
    }
    let loads = a.loads.clamp(1_000, 100_000_000);
    let ahead = a.ahead.min(256);
    println!(
        "{:>8} {:>14} {:>16}   ({loads} loads each, prefetched {ahead} ahead)",
        "MiB", "dependent ns", "prefetched ns"
    );
    for mib in &a.mib {
        let c = memory_cost(mib << 20, loads, ahead);
        println!(
            "{:>8} {:>14.1} {:>16.1}",
            c.bytes >> 20,
            c.dependent_ns,
            c.prefetched_ns
        );
    }
    Ok(())
}
