//! The AF_XDP l2fwd baseline: receive on one interface, swap the MAC
//! addresses and send back out the same interface (`tx_burst`, no copy) or,
//! with `--out IF`, out of a second interface (`tx_copy`, one copy). The XDP
//! program runs in redirect-all mode, so every frame reaches the socket.
//! This is the ceiling the load balancer is compared with.
//!
//! ```text
//! xsk_l2fwd --dev uvs-a --seconds 5 [--out uvs-c] [--mode auto|native|generic]
//! ```

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use uvs_port::{Frame, Port};
use uvs_xsk::{XdpMode, XdpProgram, XskConfig, XskPort, ZeroCopy};

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Auto,
    Native,
    Generic,
}

#[derive(Clone, Copy, ValueEnum)]
enum Zc {
    Auto,
    On,
    Off,
}

#[derive(Parser)]
#[command(about = "AF_XDP l2fwd baseline (MAC swap and send back, or forward to --out)")]
struct Args {
    /// Interface to receive on.
    #[arg(long)]
    dev: String,
    /// Forward to this interface (by copy) instead of back out of --dev.
    #[arg(long)]
    out: Option<String>,
    /// Queue id on both interfaces.
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, value_enum, default_value = "auto")]
    mode: Mode,
    #[arg(long, value_enum, default_value = "auto")]
    zero_copy: Zc,
    /// Ring size (RX, TX, fill, completion).
    #[arg(long, default_value_t = 2048)]
    ring: u32,
    /// Frames per burst (≤ 256).
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let mode = match args.mode {
        Mode::Auto => XdpMode::Auto,
        Mode::Native => XdpMode::Native,
        Mode::Generic => XdpMode::Generic,
    };
    let config = XskConfig {
        ring_size: args.ring,
        zero_copy: match args.zero_copy {
            Zc::Auto => ZeroCopy::Auto,
            Zc::On => ZeroCopy::On,
            Zc::Off => ZeroCopy::Off,
        },
    };
    let prog = XdpProgram::attach(&args.dev, mode)?;
    prog.set_redirect_all(true)?;
    let mut port = XskPort::open(&args.dev, args.queue, &config)?;
    prog.register_socket(args.queue, port.fd())?;
    let mut out = match &args.out {
        Some(dev) => {
            Some(XskPort::open(dev, args.queue, &config).with_context(|| format!("--out {dev}"))?)
        }
        None => None,
    };
    eprintln!(
        "l2fwd: {} ({:?} XDP, {}) -> {} for {} s",
        port.name(),
        prog.mode(),
        if port.is_zero_copy() {
            "zero-copy"
        } else {
            "copy"
        },
        out.as_ref().map_or("same interface", |o| o.name()),
        args.seconds
    );

    let batch = args.batch.clamp(1, 256);
    let mut burst = [Frame::default(); 256];
    let (mut forwarded, mut dropped) = (0u64, 0u64);
    let mut started: Option<Instant> = None;
    let mut last = Instant::now();
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut polls = 0u32;
    loop {
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(1024) && Instant::now() >= end {
            break;
        }
        let n = port.rx_burst(&mut burst[..batch]);
        if n == 0 {
            port.flush();
            if let Some(o) = out.as_mut() {
                o.flush();
            }
            continue;
        }
        // The rate spans first to last packet, not start-up or the idle
        // tail after the generator stopped.
        let now = Instant::now();
        started.get_or_insert(now);
        last = now;
        for f in &burst[..n] {
            let b = port.buf_mut(f);
            let mut dst = [0u8; 6];
            dst.copy_from_slice(&b[..6]);
            b.copy_within(6..12, 0);
            b[6..12].copy_from_slice(&dst);
        }
        match out.as_mut() {
            Some(o) => {
                for f in &burst[..n] {
                    if o.tx_copy(&port.buf_mut(f)[..f.len as usize]) {
                        forwarded += 1;
                    } else {
                        dropped += 1;
                    }
                }
                port.free(&burst[..n]);
                o.flush();
            }
            None => {
                let q = port.tx_burst(&burst[..n]);
                port.free(&burst[q..n]);
                forwarded += q as u64;
                dropped += (n - q) as u64;
            }
        }
        port.flush();
    }
    let secs = started.map_or(0.0, |s| last.duration_since(s).as_secs_f64());
    let mpps = if secs > 0.0 {
        forwarded as f64 / secs / 1e6
    } else {
        0.0
    };
    let c = prog.counters()?;
    println!("forwarded {forwarded} packets in {secs:.2} s: {mpps:.3} Mpps (dropped {dropped})");
    println!(
        "xdp: redirected {} passed {} unclaimed {}; port {:?}",
        c.redirected,
        c.passed,
        c.unclaimed,
        port.stats()
    );
    if let Ok(k) = port.kernel_stats() {
        println!(
            "kernel: rx_dropped {} rx_ring_full {} fill_ring_empty {}",
            k.rx_dropped(),
            k.rx_ring_full(),
            k.rx_fill_ring_empty_descs()
        );
    }
    Ok(())
}
