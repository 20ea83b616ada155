//! `uvs-bench sync --link` (root): connection sync over a real link. Two network
//! namespaces joined by a veth pair (default offloads on); a sender in one encodes
//! records into IPVS sync v1 messages of the link's MTU and sends them over UDP, as a
//! sync master does; a receiver in the other takes each message off its socket, parses it
//! and installs its records into a connection table, as a backup does (one thread, the
//! same steps as uvsd's receive loop, without its configurable rate limit). Each rate is
//! one run: records sent, received and installed, how fast, and what was lost.
//!
//! The two sides are this binary again (`sync-link-tx`, `sync-link-rx`), started with
//! `ip netns exec`; each prints one JSON line.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use uvs_dataplane::{lab, Method, Shared, TablesBuilder};
use uvs_sched::SchedulerKind;
use uvs_sync::install;
use uvs_sync::wire::{self, MessageWriter};

const NS_TX: &str = "uvs-sbench-tx";
const NS_RX: &str = "uvs-sbench-rx";
const ADDR_TX: &str = "198.18.70.1";
const ADDR_RX: &str = "198.18.70.2";
const PORT: u16 = 8848;
/// Ethernet, IPv4 and UDP headers around each message on the wire.
const FRAME_OVERHEAD: usize = 14 + 20 + 8;
/// The largest message on a 1500-byte link, as IPVS sizes it (MTU − IP − UDP).
const MAXLEN: usize = 1500 - 20 - 8;

#[derive(Args)]
pub struct TxArgs {
    #[arg(long)]
    to: SocketAddr,
    #[arg(long)]
    records: usize,
    /// Records per second; 0: as fast as the socket takes them.
    #[arg(long)]
    rate: f64,
}

#[derive(Args)]
pub struct RxArgs {
    #[arg(long)]
    port: u16,
    #[arg(long)]
    records: usize,
    /// Receive buffer to force (SO_RCVBUFFORCE); 0: the kernel's default.
    #[arg(long, default_value_t = 0)]
    rcvbuf: usize,
}

#[derive(Serialize, Deserialize)]
struct TxReport {
    messages: u64,
    records: u64,
    bytes: u64,
    send_errors: u64,
    seconds: f64,
}

#[derive(Serialize, Deserialize)]
struct RxReport {
    messages: u64,
    records: u64,
    installed: u64,
    bytes: u64,
    /// From the first message to the last.
    seconds: f64,
}

/// The sender: every record once, paced to `rate`.
pub fn tx_main(a: TxArgs) -> Result<()> {
    let sock = UdpSocket::bind("0.0.0.0:0").context("sender socket")?;
    let mut w = MessageWriter::new(1, MAXLEN, None);
    let mut msgs = Vec::new();
    for i in 0..a.records {
        msgs.extend(w.push(&crate::sync::record(i), i as u64 + 1));
    }
    msgs.extend(w.finish(u64::MAX));
    let mut r = TxReport {
        messages: 0,
        records: 0,
        bytes: 0,
        send_errors: 0,
        seconds: 0.0,
    };
    let t0 = Instant::now();
    for m in &msgs {
        if a.rate > 0.0 {
            let due = Duration::from_secs_f64(r.records as f64 / a.rate);
            loop {
                match due.checked_sub(t0.elapsed()) {
                    None => break,
                    Some(left) if left > Duration::from_micros(200) => {
                        std::thread::sleep(Duration::from_micros(100))
                    }
                    Some(_) => std::hint::spin_loop(),
                }
            }
        }
        match sock.send_to(m, a.to) {
            Ok(n) => {
                r.messages += 1;
                // The header's count of connection records.
                r.records += u64::from(m[4]);
                r.bytes += n as u64;
            }
            Err(_) => r.send_errors += 1,
        }
    }
    r.seconds = t0.elapsed().as_secs_f64();
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

/// The receiver: parse and install until every record came or the link went quiet.
pub fn rx_main(a: RxArgs) -> Result<()> {
    let sock = UdpSocket::bind(("0.0.0.0", a.port)).context("receiver socket")?;
    if a.rcvbuf > 0 {
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &a.rcvbuf)
            .context("SO_RCVBUFFORCE")?;
    }
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    let shared = Shared::new(TablesBuilder::build(&spec, None)?, 2 * a.records, 1);
    let mut r = RxReport {
        messages: 0,
        records: 0,
        installed: 0,
        bytes: 0,
        seconds: 0.0,
    };
    println!("ready");
    let mut buf = vec![0u8; 65536];
    let (mut first, mut last) = (None::<Instant>, Instant::now());
    let started = Instant::now();
    loop {
        let n = match sock.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(_) => {
                // Up to 10 s for the sender to start (a fresh process in another
                // namespace, on a loaded machine); once it has, 500 ms of quiet ends it.
                let done = match first {
                    None => started.elapsed() > Duration::from_secs(10),
                    Some(_) => last.elapsed() > Duration::from_millis(500),
                };
                if done {
                    break;
                }
                continue;
            }
        };
        let now_i = Instant::now();
        first.get_or_insert(now_i);
        last = now_i;
        let msg = wire::parse(&buf[..n], 1, None).context("a message that does not parse")?;
        r.messages += 1;
        r.bytes += n as u64;
        r.records += msg.conns.len() as u64;
        let tables = shared.tables.load();
        let now = shared.clock.now_ticks();
        for c in &msg.conns {
            if install::install(&tables, &shared.conns, c, now).is_ok() {
                r.installed += 1;
            }
        }
        if r.records >= a.records as u64 {
            break;
        }
    }
    r.seconds = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The two namespaces and their veth pair; deleted on drop, also on failure.
struct Link {
    /// The namespaces go also when uvs-bench is interrupted (Ctrl-C, SIGTERM).
    _interrupt: crate::interrupt::Guard,
}

impl Link {
    fn up() -> Result<Link> {
        for ns in [NS_TX, NS_RX] {
            let _ = ip(&["netns", "del", ns]);
        }
        let link = Link {
            _interrupt: crate::interrupt::on_interrupt(|| {
                for ns in [NS_TX, NS_RX] {
                    let _ = ip(&["netns", "del", ns]);
                }
            }),
        };
        ip(&["netns", "add", NS_TX])?;
        ip(&["netns", "add", NS_RX])?;
        ip(&[
            "link", "add", "uvs-sbtx", "netns", NS_TX, "type", "veth", "peer", "name", "uvs-sbrx",
            "netns", NS_RX,
        ])?;
        for (ns, dev, addr) in [(NS_TX, "uvs-sbtx", ADDR_TX), (NS_RX, "uvs-sbrx", ADDR_RX)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(link)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for ns in [NS_TX, NS_RX] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

fn in_ns(ns: &str, args: &[String]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns])
        .arg(std::env::current_exe().expect("own executable"))
        .args(args);
    c
}

/// One run at `rate` records/s (0: unpaced) into a receive buffer of `rcvbuf` bytes (0:
/// the kernel's default): what the sender and the receiver report.
fn run(records: usize, rate: f64, rcvbuf: usize) -> Result<(TxReport, RxReport)> {
    let mut rx = in_ns(
        NS_RX,
        &[
            "sync-link-rx".into(),
            "--port".into(),
            PORT.to_string(),
            "--records".into(),
            records.to_string(),
            "--rcvbuf".into(),
            rcvbuf.to_string(),
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .context("starting the receiver")?;
    let mut out = BufReader::new(rx.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line)?;
    if line.trim() != "ready" {
        let _ = rx.kill();
        bail!("receiver did not start: '{}'", line.trim());
    }
    let tx = in_ns(
        NS_TX,
        &[
            "sync-link-tx".into(),
            "--to".into(),
            format!("{ADDR_RX}:{PORT}"),
            "--records".into(),
            records.to_string(),
            "--rate".into(),
            rate.to_string(),
        ],
    )
    .output()
    .context("running the sender")?;
    if !tx.status.success() {
        let _ = rx.kill();
        bail!("sender: {}", String::from_utf8_lossy(&tx.stderr));
    }
    let txr: TxReport = serde_json::from_slice(&tx.stdout).context("sender's report")?;
    line.clear();
    out.read_line(&mut line)?;
    let _ = rx.wait();
    let rxr: RxReport = serde_json::from_str(&line).context("receiver's report")?;
    Ok((txr, rxr))
}

/// The link runs, one per receive buffer and rate.
/// The link runs, printed as a table; returns their figures for `--json`.
pub fn link_main(
    records: usize,
    rates: &[f64],
    rcvbufs: &[usize],
) -> Result<Vec<serde_json::Value>> {
    let mut rows = Vec::new();
    let _link = Link::up()?;
    println!(
        "{:<9} {:<14} {:>12} {:>12} {:>12} {:>9} {:>10} {:>10}",
        "rcvbuf", "rate", "sent rec/s", "recv rec/s", "installed", "lost", "B/conn", "wire B/conn"
    );
    for &rcvbuf in rcvbufs {
        for &rate in rates {
            let (t, r) = run(records, rate, rcvbuf)?;
            println!(
                "{:<9} {:<14} {:>12.0} {:>12.0} {:>12} {:>8.2}% {:>10.1} {:>10.1}",
                if rcvbuf > 0 {
                    format!("{} KiB", rcvbuf >> 10)
                } else {
                    "default".into()
                },
                if rate > 0.0 {
                    format!("{rate:.0}/s")
                } else {
                    "unpaced".into()
                },
                t.records as f64 / t.seconds,
                r.records as f64 / r.seconds.max(1e-9),
                r.installed,
                100.0 * (t.records.saturating_sub(r.records)) as f64 / t.records.max(1) as f64,
                t.bytes as f64 / t.records.max(1) as f64,
                (t.bytes as f64 + (FRAME_OVERHEAD as f64) * t.messages as f64)
                    / t.records.max(1) as f64,
            );
            rows.push(serde_json::json!({
                "rcvbuf_bytes": rcvbuf,
                "rate_per_s": rate,
                "sent": t.records,
                "sent_per_s": t.records as f64 / t.seconds,
                "received": r.records,
                "received_per_s": r.records as f64 / r.seconds.max(1e-9),
                "installed": r.installed,
                "lost_ratio": t.records.saturating_sub(r.records) as f64 / t.records.max(1) as f64,
                "bytes_per_connection": t.bytes as f64 / t.records.max(1) as f64,
                "wire_bytes_per_connection": (t.bytes as f64
                    + (FRAME_OVERHEAD as f64) * t.messages as f64)
                    / t.records.max(1) as f64,
            }));
        }
    }
    Ok(rows)
}
