//! The AF_XDP tools the testbed runs inside its namespaces (as hidden subcommands of
//! uvs-bench, started with `ip netns exec`): a paced UDP generator and the l2fwd ceiling.
//!
//! Both follow crates/xsk/examples (the XDP program in redirect-all mode, `tx_copy` for
//! frames that leave by another interface) and print one JSON line when done.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etherparse::PacketBuilder;
use serde::{Deserialize, Serialize};
use uvs_port::{Frame, Port};
use uvs_xsk::{XdpMode, XdpProgram, XskConfig, XskPair, XskPort};

/// What the generator sends.
#[derive(Clone, Debug)]
pub struct GenSpec {
    pub dev: String,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    /// Destinations, used in turn by the flows.
    pub dst_ips: Vec<Ipv4Addr>,
    pub dst_port: u16,
    /// Distinct flows (source ports 1024..1024+flows).
    pub flows: usize,
    /// Frame length without FCS (60 = a 64-byte frame on the wire).
    pub frame_len: usize,
    /// Offered packets per second; 0 = as fast as the socket takes them.
    pub rate_pps: f64,
    pub seconds: f64,
    /// Transmit queues of `dev`, one sending thread each (a veth delivers a frame to the
    /// peer's receive queue of the same number, so queue i reaches uvsd's worker i).
    pub queues: Vec<u32>,
    /// Cores the sending threads are pinned to, in turn (empty: not pinned).
    pub cores: Vec<usize>,
    /// SYN-flood mode when non-zero: TCP SYNs to `dst_port` from this many spoofed sources
    /// (198.19.0.0/16, routed towards the client but held by nobody), instead of UDP from
    /// `src_ip`. Frames coming back are left to the kernel (no redirect-all), so the
    /// client namespace's own connections keep working beside the flood.
    pub syn_spoof: u32,
}

/// The generator's account of one trial.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct GenResult {
    pub sent: u64,
    pub seconds: f64,
    /// Times the TX ring had no room (the offered rate was the socket's limit).
    pub tx_full: u64,
}

/// One UDP/IPv4 frame per flow with correct checksums (AF_XDP frames carry no partial
/// checksum flag, so receivers verify them in software).
pub fn templates(s: &GenSpec) -> Result<Vec<Vec<u8>>> {
    if !(60..=1514).contains(&s.frame_len) {
        bail!("frame length {} outside 60..=1514", s.frame_len);
    }
    if s.dst_ips.is_empty() || s.flows == 0 || s.flows > 60_000 {
        bail!("need 1..=60000 flows and at least one destination");
    }
    if s.syn_spoof > 0 {
        return syn_templates(s);
    }
    (0..s.flows)
        .map(|i| {
            let dst = s.dst_ips[i % s.dst_ips.len()];
            let b = PacketBuilder::ethernet2(s.src_mac, s.dst_mac)
                .ipv4(s.src_ip.octets(), dst.octets(), 64)
                .udp(1024 + i as u16, s.dst_port);
            let payload = vec![0u8; s.frame_len - 42];
            let mut f = Vec::with_capacity(s.frame_len);
            b.write(&mut f, &payload)?;
            Ok(f)
        })
        .collect()
}

/// The spoofed source of SYN-flood flow `i` and its port: `syn_spoof` addresses of
/// 198.19.0.0/16 in turn, each with ports from 1024 up.
pub fn spoofed(i: usize, sources: u32) -> (Ipv4Addr, u16) {
    let k = (i as u32) % sources.max(1);
    (
        Ipv4Addr::new(198, 19, (k >> 8) as u8, k as u8),
        1024 + (i as u32 / sources.max(1)) as u16,
    )
}

/// One TCP SYN per flow from a spoofed source, distinct sequence numbers, correct
/// checksums, padded to `frame_len` (Ethernet padding after the IP packet).
fn syn_templates(s: &GenSpec) -> Result<Vec<Vec<u8>>> {
    if s.syn_spoof > 65_536 || s.flows / s.syn_spoof as usize > 60_000 {
        bail!("need at most 65536 spoofed sources and 60000 ports per source");
    }
    (0..s.flows)
        .map(|i| {
            let dst = s.dst_ips[i % s.dst_ips.len()];
            let (src, sport) = spoofed(i, s.syn_spoof);
            let b = PacketBuilder::ethernet2(s.src_mac, s.dst_mac)
                .ipv4(src.octets(), dst.octets(), 64)
                .tcp(
                    sport,
                    s.dst_port,
                    0x1000_0000u32.wrapping_add(i as u32),
                    64240,
                )
                .syn();
            let mut f = Vec::with_capacity(s.frame_len);
            b.write(&mut f, &[])?;
            if f.len() < s.frame_len {
                f.resize(s.frame_len, 0);
            }
            Ok(f)
        })
        .collect()
}

fn pin(core: Option<usize>) {
    if let Some(c) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
            eprintln!("warning: could not pin to core {c}");
        }
    }
}

/// Sends for `seconds` at `rate_pps` in total, split evenly over one thread per queue,
/// each sending its share of the flows; the threads' accounts are summed.
pub fn generate(s: &GenSpec) -> Result<GenResult> {
    let frames = templates(s)?;
    if s.queues.is_empty() || s.queues.len() > frames.len() {
        bail!("need between 1 and {} queues", frames.len());
    }
    let prog = XdpProgram::attach(&s.dev, XdpMode::Auto)
        .with_context(|| format!("attaching XDP to {}", s.dev))?;
    // A SYN flood leaves what comes back to the kernel (the client's own connections).
    let capture = s.syn_spoof == 0;
    if capture {
        prog.set_redirect_all(true)?;
    }
    let n = s.queues.len();
    let mut jobs = Vec::with_capacity(n);
    for (i, &q) in s.queues.iter().enumerate() {
        let port = XskPort::open(&s.dev, q, &XskConfig::default())
            .with_context(|| format!("opening {} queue {q}", s.dev))?;
        if capture {
            prog.register_socket(q, port.fd())?;
        }
        // Flow j goes to thread j mod n: each queue carries its own flows, as RSS would.
        let mine: Vec<Vec<u8>> = frames.iter().skip(i).step_by(n).cloned().collect();
        let core = (!s.cores.is_empty()).then(|| s.cores[i % s.cores.len()]);
        jobs.push((port, mine, core));
    }
    let rate = s.rate_pps / n as f64;
    let seconds = s.seconds;
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|(port, frames, core)| {
            std::thread::spawn(move || send_queue(port, &frames, rate, seconds, core))
        })
        .collect();
    let mut total = GenResult {
        sent: 0,
        seconds: 0.0,
        tx_full: 0,
    };
    for h in handles {
        let r = h
            .join()
            .map_err(|_| anyhow::anyhow!("a generator thread panicked"))?;
        total.sent += r.sent;
        total.tx_full += r.tx_full;
        total.seconds = total.seconds.max(r.seconds);
    }
    drop(prog);
    Ok(total)
}

/// One queue's sender: token bucket checked before every batch of ≤ 32 (the copy-mode
/// `sendto` quantum), draining and freeing anything that comes back.
fn send_queue(
    mut port: XskPort,
    frames: &[Vec<u8>],
    rate_pps: f64,
    seconds: f64,
    core: Option<usize>,
) -> GenResult {
    pin(core);
    let mut burst = [Frame::default(); 64];
    let (mut sent, mut tx_full) = (0u64, 0u64);
    let mut next = 0usize;
    let start = Instant::now();
    let dur = Duration::from_secs_f64(seconds);
    loop {
        let el = start.elapsed();
        if el >= dur {
            break;
        }
        let allowed = if rate_pps > 0.0 {
            ((rate_pps * el.as_secs_f64()) as u64).saturating_sub(sent)
        } else {
            u64::MAX
        };
        let n = allowed.min(32);
        for _ in 0..n {
            if !port.tx_copy(&frames[next]) {
                tx_full += 1;
                break;
            }
            next = (next + 1) % frames.len();
            sent += 1;
        }
        port.flush();
        let r = port.rx_burst(&mut burst);
        port.free(&burst[..r]);
    }
    let seconds = start.elapsed().as_secs_f64();
    // Let the TX ring drain so every counted frame has left.
    let drain = Instant::now() + Duration::from_millis(100);
    while Instant::now() < drain {
        port.flush();
        let r = port.rx_burst(&mut burst);
        port.free(&burst[..r]);
    }
    GenResult {
        sent: sent.saturating_sub(port.stats().tx.saturating_sub(port.stats().tx_completed)),
        seconds,
        tx_full,
    }
}

/// What the l2fwd ceiling forwards.
#[derive(Clone, Debug)]
pub struct L2fwdSpec {
    pub rx_dev: String,
    pub tx_dev: String,
    pub src_mac: [u8; 6],
    /// Destination MACs used in turn (the real servers behind the switch).
    pub dst_macs: Vec<[u8; 6]>,
    pub seconds: f64,
    pub core: Option<usize>,
    /// One UMEM shared by both sockets, frames forwarded by descriptor (no copy).
    pub shared_umem: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct L2fwdResult {
    pub forwarded: u64,
    pub dropped: u64,
    /// The receiving socket's kernel counters: frames lost to a full RX ring, and to an
    /// empty fill ring.
    #[serde(default)]
    pub rx_ring_full: u64,
    #[serde(default)]
    pub rx_fill_empty: u64,
    /// This thread's CPU time (not wall time: preemption by other work on the core does
    /// not count) spent in polls that received frames — receive, rewrite, forward, and
    /// the `sendto` kicks in which copy-mode AF_XDP transmits — per forwarded frame.
    #[serde(default)]
    pub busy_cpu_ns_per_frame: f64,
}

/// The calling thread's CPU time, nanoseconds.
fn thread_cpu_ns() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Receives on `rx_dev`, rewrites both MACs and sends a copy out of `tx_dev`: the same
/// two-armed frame path uvsd uses, with no parsing, lookup or scheduling — the ceiling.
/// Creates `ready` once the sockets are bound and rewrites `out` with running totals
/// every second (the harness ends it with SIGTERM).
pub fn l2fwd(s: &L2fwdSpec, ready: Option<&Path>, out: Option<&Path>) -> Result<L2fwdResult> {
    if s.dst_macs.is_empty() {
        bail!("l2fwd needs at least one destination MAC");
    }
    pin(s.core);
    let prog = XdpProgram::attach(&s.rx_dev, XdpMode::Auto)
        .with_context(|| format!("attaching XDP to {}", s.rx_dev))?;
    prog.set_redirect_all(true)?;
    if s.shared_umem {
        return l2fwd_shared(s, &prog, ready, out);
    }
    let mut rx = XskPort::open(&s.rx_dev, 0, &XskConfig::default())?;
    prog.register_socket(0, rx.fd())?;
    let mut tx = XskPort::open(&s.tx_dev, 0, &XskConfig::default())?;
    if let Some(p) = ready {
        std::fs::write(p, "ready\n")?;
    }
    let write_totals = |r: &L2fwdResult| -> Result<()> {
        if let Some(p) = out {
            std::fs::write(p, serde_json::to_string(r)?)?;
        }
        Ok(())
    };
    let mut next_report = Instant::now() + Duration::from_secs(1);

    let mut burst = [Frame::default(); 64];
    let (mut forwarded, mut dropped, mut busy_ns) = (0u64, 0u64, 0u64);
    let mut k = 0usize;
    let end = Instant::now() + Duration::from_secs_f64(s.seconds);
    let mut polls = 0u32;
    loop {
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(1024) {
            let now = Instant::now();
            if now >= end {
                break;
            }
            if now >= next_report {
                next_report = now + Duration::from_secs(1);
                write_totals(&totals(forwarded, dropped, busy_ns, rx.kernel_stats().ok()))?;
            }
        }
        let t0 = thread_cpu_ns();
        let n = rx.rx_burst(&mut burst);
        if n == 0 {
            rx.flush();
            tx.flush();
            continue;
        }
        for f in &burst[..n] {
            let b = rx.buf_mut(f);
            b[..6].copy_from_slice(&s.dst_macs[k]);
            b[6..12].copy_from_slice(&s.src_mac);
            k = (k + 1) % s.dst_macs.len();
            if tx.tx_copy(&b[..f.len as usize]) {
                forwarded += 1;
            } else {
                dropped += 1;
            }
        }
        rx.free(&burst[..n]);
        tx.flush();
        rx.flush();
        busy_ns += thread_cpu_ns().saturating_sub(t0);
    }
    let r = totals(forwarded, dropped, busy_ns, rx.kernel_stats().ok());
    write_totals(&r)?;
    Ok(r)
}

fn totals(
    forwarded: u64,
    dropped: u64,
    busy_ns: u64,
    k: Option<uvs_xsk::XdpStatistics>,
) -> L2fwdResult {
    L2fwdResult {
        forwarded,
        dropped,
        busy_cpu_ns_per_frame: busy_ns as f64 / forwarded.max(1) as f64,
        rx_ring_full: k.as_ref().map_or(0, |k| k.rx_ring_full()),
        rx_fill_empty: k.as_ref().map_or(0, |k| k.rx_fill_ring_empty_descs()),
    }
}

/// [`l2fwd`] over one shared UMEM: the received frame itself goes into the other
/// interface's TX ring, no copy.
fn l2fwd_shared(
    s: &L2fwdSpec,
    prog: &XdpProgram,
    ready: Option<&Path>,
    out: Option<&Path>,
) -> Result<L2fwdResult> {
    let mut pair = XskPair::open((&s.rx_dev, 0), (&s.tx_dev, 0), &XskConfig::default())?;
    prog.register_socket(0, pair.fd(0))?;
    if let Some(p) = ready {
        std::fs::write(p, "ready\n")?;
    }
    let write_totals = |r: &L2fwdResult| -> Result<()> {
        if let Some(p) = out {
            std::fs::write(p, serde_json::to_string(r)?)?;
        }
        Ok(())
    };
    let mut next_report = Instant::now() + Duration::from_secs(1);
    let mut burst = [Frame::default(); 64];
    let (mut forwarded, mut dropped, mut busy_ns) = (0u64, 0u64, 0u64);
    let mut k = 0usize;
    let end = Instant::now() + Duration::from_secs_f64(s.seconds);
    let mut polls = 0u32;
    loop {
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(1024) {
            let now = Instant::now();
            if now >= end {
                break;
            }
            if now >= next_report {
                next_report = now + Duration::from_secs(1);
                write_totals(&totals(
                    forwarded,
                    dropped,
                    busy_ns,
                    pair.kernel_stats(0).ok(),
                ))?;
            }
        }
        let t0 = thread_cpu_ns();
        let n = pair.rx_burst(0, &mut burst);
        if n == 0 {
            pair.flush();
            continue;
        }
        for f in &burst[..n] {
            let b = pair.buf_mut(f);
            b[..6].copy_from_slice(&s.dst_macs[k]);
            b[6..12].copy_from_slice(&s.src_mac);
            k = (k + 1) % s.dst_macs.len();
        }
        let sent = pair.forward(1, &burst[..n]);
        forwarded += sent as u64;
        if sent < n {
            dropped += (n - sent) as u64;
            pair.free(&burst[sent..n]);
        }
        pair.flush();
        busy_ns += thread_cpu_ns().saturating_sub(t0);
    }
    let r = totals(forwarded, dropped, busy_ns, pair.kernel_stats(0).ok());
    write_totals(&r)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> GenSpec {
        GenSpec {
            dev: "x".into(),
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(198, 18, 0, 2),
            dst_ips: vec![Ipv4Addr::new(198, 18, 100, 1)],
            dst_port: 9,
            flows: 4,
            frame_len: 60,
            rate_pps: 0.0,
            seconds: 0.1,
            queues: vec![0],
            cores: vec![],
            syn_spoof: 0,
        }
    }

    #[test]
    fn syn_templates_are_spoofed_syns_padded_to_64_bytes() {
        let mut s = spec();
        s.syn_spoof = 3;
        s.flows = 7;
        s.dst_port = 80;
        let t = templates(&s).unwrap();
        assert_eq!(t.len(), 7);
        for (i, f) in t.iter().enumerate() {
            assert_eq!(f.len(), 60);
            let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
            let (src, sport) = spoofed(i, 3);
            match p.net {
                Some(etherparse::NetSlice::Ipv4(ip)) => {
                    assert_eq!(ip.header().source_addr(), src);
                    assert_eq!(ip.header().total_len(), 40);
                }
                _ => panic!("not IPv4"),
            }
            match p.transport {
                Some(etherparse::TransportSlice::Tcp(t)) => {
                    assert!(t.syn() && !t.ack());
                    assert_eq!((t.source_port(), t.destination_port()), (sport, 80));
                }
                _ => panic!("not TCP"),
            }
        }
        assert_eq!(spoofed(4, 3), (Ipv4Addr::new(198, 19, 0, 1), 1025));
    }

    #[test]
    fn templates_are_valid_64_byte_udp_frames_one_per_flow() {
        let t = templates(&spec()).unwrap();
        assert_eq!(t.len(), 4);
        for (i, f) in t.iter().enumerate() {
            assert_eq!(f.len(), 60);
            let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
            match p.transport {
                Some(etherparse::TransportSlice::Udp(u)) => {
                    assert_eq!(u.source_port(), 1024 + i as u16);
                    assert_eq!(u.destination_port(), 9);
                }
                _ => panic!("not UDP"),
            }
        }
    }

    #[test]
    fn templates_reject_bad_sizes() {
        let mut s = spec();
        s.frame_len = 59;
        assert!(templates(&s).is_err());
        s.frame_len = 60;
        s.flows = 0;
        assert!(templates(&s).is_err());
    }
}
