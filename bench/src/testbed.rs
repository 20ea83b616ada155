//! `uvs-bench testbed`: 64-byte UDP through uvsd on the veth test network, beside its
//! ceiling and peers measured the same way in the same run on the same network:
//!
//! - **uvs**: uvsd (NAT, rr, one pinned worker) balancing VIP 198.18.100.1:9 over the
//!   three real servers;
//! - **l2fwd**: an AF_XDP forwarder with no processing (MAC rewrite, copy to the server
//!   side) — the frame path uvsd uses, so uvs / l2fwd is what the balancing costs;
//! - **l2fwd-shared**: the same over one UMEM shared by both sockets, each frame
//!   forwarded by its descriptor (no copy) — l2fwd-shared / l2fwd is what the copy costs;
//! - **kernel**: the balancer namespace's IPv4 forwarding to the real servers;
//! - **nft**: nftables DNAT as kube-proxy writes it (`dnat to numgen inc mod 3 map`).
//!
//! The generator is an AF_XDP sender in the client namespace (pinned to `gen_core`); the
//! receivers are nftables netdev-ingress counters on each real server's link that count
//! and drop the benchmark's UDP port before the IP stack (ARP and everything else pass).
//! For the kernel peers RPS moves the balancer's receive processing to `dut_core`, the
//! core uvsd's worker and l2fwd are pinned to, so every subject gets the same two cores.

pub mod cli;
pub mod net;
pub mod search;
pub mod xsk;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

pub use net::KernelPeer;
use net::{format_mac, Spawned, Testbed};
use search::{SearchSettings, Throughput, Trial};

pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 1);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const REALS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(198, 18, 1, 11),
    Ipv4Addr::new(198, 18, 1, 12),
    Ipv4Addr::new(198, 18, 1, 13),
];
/// The benchmark's UDP port (discard): the real servers' counters match only this.
pub const UDP_PORT: u16 = 9;
/// The test network's IPv6 VIP and real servers (`scripts/testbed.sh`, `configs/demo.yaml`).
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x100, 0, 0, 0, 1);
pub const REALS6: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x11),
    Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x12),
    Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x13),
];

/// The address family a measurement runs over: the test network has both, with the same
/// roles (`scripts/testbed.sh`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    #[default]
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn name(&self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    pub fn vip(&self) -> IpAddr {
        match self {
            Family::Ipv4 => VIP.into(),
            Family::Ipv6 => VIP6.into(),
        }
    }

    pub fn reals(&self) -> [IpAddr; 3] {
        match self {
            Family::Ipv4 => REALS.map(IpAddr::from),
            Family::Ipv6 => REALS6.map(IpAddr::from),
        }
    }

    /// The nftables family of a table of this address family's rules (`ip`, `ip6`).
    pub fn nft_table(&self) -> &'static str {
        match self {
            Family::Ipv4 => "ip",
            Family::Ipv6 => "ip6",
        }
    }

    /// The sysctl that turns the kernel's forwarding of this family on and off.
    pub fn forwarding_sysctl(&self) -> &'static str {
        match self {
            Family::Ipv4 => "net.ipv4.ip_forward",
            Family::Ipv6 => "net.ipv6.conf.all.forwarding",
        }
    }

    /// A host route's prefix length (the VIP on a loopback).
    pub fn host_prefix(&self) -> u8 {
        match self {
            Family::Ipv4 => 32,
            Family::Ipv6 => 128,
        }
    }
}

/// `addr:port`, an IPv6 address in brackets (as URLs, HAProxy and nginx take it).
pub fn host_port(addr: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Uvs,
    L2fwd,
    L2fwdShared,
    Kernel,
    Nft,
}

impl Subject {
    pub fn parse(s: &str) -> Result<Subject> {
        Ok(match s {
            "uvs" => Subject::Uvs,
            "l2fwd" => Subject::L2fwd,
            "l2fwd-shared" => Subject::L2fwdShared,
            "kernel" => Subject::Kernel,
            "nft" => Subject::Nft,
            _ => bail!("unknown subject '{s}' (uvs, l2fwd, l2fwd-shared, kernel, nft)"),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Subject::Uvs => "uvs",
            Subject::L2fwd => "l2fwd",
            Subject::L2fwdShared => "l2fwd-shared",
            Subject::Kernel => "kernel",
            Subject::Nft => "nft",
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Subject::Uvs => "uvsd NAT, rr over 3 real servers, 1 pinned AF_XDP worker",
            Subject::L2fwd => "AF_XDP l2fwd: MAC rewrite, copy to the server side (ceiling)",
            Subject::L2fwdShared => {
                "AF_XDP l2fwd over one shared UMEM: MAC rewrite, forwarded by descriptor"
            }
            Subject::Kernel => "kernel IPv4 forwarding in the balancer namespace",
            Subject::Nft => "nftables DNAT, numgen inc mod 3 map (kube-proxy style)",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Options {
    pub uvsd: Option<PathBuf>,
    pub testbed_script: PathBuf,
    pub tag: String,
    pub subjects: Vec<Subject>,
    pub trial_seconds: f64,
    pub search: SearchSettings,
    pub flows: usize,
    pub frame_len: usize,
    pub gen_core: usize,
    pub dut_core: usize,
    /// Queue counts the `uvs` subject is measured with (one uvsd worker and one generator
    /// thread per queue); the other subjects use one.
    pub queues: Vec<usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SubjectResult {
    pub subject: Subject,
    /// Receive queues per balancer link, uvsd workers and generator threads.
    pub queues: usize,
    pub description: &'static str,
    pub throughput: Option<Throughput>,
    /// Why this subject has no figure.
    pub error: Option<String>,
    /// l2fwd's own account (frames forwarded and refused).
    pub notes: Vec<String>,
    /// /proc/loadavg before and after: other work on the machine skews figures.
    pub loadavg: (String, String),
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Ratio of two subjects' one-queue figures (`None` when either is missing or zero).
pub fn ratio(results: &[SubjectResult], a: Subject, b: Subject, max: bool) -> Option<f64> {
    ratio_q(results, (a, 1), (b, 1), max)
}

/// Ratio of two (subject, queues) figures (`None` when either is missing or zero).
pub fn ratio_q(
    results: &[SubjectResult],
    a: (Subject, usize),
    b: (Subject, usize),
    max: bool,
) -> Option<f64> {
    let get = |(s, q): (Subject, usize)| {
        results
            .iter()
            .find(|r| r.subject == s && r.queues == q)
            .and_then(|r| r.throughput.as_ref())
            .map(|t| {
                if max {
                    t.max_delivered_pps
                } else {
                    t.zero_loss_pps
                }
            })
    };
    match (get(a), get(b)) {
        (Some(x), Some(y)) if y > 0.0 => Some(x / y),
        _ => None,
    }
}

struct Net {
    tb: Testbed,
    self_exe: PathBuf,
    client_mac: [u8; 6],
    lb0_mac: [u8; 6],
    lb1_mac: [u8; 6],
    rs_macs: Vec<[u8; 6]>,
}

/// Brings up the network and runs every subject; the network is removed when this
/// returns, also on error.
pub fn run(o: &Options) -> Result<Vec<SubjectResult>> {
    let self_exe = std::env::current_exe().context("locating uvs-bench")?;
    eprintln!("testbed: bringing up the test network (tag {})", o.tag);
    // Transmit checksum offload off, as when bench/README.md's figures were measured. No
    // socket is on the measured path (an AF_XDP generator with full checksums, nftables
    // receivers in netdev ingress), so uvs verifies every frame but completes none.
    let most = o.queues.iter().copied().max().unwrap_or(1);
    let tb = Testbed::up_queues(&o.testbed_script, &o.tag, "nat", false, most)?;
    prepare_receivers(&tb)?;
    let net = Net {
        client_mac: tb.mac("client", "uvs-c0")?,
        lb0_mac: tb.mac("lb", "uvs-lb0")?,
        lb1_mac: tb.mac("lb", "uvs-lb1")?,
        rs_macs: (1..=3)
            .map(|i| tb.mac(&format!("rs{i}"), "uvs-r0"))
            .collect::<Result<_>>()?,
        tb,
        self_exe,
    };
    let mut runs = Vec::new();
    for &s in &o.subjects {
        match s {
            Subject::Uvs => runs.extend(o.queues.iter().map(|&q| (s, q))),
            _ => runs.push((s, 1)),
        }
    }
    let mut results = Vec::new();
    for (s, queues) in runs {
        eprintln!(
            "testbed: {} ({queues} queue(s)) — {}",
            s.name(),
            s.describe()
        );
        let before = loadavg();
        let r = set_link_queues(&net.tb, queues).and_then(|()| run_subject(&net, o, s, queues));
        let (throughput, error, notes) = match r {
            Ok((t, notes)) => (Some(t), None, notes),
            Err(e) => {
                eprintln!("testbed: {} failed: {e:#}", s.name());
                (None, Some(format!("{e:#}")), Vec::new())
            }
        };
        results.push(SubjectResult {
            subject: s,
            queues,
            description: s.describe(),
            throughput,
            error,
            notes,
            loadavg: (before, loadavg()),
        });
    }
    Ok(results)
}

/// Count-and-drop of the benchmark port on each real server's link (netdev ingress, before
/// the IP stack); ARP resolution from the balancer; long bridge ageing so no flooding.
fn prepare_receivers(tb: &Testbed) -> Result<()> {
    for i in 1..=3 {
        tb.nft(
            &format!("rs{i}"),
            &format!(
                "table netdev uvsbench {{\n counter rx {{}}\n chain ingress {{\n  type filter hook ingress device \"uvs-r0\" priority -500; policy accept;\n  udp dport {UDP_PORT} counter name \"rx\" drop\n }}\n}}\n"
            ),
        )?;
    }
    tb.run(
        "sw",
        &[
            "ip",
            "link",
            "set",
            "uvs-br0",
            "type",
            "bridge",
            "ageing_time",
            "360000",
        ],
    )?;
    for rs in REALS {
        tb.run("lb", &["ping", "-c", "1", "-W", "1", &rs.to_string()])
            .with_context(|| format!("real server {rs} does not answer ping"))?;
    }
    Ok(())
}

/// Frames counted by the three real servers so far.
fn received(tb: &Testbed) -> Result<u64> {
    let mut sum = 0;
    for i in 1..=3 {
        let out = tb.run(
            &format!("rs{i}"),
            &["nft", "list", "counter", "netdev", "uvsbench", "rx"],
        )?;
        sum += parse_nft_packets(&out)
            .with_context(|| format!("no packet count in nft output: {out}"))?;
    }
    Ok(sum)
}

/// `packets N` from `nft list counter` output.
pub fn parse_nft_packets(out: &str) -> Option<u64> {
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "packets" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// nftables DNAT of `proto` to port `port` of the VIP of `family` over the first `reals`
/// real servers, in a table `ip uvsbench` or `ip6 uvsbench`.
pub(crate) fn dnat_rules(family: Family, proto: &str, port: u16, reals: usize) -> String {
    format!(
        "table {t} uvsbench {{\n chain prerouting {{\n  type nat hook prerouting priority dstnat; policy accept;\n  {t} daddr {} {proto} dport {port} {}\n }}\n}}\n",
        family.vip(),
        dnat_to(family, reals),
        t = family.nft_table(),
    )
}

/// nftables' `dnat to` over the first `reals` real servers of `family` in turn
/// (kube-proxy style).
pub(crate) fn dnat_to(family: Family, reals: usize) -> String {
    let all = family.reals();
    let reals = reals.clamp(1, all.len());
    let map: Vec<String> = all[..reals]
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{i} : {r}"))
        .collect();
    format!(
        "dnat to numgen inc mod {reals} map {{ {} }}",
        map.join(", ")
    )
}

/// The uvsd configuration of the UDP benchmark service: `cores.len()` queues on each
/// link, served by as many workers (worker i: queue i, pinned to `cores[i]`).
pub fn uvsd_udp_config(cores: &[usize]) -> String {
    let reals: String = REALS
        .iter()
        .map(|r| format!("      - address: {r}\n"))
        .collect();
    let q = cores.len();
    let cores = cores
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "interfaces:\n  - name: uvs-lb0\n    queues: {q}\n    local: [198.18.0.3]\n    networks: [198.18.0.0/24]\n  - name: uvs-lb1\n    queues: {q}\n    local: [198.18.1.3]\n    networks: [198.18.1.0/24]\nworkers:\n  count: {q}\n  cores: [{cores}]\nconn_table:\n  capacity: 65536\nservices:\n  - name: bench-udp\n    vip: {VIP}\n    protocol: udp\n    port: {UDP_PORT}\n    scheduler: rr\n    forwarding: nat\n    real_servers:\n{reals}"
    )
}

/// Starts uvsd in the balancer namespace with `config` and waits for its admin socket.
pub fn start_uvsd(
    tb: &Testbed,
    uvsd: &std::path::Path,
    config: &str,
    limit_s: f64,
) -> Result<Spawned> {
    if !uvsd.is_file() {
        bail!(
            "uvsd not found at {}: build it with `cargo build --release -p uvs-control` into the same target directory, or pass --uvsd PATH",
            uvsd.display()
        );
    }
    let cfg = tb.state.join("bench-uvs.yaml");
    let sock = tb.state.join("bench-uvsadm.sock");
    let _ = std::fs::remove_file(&sock);
    std::fs::write(&cfg, config)?;
    let log = std::fs::File::create(tb.state.join("bench-uvsd.log"))?;
    let child = tb
        .command("lb", &[])
        .arg(uvsd)
        .arg("--config")
        .arg(&cfg)
        .arg("--admin-socket")
        .arg(&sock)
        .args(["--run-for", &format!("{limit_s:.0}")])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting uvsd")?;
    let mut d = Spawned::new("uvsd", child);
    let start = Instant::now();
    while !sock.exists() {
        if !d.alive() || start.elapsed() > Duration::from_secs(15) {
            d.stop();
            bail!(
                "uvsd did not come up:\n{}",
                std::fs::read_to_string(tb.state.join("bench-uvsd.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(d)
}

/// Sets the queues in use on both ends of the balancer's two links to `queues` (the links
/// are created with the most any run asks for). A veth delivers a frame to the receive
/// queue numbered as the sender's transmit queue, which the sender picks by flow hash: with
/// more queues in use than the subject serves, the generator's frames or the real servers'
/// answers (the ARP replies uvsd waits for) can land on a queue nobody reads, and nothing
/// arrives.
fn set_link_queues(tb: &Testbed, queues: usize) -> Result<()> {
    let q = queues.to_string();
    for (role, dev) in [
        ("client", "uvs-c0"),
        ("lb", "uvs-lb0"),
        ("lb", "uvs-lb1"),
        ("sw", "uvs-sw0"),
    ] {
        tb.run(role, &["ethtool", "-L", dev, "rx", &q, "tx", &q])?;
    }
    Ok(())
}

/// Cores of the generator's threads and of uvsd's workers with `queues` queues: one queue
/// keeps them apart (generator on `gen_core`, worker on `dut_core`); with more, each core
/// gets one generator thread and one worker, in turn (a 2-core machine has no spare).
pub fn queue_cores(o: &Options, queues: usize) -> (Vec<usize>, Vec<usize>) {
    if queues <= 1 {
        return (vec![o.gen_core], vec![o.dut_core]);
    }
    let pair = [o.gen_core, o.dut_core];
    let gen = (0..queues).map(|i| pair[i % 2]).collect();
    let dut = (0..queues).map(|i| pair[(i + 1) % 2]).collect();
    (gen, dut)
}

fn run_subject(
    n: &Net,
    o: &Options,
    s: Subject,
    queues: usize,
) -> Result<(Throughput, Vec<String>)> {
    let (gen_cores, dut_cores) = queue_cores(o, queues);
    let tb = &n.tb;
    // Bound for helpers: the whole search plus slack, so nothing outlives a crashed run.
    let budget = (o.search.max_steps as f64 + 3.0) * (o.trial_seconds + 2.0) + 30.0;
    let mut notes = Vec::new();
    let mut helper: Option<Spawned> = None;
    let mut _kernel: Option<KernelPeer> = None;
    let l2fwd_out = tb.state.join("bench-l2fwd.json");
    match s {
        Subject::Uvs => {
            let uvsd = o
                .uvsd
                .clone()
                .or_else(|| net::sibling_binary("uvsd"))
                .unwrap_or_else(|| PathBuf::from("uvsd"));
            helper = Some(start_uvsd(tb, &uvsd, &uvsd_udp_config(&dut_cores), budget)?);
        }
        Subject::L2fwd | Subject::L2fwdShared => {
            let ready = tb.state.join("bench-l2fwd.ready");
            let _ = std::fs::remove_file(&ready);
            let _ = std::fs::remove_file(&l2fwd_out);
            let dst: Vec<String> = n.rs_macs.iter().map(format_mac).collect();
            let child = tb
                .command("lb", &[])
                .arg(&n.self_exe)
                .args(["xsk-l2fwd", "--rx-dev", "uvs-lb0", "--tx-dev", "uvs-lb1"])
                .args(["--src-mac", &format_mac(&n.lb1_mac)])
                .args(["--dst-macs", &dst.join(",")])
                .args(["--seconds", &format!("{budget:.0}")])
                .args(["--core", &o.dut_core.to_string()])
                .arg("--ready")
                .arg(&ready)
                .arg("--out")
                .arg(&l2fwd_out)
                .args((s == Subject::L2fwdShared).then_some("--shared-umem"))
                .stdout(std::process::Stdio::null())
                .spawn()
                .context("starting l2fwd")?;
            let mut h = Spawned::new("l2fwd", child);
            let start = Instant::now();
            while !ready.exists() {
                if !h.alive() || start.elapsed() > Duration::from_secs(10) {
                    bail!("l2fwd did not come up");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            helper = Some(h);
        }
        Subject::Kernel => _kernel = Some(KernelPeer::set_up(tb, None, Some(o.dut_core))?),
        Subject::Nft => {
            _kernel = Some(KernelPeer::set_up(
                tb,
                Some(("udp", UDP_PORT, REALS.len())),
                Some(o.dut_core),
            )?)
        }
    }
    let dst_ips: Vec<Ipv4Addr> = match s {
        Subject::Kernel => REALS.to_vec(),
        _ => vec![VIP],
    };
    let trial = |rate: f64, seconds: f64| -> Result<Trial> {
        let before = received(tb)?;
        let g = run_generator(n, o, &dst_ips, rate, seconds, &gen_cores)?;
        std::thread::sleep(Duration::from_millis(100));
        let after = received(tb)?;
        Ok(Trial::new(rate, g.sent, after - before, g.seconds))
    };
    // Warm-up: neighbour resolution and one connection entry per flow before measuring.
    let w = trial(50_000.0, 0.5)?;
    if w.received == 0 {
        let log = std::fs::read_to_string(tb.state.join("bench-uvsd.log")).unwrap_or_default();
        bail!(
            "nothing arrived at the real servers during warm-up ({} sent){}",
            w.sent,
            if log.is_empty() {
                String::new()
            } else {
                format!("; uvsd's log:\n{log}")
            }
        );
    }
    let mut step = 0;
    let t = search::search(&o.search, |rate| {
        let t = trial(rate, o.trial_seconds)?;
        step += 1;
        eprintln!(
            "  {:<6} trial {step}: requested {:>9} offered {:>7.0} kpps delivered {:>7.0} kpps loss {:.3}%",
            s.name(),
            if rate == 0.0 { "max".to_string() } else { format!("{:.0} kpps", rate / 1e3) },
            t.offered_pps / 1e3,
            t.delivered_pps / 1e3,
            t.loss_ratio * 100.0
        );
        Ok(t)
    })?;
    if let Some(mut h) = helper {
        h.stop();
        if matches!(s, Subject::L2fwd | Subject::L2fwdShared) {
            if let Ok(txt) = std::fs::read_to_string(&l2fwd_out) {
                notes.push(format!("l2fwd: {}", txt.trim()));
            }
        }
    }
    Ok((t, notes))
}

fn run_generator(
    n: &Net,
    o: &Options,
    dst_ips: &[Ipv4Addr],
    rate: f64,
    seconds: f64,
    cores: &[usize],
) -> Result<xsk::GenResult> {
    let dsts: Vec<String> = dst_ips.iter().map(|a| a.to_string()).collect();
    let join = |v: Vec<String>| v.join(",");
    let queues = join((0..cores.len()).map(|q| q.to_string()).collect());
    let cores = join(cores.iter().map(|c| c.to_string()).collect());
    let child =
        n.tb.command("client", &[])
            .arg(&n.self_exe)
            .args(["xsk-gen", "--dev", "uvs-c0"])
            .args(["--src-mac", &format_mac(&n.client_mac)])
            .args(["--dst-mac", &format_mac(&n.lb0_mac)])
            .args(["--src-ip", &CLIENT.to_string()])
            .args(["--dst-ips", &dsts.join(",")])
            .args(["--port", &UDP_PORT.to_string()])
            .args(["--flows", &o.flows.to_string()])
            .args(["--frame-len", &o.frame_len.to_string()])
            .args(["--rate", &format!("{rate:.0}")])
            .args(["--seconds", &seconds.to_string()])
            .args(["--queue", &queues])
            .args(["--core", &cores])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting the generator")?;
    let out =
        Spawned::new("generator", child).wait_output(Duration::from_secs_f64(seconds + 15.0))?;
    if !out.status.success() {
        bail!(
            "generator failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("generator output '{line}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_counter_output_parses() {
        let out = "table netdev uvsbench {\n\tcounter rx {\n\t\tpackets 1234 bytes 74040\n\t}\n}\n";
        assert_eq!(parse_nft_packets(out), Some(1234));
        assert_eq!(parse_nft_packets("nothing"), None);
    }

    #[test]
    fn dnat_rule_is_kube_proxy_style() {
        let r = dnat_rules(Family::Ipv4, "udp", 9, 3);
        assert!(r.contains("udp dport 9 dnat to numgen inc mod 3 map { 0 : 198.18.1.11, 1 : 198.18.1.12, 2 : 198.18.1.13 }"), "{r}");
        let one = dnat_rules(Family::Ipv4, "tcp", 80, 1);
        assert!(
            one.contains("tcp dport 80 dnat to numgen inc mod 1 map { 0 : 198.18.1.11 }"),
            "{one}"
        );
        let six = dnat_rules(Family::Ipv6, "tcp", 80, 3);
        assert!(six.starts_with("table ip6 uvsbench"), "{six}");
        assert!(six.contains("ip6 daddr 2001:2:0:100::1 tcp dport 80 dnat to numgen inc mod 3 map { 0 : 2001:2:0:1::11, 1 : 2001:2:0:1::12, 2 : 2001:2:0:1::13 }"), "{six}");
    }

    #[test]
    fn uvsd_config_parses_as_a_uvs_config() {
        for cores in [&[1][..], &[1, 0]] {
            let text = uvsd_udp_config(cores);
            let cfg = uvs_config::load_str(&text, "bench.yaml");
            assert!(cfg.is_ok(), "{text}\n{:?}", cfg.err());
            let cfg = cfg.unwrap();
            assert_eq!(cfg.workers.count, cores.len());
            assert!(cfg
                .interfaces
                .iter()
                .all(|i| i.queues as usize == cores.len()));
        }
    }

    #[test]
    fn each_core_gets_one_generator_thread_and_one_worker() {
        let o = Options {
            uvsd: None,
            testbed_script: PathBuf::new(),
            tag: "t".into(),
            subjects: vec![Subject::Uvs],
            trial_seconds: 1.0,
            search: SearchSettings {
                loss_tolerance: 0.001,
                max_steps: 1,
                resolution: 0.02,
            },
            flows: 4,
            frame_len: 60,
            gen_core: 0,
            dut_core: 1,
            queues: vec![1, 2],
        };
        assert_eq!(queue_cores(&o, 1), (vec![0], vec![1]));
        assert_eq!(queue_cores(&o, 2), (vec![0, 1], vec![1, 0]));
    }

    #[test]
    fn ratios_need_both_figures() {
        let mk = |s, z| SubjectResult {
            subject: s,
            queues: 1,
            description: "",
            throughput: Some(Throughput {
                zero_loss_pps: z,
                max_delivered_pps: z * 2.0,
                max_offered_pps: 0.0,
                generator_bound: false,
                trials: vec![],
            }),
            error: None,
            notes: vec![],
            loadavg: Default::default(),
        };
        let r = vec![mk(Subject::Uvs, 900.0), mk(Subject::L2fwd, 1000.0)];
        assert_eq!(ratio(&r, Subject::Uvs, Subject::L2fwd, false), Some(0.9));
        assert_eq!(ratio(&r, Subject::Uvs, Subject::L2fwd, true), Some(0.9));
        assert_eq!(ratio(&r, Subject::Uvs, Subject::Nft, false), None);
    }
}
