//! The wake-up cost of adaptive polling, measured as UDP round trips through the VIP to
//! the real servers' responders (`scripts/udp_responder.py`, port 53): each round sends
//! one datagram after `gap` of silence ("cold": an adaptive worker has gone to sleep,
//! since the gap is far above its 200 µs spin) and one right after its answer ("warm": the
//! worker is still polling). The paired difference is what waking costs; the same run on
//! a kernel path (nftables DNAT), which has no thread to wake, is the baseline.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::HttpSubject;
use crate::testbed::net::{Spawned, Testbed};
use crate::testbed::{host_port, Family};

#[derive(Args, Debug)]
pub struct RttArgs {
    /// Where to send (the VIP's UDP service).
    #[arg(long)]
    pub dst: SocketAddr,
    /// Rounds (one cold and one warm round trip each).
    #[arg(long, default_value_t = 200)]
    pub rounds: usize,
    /// Silence before each cold round trip, microseconds.
    #[arg(long, default_value_t = 10_000)]
    pub gap_us: u64,
}

/// Medians and tails of one run, microseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RttResult {
    pub rounds: usize,
    /// Round trips without an answer within 200 ms (either kind).
    pub lost: usize,
    pub cold_p50_us: f64,
    pub cold_p90_us: f64,
    pub warm_p50_us: f64,
    pub warm_p90_us: f64,
    /// Median over rounds of cold − warm: the cost of the first packet after a silence.
    pub wake_p50_us: f64,
}

fn once(sock: &UdpSocket, buf: &mut [u8]) -> Option<f64> {
    let t = Instant::now();
    sock.send(b"uvs-rtt").ok()?;
    loop {
        match sock.recv(buf) {
            Ok(_) => return Some(t.elapsed().as_secs_f64() * 1e6),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
}

/// Nearest-rank percentile of sorted samples.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarises paired (cold, warm) samples.
pub fn summarise(pairs: &[(f64, f64)], lost: usize) -> RttResult {
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let cold = sorted(pairs.iter().map(|p| p.0).collect());
    let warm = sorted(pairs.iter().map(|p| p.1).collect());
    let wake = sorted(pairs.iter().map(|p| p.0 - p.1).collect());
    RttResult {
        rounds: pairs.len() + lost,
        lost,
        cold_p50_us: pct(&cold, 50.0),
        cold_p90_us: pct(&cold, 90.0),
        warm_p50_us: pct(&warm, 50.0),
        warm_p90_us: pct(&warm, 90.0),
        wake_p50_us: pct(&wake, 50.0),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RttRun {
    pub subject: HttpSubject,
    pub result: Option<RttResult>,
    pub error: Option<String>,
}

/// Runs `uvs-bench udp-rtt` in the client namespace against the subject's UDP service
/// over `family`.
pub fn run_rtt(tb: &Testbed, rounds: usize, s: HttpSubject, family: Family) -> Result<RttResult> {
    let exe = std::env::current_exe().context("locating uvs-bench")?;
    let dst = match s {
        HttpSubject::Direct => host_port(family.reals()[0], 53),
        _ => host_port(family.vip(), 53),
    };
    let child = tb
        .command("client", &[])
        .arg(exe)
        .args(["udp-rtt", "--dst", &dst])
        .args(["--rounds", &rounds.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting udp-rtt")?;
    // 10 ms gap plus two round trips of at most 200 ms each, per round.
    let limit = Duration::from_secs_f64(rounds as f64 * 0.05 + 10.0);
    let out = Spawned::new("udp-rtt", child).wait_output(limit)?;
    if !out.status.success() {
        bail!(
            "udp-rtt failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("udp-rtt output '{line}'"))
}

pub fn print_rtts(rtts: &[RttRun]) {
    if rtts.is_empty() {
        return;
    }
    println!(
        "{:<12} {:>13} {:>13} {:>13} {:>13} {:>13}",
        "udp rtt", "cold p50 us", "cold p90 us", "warm p50 us", "warm p90 us", "wake p50 us"
    );
    for r in rtts {
        match &r.result {
            Some(x) => println!(
                "{:<12} {:>13.0} {:>13.0} {:>13.0} {:>13.0} {:>13.0}",
                r.subject.name(),
                x.cold_p50_us,
                x.cold_p90_us,
                x.warm_p50_us,
                x.warm_p90_us,
                x.wake_p50_us
            ),
            None => println!(
                "{:<12} failed: {}",
                r.subject.name(),
                r.error.as_deref().unwrap_or("")
            ),
        }
    }
}

pub fn rtt_main(a: RttArgs) -> Result<()> {
    let bind: SocketAddr = if a.dst.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(a.dst)
        .with_context(|| format!("connecting to {}", a.dst))?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 2048];
    // One unmeasured round: the flow's connection entry and neighbours exist afterwards.
    let _ = once(&sock, &mut buf);
    let mut pairs = Vec::with_capacity(a.rounds);
    let mut lost = 0;
    for _ in 0..a.rounds.min(100_000) {
        std::thread::sleep(Duration::from_micros(a.gap_us.min(1_000_000)));
        match (once(&sock, &mut buf), once(&sock, &mut buf)) {
            (Some(c), Some(w)) => pairs.push((c, w)),
            _ => lost += 1,
        }
    }
    println!("{}", serde_json::to_string(&summarise(&pairs, lost))?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wake_cost_is_the_median_of_paired_differences() {
        let pairs = [(300.0, 100.0), (250.0, 120.0), (1000.0, 110.0)];
        let r = summarise(&pairs, 1);
        assert_eq!(r.rounds, 4);
        assert_eq!(r.cold_p50_us, 300.0);
        assert_eq!(r.warm_p50_us, 110.0);
        // Differences 200, 130, 890: median 200.
        assert_eq!(r.wake_p50_us, 200.0);
        assert_eq!(summarise(&[], 0).cold_p50_us, 0.0);
    }
}
