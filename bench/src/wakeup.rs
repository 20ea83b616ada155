//! `uvs-bench wakeup`: what handing a message to a sleeping thread costs, on one core and
//! across cores. Two threads pass one byte back and forth over a Unix socket pair (the
//! reader sleeps in `read`, woken by the writer as a UDP or AF_XDP socket's reader is);
//! each round trip is two hand-offs. Placements: both threads on one core, on two cores,
//! and unpinned (wherever the scheduler puts them). On the 2-vCPU test VMs a hand-off
//! across cores costs 15–50 µs more than one on the same core (an IPI to the other vCPU;
//! it varies with the host's load), which is what a forwarding thread on a core of its own
//! adds per crossing (bench/README.md, "Where a crossing's microseconds go").

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::Args;

use crate::http::rtt::pct;

#[derive(Args, Debug)]
pub struct WakeupArgs {
    /// Round trips per placement.
    #[arg(long, default_value_t = 2000, value_parser = crate::args::count)]
    pub rounds: usize,
    /// Pause before each round trip, microseconds (the other thread goes idle, as a real
    /// server does between requests).
    #[arg(long, default_value_t = 100)]
    pub gap_us: u64,
    /// The two cores of the cross-core placement (the first is also the same-core one).
    #[arg(long, value_delimiter = ',', default_values_t = vec![0, 1])]
    pub cores: Vec<usize>,
}

fn pin(core: Option<usize>) -> Result<()> {
    match core {
        Some(c) if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) => {
            bail!("could not pin a thread to core {c}")
        }
        _ => Ok(()),
    }
}

/// Round-trip times in microseconds, sorted, with the sender on `a` and the echo on `b`.
fn placement(a: Option<usize>, b: Option<usize>, rounds: usize, gap: Duration) -> Result<Vec<f64>> {
    let (mut x, mut y) = UnixStream::pair()?;
    let echo = std::thread::spawn(move || -> Result<()> {
        pin(b)?;
        let mut buf = [0u8; 1];
        for _ in 0..rounds {
            y.read_exact(&mut buf)?;
            y.write_all(&buf)?;
        }
        Ok(())
    });
    let send = std::thread::spawn(move || -> Result<Vec<f64>> {
        pin(a)?;
        let mut buf = [7u8; 1];
        let mut out = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            std::thread::sleep(gap);
            let t = Instant::now();
            x.write_all(&buf)?;
            x.read_exact(&mut buf)?;
            out.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Ok(out)
    });
    let mut out = send.join().map_err(|_| anyhow!("sender panicked"))??;
    echo.join().map_err(|_| anyhow!("echo panicked"))??;
    out.sort_by(f64::total_cmp);
    Ok(out)
}

pub fn wakeup_main(a: WakeupArgs) -> Result<()> {
    let [c0, c1] = a.cores[..] else {
        bail!("--cores takes two cores, such as 0,1");
    };
    let rounds = a.rounds.clamp(1, 1_000_000);
    let gap = Duration::from_micros(a.gap_us.min(1_000_000));
    println!(
        "{:<14} {:>10} {:>10} {:>10}   (round trip = two hand-offs, {rounds} rounds, {} us apart)",
        "placement", "p10 us", "p50 us", "p90 us", a.gap_us
    );
    let mut p50 = Vec::new();
    for (name, x, y) in [
        (format!("core {c0}+{c0}"), Some(c0), Some(c0)),
        (format!("cores {c0}+{c1}"), Some(c0), Some(c1)),
        ("unpinned".to_string(), None, None),
    ] {
        let v = placement(x, y, rounds, gap)?;
        println!(
            "{name:<14} {:>10.1} {:>10.1} {:>10.1}",
            pct(&v, 10.0),
            pct(&v, 50.0),
            pct(&v, 90.0)
        );
        p50.push(pct(&v, 50.0));
    }
    println!(
        "one hand-off across cores costs {:.1} us more than on one core (half the p50 difference)",
        (p50[1] - p50[0]) / 2.0
    );
    Ok(())
}
