//! A bounded AF_XDP traffic generator for the l2fwd baseline (trafgen is
//! not installed here): sends one UDP template, 198.18.0.2 → 198.18.0.1
//! (benchmarking range only), as fast as `tx_copy` allows for `--seconds`,
//! and counts the frames that come back (the XDP program on `--dev` runs in
//! redirect-all mode, so returned frames reach this socket and never the
//! kernel).
//!
//! ```text
//! xsk_txgen --dev uvs-b --dst-mac 02:00:00:00:00:01 --seconds 5 [--size 64]
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use etherparse::PacketBuilder;
use uvs_port::{Frame, Port};
use uvs_xsk::{XdpMode, XdpProgram, XskConfig, XskPort};

#[derive(Parser)]
#[command(about = "AF_XDP UDP generator that also counts returned frames")]
struct Args {
    #[arg(long)]
    dev: String,
    /// Destination MAC (the far end of the link).
    #[arg(long)]
    dst_mac: String,
    #[arg(long, default_value = "02:00:00:00:00:02")]
    src_mac: String,
    #[arg(long, default_value_t = 0)]
    queue: u32,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Frame size without FCS (≥ 60).
    #[arg(long, default_value_t = 60)]
    size: usize,
    /// Frames queued per flush.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

fn mac(s: &str) -> anyhow::Result<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC {s}"))?;
    v.try_into().map_err(|_| anyhow::anyhow!("bad MAC {s}"))
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    if args.size < 60 || args.size > 1514 {
        bail!("--size must be 60..=1514");
    }
    let b = PacketBuilder::ethernet2(mac(&args.src_mac)?, mac(&args.dst_mac)?)
        .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
        .udp(9, 9);
    let payload = vec![0u8; args.size - 42];
    let mut template = Vec::new();
    b.write(&mut template, &payload)?;

    let prog = XdpProgram::attach(&args.dev, XdpMode::Auto)?;
    prog.set_redirect_all(true)?;
    let mut port = XskPort::open(&args.dev, args.queue, &XskConfig::default())?;
    prog.register_socket(args.queue, port.fd())?;

    let mut burst = [Frame::default(); 256];
    let (mut sent, mut received) = (0u64, 0u64);
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    while Instant::now() < end {
        for _ in 0..args.batch.clamp(1, 256) {
            if !port.tx_copy(&template) {
                break;
            }
            sent += 1;
        }
        port.flush();
        let n = port.rx_burst(&mut burst);
        received += n as u64;
        port.free(&burst[..n]);
    }
    let secs = start.elapsed().as_secs_f64();
    // Frames still in flight arrive shortly after the last send.
    let drain = Instant::now() + Duration::from_millis(200);
    while Instant::now() < drain {
        let n = port.rx_burst(&mut burst);
        received += n as u64;
        port.free(&burst[..n]);
        port.flush();
    }
    println!(
        "sent {sent} ({:.3} Mpps), received back {received} ({:.3} Mpps) in {secs:.2} s",
        sent as f64 / secs / 1e6,
        received as f64 / secs / 1e6
    );
    Ok(())
}
