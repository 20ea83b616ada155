//! `uvs-bench sync`: what connection sync costs and carries, measured in one run.
//!
//! - **Codec**: records encoded into IPVS sync v1 messages (MTU 1500) per second, and
//!   parsed and installed into a connection table per second, plain and authenticated;
//!   bytes per synced connection on the wire (UDP payload).
//! - **Packet path**: new-flow and established-flow rates with the sync tap on (a sync
//!   master) vs off, in alternating rounds of the same scenario; the ratio is the sync
//!   cost on the packet path.
//! - **Link** (`--link`, root): the same records over UDP on a veth pair between two
//!   namespaces, sender to receiver (`crate::sync_link`).

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use uvs_dataplane::{lab, Method, Shared, TablesBuilder};
use uvs_sched::SchedulerKind;
use uvs_sync::install;
use uvs_sync::wire::{self, MessageWriter, SyncConn};

#[derive(Args)]
pub struct SyncArgs {
    /// Connection records per codec round.
    #[arg(long, default_value_t = 200_000, value_parser = crate::args::count)]
    records: usize,
    /// New flows per packet-path round (at most 65 536: the tap's queue is not drained).
    #[arg(long, default_value_t = 60_000, value_parser = crate::args::count)]
    new_flows: usize,
    /// Rounds of each scenario; each reports its best round.
    #[arg(long, default_value_t = 5, value_parser = crate::args::count)]
    rounds: usize,
    /// Instead: sync over a real link (root): a sender and a receiver in two network
    /// namespaces joined by a veth pair, one run per `--link-rates` rate.
    #[arg(long)]
    link: bool,
    /// Records each link run sends.
    #[arg(long, default_value_t = 200_000, value_parser = crate::args::count)]
    link_records: usize,
    /// Sending rates in records/s for the link runs; 0: as fast as the socket takes them.
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 100_000.0, 400_000.0, 1_000_000.0])]
    link_rates: Vec<f64>,
    /// Receive buffers for the link runs, bytes (0: the kernel's default; 8388608: what
    /// uvsd's sync backup asks for).
    #[arg(long, value_delimiter = ',', default_values_t = [0usize, 8 << 20])]
    link_rcvbuf: Vec<usize>,
    /// Write every figure, its settings and the run's environment here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// The `i`th of many distinct IPv4 NAT connections to the lab's service.
pub(crate) fn record(i: usize) -> SyncConn {
    SyncConn {
        protocol: 6,
        flags: wire::flags::MASQ,
        state: 1,
        caddr: std::net::Ipv4Addr::from(0xc612_0000u32 + (i as u32 % 60_000)).into(),
        cport: 1024 + (i / 60_000) as u16,
        vaddr: lab::VIP4.parse().unwrap(),
        vport: 80,
        daddr: lab::real(1 + (i % 3) as u8, false).to_ip(),
        dport: 80,
        fwmark: 0,
        timeout: 900,
        fullnat: None,
    }
}

fn encode(recs: &[SyncConn], key: Option<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut w = MessageWriter::new(1, 1472, key);
    let mut out = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        out.extend(w.push(r, i as u64 + 1));
    }
    out.extend(w.finish(u64::MAX));
    out
}

pub fn sync_main(a: SyncArgs) -> Result<()> {
    if a.link {
        let rows = crate::sync_link::link_main(a.link_records, &a.link_rates, &a.link_rcvbuf)?;
        return write_json(
            &a,
            json!({ "link_records": a.link_records, "link_rates": &a.link_rates,
                    "link_rcvbuf": &a.link_rcvbuf }),
            json!({ "link": rows }),
        );
    }
    let mut codec = Vec::new();
    let recs: Vec<SyncConn> = (0..a.records).map(record).collect();
    let key = b"0123456789abcdef0123456789abcdef".to_vec();
    let spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    println!("{:<34} {:>14} {:>12}", "scenario", "records/s", "msgs/s");
    for (name, k) in [("plain", None), ("authenticated", Some(key))] {
        let mut best_enc = 0.0f64;
        let mut best_inst = 0.0f64;
        let mut msgs = Vec::new();
        for _ in 0..a.rounds {
            let t = Instant::now();
            msgs = encode(&recs, k.clone());
            best_enc = best_enc.max(recs.len() as f64 / t.elapsed().as_secs_f64());
            let tables = TablesBuilder::build(&spec, None)?;
            let shared = Shared::new(tables, 2 * a.records, 1);
            let tables = shared.tables.load();
            let now = shared.clock.now_ticks();
            let t = Instant::now();
            let mut n = 0;
            for m in &msgs {
                let p = wire::parse(m, 1, k.as_deref()).expect("own message parses");
                for c in &p.conns {
                    if install::install(&tables, &shared.conns, c, now).is_ok() {
                        n += 1;
                    }
                }
            }
            assert_eq!(n, recs.len(), "every record installed");
            best_inst = best_inst.max(n as f64 / t.elapsed().as_secs_f64());
        }
        let per_msg = recs.len() as f64 / msgs.len() as f64;
        let bytes: usize = msgs.iter().map(Vec::len).sum();
        println!(
            "{:<34} {:>14.0} {:>12.0}",
            format!("encode ({name})"),
            best_enc,
            best_enc / per_msg
        );
        println!(
            "{:<34} {:>14.0} {:>12.0}",
            format!("parse + install ({name})"),
            best_inst,
            best_inst / per_msg
        );
        println!(
            "{:<34} {:>14.1} bytes/connection on the wire, {:.1} connections/message",
            format!("size ({name})"),
            bytes as f64 / recs.len() as f64,
            per_msg
        );
        codec.push(json!({
            "messages": name,
            "encode_records_per_s": best_enc,
            "install_records_per_s": best_inst,
            "bytes_per_connection": bytes as f64 / recs.len() as f64,
            "connections_per_message": per_msg,
        }));
    }
    // Packet path: tap on vs off, alternating rounds, best of each.
    let n = a.new_flows.min(uvs_dataplane::sync_tap::QUEUE_LEN);
    let (mut off, mut on) = (0.0f64, 0.0f64);
    for _ in 0..a.rounds {
        off = off.max(crate::pipeline::new_flows_with(Method::Nat, false, 6, n, false).mpps);
        on = on.max(crate::pipeline::new_flows_with(Method::Nat, false, 6, n, true).mpps);
    }
    println!(
        "new flows NAT IPv4/TCP: tap off {:.2} M/s, tap on {:.2} M/s, on/off {:.3}x",
        off,
        on,
        on / off
    );
    let new_flows = json!({ "flows": n, "tap_off_mpps": off, "tap_on_mpps": on });
    // Established flows (1 000 in the table): the tap sees only state changes, so this is
    // the cost of its check on every packet.
    let (mut off, mut on) = (0.0f64, 0.0f64);
    let seconds = 0.3;
    for _ in 0..a.rounds {
        off = off.max(
            crate::pipeline::established_with(Method::Nat, false, 6, 1000, seconds, false).mpps,
        );
        on = on.max(
            crate::pipeline::established_with(Method::Nat, false, 6, 1000, seconds, true).mpps,
        );
    }
    println!(
        "established NAT IPv4/TCP, 1 000 flows: tap off {:.2} Mpps, tap on {:.2} Mpps, on/off {:.3}x",
        off,
        on,
        on / off
    );
    write_json(
        &a,
        json!({ "records": a.records, "new_flows": a.new_flows, "rounds": a.rounds,
                "figures": "best round of each", "mtu": 1500 }),
        json!({
            "codec": codec,
            "packet_path": {
                "new_flows_nat_ipv4_tcp": new_flows,
                "established_nat_ipv4_tcp_1000_flows":
                    { "seconds": seconds, "tap_off_mpps": off, "tap_on_mpps": on },
            },
        }),
    )
}

/// `--json`: the figures with their settings and the run's environment.
fn write_json(a: &SyncArgs, settings: serde_json::Value, results: serde_json::Value) -> Result<()> {
    let Some(path) = &a.json else {
        return Ok(());
    };
    let doc = json!({
        "benchmark": "sync",
        "environment": crate::environment::record(None, &[]),
        "settings": settings,
        "results": results,
    });
    std::fs::write(path, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}
