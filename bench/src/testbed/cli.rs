//! Command-line front ends of the testbed: `uvs-bench testbed` and the hidden helpers it
//! starts inside the namespaces (`xsk-gen`, `xsk-l2fwd`).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::net::parse_mac;
use super::search::SearchSettings;
use super::{ratio, ratio_q, xsk, Options, Subject, SubjectResult};

#[derive(Args, Debug)]
pub struct TestbedArgs {
    /// The uvsd binary (default: the one beside uvs-bench, same target directory).
    #[arg(long)]
    pub uvsd: Option<PathBuf>,
    /// scripts/testbed.sh of the repository.
    #[arg(long)]
    pub testbed_script: Option<PathBuf>,
    /// Testbed tag (namespaces uvs-TAG-*), ≤ 8 characters.
    #[arg(long, default_value = "bench")]
    pub tag: String,
    /// Subjects in order (uvs, l2fwd, l2fwd-shared, kernel, nft).
    #[arg(long, value_delimiter = ',', default_values_t = ["uvs".to_string(), "l2fwd".to_string(), "kernel".to_string(), "nft".to_string()])]
    pub subjects: Vec<String>,
    /// Seconds per trial.
    #[arg(long, default_value_t = 1.0, value_parser = crate::args::seconds)]
    pub trial_seconds: f64,
    /// Search trials after the unpaced one.
    #[arg(long, default_value_t = 6)]
    pub steps: usize,
    /// Largest loss ratio that counts as "no loss" (veth drops a few frames per burst).
    #[arg(long, default_value_t = 0.001)]
    pub loss_tolerance: f64,
    /// Distinct UDP flows (source ports).
    #[arg(long, default_value_t = 1024, value_parser = crate::args::count)]
    pub flows: usize,
    /// Frame length without FCS (60 = 64-byte frames).
    #[arg(long, default_value_t = 60)]
    pub frame_len: usize,
    /// Core for the generator.
    #[arg(long, default_value_t = 0)]
    pub gen_core: usize,
    /// Core for the device under test (uvsd worker, l2fwd, kernel RPS).
    #[arg(long, default_value_t = 1)]
    pub dut_core: usize,
    /// Queue counts to measure `uvs` with, e.g. `1,2`: each link gets that many queues,
    /// uvsd one worker per queue, the generator one thread per queue (cores shared in
    /// turn between `--gen-core` and `--dut-core`). The other subjects use one queue.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub queues: Vec<usize>,
    /// Write every figure and its settings here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn testbed_main(a: TestbedArgs) -> Result<()> {
    let o = Options {
        uvsd: a.uvsd,
        testbed_script: a
            .testbed_script
            .unwrap_or_else(super::net::default_testbed_script),
        tag: a.tag,
        subjects: a
            .subjects
            .iter()
            .map(|s| Subject::parse(s))
            .collect::<Result<_>>()?,
        trial_seconds: a.trial_seconds,
        search: SearchSettings {
            loss_tolerance: a.loss_tolerance,
            max_steps: a.steps,
            resolution: 0.02,
        },
        flows: a.flows,
        frame_len: a.frame_len,
        gen_core: a.gen_core,
        dut_core: a.dut_core,
        queues: a.queues,
    };
    if o.queues.is_empty() || o.queues.iter().any(|&q| !(1..=8).contains(&q)) {
        anyhow::bail!("--queues takes counts between 1 and 8");
    }
    let results = super::run(&o)?;
    print_summary(&results);
    if let Some(path) = a.json {
        let doc = serde_json::json!({
            "benchmark": "testbed",
            "environment": crate::environment::record(
                o.uvsd
                    .clone()
                    .or_else(|| super::net::sibling_binary("uvsd"))
                    .as_deref(),
                &["nft", "ip"],
            ),
            "settings": &o,
            "frame_bytes_on_wire": o.frame_len + 4,
            "receiver": "nftables netdev-ingress counter+drop of the UDP port on each real server link",
            "results": &results,
            "ratios": ratios(&results),
        });
        std::fs::write(&path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if results.iter().all(|r| r.throughput.is_none()) {
        anyhow::bail!("no subject produced a figure");
    }
    Ok(())
}

fn ratios(r: &[SubjectResult]) -> serde_json::Value {
    let pair = |a, b| {
        serde_json::json!({
            "zero_loss": ratio(r, a, b, false),
            "max_delivered": ratio(r, a, b, true),
        })
    };
    serde_json::json!({
        "uvs_vs_l2fwd": pair(Subject::Uvs, Subject::L2fwd),
        "l2fwd_shared_umem_vs_copy": pair(Subject::L2fwdShared, Subject::L2fwd),
        "uvs_vs_nft": pair(Subject::Uvs, Subject::Nft),
        "uvs_vs_kernel": pair(Subject::Uvs, Subject::Kernel),
        "uvs_by_queues_vs_1": r
            .iter()
            .filter(|x| x.subject == Subject::Uvs && x.queues > 1)
            .map(|x| {
                let q = (Subject::Uvs, x.queues);
                (
                    x.queues.to_string(),
                    serde_json::json!({
                        "zero_loss": ratio_q(r, q, (Subject::Uvs, 1), false),
                        "max_delivered": ratio_q(r, q, (Subject::Uvs, 1), true),
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>(),
    })
}

fn print_summary(results: &[SubjectResult]) {
    println!(
        "{:<8} {:>6} {:>14} {:>16} {:>14}  note",
        "subject", "queues", "no-loss Mpps", "max fwd Mpps", "gen max Mpps"
    );
    for r in results {
        match &r.throughput {
            Some(t) => println!(
                "{:<8} {:>6} {:>14.3} {:>16.3} {:>14.3}  {}",
                r.subject.name(),
                r.queues,
                t.zero_loss_pps / 1e6,
                t.max_delivered_pps / 1e6,
                t.max_offered_pps / 1e6,
                if t.generator_bound {
                    "generator-bound"
                } else {
                    ""
                }
            ),
            None => println!(
                "{:<8} {:>6} {:>14} {:>16} {:>14}  {}",
                r.subject.name(),
                r.queues,
                "-",
                "-",
                "-",
                r.error.as_deref().unwrap_or("")
            ),
        }
    }
    let show = |label: &str, a, b| {
        let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}x"));
        println!(
            "{label:<16} no-loss {:>7}   max fwd {:>7}",
            f(ratio(results, a, b, false)),
            f(ratio(results, a, b, true))
        );
    };
    for r in results {
        for n in &r.notes {
            println!("{:<8} {n}", r.subject.name());
        }
    }
    show("uvs / l2fwd", Subject::Uvs, Subject::L2fwd);
    show("shared / copy", Subject::L2fwdShared, Subject::L2fwd);
    show("uvs / nft DNAT", Subject::Uvs, Subject::Nft);
    show("uvs / kernel fwd", Subject::Uvs, Subject::Kernel);
    let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}x"));
    for r in results
        .iter()
        .filter(|r| r.subject == Subject::Uvs && r.queues > 1)
    {
        let q = (Subject::Uvs, r.queues);
        println!(
            "{:<16} no-loss {:>7}   max fwd {:>7}",
            format!("uvs {}q / 1q", r.queues),
            f(ratio_q(results, q, (Subject::Uvs, 1), false)),
            f(ratio_q(results, q, (Subject::Uvs, 1), true))
        );
    }
}

#[derive(Args, Debug)]
pub struct GenArgs {
    #[arg(long)]
    pub dev: String,
    #[arg(long)]
    pub src_mac: String,
    #[arg(long)]
    pub dst_mac: String,
    #[arg(long)]
    pub src_ip: Ipv4Addr,
    #[arg(long, value_delimiter = ',')]
    pub dst_ips: Vec<Ipv4Addr>,
    #[arg(long)]
    pub port: u16,
    #[arg(long, default_value_t = 1024, value_parser = crate::args::count)]
    pub flows: usize,
    #[arg(long, default_value_t = 60)]
    pub frame_len: usize,
    /// Packets per second; 0 = unpaced.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    #[arg(long)]
    pub seconds: f64,
    /// Transmit queues, one sending thread each (the rate is split evenly).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub queue: Vec<u32>,
    /// Cores the sending threads are pinned to, in turn.
    #[arg(long, value_delimiter = ',')]
    pub core: Vec<usize>,
    /// SYN flood: TCP SYNs from this many spoofed sources (198.19.0.0/16) instead of UDP.
    #[arg(long, default_value_t = 0)]
    pub syn_spoof: u32,
}

pub fn gen_main(a: GenArgs) -> Result<()> {
    let r = xsk::generate(&xsk::GenSpec {
        dev: a.dev,
        src_mac: parse_mac(&a.src_mac)?,
        dst_mac: parse_mac(&a.dst_mac)?,
        src_ip: a.src_ip,
        dst_ips: a.dst_ips,
        dst_port: a.port,
        flows: a.flows,
        frame_len: a.frame_len,
        rate_pps: a.rate,
        seconds: a.seconds.clamp(0.01, 600.0),
        queues: a.queue,
        cores: a.core,
        syn_spoof: a.syn_spoof,
    })?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

#[derive(Args, Debug)]
pub struct L2fwdArgs {
    #[arg(long)]
    pub rx_dev: String,
    #[arg(long)]
    pub tx_dev: String,
    #[arg(long)]
    pub src_mac: String,
    #[arg(long, value_delimiter = ',')]
    pub dst_macs: Vec<String>,
    /// Stops by itself after this many seconds.
    #[arg(long)]
    pub seconds: f64,
    #[arg(long)]
    pub core: Option<usize>,
    /// Created once the sockets are ready.
    #[arg(long)]
    pub ready: Option<PathBuf>,
    /// Running totals (JSON) are written here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// One UMEM for both sockets: forward by descriptor instead of copying.
    #[arg(long)]
    pub shared_umem: bool,
}

pub fn l2fwd_main(a: L2fwdArgs) -> Result<()> {
    let spec = xsk::L2fwdSpec {
        rx_dev: a.rx_dev,
        tx_dev: a.tx_dev,
        src_mac: parse_mac(&a.src_mac)?,
        dst_macs: a
            .dst_macs
            .iter()
            .map(|m| parse_mac(m))
            .collect::<Result<_>>()?,
        seconds: a.seconds.clamp(0.1, 3600.0),
        core: a.core,
        shared_umem: a.shared_umem,
    };
    let r = xsk::l2fwd(&spec, a.ready.as_deref(), a.out.as_deref())?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
