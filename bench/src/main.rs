//! uvs-bench: throughput studies of uvs. Every subcommand prints a human summary and,
//! with `--json FILE`, writes every figure with the settings that produced it.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use uvs_dataplane::Method;

mod args;
mod defence;
mod environment;
mod http;
mod interrupt;
mod l7head;
mod memory;
mod pipeline;
mod report;
mod schedsim;
mod sync;
mod sync_link;
mod synflood;
mod synproxy;
mod testbed;
mod wakeup;

#[derive(Parser)]
#[command(
    name = "uvs-bench",
    version,
    about = "Throughput studies of the uvs load balancer"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The in-memory pipeline on one core: established and new flows per forwarding
    /// method, family and protocol, beside a baseline that only touches the same bytes.
    Pipeline {
        /// Active flows in the table for the established-flow scenarios (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = [1_000usize, 1_000_000], value_parser = args::count)]
        flows: Vec<usize>,
        /// Seconds per established-flow scenario.
        #[arg(long, default_value_t = 2.0, value_parser = args::seconds)]
        seconds: f64,
        /// Forwarding methods (nat, dr, tun, fullnat).
        #[arg(long, value_delimiter = ',', default_values_t = ["nat".to_string()])]
        methods: Vec<String>,
        /// Families (ipv4, ipv6).
        #[arg(long, value_delimiter = ',', default_values_t = ["ipv4".to_string()])]
        families: Vec<String>,
        /// Protocols (tcp, udp, sctp; SCTP scenarios run with NAT and DR/TUN only).
        #[arg(long, value_delimiter = ',', default_values_t = ["tcp".to_string()])]
        protocols: Vec<String>,
        /// Distinct new flows for the new-flow scenarios.
        #[arg(long, default_value_t = 1_000_000, value_parser = args::count)]
        new_flows: usize,
        /// Worker counts for the scaling scenarios (e.g. 1,2,4): established flows (the
        /// largest --flows) on that many pinned threads sharing one table.
        #[arg(long, value_delimiter = ',', value_parser = args::count)]
        workers: Vec<usize>,
        /// Skip the baseline scenarios (profiling the pipeline alone).
        #[arg(long)]
        no_baseline: bool,
        /// Frame lengths (e.g. 64,512,1500) for the checksum scenarios: established flows
        /// (the smallest --flows) with L4 checksum verification off, on over full
        /// checksums and on over partial ones, as ratios to "off". A length shorter than
        /// the headers gives the headers alone (IPv6/TCP: 74 bytes).
        #[arg(long, value_delimiter = ',')]
        checksum_frames: Vec<usize>,
        /// Stage budget of established flows (the smallest --flows): io, then adding the
        /// parse, then the connection lookup, then the full pipeline, alternating in short
        /// rounds; the last column is each stage's own cost in ns. Also new flows (the
        /// --new-flows count) in rounds of 4 096 SYNs, the best round ("newflows best").
        #[arg(long)]
        stages: bool,
        /// After each NAT and FullNAT established row (TCP, UDP, SCTP), the same flows' replies:
        /// packets from the real servers back through the balancer ("replies").
        #[arg(long)]
        replies: bool,
        /// Turn the workers' flow cache off (uvsd keeps it on): the established path as
        /// it is without it, to compare.
        #[arg(long)]
        no_flow_cache: bool,
        /// Write every figure and its settings here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Instead of the scenarios above: the SYN proxy's rows (cookie SYN-ACKs, whole
        /// proxied openings per connection, spliced established flows; --new-flows
        /// connections, the smallest --flows established) beside plain NAT's, TCP, per
        /// family.
        #[arg(long)]
        synproxy: bool,
    },
    /// 64-byte UDP through uvsd on the veth test network with an RFC 2544-style search,
    /// beside AF_XDP l2fwd, kernel forwarding and nftables DNAT in the same run (root).
    Testbed(testbed::cli::TestbedArgs),
    /// HTTP through the VIP with wrk (keep-alive and connection-per-request) for uvs,
    /// nftables DNAT, HAProxy (TCP mode) and one real server directly (root).
    Http(http::HttpArgs),
    /// A spoofed SYN flood at the generator's maximum rate against the VIP while wrk and a
    /// sha256-checked download use it: uvs with and without syn_proxy, and nftables'
    /// synproxy in front of an nftables DNAT (root).
    Synflood(synflood::SynfloodArgs),
    /// Discrete-event simulation of a cluster driving uvs's schedulers: mean and p99
    /// response time per scheduler per situation (pure CPU).
    Schedulers(schedsim::SchedArgs),
    /// Connection sync: codec records/s both ways (plain and authenticated), bytes per
    /// synced connection, and the new-flow rate with the sync tap on vs off (same run).
    Sync(sync::SyncArgs),
    /// Layer 7: receiving a request head over several segments, uvs's pending heads
    /// against smoltcp's TCP socket, beside NAT's established flows (pure CPU).
    L7head(l7head::L7headArgs),
    /// A hand-off to a sleeping thread on the same core and across cores: two threads
    /// ping-ponging over a socket pair (what a forwarding thread adds per crossing).
    Wakeup(wakeup::WakeupArgs),
    /// What a random cache line costs by working-set size: a pointer chase and prefetched
    /// independent loads over huge-page arrays (the platform under the large-table rows).
    Memory(memory::MemoryArgs),
    /// One sweep of the drop_entry defence on a table a SYN flood filled, beside a walk of
    /// the same table (pure CPU).
    DropEntry(defence::DropEntryArgs),
    /// A Markdown report with SVG plots from the JSON files of the other subcommands.
    Report(report::ReportArgs),
    /// (internal) AF_XDP UDP generator run by `testbed` inside the client namespace.
    #[command(hide = true)]
    XskGen(testbed::cli::GenArgs),
    /// (internal) AF_XDP l2fwd run by `testbed` inside the balancer namespace.
    #[command(hide = true)]
    XskL2fwd(testbed::cli::L2fwdArgs),
    /// (internal) UDP round trips after silence and back to back, run by `http` in the
    /// client namespace.
    #[command(hide = true)]
    UdpRtt(http::rtt::RttArgs),
    /// (internal) The sending side of `sync --link`.
    #[command(hide = true)]
    SyncLinkTx(sync_link::TxArgs),
    /// (internal) The receiving side of `sync --link`.
    #[command(hide = true)]
    SyncLinkRx(sync_link::RxArgs),
}

fn parse_method(s: &str) -> Result<Method> {
    Ok(match s {
        "nat" => Method::Nat,
        "dr" => Method::Dr,
        "tun" => Method::Tun,
        "fullnat" => Method::FullNat,
        _ => bail!("unknown method '{s}' (nat, dr, tun, fullnat)"),
    })
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // The helpers run inside the namespaces are stopped by their parent, by PID.
    if !matches!(
        cli.cmd,
        Cmd::XskGen(_)
            | Cmd::XskL2fwd(_)
            | Cmd::UdpRtt(_)
            | Cmd::SyncLinkTx(_)
            | Cmd::SyncLinkRx(_)
    ) {
        environment::start();
        interrupt::install();
    }
    match cli.cmd {
        Cmd::Testbed(a) => testbed::cli::testbed_main(a)?,
        Cmd::Http(a) => http::http_main(a)?,
        Cmd::Synflood(a) => synflood::synflood_main(a)?,
        Cmd::Schedulers(a) => schedsim::sched_main(a)?,
        Cmd::Sync(a) => sync::sync_main(a)?,
        Cmd::L7head(a) => l7head::l7head_main(a)?,
        Cmd::Report(a) => report::report_main(a)?,
        Cmd::Wakeup(a) => wakeup::wakeup_main(a)?,
        Cmd::Memory(a) => memory::memory_main(a)?,
        Cmd::DropEntry(a) => defence::drop_entry_main(a)?,
        Cmd::XskGen(a) => testbed::cli::gen_main(a)?,
        Cmd::XskL2fwd(a) => testbed::cli::l2fwd_main(a)?,
        Cmd::UdpRtt(a) => http::rtt::rtt_main(a)?,
        Cmd::SyncLinkTx(a) => sync_link::tx_main(a)?,
        Cmd::SyncLinkRx(a) => sync_link::rx_main(a)?,
        Cmd::Pipeline {
            flows,
            seconds,
            methods,
            families,
            protocols,
            new_flows,
            no_baseline,
            workers,
            checksum_frames,
            stages,
            replies,
            no_flow_cache,
            json,
            synproxy,
        } => {
            let opts = pipeline::Options {
                flows,
                seconds,
                methods: methods
                    .iter()
                    .map(|m| parse_method(m))
                    .collect::<Result<_>>()?,
                families: families
                    .iter()
                    .map(|f| match f.as_str() {
                        "ipv4" => Ok(false),
                        "ipv6" => Ok(true),
                        _ => bail!("unknown family '{f}' (ipv4, ipv6)"),
                    })
                    .collect::<Result<_>>()?,
                protocols: protocols
                    .iter()
                    .map(|p| match p.as_str() {
                        "tcp" => Ok(6),
                        "udp" => Ok(17),
                        "sctp" => Ok(132),
                        _ => bail!("unknown protocol '{p}' (tcp, udp, sctp)"),
                    })
                    .collect::<Result<_>>()?,
                new_flows,
                baseline: !no_baseline,
                workers,
                checksum_frames,
                stages,
                replies,
                flow_cache: !no_flow_cache,
            };
            println!(
                "{:<18} {:<8} {:<5} {:<4} {:>9} {:>8} {:>8} {:>10} {:>8}",
                "scenario", "method", "fam", "prot", "flows", "ns/pkt", "Mpps", "B/conn", "vs base"
            );
            let mut base_ns = 0.0;
            let mut csum_off_ns = 0.0;
            let mut stage_prev_ns = 0.0;
            let (mut nat_new_ns, mut nat_est_ns) = (0.0, 0.0);
            let mut print = |o: &pipeline::Outcome| {
                if o.scenario.kind == pipeline::Kind::Baseline {
                    base_ns = o.ns_per_packet;
                }
                match o.scenario.kind {
                    pipeline::Kind::NewFlows => nat_new_ns = o.ns_per_packet,
                    pipeline::Kind::Established => nat_est_ns = o.ns_per_packet,
                    _ => {}
                }
                if o.scenario.l4_checksum == Some("off") {
                    csum_off_ns = o.ns_per_packet;
                }
                let ratio = match o.scenario.kind {
                    pipeline::Kind::Established | pipeline::Kind::Replies if base_ns > 0.0 => {
                        format!("{:.2}x", base_ns / o.ns_per_packet)
                    }
                    // Throughput against the same frames with verification off.
                    pipeline::Kind::Checksum => format!("{:.2}x", csum_off_ns / o.ns_per_packet),
                    // The stage's own cost: this row minus the one before it.
                    pipeline::Kind::Stage => {
                        let own = if o.scenario.stage == Some("io") {
                            o.ns_per_packet
                        } else {
                            o.ns_per_packet - stage_prev_ns
                        };
                        stage_prev_ns = o.ns_per_packet;
                        format!("+{own:.1}ns")
                    }
                    // Throughput against plain NAT's row just before (new flows per
                    // connection, established per packet).
                    pipeline::Kind::SynProxyCookies | pipeline::Kind::SynProxyNewFlows => {
                        format!("{:.2}x nat", nat_new_ns / o.ns_per_packet)
                    }
                    pipeline::Kind::SynProxyEstablished => {
                        format!("{:.2}x nat", nat_est_ns / o.ns_per_packet)
                    }
                    _ => String::new(),
                };
                println!(
                    "{:<18} {:<8} {:<5} {:<4} {:>9} {:>8.1} {:>8.2} {:>10} {:>8}",
                    match (o.scenario.kind, o.scenario.l4_checksum) {
                        (pipeline::Kind::Scaling, _) => format!("scaling x{}", o.scenario.workers),
                        (pipeline::Kind::Stage, _) => {
                            format!("stage {}", o.scenario.stage.unwrap_or("?"))
                        }
                        (pipeline::Kind::NewFlows, _) if o.scenario.stage.is_some() => {
                            "newflows best".into()
                        }
                        (_, Some(c)) => format!("csum {c} {}B", o.scenario.frame_len),
                        _ => format!("{:?}", o.scenario.kind).to_lowercase(),
                    },
                    o.scenario.method,
                    o.scenario.family,
                    o.scenario.protocol,
                    o.scenario.flows,
                    o.ns_per_packet,
                    o.mpps,
                    o.bytes_per_conn
                        .map_or(String::new(), |b| format!("{b:.1}")),
                    ratio
                );
                if o.forwarded != o.packets {
                    eprintln!(
                        "warning: {} of {} packets forwarded ({} dropped) — the figure above is not a forwarding rate",
                        o.forwarded, o.packets, o.drops
                    );
                }
            };
            let results = if synproxy {
                let mut rows = Vec::new();
                for &v6 in &opts.families {
                    let flows = opts.flows.iter().copied().min().unwrap_or(1000);
                    for o in synproxy::run(v6, opts.new_flows, flows, opts.seconds) {
                        print(&o);
                        rows.push(o);
                    }
                }
                rows
            } else {
                pipeline::run(&opts, print)
            };
            if let Some(path) = json {
                let doc = serde_json::json!({
                    "benchmark": "pipeline",
                    "environment": environment::record(None, &[]),
                    "settings": {
                        "seconds": seconds,
                        "new_flows": new_flows,
                        "workers": "1 (scaling rows: see each row's workers)",
                        "port": "in-memory replay (one copy per frame in, one per frame out)",
                    },
                    "results": results,
                });
                std::fs::write(&path, serde_json::to_string_pretty(&doc)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
