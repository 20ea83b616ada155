//! `http --side-by-side`: two subjects measured at the same time, each on a test network
//! and a CPU of its own, the CPUs swapped every round.
//!
//! Run one after the other, a subject's keep-alive rate on this 2-vCPU VM moved by a third
//! between 5 s runs, with every process pinned to one CPU and no steal time counted
//! (bench/README.md, "Keep-alive side by side"): the host's load changes faster than a
//! run, and falls on one subject's runs and not the other's. Here both subjects' wrk runs
//! overlap in time, so what the host does to the machine falls on both alike; each test
//! network (its client, balancer and real servers' processes, and wrk) is pinned to one
//! CPU, and the two swap CPUs every round, so a difference between the two vCPUs falls on
//! each subject alike over an even number of rounds. A subject's CPU time a request is its
//! own CPU's /proc/stat line.

use std::path::Path;

use anyhow::{bail, Result};

use super::{median, pin, record, run_wrk, server_roles, set_up, wait_ready, HttpArgs, HttpRun};
use super::{up_for_http, HttpSubject, Setup};

/// The CPUs the two test networks take, in even rounds; odd rounds swap them.
const CPUS: [usize; 2] = [0, 1];

/// Runs `subjects` (exactly two, on the same testbed mode) side by side for `a.rounds`
/// rounds: their runs, round by round.
pub fn run(a: &HttpArgs, subjects: &[HttpSubject], script: &Path) -> Result<Vec<HttpRun>> {
    let [first, second] = subjects else {
        bail!(
            "--side-by-side takes exactly two subjects, not {}",
            subjects.len()
        );
    };
    if first.mode() != second.mode() {
        bail!(
            "--side-by-side: {} and {} run on different test network modes",
            first.name(),
            second.name()
        );
    }
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        bail!("--side-by-side needs two CPUs");
    }
    let pair = [*first, *second];
    let mode = first.mode();
    eprintln!(
        "http: two test networks in {mode} mode (tags {0}a, {0}b), side by side, over {1}",
        a.tag,
        a.family.name()
    );
    let tbs = [
        up_for_http(script, &format!("{}a", a.tag), mode)?,
        up_for_http(script, &format!("{}b", a.tag), mode)?,
    ];
    let setups: Vec<Setup> = tbs
        .iter()
        .zip(pair)
        .map(|(tb, s)| {
            let st = set_up(tb, s, a)?;
            wait_ready(tb, &s.url(a.family))?;
            Ok(st)
        })
        .collect::<Result<_>>()?;
    let conns: &[bool] = if a.keepalive_only {
        &[false]
    } else {
        &[false, true]
    };
    let mut roles = server_roles();
    roles.push("lb".into());
    let mut runs = Vec::new();
    for round in 0..a.rounds {
        let cpus = if round % 2 == 0 {
            CPUS
        } else {
            [CPUS[1], CPUS[0]]
        };
        for (tb, cpu) in tbs.iter().zip(cpus) {
            pin(tb, &roles, &cpu.to_string())?;
        }
        for &close in conns {
            let connection = if close { "close" } else { "keepalive" };
            eprintln!(
                "  {} on CPU {}, {} on CPU {}: {connection} wrk {} s (round {}/{}) ...",
                pair[0].name(),
                cpus[0],
                pair[1].name(),
                cpus[1],
                a.seconds,
                round + 1,
                a.rounds
            );
            let results: Vec<_> = std::thread::scope(|scope| {
                let handles: Vec<_> = tbs
                    .iter()
                    .zip(pair)
                    .zip(cpus)
                    .map(|((tb, s), cpu)| {
                        scope.spawn(move || {
                            let (list, line) = (cpu.to_string(), format!("cpu{cpu}"));
                            run_wrk(tb, a, &s.url(a.family), close, Some(&list), &line)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| bail!("a wrk thread panicked")))
                    .collect()
            });
            for (s, r) in pair.into_iter().zip(results) {
                runs.push(record(s, a.family, round, connection, r));
            }
        }
    }
    drop(setups);
    Ok(runs)
}

/// The second subject's figures over the first's, round by round, in each connection mode:
/// requests per second and CPU time a request, each with its median. Works for a subject
/// against itself too (`--subjects nft,nft`: how far two identical subjects spread here),
/// which the named pairs of [`super::ratios`] cannot tell apart. `runs` as [`run`] returns
/// them: each round's two runs of a connection mode next to each other, the first subject's
/// first.
pub fn ratios(runs: &[HttpRun]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for conn in ["keepalive", "close"] {
        let (mut rps, mut cpu) = (Vec::new(), Vec::new());
        for two in runs.chunks_exact(2).filter(|t| t[0].connection == conn) {
            if let (Some(a), Some(b)) = (&two[0].result, &two[1].result) {
                rps.push(b.requests_per_s / a.requests_per_s.max(1e-9));
            }
            if let (Some(a), Some(b)) = (&two[0].cpu, &two[1].cpu) {
                cpu.push(b.busy_us_per_request / a.busy_us_per_request.max(1e-9));
            }
        }
        if rps.is_empty() {
            continue;
        }
        out.insert(
            conn.to_string(),
            serde_json::json!({
                "rps": median(&rps),
                "cpu_per_request": median(&cpu),
                "rounds": {"rps": rps, "cpu_per_request": cpu},
            }),
        );
    }
    serde_json::Value::Object(out)
}

/// Prints [`ratios`].
pub fn print_ratios(runs: &[HttpRun]) {
    let (Some(a), Some(b)) = (runs.first(), runs.get(1)) else {
        return;
    };
    let v = ratios(runs);
    let Some(modes) = v.as_object() else { return };
    for (conn, r) in modes {
        let list = |k: &str| {
            r["rounds"][k]
                .as_array()
                .map(|x| {
                    x.iter()
                        .filter_map(|v| v.as_f64())
                        .map(|v| format!("{v:.2}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default()
        };
        println!(
            "side by side, {} / {} {conn:<9} rps {:.2}x [{}]  cpu/req {:.2}x [{}]",
            b.subject.name(),
            a.subject.name(),
            r["rps"].as_f64().unwrap_or(f64::NAN),
            list("rps"),
            r["cpu_per_request"].as_f64().unwrap_or(f64::NAN),
            list("cpu_per_request"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::saturated_run;

    fn run(s: HttpSubject, round: u32, rps: f64) -> HttpRun {
        saturated_run(s, round, "keepalive", rps)
    }

    #[test]
    fn a_subject_against_itself_is_paired_by_position() {
        let n = HttpSubject::Nft;
        let runs = [
            run(n, 0, 100.0),
            run(n, 0, 80.0),
            run(n, 1, 50.0),
            run(n, 1, 100.0),
        ];
        let v = ratios(&runs);
        let k = &v["keepalive"];
        assert_eq!(k["rounds"]["rps"], serde_json::json!([0.8, 2.0]));
        assert_eq!(k["rps"], 1.4);
        let cpu: Vec<f64> = serde_json::from_value(k["rounds"]["cpu_per_request"].clone()).unwrap();
        assert!((cpu[0] - 1.25).abs() < 1e-9 && (cpu[1] - 0.5).abs() < 1e-9);
        assert!(v.get("close").is_none());
    }
}
