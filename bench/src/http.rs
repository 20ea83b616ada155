//! `uvs-bench http`: wrk from the client namespace through the VIP to the nginx real
//! servers, keep-alive and connection-per-request (`Connection: close`), for uvs (NAT, and
//! DR / FullNAT on their own testbed modes; a NAT service with `syn_proxy: true`; a
//! `layer: 7` service), nftables DNAT, HAProxy in TCP and in HTTP mode, nginx as a reverse
//! proxy, and straight to one real server through the balancer namespace's kernel routing.
//! Over IPv4, or with `--family ipv6` over the test network's IPv6 VIP and real servers.
//!
//! Every run is bounded (`--seconds`, wrk's own timer, and a hard limit on the process).
//! Latency percentiles come from a wrk `done()` hook (16 points per run, for CDFs).

pub mod cpu;
pub mod rtt;
pub mod side;
pub mod wrk;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use crate::testbed::net::{self, Spawned, Testbed};
use crate::testbed::{host_port, start_uvsd, Family, KernelPeer, REALS};
use cpu::{CpuTimes, CpuUse};
use wrk::WrkResult;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpSubject {
    UvsNat,
    /// uvs NAT with `workers.busy_poll: true`: the worker never sleeps, so the difference
    /// from `uvs-nat` is what adaptive polling's sleep and wake-up cost.
    UvsNatBusy,
    /// uvs NAT with `workers.spin_us: 0` and its worker unpinned: asleep at the first empty
    /// poll, so the scheduler can keep it on the core of the client and servers it hands
    /// frames to (bench/README.md, "Where a crossing's microseconds go").
    #[serde(rename = "uvs-nat-nospin")]
    UvsNatNoSpin,
    /// uvs NAT with `workers.kernel_fast_path: true` (IPv4 forwarding on in the balancer's
    /// namespace while it runs): established packets are rewritten by the XDP program and
    /// forwarded by the kernel (`dataplane/src/fastpath.rs`). Its worker is pinned and
    /// spins 200 µs (`spin_us: 200`, the workers' default without the fast path).
    UvsNatFast,
    /// The kernel fast path with its defaults: no spin (`spin_us` 0) and the worker
    /// unpinned, as `uvs-nat-nospin`: with the fast path the worker sees only a
    /// connection's SYN, handshake ACK and FINs, so a spin after each mostly keeps a core
    /// from the client and the servers.
    #[serde(rename = "uvs-nat-fast-nospin")]
    UvsNatFastNoSpin,
    UvsDr,
    UvsFullnat,
    UvsSynproxy,
    UvsL7,
    Nft,
    /// nftables DNAT with uvs's XDP program attached to the balancer's two interfaces and
    /// nothing for it to take (no address owned, no socket, no fast-path line): every frame
    /// passes to the kernel, as the kernel fast path's do. The kernel path plus the hook
    /// `uvs-nat-fast` needs, so the difference from `nft` is the hook's own cost on veth.
    NftXdp,
    /// nftables DNAT to the first real server only, the one `direct` reaches: against
    /// `direct`, the cost of conntrack and NAT on the same path to the same server; against
    /// `nft`, the cost of spreading over three servers.
    NftOne,
    Haproxy,
    HaproxyHttp,
    NginxProxy,
    Direct,
}

impl HttpSubject {
    const ALL: [HttpSubject; 16] = [
        HttpSubject::Direct,
        HttpSubject::Nft,
        HttpSubject::NftXdp,
        HttpSubject::NftOne,
        HttpSubject::Haproxy,
        HttpSubject::HaproxyHttp,
        HttpSubject::NginxProxy,
        HttpSubject::UvsNat,
        HttpSubject::UvsNatBusy,
        HttpSubject::UvsNatNoSpin,
        HttpSubject::UvsNatFast,
        HttpSubject::UvsNatFastNoSpin,
        HttpSubject::UvsSynproxy,
        HttpSubject::UvsL7,
        HttpSubject::UvsDr,
        HttpSubject::UvsFullnat,
    ];

    /// The subjects run when none are named (the layer-7 comparison is asked for by name).
    const DEFAULT: [HttpSubject; 7] = [
        HttpSubject::Direct,
        HttpSubject::Nft,
        HttpSubject::Haproxy,
        HttpSubject::UvsNat,
        HttpSubject::UvsNatBusy,
        HttpSubject::UvsDr,
        HttpSubject::UvsFullnat,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            HttpSubject::UvsNat => "uvs-nat",
            HttpSubject::UvsNatBusy => "uvs-nat-busy",
            HttpSubject::UvsNatNoSpin => "uvs-nat-nospin",
            HttpSubject::UvsNatFast => "uvs-nat-fast",
            HttpSubject::UvsNatFastNoSpin => "uvs-nat-fast-nospin",
            HttpSubject::UvsDr => "uvs-dr",
            HttpSubject::UvsFullnat => "uvs-fullnat",
            HttpSubject::UvsSynproxy => "uvs-synproxy",
            HttpSubject::UvsL7 => "uvs-l7",
            HttpSubject::Nft => "nft",
            HttpSubject::NftXdp => "nft-xdp",
            HttpSubject::NftOne => "nft-one",
            HttpSubject::Haproxy => "haproxy",
            HttpSubject::HaproxyHttp => "haproxy-http",
            HttpSubject::NginxProxy => "nginx-proxy",
            HttpSubject::Direct => "direct",
        }
    }

    fn parse(s: &str) -> Result<HttpSubject> {
        Self::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown subject '{s}' (uvs-nat, uvs-nat-busy, uvs-nat-nospin, uvs-nat-fast, uvs-nat-fast-nospin, uvs-dr, uvs-fullnat, uvs-synproxy, uvs-l7, nft, nft-xdp, nft-one, haproxy, haproxy-http, nginx-proxy, direct)"
                )
            })
    }

    /// The testbed mode the subject needs.
    fn mode(&self) -> &'static str {
        match self {
            HttpSubject::UvsDr => "dr",
            HttpSubject::UvsFullnat => "fullnat",
            _ => "nat",
        }
    }

    /// Where wrk sends its requests over `family`.
    pub fn url(&self, family: Family) -> String {
        let to = match self {
            HttpSubject::Direct => family.reals()[0],
            _ => family.vip(),
        };
        match to {
            std::net::IpAddr::V4(a) => format!("http://{a}/"),
            std::net::IpAddr::V6(a) => format!("http://[{a}]/"),
        }
    }
}

#[derive(Args, Debug)]
pub struct HttpArgs {
    /// The uvsd binary (default: the one beside uvs-bench).
    #[arg(long)]
    pub uvsd: Option<PathBuf>,
    #[arg(long)]
    pub testbed_script: Option<PathBuf>,
    /// Testbed tag (≤ 8 characters).
    #[arg(long, default_value = "bhttp")]
    pub tag: String,
    /// Subjects (direct, nft, nft-xdp, nft-one, haproxy, haproxy-http, nginx-proxy, uvs-nat,
    /// uvs-nat-busy, uvs-nat-nospin, uvs-nat-fast, uvs-nat-fast-nospin, uvs-synproxy, uvs-l7,
    /// uvs-dr, uvs-fullnat); by default direct, nft, haproxy, uvs-nat, uvs-nat-busy, uvs-dr
    /// and uvs-fullnat, the others by name only.
    #[arg(long, value_delimiter = ',', default_values_t = HttpSubject::DEFAULT.iter().map(|s| s.name().to_string()).collect::<Vec<_>>())]
    pub subjects: Vec<String>,
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 5.0, value_parser = crate::args::seconds)]
    pub seconds: f64,
    /// wrk connections.
    #[arg(long, default_value_t = 50, value_parser = crate::args::count32)]
    pub connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 1, value_parser = crate::args::count32)]
    pub threads: u32,
    /// Skip the connection-per-request runs.
    #[arg(long)]
    pub keepalive_only: bool,
    /// Core uvsd's worker is pinned to.
    #[arg(long, default_value_t = 1)]
    pub dut_core: usize,
    /// Leave uvsd's worker unpinned (the scheduler places it, as it places the kernel
    /// paths' softirq work), instead of pinning it to `--dut-core`.
    #[arg(long)]
    pub unpinned: bool,
    /// CPUs wrk runs on (a taskset list such as `0`); default: wherever the scheduler
    /// puts it.
    #[arg(long)]
    pub wrk_cpus: Option<String>,
    /// CPUs the real servers' processes (nginx, the UDP responders) run on (a taskset
    /// list), set once the test network is up; default: wherever the scheduler puts them.
    /// With `--wrk-cpus` on the same one CPU, that CPU is saturated and requests per second
    /// is the inverse of the CPU time a request costs (the `cpu us/req` column).
    #[arg(long)]
    pub server_cpus: Option<String>,
    /// Two subjects at the same time, each on a test network and a CPU of its own (tags
    /// `<tag>a`, `<tag>b`; wrk, the balancer's and the servers' processes pinned there),
    /// the CPUs swapped every round: the host's load falls on both alike (`http/side.rs`).
    /// `--wrk-cpus`, `--server-cpus` and the UDP round trips do not apply.
    #[arg(long)]
    pub side_by_side: bool,
    /// UDP round trips to the real servers' port 53 per subject, each pair one after
    /// 10 ms of silence and one right after (adaptive polling's wake-up cost, against the
    /// busy-polling and kernel subjects; `rtt.rs`). 0 skips them.
    #[arg(long, default_value_t = 300)]
    pub rtt_rounds: usize,
    /// Rounds of every subject's runs, interleaved (the subjects' order reversed every
    /// other round, so a drift in the machine's load falls on each alike). With more than
    /// one, each pair's ratios are reported per round and as their median. The UDP round
    /// trips run in the first round only.
    #[arg(long, default_value_t = 1, value_parser = crate::args::count32)]
    pub rounds: u32,
    /// The address family every subject runs over: the requests (and the UDP round trips)
    /// go to the VIP 198.18.100.1 or 2001:2:0:100::1, the real servers are 198.18.1.1N or
    /// 2001:2:0:1::1N, nftables' rules are an `ip` or `ip6` table, HAProxy and nginx bind
    /// and connect in it, uvsd's service is of it, and the kernel's forwarding of it is
    /// turned on where a subject needs it.
    #[arg(long, value_enum, default_value_t = Family::Ipv4)]
    pub family: Family,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HttpRun {
    pub subject: HttpSubject,
    /// Which round (from 0) of `--rounds`.
    pub round: u32,
    /// "keepalive" or "close".
    pub connection: &'static str,
    pub url: String,
    pub result: Option<WrkResult>,
    /// The machine's CPU time while wrk ran (every process and softirq, all CPUs).
    pub cpu: Option<CpuUse>,
    pub error: Option<String>,
}

impl HttpArgs {
    /// How long a subject's setup may live (uvsd's `--run-for`, the proxies' hard limit):
    /// one round's wrk runs, or with `--side-by-side` every round's, and a minute more.
    fn setup_lifetime_s(&self) -> f64 {
        let conns = if self.keepalive_only { 1.0 } else { 2.0 };
        let rounds = if self.side_by_side {
            f64::from(self.rounds)
        } else {
            1.0
        };
        rounds * conns * (self.seconds + 5.0) + 60.0
    }
}

/// The uvsd configuration for HTTP through the VIP of `family` with `forwarding`.
pub fn uvsd_http_config(
    family: Family,
    forwarding: &str,
    core: Option<usize>,
    busy_poll: bool,
) -> String {
    uvsd_http_config_with(family, forwarding, core, busy_poll, "")
}

/// A `layer: 7` service's lines: one pool of the three servers (rr, as the other
/// subjects), and a rule wrk's requests do not match, so every first request is parsed
/// and the rules evaluated before the default pool takes it.
fn layer7_lines(family: Family) -> String {
    let reals = family.reals();
    let all: Vec<String> = reals.iter().map(|r| format!("\"{r}\"")).collect();
    format!(
        "    layer: 7\n    pools:\n      - {{ name: all, scheduler: rr, real_servers: [{}] }}\n      - {{ name: one, real_servers: [\"{}\"] }}\n    rules:\n      - {{ path_prefix: /one/, pool: one }}\n    default_pool: all\n",
        all.join(", "),
        reals[0]
    )
}

/// uvs's own addresses on the two links and their networks, in `family` (the test
/// network's `.3` on each link, `configs/demo.yaml`'s), and FullNAT's pool address on the
/// server side.
struct UvsAddresses {
    client_local: &'static str,
    client_net: &'static str,
    server_local: &'static str,
    server_net: &'static str,
    pool: &'static str,
}

fn uvs_addresses(family: Family) -> UvsAddresses {
    match family {
        Family::Ipv4 => UvsAddresses {
            client_local: "198.18.0.3",
            client_net: "198.18.0.0/24",
            server_local: "198.18.1.3",
            server_net: "198.18.1.0/24",
            pool: "198.18.1.100",
        },
        Family::Ipv6 => UvsAddresses {
            client_local: "\"2001:2::3\"",
            client_net: "\"2001:2::/64\"",
            server_local: "\"2001:2:0:1::3\"",
            server_net: "\"2001:2:0:1::/64\"",
            pool: "\"2001:2:0:1::100\"",
        },
    }
}

/// As `uvsd_http_config`, with `extra` service lines (`syn_proxy`, `layer: 7`).
pub fn uvsd_http_config_with(
    family: Family,
    forwarding: &str,
    core: Option<usize>,
    busy_poll: bool,
    extra: &str,
) -> String {
    let reals: String = family
        .reals()
        .iter()
        .map(|r| format!("      - address: \"{r}\"\n"))
        .collect();
    let UvsAddresses {
        client_local,
        client_net,
        server_local,
        server_net,
        pool,
    } = uvs_addresses(family);
    let (local1, pool) = if forwarding == "fullnat" {
        (
            format!("[{server_local}, {pool}]"),
            format!("    fullnat_pool: [{pool}]\n"),
        )
    } else {
        (format!("[{server_local}]"), String::new())
    };
    let vip = family.vip();
    let cores = core.map_or(String::new(), |c| format!("  cores: [{c}]\n"));
    format!(
        "interfaces:\n  - name: uvs-lb0\n    queues: 1\n    local: [{client_local}]\n    networks: [{client_net}]\n  - name: uvs-lb1\n    queues: 1\n    local: {local1}\n    networks: [{server_net}]\nworkers:\n  count: 1\n{cores}  busy_poll: {busy_poll}\nconn_table:\n  capacity: 1048576\nservices:\n  - name: bench-web\n    vip: \"{vip}\"\n    protocol: tcp\n    port: 80\n    scheduler: rr\n    forwarding: {forwarding}\n{pool}{extra}    real_servers:\n{reals}  - name: bench-udp\n    vip: \"{vip}\"\n    protocol: udp\n    port: 53\n    scheduler: rr\n    forwarding: {forwarding}\n{pool}    real_servers:\n{reals}"
    )
}

/// uvs NAT with no spin before the worker's sleep and no pinning (`uvs-nat-nospin`).
fn uvsd_nospin_config(family: Family) -> String {
    with_workers(
        uvsd_http_config(family, "nat", None, false),
        "  spin_us: 0\n",
    )
}

/// uvs NAT with the kernel fast path, its worker spinning 200 µs (the workers' default
/// without the fast path) and pinned to `core` (`uvs-nat-fast`).
pub fn uvsd_fast_config(family: Family, core: Option<usize>) -> String {
    with_workers(
        uvsd_http_config(family, "nat", core, false),
        "  kernel_fast_path: true\n  spin_us: 200\n",
    )
}

/// The kernel fast path with its defaults: no spin, no pinning (`uvs-nat-fast-nospin`).
fn uvsd_fast_nospin_config(family: Family) -> String {
    with_workers(
        uvsd_http_config(family, "nat", None, false),
        "  kernel_fast_path: true\n",
    )
}

/// `cfg` with `lines` added to its `workers` section.
fn with_workers(cfg: String, lines: &str) -> String {
    cfg.replace(
        "  busy_poll: false\n",
        &format!("  busy_poll: false\n{lines}"),
    )
}

/// HAProxy in `mode` (tcp, or http: every request parsed, server-side keep-alive), on the
/// VIP of `family` and to its real servers.
fn haproxy_config_mode(family: Family, state: &std::path::Path, mode: &str) -> String {
    let servers: String = family
        .reals()
        .iter()
        .enumerate()
        .map(|(i, r)| format!("  server rs{} {}\n", i + 1, host_port(*r, 80)))
        .collect();
    format!(
        "global\n  maxconn 8000\n  pidfile {}/bench-haproxy.pid\ndefaults\n  mode {mode}\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\nfrontend fe\n  bind {}\n  default_backend be\nbackend be\n  balance roundrobin\n{servers}",
        state.display(),
        host_port(family.vip(), 80)
    )
}

/// nginx as a reverse proxy in the balancer namespace: round robin over the three
/// servers, HTTP/1.1 with kept-alive upstream connections (as a tuned nginx runs), one
/// worker per core; on the VIP of `family` and to its real servers.
fn nginx_proxy_config(family: Family, state: &std::path::Path) -> String {
    let servers: String = family
        .reals()
        .iter()
        .map(|r| format!("    server {};\n", host_port(*r, 80)))
        .collect();
    let listen = host_port(family.vip(), 80);
    let d = state.display();
    format!(
        "daemon off;\npid {d}/bench-nginx.pid;\nerror_log {d}/bench-nginx.err;\nworker_processes auto;\nworker_rlimit_nofile 16384;\nevents {{ worker_connections 8000; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d};\n  proxy_temp_path {d};\n  fastcgi_temp_path {d};\n  uwsgi_temp_path {d};\n  scgi_temp_path {d};\n  upstream reals {{\n{servers}    keepalive 64;\n  }}\n  server {{\n    listen {listen};\n    location / {{\n      proxy_pass http://reals;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n"
    )
}

/// The subject's setup; dropping it undoes it (stops uvsd/HAProxy by PID, removes rules).
enum Setup<'a> {
    /// A process; with a testbed, a proxy holding the VIP of the family on the balancer's
    /// loopback.
    Process(Spawned, Option<(&'a Testbed, Family)>),
    Kernel(#[allow(dead_code)] KernelPeer<'a>),
    /// A kernel peer with uvs's XDP program on the balancer's interfaces (detached on
    /// drop, before the peer's rules go).
    KernelXdp(
        #[allow(dead_code)] Vec<uvs_xsk::XdpProgram>,
        #[allow(dead_code)] KernelPeer<'a>,
    ),
    /// uvsd with the kernel's forwarding on in the balancer's namespace (IPv4's, and with
    /// an IPv6 service IPv6's too: uvsd's fast path refuses to start without them), turned
    /// off again after.
    Forwarding(Spawned, &'a Testbed, Family),
}

/// The sysctls the kernel fast path needs on for a service of `family`.
fn fast_path_sysctls(family: Family) -> Vec<&'static str> {
    let mut v = vec![Family::Ipv4.forwarding_sysctl()];
    if family == Family::Ipv6 {
        v.push(Family::Ipv6.forwarding_sysctl());
    }
    v
}

/// `sysctl -qw` of each of `names` to `value` in the balancer's namespace.
fn set_sysctls(tb: &Testbed, names: &[&str], value: u8) -> Result<String> {
    let mut args = vec!["sysctl".to_string(), "-qw".into()];
    args.extend(names.iter().map(|n| format!("{n}={value}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tb.run("lb", &args)
}

/// `ip addr add|del` of the VIP of `family` on the balancer's loopback.
fn vip_on_lo(tb: &Testbed, family: Family, op: &str) -> Result<String> {
    let vip = format!("{}/{}", family.vip(), family.host_prefix());
    tb.run("lb", &["ip", "addr", op, &vip, "dev", "lo"])
}

impl Drop for Setup<'_> {
    fn drop(&mut self) {
        if let Setup::Process(p, Some((tb, family))) = self {
            // HAProxy (or nginx) held the VIP on the balancer's loopback.
            p.stop();
            let _ = vip_on_lo(tb, *family, "del");
        }
        if let Setup::Forwarding(p, tb, family) = self {
            p.stop();
            let _ = set_sysctls(tb, &fast_path_sysctls(*family), 0);
        }
    }
}

fn set_up<'a>(tb: &'a Testbed, s: HttpSubject, a: &HttpArgs) -> Result<Setup<'a>> {
    let uvsd = || {
        a.uvsd
            .clone()
            .or_else(|| net::sibling_binary("uvsd"))
            .unwrap_or_else(|| PathBuf::from("uvsd"))
    };
    let limit = a.setup_lifetime_s();
    let core = (!a.unpinned).then_some(a.dut_core);
    let family = a.family;
    Ok(match s {
        HttpSubject::UvsNat | HttpSubject::UvsNatBusy => Setup::Process(
            start_uvsd(
                tb,
                &uvsd(),
                &uvsd_http_config(family, "nat", core, s == HttpSubject::UvsNatBusy),
                limit,
            )?,
            None,
        ),
        HttpSubject::UvsNatNoSpin => {
            let cfg = uvsd_nospin_config(family);
            Setup::Process(start_uvsd(tb, &uvsd(), &cfg, limit)?, None)
        }
        HttpSubject::UvsNatFast | HttpSubject::UvsNatFastNoSpin => {
            // The kernel forwards the fast path's packets; back off when the subject ends.
            set_sysctls(tb, &fast_path_sysctls(family), 1)?;
            let cfg = if s == HttpSubject::UvsNatFast {
                uvsd_fast_config(family, core)
            } else {
                uvsd_fast_nospin_config(family)
            };
            match start_uvsd(tb, &uvsd(), &cfg, limit) {
                Ok(p) => Setup::Forwarding(p, tb, family),
                Err(e) => {
                    let _ = set_sysctls(tb, &fast_path_sysctls(family), 0);
                    return Err(e);
                }
            }
        }
        HttpSubject::UvsDr => Setup::Process(
            start_uvsd(
                tb,
                &uvsd(),
                &uvsd_http_config(family, "dr", core, false),
                limit,
            )?,
            None,
        ),
        HttpSubject::UvsFullnat => Setup::Process(
            start_uvsd(
                tb,
                &uvsd(),
                &uvsd_http_config(family, "fullnat", core, false),
                limit,
            )?,
            None,
        ),
        HttpSubject::UvsSynproxy => Setup::Process(
            start_uvsd(
                tb,
                &uvsd(),
                &uvsd_http_config_with(family, "nat", core, false, "    syn_proxy: true\n"),
                limit,
            )?,
            None,
        ),
        HttpSubject::UvsL7 => Setup::Process(
            start_uvsd(
                tb,
                &uvsd(),
                &uvsd_http_config_with(family, "nat", core, false, &layer7_lines(family)),
                limit,
            )?,
            None,
        ),
        HttpSubject::NginxProxy => {
            let cfg = tb.state.join("bench-nginx-proxy.conf");
            std::fs::write(&cfg, nginx_proxy_config(family, &tb.state))?;
            vip_on_lo(tb, family, "add")?;
            let log = std::fs::File::create(tb.state.join("bench-nginx-proxy.log"))?;
            let child = tb
                .command("lb", &["nginx", "-c"])
                .arg(&cfg)
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting nginx (apt-get install nginx-light)")?;
            Setup::Process(Spawned::new("nginx", child), Some((tb, family)))
        }
        HttpSubject::Nft | HttpSubject::NftXdp | HttpSubject::NftOne => {
            let reals = if s == HttpSubject::NftOne {
                1
            } else {
                family.reals().len()
            };
            let peer = KernelPeer::set_up_family(tb, family, Some(("tcp", 80, reals)), None)?;
            // The round-trip probes' UDP service, in the same table (removed with it).
            tb.nft(
                "lb",
                &format!(
                    "add rule {t} uvsbench prerouting {t} daddr {} udp dport 53 {}\n",
                    family.vip(),
                    crate::testbed::dnat_to(family, reals),
                    t = family.nft_table(),
                ),
            )?;
            if s == HttpSubject::NftXdp {
                Setup::KernelXdp(attach_pass_programs(tb)?, peer)
            } else {
                Setup::Kernel(peer)
            }
        }
        HttpSubject::Direct => Setup::Kernel(KernelPeer::set_up_family(tb, family, None, None)?),
        HttpSubject::Haproxy | HttpSubject::HaproxyHttp => {
            if std::process::Command::new("haproxy")
                .arg("-v")
                .output()
                .is_err()
            {
                bail!("haproxy is not installed (apt-get install haproxy)");
            }
            let cfg = tb.state.join("bench-haproxy.cfg");
            let mode = if s == HttpSubject::HaproxyHttp {
                "http"
            } else {
                "tcp"
            };
            std::fs::write(&cfg, haproxy_config_mode(family, &tb.state, mode))?;
            vip_on_lo(tb, family, "add")?;
            let log = std::fs::File::create(tb.state.join("bench-haproxy.log"))?;
            let child = tb
                .command("lb", &["haproxy", "-db", "-f"])
                .arg(&cfg)
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting haproxy")?;
            Setup::Process(Spawned::new("haproxy", child), Some((tb, family)))
        }
    })
}

/// uvs's XDP program, in native mode as uvsd attaches it, on the balancer's two interfaces
/// (`nft-xdp`), attached from a thread that enters the balancer's namespace. Nothing is
/// registered with it, so it passes every frame to the kernel.
fn attach_pass_programs(tb: &Testbed) -> Result<Vec<uvs_xsk::XdpProgram>> {
    let ns = std::fs::File::open(format!("/run/netns/uvs-{}-lb", tb.tag))
        .context("opening the balancer's namespace")?;
    std::thread::spawn(move || -> Result<Vec<uvs_xsk::XdpProgram>> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .context("entering the balancer's namespace")?;
        ["uvs-lb0", "uvs-lb1"]
            .iter()
            .map(|i| {
                uvs_xsk::XdpProgram::attach(i, uvs_xsk::XdpMode::Native)
                    .with_context(|| format!("attaching uvs's XDP program to {i}"))
            })
            .collect()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the XDP attaching thread panicked"))?
}

/// Waits until one request through the subject succeeds (uvsd resolves neighbours,
/// HAProxy binds), at most 10 s.
fn wait_ready(tb: &Testbed, url: &str) -> Result<()> {
    let start = Instant::now();
    loop {
        if tb
            .run(
                "client",
                &["curl", "-sf", "--max-time", "1", "-o", "/dev/null", url],
            )
            .is_ok()
        {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(10) {
            bail!("{url} does not answer from the client namespace");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One wrk run on `cpus` (a taskset list), and the CPU time /proc/stat's `stat` line
/// (`cpu`, or `cpuN`) counted while it ran.
fn run_wrk(
    tb: &Testbed,
    a: &HttpArgs,
    url: &str,
    close: bool,
    cpus: Option<&str>,
    stat: &str,
) -> Result<(WrkResult, CpuUse)> {
    let script = tb.state.join("bench-wrk.lua");
    std::fs::write(&script, wrk::lua_script())?;
    let mut cmd = match cpus {
        Some(cpus) => tb.command("client", &["taskset", "-c", cpus, "wrk"]),
        None => tb.command("client", &["wrk"]),
    };
    cmd.args(["-t", &a.threads.to_string()])
        .args(["-c", &a.connections.to_string()])
        .args(["-d", &format!("{}s", a.seconds.ceil() as u64)])
        .args(["--timeout", "2s", "--latency", "-s"])
        .arg(&script);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let before = CpuTimes::read(stat)?;
    let out = Spawned::new(
        "wrk",
        cmd.spawn().context("starting wrk (apt-get install wrk)")?,
    )
    .wait_output(Duration::from_secs_f64(a.seconds + 20.0))?;
    let after = CpuTimes::read(stat)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let w = wrk::parse(&text).with_context(|| String::from_utf8_lossy(&out.stderr).into_owned())?;
    let cpu = CpuUse::between(before, after, w.requests, cpu::ticks_per_second());
    Ok((w, cpu))
}

/// The test network in `mode` for wrk: veth's default offloads, as containers have them
/// (wrk's and nginx's segments arrive with partial checksums, which uvs completes; the
/// kernel peers use the flag), and the client's ports reused quickly, as
/// connection-per-request needs.
pub fn up_for_http(script: &std::path::Path, tag: &str, mode: &str) -> Result<Testbed> {
    let tb = Testbed::up(script, tag, mode, true)?;
    tb.run(
        "client",
        &[
            "sysctl",
            "-qw",
            "net.ipv4.ip_local_port_range=1024 65535",
            "net.ipv4.tcp_tw_reuse=1",
        ],
    )?;
    Ok(tb)
}

/// Prints one wrk run's figures (or its failure) and keeps them.
fn record(
    s: HttpSubject,
    family: Family,
    round: u32,
    connection: &'static str,
    r: Result<(WrkResult, CpuUse)>,
) -> HttpRun {
    match &r {
        Ok((w, c)) => eprintln!(
            "  {:<12} {connection:<9} {:>9.0} req/s  p50 {:>7.0} us  p99 {:>7.0} us  errors {}  cpu {:.2} us/req (steal {:.2} s)",
            s.name(),
            w.requests_per_s,
            w.pct(50.0).unwrap_or(0.0),
            w.pct(99.0).unwrap_or(0.0),
            w.errors(),
            c.busy_us_per_request,
            c.steal_s
        ),
        Err(e) => eprintln!("  {:<12} {connection:<9} failed: {e:#}", s.name()),
    }
    let (result, cpu, error) = match r {
        Ok((w, c)) => (Some(w), Some(c), None),
        Err(e) => (None, None, Some(format!("{e:#}"))),
    };
    HttpRun {
        subject: s,
        round,
        connection,
        url: s.url(family),
        result,
        cpu,
        error,
    }
}

/// The real servers' namespaces' roles.
fn server_roles() -> Vec<String> {
    (1..=REALS.len()).map(|i| format!("rs{i}")).collect()
}

/// Pins every process in the namespaces of `roles` to `cpus` (a taskset list), all their
/// threads: the count pinned.
fn pin(tb: &Testbed, roles: &[String], cpus: &str) -> Result<usize> {
    let mut pinned = 0;
    for role in roles {
        let ns = tb.ns(role);
        let out = std::process::Command::new("ip")
            .args(["netns", "pids", &ns])
            .output()
            .with_context(|| format!("ip netns pids {ns}"))?;
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let st = std::process::Command::new("taskset")
                .args(["-a", "-p", "-c", cpus, pid])
                .stdout(std::process::Stdio::null())
                .status()
                .context("taskset")?;
            if !st.success() {
                bail!("taskset -a -p -c {cpus} {pid} ({ns}) failed");
            }
            pinned += 1;
        }
    }
    Ok(pinned)
}

pub fn http_main(a: HttpArgs) -> Result<()> {
    let subjects: Vec<HttpSubject> = a
        .subjects
        .iter()
        .map(|s| HttpSubject::parse(s))
        .collect::<Result<_>>()?;
    let script = a
        .testbed_script
        .clone()
        .unwrap_or_else(net::default_testbed_script);
    let mut runs = Vec::new();
    let mut rtts = Vec::new();
    if a.side_by_side {
        runs = side::run(&a, &subjects, &script)?;
    }
    let modes: &[&str] = if a.side_by_side {
        &[]
    } else {
        &["nat", "dr", "fullnat"]
    };
    for &mode in modes {
        let group: Vec<HttpSubject> = subjects
            .iter()
            .copied()
            .filter(|s| s.mode() == mode)
            .collect();
        if group.is_empty() {
            continue;
        }
        eprintln!(
            "http: test network in {mode} mode (tag {}), over {} to {}",
            a.tag,
            a.family.name(),
            a.family.vip()
        );
        let tb = up_for_http(&script, &a.tag, mode)?;
        if let Some(cpus) = &a.server_cpus {
            let n = pin(&tb, &server_roles(), cpus)?;
            if n == 0 {
                bail!("no real server process to pin to CPUs {cpus}");
            }
            eprintln!("http: {n} real server processes pinned to CPUs {cpus}");
        }
        for (round, s) in interleaved(&group, a.rounds) {
            let conns: &[bool] = if a.keepalive_only {
                &[false]
            } else {
                &[false, true]
            };
            let setup =
                set_up(&tb, s, &a).and_then(|st| wait_ready(&tb, &s.url(a.family)).map(|_| st));
            let setup = match setup {
                Ok(st) => st,
                Err(e) => {
                    eprintln!("http: {} failed to set up: {e:#}", s.name());
                    for &close in conns {
                        runs.push(HttpRun {
                            subject: s,
                            round,
                            connection: if close { "close" } else { "keepalive" },
                            url: s.url(a.family),
                            result: None,
                            cpu: None,
                            error: Some(format!("{e:#}")),
                        });
                    }
                    continue;
                }
            };
            // HAProxy and nginx here proxy TCP only. Through uvs DR the answers did not come back: the
            // responder is bound to 0.0.0.0, so (most likely) it answers from its own
            // address rather than the VIP on its loopback, and the client's connected
            // socket ignores them. Neither is probed.
            if a.rtt_rounds > 0
                && round == 0
                && !matches!(
                    s,
                    HttpSubject::Haproxy
                        | HttpSubject::HaproxyHttp
                        | HttpSubject::NginxProxy
                        | HttpSubject::UvsDr
                )
            {
                let r = rtt::run_rtt(&tb, a.rtt_rounds, s, a.family);
                match &r {
                    Ok(x) => eprintln!(
                        "  {:<12} udp rtt   cold p50 {:>6.0} us  warm p50 {:>6.0} us  wake p50 {:>6.0} us  lost {}",
                        s.name(), x.cold_p50_us, x.warm_p50_us, x.wake_p50_us, x.lost
                    ),
                    Err(e) => eprintln!("  {:<12} udp rtt   failed: {e:#}", s.name()),
                }
                rtts.push(rtt::RttRun {
                    subject: s,
                    result: r.as_ref().ok().cloned(),
                    error: r.err().map(|e| format!("{e:#}")),
                });
            }
            for &close in conns {
                let connection = if close { "close" } else { "keepalive" };
                eprintln!(
                    "  {:<12} {connection:<9} wrk {} s (round {}/{}) ...",
                    s.name(),
                    a.seconds,
                    round + 1,
                    a.rounds
                );
                let url = s.url(a.family);
                let r = run_wrk(&tb, &a, &url, close, a.wrk_cpus.as_deref(), "cpu");
                runs.push(record(s, a.family, round, connection, r));
            }
            drop(setup);
        }
    }
    print_summary(&runs, a.rounds, a.family);
    if a.side_by_side {
        side::print_ratios(&runs);
    }
    rtt::print_rtts(&rtts);
    if let Some(path) = &a.json {
        let doc = serde_json::json!({
            "benchmark": "http",
            "environment": crate::environment::record(
                a.uvsd
                    .clone()
                    .or_else(|| net::sibling_binary("uvsd"))
                    .as_deref(),
                &["wrk", "nginx", "haproxy", "nft", "ip"],
            ),
            "settings": {
                "family": a.family,
                "vip": a.family.vip(),
                "real_servers": a.family.reals(),
                "seconds": a.seconds,
                "connections": a.connections,
                "threads": a.threads,
                "wrk_timeout_s": 2,
                "uvsd_worker_core": (!a.unpinned).then_some(a.dut_core),
                "wrk_cpus": a.wrk_cpus,
                "server_cpus": a.server_cpus,
                "side_by_side": a.side_by_side.then_some("the two subjects at once, each on its own test network pinned to one CPU (wrk, balancer and servers), CPUs 0 and 1 in even rounds (from 0), swapped in odd ones; cpu figures from that CPU's /proc/stat line"),
                "cpu": "/proc/stat's cpu line before and after each wrk run: busy = user+nice+system+irq+softirq of all CPUs, steal apart; busy_us_per_request = busy / wrk's requests",
                "rtt_rounds": a.rtt_rounds,
                "rounds": a.rounds,
                "round_order": "subjects in the given order in even rounds (from 0), reversed in odd ones; ratios are per round, and their median",
                "rtt": "UDP to port 53 of the real servers' responders: per round one round trip after 10 ms of silence (cold) and one right after (warm)",
                "haproxy": "TCP mode, roundrobin, maxconn 8000, default threads",
                "haproxy-http": "the same in HTTP mode (server-side keep-alive, HAProxy's default)",
                "nginx-proxy": "nginx reverse proxy, worker_processes auto, upstream keepalive 64, HTTP/1.1",
                "uvs-synproxy": "uvs-nat with syn_proxy: true",
                "uvs-nat-nospin": "uvs-nat with workers.spin_us: 0, worker unpinned",
                "uvs-nat-fast": format!("uvs-nat with workers.kernel_fast_path: true and spin_us: 200, worker pinned ({} in the balancer's namespace)", fast_path_sysctls(a.family).iter().map(|s| format!("{s}=1")).collect::<Vec<_>>().join(", ")),
                "uvs-nat-fast-nospin": "workers.kernel_fast_path: true with its defaults (spin_us 0), worker unpinned",
                "nft-xdp": "nft with uvs's XDP program attached to the balancer's interfaces, nothing registered (every frame passes)",
                "uvs-l7": "uvs-nat as layer: 7, default pool rr over the 3 servers, one path rule",
                "nft": format!("table {} uvsbench: dnat to numgen inc mod 3 map (kube-proxy style)", a.family.nft_table()),
                "nft-one": format!("the same to {} only (direct's server): conntrack and NAT on direct's path", a.family.reals()[0]),
                "direct": format!("to {} through the balancer namespace's kernel routing ({}=1)", a.family.reals()[0], a.family.forwarding_sysctl()),
                "client_sysctls": "ip_local_port_range 1024-65535, tcp_tw_reuse 1",
            },
            "results": &runs,
            "udp_rtt": &rtts,
            "ratios": ratios(&runs),
            "side_by_side_ratios": a.side_by_side.then(|| side::ratios(&runs)),
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if runs.iter().all(|r| r.result.is_none()) {
        bail!("no HTTP run produced a figure");
    }
    Ok(())
}

/// Each round's result for `s` in connection mode `conn`, by round.
fn find_rounds<'a>(
    runs: &'a [HttpRun],
    s: HttpSubject,
    conn: &'a str,
) -> impl Iterator<Item = (u32, &'a WrkResult, Option<&'a CpuUse>)> + 'a {
    runs.iter()
        .filter(move |r| r.subject == s && r.connection == conn)
        .filter_map(|r| r.result.as_ref().map(|w| (r.round, w, r.cpu.as_ref())))
}

/// The subjects of one testbed mode, round by round: in the given order in even rounds and
/// reversed in odd ones.
fn interleaved(group: &[HttpSubject], rounds: u32) -> Vec<(u32, HttpSubject)> {
    (0..rounds)
        .flat_map(|round| {
            let mut order = group.to_vec();
            if round % 2 == 1 {
                order.reverse();
            }
            order.into_iter().map(move |s| (round, s))
        })
        .collect()
}

/// One pair's ratios in one connection mode: requests/s, p50/p99 latency and the CPU time
/// a request cost, per round where both subjects produced a figure.
#[derive(Clone, Debug, Default, PartialEq)]
struct PairRatios {
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    cpu: Vec<f64>,
}

type Round<'a> = (u32, &'a WrkResult, Option<&'a CpuUse>);

fn pair_ratios(runs: &[HttpRun], a: HttpSubject, b: HttpSubject, conn: &str) -> PairRatios {
    let theirs: Vec<Round> = find_rounds(runs, b, conn).collect();
    let mut out = PairRatios::default();
    for (round, u, uc) in find_rounds(runs, a, conn) {
        let Some((_, p, pc)) = theirs.iter().find(|(r, _, _)| *r == round) else {
            continue;
        };
        out.rps.push(u.requests_per_s / p.requests_per_s.max(1e-9));
        let lat = |q: f64| u.pct(q).zip(p.pct(q)).map(|(a, b)| a / b.max(1e-9));
        out.p50.extend(lat(50.0));
        out.p99.extend(lat(99.0));
        out.cpu.extend(
            uc.zip(*pc)
                .map(|(a, b)| a.busy_us_per_request / b.busy_us_per_request.max(1e-9)),
        );
    }
    out
}

/// The median (the mean of the middle two for an even count); `None` for none.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The comparisons: uvs NAT against the layer-4 peers and busy polling; the kernel fast
/// path against nftables with and without the XDP hook it needs; the SYN proxy and the layer-7
/// service against the proxies that terminate TCP (HAProxy in HTTP mode, nginx) and
/// against plain uvs NAT.
const PAIRS: [(HttpSubject, HttpSubject); 18] = [
    (HttpSubject::UvsNat, HttpSubject::Nft),
    (HttpSubject::UvsNatNoSpin, HttpSubject::Nft),
    (HttpSubject::UvsNatFast, HttpSubject::Nft),
    (HttpSubject::UvsNatFast, HttpSubject::NftXdp),
    (HttpSubject::UvsNatFastNoSpin, HttpSubject::Nft),
    (HttpSubject::NftXdp, HttpSubject::Nft),
    (HttpSubject::Direct, HttpSubject::Nft),
    (HttpSubject::NftOne, HttpSubject::Nft),
    (HttpSubject::UvsNatNoSpin, HttpSubject::UvsNat),
    (HttpSubject::UvsNat, HttpSubject::Haproxy),
    (HttpSubject::UvsNat, HttpSubject::Direct),
    (HttpSubject::UvsNat, HttpSubject::UvsNatBusy),
    (HttpSubject::UvsSynproxy, HttpSubject::UvsNat),
    (HttpSubject::UvsSynproxy, HttpSubject::HaproxyHttp),
    (HttpSubject::UvsSynproxy, HttpSubject::NginxProxy),
    (HttpSubject::UvsL7, HttpSubject::UvsNat),
    (HttpSubject::UvsL7, HttpSubject::HaproxyHttp),
    (HttpSubject::UvsL7, HttpSubject::NginxProxy),
];

/// Each pair's requests/s and p50/p99 latency ratios, per connection mode: the median over
/// the rounds, and each round's.
pub fn ratios(runs: &[HttpRun]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for conn in ["keepalive", "close"] {
        for (a, b) in PAIRS {
            let r = pair_ratios(runs, a, b, conn);
            if r.rps.is_empty() {
                continue;
            }
            out.insert(
                format!(
                    "{}_vs_{}_{conn}",
                    a.name().replace('-', "_"),
                    b.name().replace('-', "_")
                ),
                serde_json::json!({
                    "rps": median(&r.rps),
                    "p50": median(&r.p50),
                    "p99": median(&r.p99),
                    "cpu_per_request": median(&r.cpu),
                    "rounds": {"rps": r.rps, "p50": r.p50, "p99": r.p99, "cpu_per_request": r.cpu},
                }),
            );
        }
    }
    serde_json::Value::Object(out)
}

fn print_summary(runs: &[HttpRun], rounds: u32, family: Family) {
    let reals: Vec<String> = family.reals().iter().map(|r| r.to_string()).collect();
    println!(
        "http over {}: VIP {}, real servers {}",
        family.name(),
        family.vip(),
        reals.join(" ")
    );
    println!(
        "{:<13} {:>5} {:<9} {:>10} {:>9} {:>9} {:>9} {:>8} {:>11} {:>8}",
        "subject",
        "round",
        "conn",
        "req/s",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "errors",
        "cpu us/req",
        "steal s"
    );
    for r in runs {
        match &r.result {
            Some(w) => println!(
                "{:<13} {:>5} {:<9} {:>10.0} {:>9.0} {:>9.0} {:>9.0} {:>8} {:>11} {:>8}",
                r.subject.name(),
                r.round + 1,
                r.connection,
                w.requests_per_s,
                w.pct(50.0).unwrap_or(0.0),
                w.pct(99.0).unwrap_or(0.0),
                w.pct(99.9).unwrap_or(0.0),
                w.errors(),
                r.cpu
                    .map_or("-".into(), |c| format!("{:.2}", c.busy_us_per_request)),
                r.cpu.map_or("-".into(), |c| format!("{:.2}", c.steal_s)),
            ),
            None => println!(
                "{:<13} {:>5} {:<9} failed: {}",
                r.subject.name(),
                r.round + 1,
                r.connection,
                r.error.as_deref().unwrap_or("")
            ),
        }
    }
    let show = |v: &[f64]| match median(v) {
        None => "-".to_string(),
        Some(m) if rounds <= 1 => format!("{m:.2}x"),
        Some(m) => format!(
            "{m:.2}x [{}]",
            v.iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    };
    for conn in ["keepalive", "close"] {
        for (a, b) in PAIRS {
            if b == HttpSubject::Direct {
                continue;
            }
            let r = pair_ratios(runs, a, b, conn);
            if r.rps.is_empty() {
                continue;
            }
            println!(
                "{} / {:<12} {conn:<9} rps {}  p50 {}  p99 {}  cpu/req {}",
                a.name(),
                b.name(),
                show(&r.rps),
                show(&r.p50),
                show(&r.p99),
                show(&r.cpu)
            );
        }
    }
    if rounds > 1 {
        println!("(ratios: the median over the rounds, then each round's in [ ])");
    }
}

/// A run of `rps` requests a second on a saturated CPU (a request's CPU time the inverse
/// of the rate), for the ratios' tests.
#[cfg(test)]
pub(crate) fn saturated_run(
    s: HttpSubject,
    round: u32,
    connection: &'static str,
    rps: f64,
) -> HttpRun {
    HttpRun {
        subject: s,
        round,
        connection,
        url: String::new(),
        result: Some(WrkResult {
            requests_per_s: rps,
            ..Default::default()
        }),
        cpu: Some(CpuUse {
            busy_s: 1.0,
            steal_s: 0.0,
            total_s: 1.0,
            busy_us_per_request: 1e6 / rps,
        }),
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvsd_configs_parse() {
        for family in [Family::Ipv4, Family::Ipv6] {
            for (f, busy) in [
                ("nat", false),
                ("nat", true),
                ("dr", false),
                ("fullnat", false),
            ] {
                let text = uvsd_http_config(family, f, Some(1), busy);
                let cfg = uvs_config::load_str(&text, "bench.yaml");
                assert!(cfg.is_ok(), "{f}:\n{text}\n{:?}", cfg.err());
                let cfg = cfg.unwrap();
                assert_eq!(cfg.workers.busy_poll, busy);
                for svc in &cfg.services {
                    assert_eq!(svc.vip, family.vip(), "{text}");
                    let reals: Vec<_> = svc.real_servers.iter().map(|r| r.address).collect();
                    assert_eq!(reals, family.reals(), "{text}");
                }
            }
            for extra in ["    syn_proxy: true\n".to_string(), layer7_lines(family)] {
                let text = uvsd_http_config_with(family, "nat", Some(1), false, &extra);
                let cfg = uvs_config::load_str(&text, "bench.yaml").expect(&text);
                let svc = &cfg.services[0];
                assert!(svc.syn_proxy, "{text}");
                assert_eq!(svc.layer7.is_some(), extra.contains("layer: 7"), "{text}");
            }
            let free = uvs_config::load_str(&uvsd_http_config(family, "nat", None, false), "b");
            assert_eq!(free.unwrap().workers.cores, None);
            let nospin = uvs_config::load_str(&uvsd_nospin_config(family), "b.yaml").unwrap();
            assert_eq!((nospin.workers.spin_us, nospin.workers.cores), (0, None));
            let fast = uvs_config::load_str(&uvsd_fast_nospin_config(family), "b.yaml").unwrap();
            assert_eq!((fast.workers.spin_us, fast.workers.cores), (0, None));
            assert!(fast.workers.kernel_fast_path);
            let spin = uvs_config::load_str(&uvsd_fast_config(family, Some(1)), "b.yaml").unwrap();
            assert_eq!(
                (spin.workers.spin_us, spin.workers.cores),
                (200, Some(vec![1]))
            );
            assert!(spin.workers.kernel_fast_path);
        }
    }

    #[test]
    fn haproxy_config_respects_the_fd_limit() {
        let run = std::path::Path::new("/run/x");
        let c = haproxy_config_mode(Family::Ipv4, run, "tcp");
        assert!(c.contains("maxconn 8000") && c.contains("mode tcp"));
        assert!(c.contains("bind 198.18.100.1:80"), "{c}");
        assert_eq!(c.matches("server rs").count(), 3);
        assert!(haproxy_config_mode(Family::Ipv4, run, "http").contains("mode http"));
        let n = nginx_proxy_config(Family::Ipv4, run);
        assert!(n.contains("keepalive 64") && n.contains("listen 198.18.100.1:80"));
        assert_eq!(n.matches("server 198.18.1.1").count(), 3);
    }

    #[test]
    fn the_proxies_bind_and_connect_over_ipv6() {
        let run = std::path::Path::new("/run/x");
        let c = haproxy_config_mode(Family::Ipv6, run, "tcp");
        assert!(c.contains("bind [2001:2:0:100::1]:80"), "{c}");
        assert!(c.contains("server rs3 [2001:2:0:1::13]:80"), "{c}");
        let n = nginx_proxy_config(Family::Ipv6, run);
        assert!(n.contains("listen [2001:2:0:100::1]:80;"), "{n}");
        assert_eq!(n.matches("server [2001:2:0:1::1").count(), 3, "{n}");
        assert_eq!(
            HttpSubject::Nft.url(Family::Ipv6),
            "http://[2001:2:0:100::1]/"
        );
        assert_eq!(
            HttpSubject::Direct.url(Family::Ipv6),
            "http://[2001:2:0:1::11]/"
        );
        assert_eq!(HttpSubject::Nft.url(Family::Ipv4), "http://198.18.100.1/");
        assert_eq!(
            fast_path_sysctls(Family::Ipv6),
            ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"]
        );
    }

    #[test]
    fn rounds_interleave_and_ratios_are_their_median() {
        let (a, b) = (HttpSubject::UvsNatFast, HttpSubject::Nft);
        assert_eq!(
            interleaved(&[a, b], 3),
            vec![(0, a), (0, b), (1, b), (1, a), (2, a), (2, b)]
        );
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        let run = |s, round, rps| saturated_run(s, round, "close", rps);
        // Round 2 of `a` failed: only the rounds with both figures count.
        let mut runs = vec![
            run(a, 0, 90.0),
            run(b, 0, 100.0),
            run(b, 1, 100.0),
            run(a, 1, 120.0),
            run(b, 2, 100.0),
            run(a, 3, 100.0),
            run(b, 3, 50.0),
        ];
        runs.push(HttpRun {
            result: None,
            error: Some("x".into()),
            ..run(a, 2, 0.0)
        });
        let v = ratios(&runs);
        let k = &v["uvs_nat_fast_vs_nft_close"];
        assert_eq!(k["rounds"]["rps"], serde_json::json!([0.9, 1.2, 2.0]));
        assert_eq!(k["rps"], 1.2);
        assert!(k["p50"].is_null());
        let cpu: Vec<f64> = serde_json::from_value(k["rounds"]["cpu_per_request"].clone()).unwrap();
        assert_eq!(cpu.len(), 3);
        for (c, want) in cpu.iter().zip([1.0 / 0.9, 1.0 / 1.2, 0.5]) {
            assert!((c - want).abs() < 1e-9, "{cpu:?}");
        }
    }

    #[test]
    fn ratios_compare_uvs_with_each_peer() {
        let run = |s, rps, p99| HttpRun {
            subject: s,
            round: 0,
            connection: "keepalive",
            url: String::new(),
            result: Some(WrkResult {
                requests_per_s: rps,
                percentiles: vec![(99.0, p99)],
                ..Default::default()
            }),
            cpu: None,
            error: None,
        };
        let v = ratios(&[
            run(HttpSubject::UvsNat, 150.0, 500.0),
            run(HttpSubject::Haproxy, 100.0, 1000.0),
        ]);
        assert_eq!(v["uvs_nat_vs_haproxy_keepalive"]["rps"], 1.5);
        assert_eq!(v["uvs_nat_vs_haproxy_keepalive"]["p99"], 0.5);
        assert!(v["uvs_nat_vs_haproxy_keepalive"]["p50"].is_null());
        assert!(v.get("uvs_nat_vs_nft_keepalive").is_none());
    }
}
