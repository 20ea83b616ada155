//! `uvs-bench synflood` (root): a spoofed-source SYN flood at the AF_XDP generator's
//! maximum rate against the VIP while legitimate clients use it — wrk with
//! `Connection: close`, wrk kept alive, and a sha256-checked download from the nginx real
//! servers — for three subjects on the same test network, one after another:
//!
//! - `uvs-synproxy`: uvsd, NAT, `syn_proxy: true`, a connection table of `--capacity`
//!   entries: spoofed SYNs get a cookie SYN-ACK and no entry;
//! - `uvs-nat`: the same without `syn_proxy`, with IPVS's `drop_entry` defence (uvs's
//!   default): every spoofed SYN takes an entry until the table is 7/8 full, then the
//!   control thread drops the half-open entries and the flood fills it again;
//! - `uvs-nat-plain`: `drop_entry: false` as well — IPVS with no defence: the table fills
//!   and new clients are refused;
//! - `nft-synproxy`: the kernel's `synproxy` statement (nftables, forward hook, SYNs
//!   untracked) in front of an nftables DNAT to the same servers (the DNAT in the `output`
//!   hook, where the kernel's synproxy sends its own SYN to the server).
//!
//! The spoofed sources are 198.19.0.0/16, which the balancer routes back towards the
//! client's link (as a router would towards the Internet) and nobody holds, so their
//! SYN-ACKs go unanswered. Every run is bounded (`--seconds` ≤ 120, hard process limits).

pub mod report;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use crate::http::wrk::{self, WrkResult};
use crate::testbed::net::{self, format_mac, Spawned, Testbed};
use crate::testbed::{start_uvsd, REALS, VIP};
use report::{markdown, row, Cookies, FloodRun};

/// Spoofed sources: inside the benchmarking range, outside the test network's links.
const SPOOF_NET: &str = "198.19.0.0/16";
const SPOOF_PREFIX: &str = "198.19.";

#[derive(Args, Debug)]
pub struct SynfloodArgs {
    /// The uvsd binary (default: the one beside uvs-bench); uvsadm is looked up beside it.
    #[arg(long)]
    pub uvsd: Option<PathBuf>,
    #[arg(long)]
    pub testbed_script: Option<PathBuf>,
    /// Testbed tag (≤ 8 characters).
    #[arg(long, default_value = "bflood")]
    pub tag: String,
    /// Subjects in order (uvs-synproxy, uvs-nat, uvs-nat-plain, nft-synproxy).
    #[arg(long, value_delimiter = ',', default_values_t = Subject::ALL.iter().map(|s| s.name().to_string()).collect::<Vec<_>>())]
    pub subjects: Vec<String>,
    /// Seconds of flood per subject (2–120).
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    /// Offered SYNs per second; 0 = the generator's maximum.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Connection-table entries of the uvs subjects (`conn_table: capacity`).
    #[arg(long, default_value_t = 4096, value_parser = crate::args::count)]
    pub capacity: usize,
    /// Distinct spoofed flows (sources × ports).
    #[arg(long, default_value_t = 60_000, value_parser = crate::args::count)]
    pub flows: usize,
    /// Spoofed source addresses (198.19.0.0/16).
    #[arg(long, default_value_t = 1000, value_parser = crate::args::count32)]
    pub sources: u32,
    /// Size of the download in MB (10^6 bytes).
    #[arg(long, default_value_t = 50)]
    pub download_mb: u64,
    /// wrk connections.
    #[arg(long, default_value_t = 20, value_parser = crate::args::count32)]
    pub connections: u32,
    /// Seconds of the no-flood wrk baseline per subject and connection mode (0: none).
    #[arg(long, default_value_t = 3.0)]
    pub baseline_seconds: f64,
    #[arg(long, default_value_t = 0)]
    pub gen_core: usize,
    /// Core of uvsd's worker.
    #[arg(long, default_value_t = 1)]
    pub dut_core: usize,
    /// Write every figure and its settings here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the Markdown table here (also printed).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Subject {
    UvsSynproxy,
    UvsNat,
    UvsNatPlain,
    NftSynproxy,
}

impl Subject {
    const ALL: [Subject; 4] = [
        Subject::UvsSynproxy,
        Subject::UvsNat,
        Subject::UvsNatPlain,
        Subject::NftSynproxy,
    ];

    fn name(&self) -> &'static str {
        match self {
            Subject::UvsSynproxy => "uvs-synproxy",
            Subject::UvsNat => "uvs-nat",
            Subject::UvsNatPlain => "uvs-nat-plain",
            Subject::NftSynproxy => "nft-synproxy",
        }
    }

    fn parse(s: &str) -> Result<Subject> {
        Self::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown subject '{s}' (uvs-synproxy, uvs-nat, uvs-nat-plain, nft-synproxy)"
                )
            })
    }

    fn describe(&self) -> &'static str {
        match self {
            Subject::UvsSynproxy => "uvsd NAT, syn_proxy: true, rr over 3 nginx",
            Subject::UvsNat => "uvsd NAT without syn_proxy, drop_entry on (default)",
            Subject::UvsNatPlain => "uvsd NAT without syn_proxy, drop_entry: false",
            Subject::NftSynproxy => {
                "nftables synproxy (forward hook, SYNs notrack) + DNAT numgen mod 3 (output hook)"
            }
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The uvsd configuration: NAT to the three nginx servers, `capacity` entries, the
/// spoofed network routed back through the client (a router's place). The table must
/// also hold the legitimate connections, and wrk's connection-per-request run opens
/// thousands a second: closing states last 1 s instead of IPVS's 10–120 s, or closed
/// connections alone would fill 4 096 entries. SYN_RECV keeps IPVS's 60 s.
pub fn uvsd_config(s: Subject, capacity: usize, core: usize) -> String {
    let syn_proxy = s == Subject::UvsSynproxy;
    let drop_entry = if s == Subject::UvsNatPlain {
        "drop_entry: false\n"
    } else {
        ""
    };
    let reals: String = REALS
        .iter()
        .map(|r| format!("      - address: {r}\n"))
        .collect();
    let sp = if syn_proxy {
        "    syn_proxy: true\n"
    } else {
        ""
    };
    format!(
        "interfaces:\n  - name: uvs-lb0\n    queues: 1\n    local: [198.18.0.3]\n    networks: [198.18.0.0/24]\n    routes:\n      - {{ prefix: {SPOOF_NET}, via: 198.18.0.2 }}\n  - name: uvs-lb1\n    queues: 1\n    local: [198.18.1.3]\n    networks: [198.18.1.0/24]\nworkers:\n  count: 1\n  cores: [{core}]\nconn_table:\n  capacity: {capacity}\n{drop_entry}timeouts:\n  tcp_fin_wait: 1\n  tcp_time_wait: 1\n  tcp_close: 1\n  tcp_close_wait: 1\n  tcp_last_ack: 1\nmetrics:\n  listen: 127.0.0.1:9100\nservices:\n  - name: bench-web\n    vip: {VIP}\n    protocol: tcp\n    port: 80\n    scheduler: rr\n    forwarding: nat\n{sp}    real_servers:\n{reals}"
    )
}

/// nftables: SYNs to the VIP untracked (raw prerouting), the `synproxy` statement in the
/// forward hook for untracked and invalid packets (the kernel's documented set-up, with
/// `nf_conntrack_tcp_loose=0` so that a cookie ACK is invalid), and the DNAT in the nat
/// `output` hook: synproxy sends its SYN to the server from the local stack.
pub fn nft_synproxy_rules() -> String {
    format!(
        "table ip uvsflood {{\n chain flood_pre {{\n  type filter hook prerouting priority raw; policy accept;\n  iif \"uvs-lb0\" ip daddr {VIP} tcp dport 80 tcp flags & (fin|syn|rst|ack) == syn notrack\n }}\n chain flood_forward {{\n  type filter hook forward priority filter; policy accept;\n  ip daddr {VIP} tcp dport 80 ct state invalid,untracked synproxy mss 1460 wscale 7 timestamp sack-perm\n  ip daddr {VIP} tcp dport 80 ct state invalid drop\n }}\n chain flood_out {{\n  type nat hook output priority -100; policy accept;\n  ip daddr {VIP} tcp dport 80 dnat to numgen inc mod 3 map {{ 0 : {}, 1 : {}, 2 : {} }}\n }}\n}}\n",
        REALS[0], REALS[1], REALS[2]
    )
}

/// The subject's set-up; dropping it undoes it.
enum Setup<'a> {
    Uvs(Spawned),
    Nft(&'a Testbed),
}

impl Drop for Setup<'_> {
    fn drop(&mut self) {
        match self {
            Setup::Uvs(p) => p.stop(),
            Setup::Nft(tb) => {
                let _ = tb.run("lb", &["nft", "delete", "table", "ip", "uvsflood"]);
                let _ = tb.sh(
                    "lb",
                    &format!(
                        "ip route del {VIP}/32; sysctl -qw net.ipv4.ip_forward=0 net.netfilter.nf_conntrack_tcp_loose=1"
                    ),
                );
            }
        }
    }
}

fn uvsd_path(a: &SynfloodArgs) -> PathBuf {
    a.uvsd
        .clone()
        .or_else(|| net::sibling_binary("uvsd"))
        .unwrap_or_else(|| PathBuf::from("uvsd"))
}

fn set_up<'a>(tb: &'a Testbed, s: Subject, a: &SynfloodArgs) -> Result<Setup<'a>> {
    let limit = a.seconds * 3.0 + a.baseline_seconds * 2.0 + 120.0;
    Ok(match s {
        Subject::UvsSynproxy | Subject::UvsNat | Subject::UvsNatPlain => Setup::Uvs(start_uvsd(
            tb,
            &uvsd_path(a),
            &uvsd_config(s, a.capacity, a.dut_core),
            limit,
        )?),
        Subject::NftSynproxy => {
            let setup = Setup::Nft(tb);
            tb.sh(
                "lb",
                &format!(
                    "sysctl -qw net.ipv4.ip_forward=1 net.netfilter.nf_conntrack_tcp_loose=0 && ip route replace {VIP}/32 via {}",
                    REALS[0]
                ),
            )?;
            tb.nft("lb", &nft_synproxy_rules())?;
            setup
        }
    })
}

/// (SYN defence counters, table-full drops) now, from uvsd's metrics or the kernel's
/// `/proc/net/stat/synproxy` in the balancer namespace.
fn counters(tb: &Testbed, s: Subject) -> Result<(Cookies, u64)> {
    if s == Subject::NftSynproxy {
        let text = tb.run("lb", &["cat", "/proc/net/stat/synproxy"])?;
        let mut c = Cookies::default();
        // One line per CPU, hexadecimal: entries syn_received cookie_invalid
        // cookie_valid cookie_retrans conn_reopened.
        for line in text.lines().skip(1) {
            let v: Vec<u64> = line
                .split_whitespace()
                .filter_map(|x| u64::from_str_radix(x, 16).ok())
                .collect();
            if v.len() >= 4 {
                c.sent += v[1];
                c.refused += v[2];
                c.accepted += v[3];
            }
        }
        return Ok((c, 0));
    }
    let m = tb.run(
        "lb",
        &[
            "curl",
            "-s",
            "--max-time",
            "2",
            "http://127.0.0.1:9100/metrics",
        ],
    )?;
    let c = Cookies {
        sent: metric(&m, "uvs_synproxy_cookies_sent_total"),
        accepted: metric(&m, "uvs_synproxy_cookies_valid_total"),
        refused: metric(&m, "uvs_drops_total{reason=\"synproxy_cookie_invalid\"}")
            + metric(&m, "uvs_drops_total{reason=\"synproxy_cookie_expired\"}"),
    };
    Ok((c, metric(&m, "uvs_drops_total{reason=\"conn_table_full\"}")))
}

/// Packets to the spoofed network counted at the client's link so far.
fn to_spoofed(tb: &Testbed) -> Result<u64> {
    let out = tb.run(
        "client",
        &["nft", "list", "counter", "netdev", "uvsflood", "synacks"],
    )?;
    crate::testbed::parse_nft_packets(&out).context("no packet count in nft output")
}

/// The sum of a metric's samples (a name with its labels, or a bare name over all).
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Counts entries in a `uvsadm -L -n -c` listing (lines naming a TCP connection) or in
/// `/proc/net/nf_conntrack` (every line), and those whose client is a spoofed source.
pub fn count_entries(text: &str, conntrack: bool) -> (u64, u64) {
    let mut spoofed = 0;
    let mut all = 0;
    for l in text.lines() {
        let entry = if conntrack {
            !l.trim().is_empty()
        } else {
            l.trim_start().starts_with("TCP")
        };
        if !entry {
            continue;
        }
        all += 1;
        let hit = if conntrack {
            l.contains(&format!("src={SPOOF_PREFIX}"))
        } else {
            l.contains(SPOOF_PREFIX)
        };
        if hit {
            spoofed += 1;
        }
    }
    (spoofed, all)
}

fn run_wrk(tb: &Testbed, a: &SynfloodArgs, seconds: f64, close: bool) -> Result<WrkResult> {
    let script = tb.state.join("bench-wrk.lua");
    std::fs::write(&script, wrk::lua_script())?;
    let mut cmd = tb.command("client", &["wrk"]);
    cmd.args(["-t", "1"])
        .args(["-c", &a.connections.to_string()])
        .args(["-d", &format!("{}s", seconds.ceil().max(1.0) as u64)])
        .args(["--timeout", "2s", "-s"])
        .arg(&script);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(format!("http://{VIP}/"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = Spawned::new("wrk", cmd.spawn().context("starting wrk")?)
        .wait_output(Duration::from_secs_f64(seconds + 20.0))?;
    wrk::parse(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

fn sha256(path: &std::path::Path) -> Result<String> {
    let o = std::process::Command::new("sha256sum").arg(path).output()?;
    Ok(String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string())
}

/// Waits until a request through the VIP succeeds, at most 15 s.
fn wait_ready(tb: &Testbed) -> Result<()> {
    let start = Instant::now();
    let url = format!("http://{VIP}/");
    while tb
        .run(
            "client",
            &["curl", "-sf", "--max-time", "1", "-o", "/dev/null", &url],
        )
        .is_err()
    {
        if start.elapsed() > Duration::from_secs(15) {
            bail!("{url} does not answer from the client namespace");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn run_subject(tb: &Testbed, s: Subject, a: &SynfloodArgs, sums: &[String]) -> Result<FloodRun> {
    let mut r = FloodRun {
        subject: Some(s),
        description: s.describe(),
        loadavg: (loadavg(), String::new()),
        ..Default::default()
    };
    let _setup = set_up(tb, s, a)?;
    wait_ready(tb)?;
    if a.baseline_seconds > 0.0 {
        r.baseline_close = run_wrk(tb, a, a.baseline_seconds, true).ok();
        r.baseline_keepalive = run_wrk(tb, a, a.baseline_seconds, false).ok();
    }
    // The baseline's closed connections leave the table (1 s timeouts) before the flood.
    std::thread::sleep(Duration::from_secs(3));
    let uvsadm = uvsd_path(a).with_file_name("uvsadm");
    let (c0, full0) = counters(tb, s)?;
    let spoofed0 = to_spoofed(tb)?;

    // The flood.
    let self_exe = std::env::current_exe()?;
    let gen = tb
        .command("client", &[])
        .arg(&self_exe)
        .args(["xsk-gen", "--dev", "uvs-c0"])
        .args(["--src-mac", &format_mac(&tb.mac("client", "uvs-c0")?)])
        .args(["--dst-mac", &format_mac(&tb.mac("lb", "uvs-lb0")?)])
        .args(["--src-ip", "198.18.0.2", "--dst-ips", &VIP.to_string()])
        .args(["--port", "80", "--flows", &a.flows.to_string()])
        .args(["--syn-spoof", &a.sources.to_string()])
        .args(["--rate", &format!("{:.0}", a.rate)])
        .args(["--seconds", &a.seconds.to_string()])
        .args(["--core", &a.gen_core.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting the generator")?;
    let gen = Spawned::new("generator", gen);

    // The table, sampled in the background until the flood and the clients are done.
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<(f64, u64, u64)>::new()));
    let flood_start = Instant::now();
    let sampler = {
        let (stop, samples) = (stop.clone(), samples.clone());
        let (tag, uvsadm) = (tb.tag.clone(), uvsadm.clone());
        let state = tb.state.clone();
        std::thread::spawn(move || {
            let view = TestbedView { tag, state };
            while !stop.load(Ordering::Relaxed) {
                if let Ok((sp, all)) = view.sample(s, &uvsadm) {
                    let t = flood_start.elapsed().as_secs_f64();
                    samples.lock().expect("samples").push((t, sp, all));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));

    // The download, beside the wrk runs.
    let got = tb.state.join("bench-download");
    let _ = std::fs::remove_file(&got);
    let dl_start = Instant::now();
    let curl = tb
        .command("client", &["curl", "-s", "-f", "--connect-timeout", "5"])
        .args(["-w", "connected after %{time_connect} s, HTTP %{http_code}"])
        .args(["--max-time", &format!("{:.0}", a.seconds + 30.0), "-o"])
        .arg(&got)
        .arg(format!("http://{VIP}/big"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting curl")?;
    let curl = Spawned::new("curl", curl);
    let half = ((a.seconds - 2.0) / 2.0).max(1.0);
    for close in [true, false] {
        let w = run_wrk(tb, a, half, close);
        let w = match w {
            Ok(w) => Some(w),
            Err(e) => {
                let mode = if close { "close" } else { "keep-alive" };
                r.wrk_errors.push(format!("{mode}: {e:#}"));
                None
            }
        };
        if close {
            r.wrk_close = w;
        } else {
            r.wrk_keepalive = w;
        }
    }
    let dl = curl.wait_output(Duration::from_secs_f64(a.seconds + 40.0));
    r.download.seconds = dl_start.elapsed().as_secs_f64();
    match dl {
        Ok(o) if o.status.success() => {
            r.download.ok = true;
            r.download.bytes = std::fs::metadata(&got).map(|m| m.len()).unwrap_or(0);
            let sum = sha256(&got)?;
            r.download.byte_exact = sums.contains(&sum);
        }
        Ok(o) => {
            r.download.error = Some(format!(
                "curl: {}, {}",
                o.status,
                String::from_utf8_lossy(&o.stdout).trim()
            ))
        }
        Err(e) => r.download.error = Some(format!("{e:#}")),
    }
    let out = gen.wait_output(Duration::from_secs_f64(a.seconds + 20.0))?;
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    if !out.status.success() {
        bail!(
            "generator failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let g: crate::testbed::xsk::GenResult =
        serde_json::from_str(text.lines().last().unwrap_or_default())
            .with_context(|| format!("generator output '{text}'"))?;
    r.flood_sent = g.sent;
    r.flood_offered_pps = g.sent as f64 / g.seconds.max(1e-9);
    let (c1, full1) = counters(tb, s)?;
    r.cookies = Cookies {
        sent: c1.sent - c0.sent,
        accepted: c1.accepted - c0.accepted,
        refused: c1.refused - c0.refused,
    };
    r.table_full_drops = full1 - full0;
    r.to_spoofed = to_spoofed(tb)? - spoofed0;
    r.series = std::mem::take(&mut *samples.lock().expect("samples"));
    r.samples = r.series.len() as u64;
    r.max_spoofed_entries = r.series.iter().map(|x| x.1).max().unwrap_or(0);
    r.max_entries = r.series.iter().map(|x| x.2).max().unwrap_or(0);
    r.loadavg.1 = loadavg();
    let _ = std::fs::remove_file(&got);
    Ok(r)
}

/// What the sampling thread needs of the testbed (the guard itself stays with the run).
struct TestbedView {
    tag: String,
    state: PathBuf,
}

impl TestbedView {
    fn sample(&self, s: Subject, uvsadm: &std::path::Path) -> Result<(u64, u64)> {
        let ns = format!("uvs-{}-lb", self.tag);
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &ns]);
        if s == Subject::NftSynproxy {
            c.args(["cat", "/proc/net/nf_conntrack"]);
        } else {
            c.arg(uvsadm)
                .arg("--socket")
                .arg(self.state.join("bench-uvsadm.sock"))
                .args(["-L", "-n", "-c"]);
        }
        let out = c.output()?;
        if !out.status.success() {
            bail!("sampling the table failed");
        }
        Ok(count_entries(
            &String::from_utf8_lossy(&out.stdout),
            s == Subject::NftSynproxy,
        ))
    }
}

pub fn synflood_main(mut a: SynfloodArgs) -> Result<()> {
    if !(2.0..=120.0).contains(&a.seconds) {
        bail!("--seconds must be within 2..=120");
    }
    a.baseline_seconds = a.baseline_seconds.clamp(0.0, 30.0);
    if a.sources == 0 || a.flows == 0 {
        bail!("--sources and --flows must be positive");
    }
    let subjects: Vec<Subject> = a
        .subjects
        .iter()
        .map(|s| Subject::parse(s))
        .collect::<Result<_>>()?;
    let script = a
        .testbed_script
        .clone()
        .unwrap_or_else(net::default_testbed_script);
    eprintln!("synflood: test network (tag {})", a.tag);
    let tb = crate::http::up_for_http(&script, &a.tag, "nat")?;
    // The download: a file of --download-mb on each server (nginx serves /big from it).
    let mut sums = Vec::new();
    for i in 1..=3 {
        let f = tb.state.join(format!("rs{i}/big"));
        tb.sh(
            "lb",
            &format!(
                "head -c {} /dev/urandom > {}",
                a.download_mb * 1_000_000,
                f.display()
            ),
        )?;
        sums.push(sha256(&f)?);
    }
    // The client's link stands for the router towards the spoofed sources: their SYN-ACKs
    // are counted and dropped at its netdev ingress, before the client's IP stack, as a
    // router would send them on (on veth that work runs on the sender's core).
    tb.nft(
        "client",
        &format!(
            "table netdev uvsflood {{\n counter synacks {{}}\n chain ingress {{\n  type filter hook ingress device \"uvs-c0\" priority -500; policy accept;\n  ip daddr {SPOOF_NET} counter name \"synacks\" drop\n }}\n}}\n"
        ),
    )?;
    // The kernel peer routes the spoofed network back towards the client, as uvsd does.
    tb.run(
        "lb",
        &["ip", "route", "add", SPOOF_NET, "via", "198.18.0.2"],
    )?;
    let mut runs = Vec::new();
    for s in subjects {
        eprintln!("synflood: {} — {}", s.name(), s.describe());
        let r = run_subject(&tb, s, &a, &sums).unwrap_or_else(|e| {
            eprintln!("synflood: {} failed: {e:#}", s.name());
            FloodRun {
                subject: Some(s),
                description: s.describe(),
                error: Some(format!("{e:#}")),
                ..Default::default()
            }
        });
        eprintln!("{}", row(&r));
        runs.push(r);
    }
    let md = markdown(&runs);
    println!("{md}");
    if let Some(p) = &a.markdown {
        std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(path) = &a.json {
        let doc = serde_json::json!({
            "benchmark": "synflood",
            "environment": crate::environment::record(Some(&uvsd_path(&a)), &["wrk", "curl", "nginx", "nft", "ip"]),
            "settings": {
                "seconds": a.seconds,
                "rate": if a.rate > 0.0 { serde_json::json!(a.rate) } else { serde_json::json!("generator maximum") },
                "conn_table_capacity": a.capacity,
                "spoofed_flows": a.flows,
                "spoofed_sources": a.sources,
                "spoofed_network": SPOOF_NET,
                "download_bytes": a.download_mb * 1_000_000,
                "wrk": format!("-t1 -c{} --timeout 2s, close then keep-alive, {:.0} s each during the flood", a.connections, ((a.seconds - 2.0) / 2.0).max(1.0)),
                "baseline_seconds": a.baseline_seconds,
                "generator": "AF_XDP xsk-gen in the client namespace, 60-byte TCP SYN frames",
                "gen_core": a.gen_core,
                "uvsd_worker_core": a.dut_core,
                "nft_conntrack_max": "not settable in a network namespace (kernel-wide); spoofed SYNs are untracked",
            },
            "results": &runs,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if runs.iter().all(|r| r.error.is_some()) {
        bail!("no subject produced a figure");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_and_differ_only_in_syn_proxy() {
        let on = uvsd_config(Subject::UvsSynproxy, 4096, 1);
        let off = uvsd_config(Subject::UvsNat, 4096, 1);
        let plain = uvsd_config(Subject::UvsNatPlain, 4096, 1);
        assert_eq!(plain.replace("drop_entry: false\n", ""), off);
        for t in [&on, &off, &plain] {
            let cfg = uvs_config::load_str(t, "flood.yaml");
            assert!(cfg.is_ok(), "{t}\n{:?}", cfg.err());
            assert!(t.contains("capacity: 4096"));
        }
        assert_eq!(on.replace("    syn_proxy: true\n", ""), off);
    }

    #[test]
    fn entries_are_counted_by_source() {
        let listing = "IP Virtual Server\nTCP  198.19.0.7:1024 198.18.100.1:80 198.18.1.11:80 SYN_RECV 59\nTCP  198.18.0.2:40000 198.18.100.1:80 198.18.1.12:80 ESTABLISHED 899\n";
        assert_eq!(count_entries(listing, false), (1, 2));
        let ct = "ipv4     2 tcp      6 117 TIME_WAIT src=198.18.0.2 dst=198.18.100.1 sport=1 dport=80 src=198.18.1.11 dst=198.18.0.2 sport=80 dport=1 [ASSURED] mark=0 use=1\n";
        assert_eq!(count_entries(ct, true), (0, 1));
    }

    #[test]
    fn nft_rules_proxy_before_the_dnat() {
        let r = nft_synproxy_rules();
        assert!(r.contains("synproxy mss 1460"));
        assert!(r.contains("hook output") && r.contains("dnat to numgen inc mod 3"));
        assert!(r.contains("notrack"));
    }
}
