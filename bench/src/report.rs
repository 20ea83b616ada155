//! `uvs-bench report`: a Markdown report with SVG plots from the JSON the other
//! subcommands write (`--json FILE`): throughput against the same-run peers, pipeline
//! throughput against table size, HTTP requests/s and latency CDFs, and the scheduler
//! comparison. Every file is recognised by its `"benchmark"` field.

pub mod svg;

use std::fmt::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;

use svg::{BarSeries, LineSeries};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// JSON files from `pipeline`, `testbed`, `http` and `schedulers` (`--json`).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Directory for report.md and the SVG plots.
    #[arg(long, default_value = "bench-report")]
    pub out: PathBuf,
}

/// What a report produced: Markdown and (file name, SVG) pairs.
pub struct Report {
    pub markdown: String,
    pub plots: Vec<(String, String)>,
}

pub fn report_main(a: ReportArgs) -> Result<()> {
    let mut docs = Vec::new();
    for p in &a.inputs {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))?;
        docs.push((p.display().to_string(), v));
    }
    let r = build(&docs)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    for (name, body) in &r.plots {
        std::fs::write(a.out.join(name), body)?;
    }
    let md = a.out.join("report.md");
    std::fs::write(&md, &r.markdown)?;
    println!("wrote {} and {} plots", md.display(), r.plots.len());
    Ok(())
}

/// Builds the report from (source name, document) pairs.
pub fn build(docs: &[(String, Value)]) -> Result<Report> {
    let mut r = Report {
        markdown: String::from("# uvs throughput study\n\n"),
        plots: Vec::new(),
    };
    for (src, d) in docs {
        let kind = d["benchmark"].as_str().unwrap_or("");
        let _ = writeln!(r.markdown, "<!-- from {src} -->");
        match kind {
            "testbed" => testbed(&mut r, d),
            "pipeline" => pipeline(&mut r, d),
            "http" => http(&mut r, d),
            "schedulers" => schedulers(&mut r, d),
            _ => bail!("{src}: unknown benchmark '{kind}' (expected testbed, pipeline, http or schedulers)"),
        }
        let e = &d["environment"];
        if e.is_object() {
            let m = &e["machine"];
            let commit = e["source_tree"]["commit"]
                .as_str()
                .map_or(String::new(), |c| {
                    let modified = if e["source_tree"]["modified"] == true {
                        " (modified)"
                    } else {
                        ""
                    };
                    format!(", commit {}{modified}", &c[..c.len().min(12)])
                });
            let _ = writeln!(
                r.markdown,
                "\nRun {} on {} ({} CPUs, kernel {}), uvs-bench {}{commit}{}.",
                e["started_utc"].as_str().unwrap_or("?"),
                m["cpu_model"].as_str().unwrap_or("an unknown CPU"),
                m["logical_cpus"],
                m["kernel"].as_str().unwrap_or("?"),
                e["uvs_bench"]["version"].as_str().unwrap_or("?"),
                if e["uvs_bench"]["debug_build"] == true {
                    ", a debug build"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(
            r.markdown,
            "\n<details><summary>settings</summary>\n\n```json\n{}\n```\n</details>\n",
            serde_json::to_string_pretty(&d["settings"]).unwrap_or_default()
        );
        if e.is_object() {
            let _ = writeln!(
                r.markdown,
                "<details><summary>environment</summary>\n\n```json\n{}\n```\n</details>\n",
                serde_json::to_string_pretty(e).unwrap_or_default()
            );
        }
    }
    Ok(r)
}

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.digits$}"))
}

fn plot(r: &mut Report, name: &str, alt: &str, body: String) {
    let _ = writeln!(r.markdown, "\n![{alt}]({name})\n");
    r.plots.push((name.to_string(), body));
}

fn testbed(r: &mut Report, d: &Value) {
    r.markdown
        .push_str("## Packet throughput on the veth testbed (64-byte UDP)\n\n");
    r.markdown.push_str(
        "| subject | no-loss Mpps | max forwarded Mpps | generator max Mpps | note |\n|---|---:|---:|---:|---|\n",
    );
    let results = d["results"].as_array().cloned().unwrap_or_default();
    let (mut cats, mut zl, mut mx) = (Vec::new(), Vec::new(), Vec::new());
    for s in &results {
        let name = s["subject"].as_str().unwrap_or("?").to_string();
        let t = &s["throughput"];
        let z = f(&t["zero_loss_pps"]).map(|v| v / 1e6);
        let m = f(&t["max_delivered_pps"]).map(|v| v / 1e6);
        let g = f(&t["max_offered_pps"]).map(|v| v / 1e6);
        let note = if t["generator_bound"].as_bool() == Some(true) {
            "generator-bound (a lower bound)".to_string()
        } else {
            s["error"].as_str().unwrap_or("").to_string()
        };
        let _ = writeln!(
            r.markdown,
            "| {name} | {} | {} | {} | {note} |",
            opt(z, 3),
            opt(m, 3),
            opt(g, 3)
        );
        cats.push(name);
        zl.push(z);
        mx.push(m);
    }
    r.markdown
        .push_str("\n| ratio | no-loss | max forwarded |\n|---|---:|---:|\n");
    if let Some(obj) = d["ratios"].as_object() {
        for (k, v) in obj {
            let _ = writeln!(
                r.markdown,
                "| {} | {} | {} |",
                k.replace("_vs_", " / "),
                opt(f(&v["zero_loss"]), 2),
                opt(f(&v["max_delivered"]), 2)
            );
        }
    }
    let body = svg::bars(
        "64-byte UDP throughput, same run",
        "Mpps",
        &cats,
        &[
            BarSeries {
                name: "no loss".into(),
                values: zl,
            },
            BarSeries {
                name: "max forwarded".into(),
                values: mx,
            },
        ],
    );
    plot(r, "testbed-throughput.svg", "throughput vs peers", body);
}

fn pipeline(r: &mut Report, d: &Value) {
    r.markdown
        .push_str("## Pipeline throughput against connection-table size (one core, in memory)\n\n");
    let results = d["results"].as_array().cloned().unwrap_or_default();
    let mut series: Vec<LineSeries> = Vec::new();
    r.markdown
        .push_str("| scenario | method | family | protocol | flows | ns/pkt | Mpps |\n|---|---|---|---|---:|---:|---:|\n");
    for o in &results {
        let sc = &o["scenario"];
        let mut kind = sc["kind"].as_str().unwrap_or("?").to_string();
        // Checksum rows: one frame size each, not a point on the table-size curve.
        let checksum = sc["l4_checksum"].as_str();
        if let Some(c) = checksum {
            kind = format!("checksum {c} {}B", opt(f(&sc["frame_len"]), 0));
        }
        let label = format!(
            "{} {} {} {}",
            kind,
            sc["method"].as_str().unwrap_or(""),
            sc["family"].as_str().unwrap_or(""),
            sc["protocol"].as_str().unwrap_or("")
        );
        let flows = f(&sc["flows"]).unwrap_or(0.0);
        let mpps = f(&o["mpps"]).unwrap_or(0.0);
        let _ = writeln!(
            r.markdown,
            "| {kind} | {} | {} | {} | {flows} | {} | {mpps:.2} |",
            sc["method"].as_str().unwrap_or(""),
            sc["family"].as_str().unwrap_or(""),
            sc["protocol"].as_str().unwrap_or(""),
            opt(f(&o["ns_per_packet"]), 1)
        );
        if flows > 0.0 && checksum.is_none() {
            match series.iter_mut().find(|s| s.name == label) {
                Some(s) => s.points.push((flows, mpps)),
                None => series.push(LineSeries {
                    name: label,
                    points: vec![(flows, mpps)],
                }),
            }
        }
    }
    for s in &mut series {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let body = svg::lines(
        "Pipeline Mpps vs active flows",
        "flows in the table",
        "Mpps",
        &series,
        true,
    );
    plot(
        r,
        "pipeline-table-size.svg",
        "throughput vs table size",
        body,
    );
}

fn http(r: &mut Report, d: &Value) {
    r.markdown.push_str("## HTTP through the VIP (wrk)\n\n");
    r.markdown.push_str(
        "| subject | connection | req/s | p50 µs | p99 µs | p99.9 µs | errors |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    let runs = d["results"].as_array().cloned().unwrap_or_default();
    let pct = |res: &Value, p: f64| {
        res["percentiles"].as_array().and_then(|a| {
            a.iter()
                .find(|x| f(&x[0]).is_some_and(|q| (q - p).abs() < 1e-9))
                .and_then(|x| f(&x[1]))
        })
    };
    let mut subjects: Vec<String> = Vec::new();
    for run in &runs {
        let s = run["subject"].as_str().unwrap_or("?").to_string();
        if !subjects.contains(&s) {
            subjects.push(s.clone());
        }
        // `http --rounds`: every round is a row; the charts below draw the rounds' median.
        let s = match run["round"].as_u64() {
            Some(round) if round > 0 => format!("{s} (round {})", round + 1),
            _ => s,
        };
        let res = &run["result"];
        let errors: f64 = [
            "errors_connect",
            "errors_read",
            "errors_write",
            "errors_timeout",
        ]
        .iter()
        .filter_map(|k| f(&res[*k]))
        .sum();
        if res.is_null() {
            let _ = writeln!(
                r.markdown,
                "| {s} | {} | – | – | – | – | {} |",
                run["connection"].as_str().unwrap_or(""),
                run["error"]
                    .as_str()
                    .unwrap_or("failed")
                    .lines()
                    .next()
                    .unwrap_or("")
            );
            continue;
        }
        let _ = writeln!(
            r.markdown,
            "| {s} | {} | {} | {} | {} | {} | {errors} |",
            run["connection"].as_str().unwrap_or(""),
            opt(f(&res["requests_per_s"]), 0),
            opt(pct(res, 50.0), 0),
            opt(pct(res, 99.0), 0),
            opt(pct(res, 99.9), 0)
        );
    }
    if let Some(obj) = d["ratios"].as_object() {
        r.markdown
            .push_str("\n| ratio | req/s | p99 |\n|---|---:|---:|\n");
        for (k, v) in obj {
            let _ = writeln!(
                r.markdown,
                "| {} | {} | {} |",
                k.replace("_vs_", " / ").replace('_', " "),
                opt(f(&v["rps"]), 2),
                opt(f(&v["p99"]), 2)
            );
        }
    }
    // A subject's rounds of one connection mode that produced a figure, by requests per
    // second (one for a run without `--rounds`).
    let rounds = |s: &str, c: &str| -> Vec<(f64, &Value)> {
        let mut v: Vec<(f64, &Value)> = runs
            .iter()
            .filter(|x| x["subject"] == s && x["connection"] == c)
            .map(|x| &x["result"])
            .filter_map(|x| Some((f(&x["requests_per_s"])?, x)))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    // The bars: the median of the rounds' requests per second.
    let median_rps = |s: &str, c: &str| {
        let rps: Vec<f64> = rounds(s, c).iter().map(|x| x.0).collect();
        crate::http::median(&rps)
    };
    // The latency curves: the median round's (the lower of the two middle ones).
    let find = |s: &str, c: &str| {
        let v = rounds(s, c);
        v.get(v.len().saturating_sub(1) / 2).map(|x| x.1)
    };
    let series: Vec<BarSeries> = ["keepalive", "close"]
        .iter()
        .map(|c| BarSeries {
            name: (*c).into(),
            values: subjects
                .iter()
                .map(|s| median_rps(s, c).map(|v| v / 1e3))
                .collect(),
        })
        .collect();
    plot(
        r,
        "http-rps.svg",
        "HTTP requests per second",
        svg::bars("HTTP requests/s (thousands)", "k req/s", &subjects, &series),
    );
    for c in ["keepalive", "close"] {
        let lines: Vec<LineSeries> = subjects
            .iter()
            .filter_map(|s| {
                let res = find(s, c)?;
                let pts: Vec<(f64, f64)> = res["percentiles"]
                    .as_array()?
                    .iter()
                    .filter_map(|x| Some((f(&x[1])?.max(1.0), f(&x[0])?)))
                    .collect();
                Some(LineSeries {
                    name: s.clone(),
                    points: pts,
                })
            })
            .collect();
        if lines.is_empty() {
            continue;
        }
        plot(
            r,
            &format!("http-cdf-{c}.svg"),
            &format!("latency CDF, {c}"),
            svg::lines(
                &format!("HTTP latency CDF ({c})"),
                "latency (µs, log)",
                "percentile",
                &lines,
                true,
            ),
        );
    }
}

fn schedulers(r: &mut Report, d: &Value) {
    r.markdown.push_str(
        "## Schedulers in a simulated cluster (uvs-sched code, processor-sharing servers)\n\n",
    );
    let results = d["results"].as_array().cloned().unwrap_or_default();
    let mut situations: Vec<String> = Vec::new();
    let mut scheds: Vec<String> = Vec::new();
    for x in &results {
        let s = x["situation"].as_str().unwrap_or("?").to_string();
        let k = x["scheduler"].as_str().unwrap_or("?").to_string();
        if !situations.contains(&s) {
            situations.push(s);
        }
        if !scheds.contains(&k) {
            scheds.push(k);
        }
    }
    let get = |s: &str, k: &str| {
        results
            .iter()
            .find(|x| x["situation"] == s && x["scheduler"] == k)
    };
    let _ = writeln!(
        r.markdown,
        "p99 response time in ms (mean in parentheses); **bold** = lowest p99 among schedulers that rejected nothing.\n\n| scheduler | {} |\n|---|{}",
        situations.join(" | "),
        "---:|".repeat(situations.len())
    );
    for k in &scheds {
        let mut row = format!("| {k} |");
        for s in &situations {
            let cell = match get(s, k) {
                Some(x) => {
                    let best = d["best_p99"][s.as_str()].as_str() == Some(k.as_str());
                    let rej = f(&x["rejected"]).unwrap_or(0.0);
                    let v = format!("{} ({})", opt(f(&x["p99_ms"]), 1), opt(f(&x["mean_ms"]), 1));
                    let v = if best { format!("**{v}**") } else { v };
                    if rej > 0.0 {
                        format!("{v} rejected {rej}")
                    } else {
                        v
                    }
                }
                None => "–".into(),
            };
            let _ = write!(row, " {cell} |");
        }
        let _ = writeln!(r.markdown, "{row}");
    }
    let series: Vec<BarSeries> = scheds
        .iter()
        .map(|k| BarSeries {
            name: k.clone(),
            values: situations
                .iter()
                .map(|s| get(s, k).and_then(|x| f(&x["p99_ms"])))
                .collect(),
        })
        .collect();
    plot(
        r,
        "schedulers-p99.svg",
        "p99 response time per scheduler per situation",
        svg::bars("p99 response time (ms)", "ms", &situations, &series),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn testbed_section_has_table_ratios_and_plot() {
        let d = json!({
            "benchmark": "testbed",
            "settings": {"trial_seconds": 1.0},
            "results": [
                {"subject": "uvs", "throughput": {"zero_loss_pps": 900000.0, "max_delivered_pps": 1.0e6, "max_offered_pps": 1.2e6, "generator_bound": false}},
                {"subject": "nft", "throughput": null, "error": "boom"}
            ],
            "ratios": {"uvs_vs_l2fwd": {"zero_loss": 0.9, "max_delivered": 0.95}}
        });
        let r = build(&[("t.json".into(), d)]).unwrap();
        assert!(
            r.markdown.contains("| uvs | 0.900 | 1.000 | 1.200 |"),
            "{}",
            r.markdown
        );
        assert!(r.markdown.contains("| nft | – | – | – | boom |"));
        assert!(r.markdown.contains("| uvs / l2fwd | 0.90 | 0.95 |"));
        assert_eq!(r.plots.len(), 1);
    }

    #[test]
    fn http_bars_draw_the_rounds_median() {
        let run = |subject: &str, round: u64, rps: Option<f64>| {
            json!({
                "subject": subject, "connection": "keepalive", "round": round,
                "result": rps.map(|r| json!({"requests_per_s": r, "percentiles": [[50.0, r / 1000.0]]})),
                "error": if rps.is_none() { json!("boom") } else { json!(null) }
            })
        };
        let d = json!({
            "benchmark": "http",
            "results": [
                run("nft", 0, Some(100_000.0)), run("nft", 1, Some(300_000.0)),
                run("nft", 2, Some(200_000.0)), run("nft", 3, None),
                run("direct", 0, Some(100_000.0)), run("direct", 1, Some(400_000.0)),
            ]
        });
        let r = build(&[("h.json".into(), d)]).unwrap();
        let bars = &r.plots.iter().find(|p| p.0 == "http-rps.svg").unwrap().1;
        // nft: the middle of three (the failed round left out); direct: between two.
        assert!(bars.contains("<title>keepalive: 200.0</title>"), "{bars}");
        assert!(bars.contains("<title>keepalive: 250.0</title>"), "{bars}");
        assert!(!bars.contains("<title>keepalive: 100.0</title>"), "{bars}");
        assert!(
            r.markdown.contains("| nft (round 4) | keepalive | – |"),
            "{}",
            r.markdown
        );
    }

    #[test]
    fn unknown_benchmark_is_an_error() {
        assert!(build(&[("x".into(), json!({"benchmark": "nope"}))]).is_err());
    }

    #[test]
    fn scheduler_best_is_bold() {
        let d = json!({
            "benchmark": "schedulers",
            "settings": {},
            "results": [
                {"situation": "s", "scheduler": "rr", "p99_ms": 50.0, "mean_ms": 10.0, "rejected": 0},
                {"situation": "s", "scheduler": "wlc", "p99_ms": 20.0, "mean_ms": 5.0, "rejected": 0}
            ],
            "best_p99": {"s": "wlc"}
        });
        let r = build(&[("s.json".into(), d)]).unwrap();
        assert!(
            r.markdown.contains("| wlc | **20.0 (5.0)** |"),
            "{}",
            r.markdown
        );
        assert!(r.markdown.contains("| rr | 50.0 (10.0) |"));
    }
}
