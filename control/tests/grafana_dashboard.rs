//! `configs/grafana/uvs-dashboard.json` asks only for what uvsd exports: every metric name in
//! its queries is a family of the exposition the code renders (every optional family
//! included), counters are only read through `rate`/`increase`, gauges never are, and every
//! label a query selects or groups by is one the metric carries (or Prometheus' own
//! `instance`/`job`). The names come from `metrics::render`'s output, not a list kept here.

use std::collections::{BTreeMap, BTreeSet};
use uvs_control::announce::NodeSnapshot;
use uvs_control::metrics::render;
use uvs_control::snapshot::{
    Rates, RealSnapshot, ServiceSnapshot, Snapshot, SyncSnapshot, Traffic, WorkerSnapshot,
};

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// A snapshot that makes every family render at least one sample.
fn everything() -> Snapshot {
    let vip = "198.18.100.1".parse().unwrap();
    Snapshot {
        version: "0.1.0".into(),
        services: vec![ServiceSnapshot {
            name: "web".into(),
            protocol: "TCP".into(),
            vip,
            port: 80,
            fwmark: 0,
            scheduler: "rr".into(),
            flags: String::new(),
            persistent: None,
            one_packet: false,
            reals: vec![RealSnapshot {
                address: "198.18.1.11".parse().unwrap(),
                port: 80,
                forward: "Masq".into(),
                tunnel: String::new(),
                weight: 1,
                active: 1,
                inactive: 1,
                health_up: true,
                overloaded: false,
                upper_threshold: 0,
                lower_threshold: 0,
                persistent: 0,
                response_time_us: 0,
                load: 0,
                traffic: Traffic::default(),
                rates: Rates::default(),
            }],
            traffic: Traffic::default(),
            rates: Rates::default(),
        }],
        workers: vec![WorkerSnapshot::default()],
        drops: vec![("no_service".into(), 1)],
        sync: Some(SyncSnapshot {
            mode: "both".into(),
            bad_messages: vec![("auth".into(), 1)],
            refused: vec![("no_service".into(), 1)],
            last_received_age_ms: Some(5),
            ..SyncSnapshot::default()
        }),
        node: Some(NodeSnapshot {
            state: "serving".into(),
            bgp: true,
            announced: vec![vip],
            ..NodeSnapshot::default()
        }),
        ..Snapshot::default()
    }
}

struct Family {
    kind: String,
    labels: BTreeSet<String>,
}

/// Families of the exposition: name → type and the label names its samples carry.
fn exported() -> BTreeMap<String, Family> {
    let text = render(&everything());
    let mut families = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.insert(
                name.to_string(),
                Family {
                    kind: kind.to_string(),
                    labels: BTreeSet::new(),
                },
            );
        } else if !line.starts_with('#') {
            let name_end = line.find(['{', ' ']).unwrap();
            let f = families
                .get_mut(&line[..name_end])
                .expect("sample of a declared family");
            if line[name_end..].starts_with('{') {
                f.labels.extend(label_keys(&line[name_end + 1..]));
            }
        }
    }
    assert!(families.len() > 40, "{} families", families.len());
    families
}

/// Label names of `k="v",k2="v2"}` (values may hold escaped quotes).
fn label_keys(mut s: &str) -> Vec<String> {
    let mut keys = Vec::new();
    while let Some(eq) = s.find("=\"") {
        keys.push(s[..eq].trim_start_matches(',').to_string());
        let mut i = eq + 2;
        let b = s.as_bytes();
        while b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        s = &s[i + 1..];
        if s.starts_with('}') {
            break;
        }
    }
    keys
}

/// Every PromQL text of the dashboard: (where, query, is a panel/annotation query).
fn queries(dash: &serde_json::Value) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    fn panels(list: &serde_json::Value, out: &mut Vec<(String, String, bool)>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push((title.clone(), t["expr"].as_str().unwrap().to_string(), true));
            }
            panels(&p["panels"], out);
        }
    }
    panels(&dash["panels"], &mut out);
    for a in dash["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(e) = a["expr"].as_str() {
            out.push(("annotation".into(), e.to_string(), true));
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["query"]["query"].as_str() {
            out.push((format!("variable {}", v["name"]), q.to_string(), false));
        }
    }
    out
}

/// (start, name) of every `uvs_…` identifier in `q`.
fn metric_refs(q: &str) -> Vec<(usize, String)> {
    let b = q.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = q[i..].find("uvs_").map(|p| p + i) {
        let mut end = at;
        while end < b.len() && ident(b[end]) {
            end += 1;
        }
        if at == 0 || !ident(b[at - 1]) {
            out.push((at, q[at..end].to_string()));
        }
        i = end;
    }
    out
}

/// Whether position `at` of `q` is inside the parentheses of `rate(`, `irate(` or `increase(`.
fn inside_rate(q: &str, at: usize) -> bool {
    ["rate(", "increase("].iter().any(|f| {
        q[..at].match_indices(f).any(|(p, _)| {
            let inner = &q[p + f.len()..at];
            inner.matches('(').count() >= inner.matches(')').count()
        })
    })
}

/// Label names selected in `metric{…}` right after `end`.
fn selector_labels(q: &str, end: usize) -> Vec<String> {
    let Some(rest) = q[end..].strip_prefix('{') else {
        return Vec::new();
    };
    let close = rest.find('}').expect("closed selector");
    rest[..close]
        .split(',')
        .filter(|m| !m.trim().is_empty())
        .map(|m| {
            let k = m.split(['=', '!']).next().unwrap();
            k.trim().to_string()
        })
        .collect()
}

/// Label names of every `by (…)` clause.
fn grouping_labels(q: &str) -> Vec<String> {
    q.match_indices("by (")
        .flat_map(|(p, _)| {
            let inner = &q[p + 4..];
            let close = inner.find(')').unwrap();
            inner[..close]
                .split(',')
                .map(|l| l.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn dashboard_queries_only_what_uvsd_exports() {
    let families = exported();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/grafana/uvs-dashboard.json"
    );
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let queries = queries(&dash);
    assert!(queries.len() > 20, "{} queries", queries.len());
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for (place, q, is_query) in &queries {
        let refs = metric_refs(q);
        if refs.is_empty() {
            problems.push(format!("{place}: `{q}` reads no uvs metric"));
        }
        let mut available: BTreeSet<String> = TARGET_LABELS.iter().map(|s| s.to_string()).collect();
        for (at, name) in &refs {
            let Some(f) = families.get(name) else {
                problems.push(format!("{place}: `{name}` is not exported by uvsd"));
                continue;
            };
            used.insert(name.clone());
            available.extend(f.labels.iter().cloned());
            if *is_query {
                let rated = inside_rate(q, *at);
                if f.kind == "counter" && !rated {
                    problems.push(format!("{place}: counter `{name}` read without rate()"));
                }
                if f.kind == "gauge" && rated {
                    problems.push(format!("{place}: gauge `{name}` read with rate()"));
                }
            }
            for l in selector_labels(q, at + name.len()) {
                if !f.labels.contains(&l) && !TARGET_LABELS.contains(&l.as_str()) {
                    problems.push(format!("{place}: `{name}` has no label `{l}`"));
                }
            }
        }
        for l in grouping_labels(q) {
            if !available.contains(&l) {
                problems.push(format!("{place}: grouped by `{l}`, which no metric has"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The dashboard covers each part of the exposition.
    for prefix in [
        "uvs_service_",
        "uvs_real_",
        "uvs_drops",
        "uvs_worker_",
        "uvs_conn_table_",
    ] {
        assert!(
            used.iter().any(|u| u.starts_with(prefix)),
            "no panel reads {prefix}*"
        );
    }
    let unused: Vec<&String> = families.keys().filter(|f| !used.contains(*f)).collect();
    println!(
        "{} of {} families on the dashboard; not shown: {unused:?}",
        used.len(),
        families.len()
    );
}

/// The checker catches what it is there to catch (a misspelt name, a missing label, a raw
/// counter), so the test above cannot pass by seeing nothing.
#[test]
fn the_checks_can_fail() {
    let families = exported();
    assert!(!families.contains_key("uvs_service_connection_total"));
    assert!(families["uvs_real_up"].labels.contains("real"));
    assert!(!families["uvs_drops_total"].labels.contains("service"));
    let q = r#"sum by (reason) (rate(uvs_drops_total{instance=~"$i"}[5m])) + uvs_drops_total"#;
    let refs = metric_refs(q);
    assert_eq!(refs.len(), 2);
    assert!(inside_rate(q, refs[0].0));
    assert!(!inside_rate(q, refs[1].0));
    assert_eq!(
        selector_labels(q, refs[0].0 + refs[0].1.len()),
        ["instance"]
    );
    assert_eq!(grouping_labels(q), ["reason"]);
}

/// Every panel and annotation query parses as PromQL for Prometheus itself (`promtool check
/// rules`, from Debian's prometheus package; skipped, saying so, without it), with Grafana's
/// variables replaced as Grafana would.
#[test]
fn dashboard_queries_are_promql() {
    let ok = std::process::Command::new("promtool")
        .arg("--version")
        .output();
    if !ok.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "skipping dashboard_queries_are_promql: promtool is not installed; `.ci/run \
             --deps-only` installs prometheus"
        );
        return;
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/grafana/uvs-dashboard.json"
    );
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let rules: Vec<serde_json::Value> = queries(&dash)
        .into_iter()
        .filter(|(_, _, is_query)| *is_query)
        .enumerate()
        .map(|(i, (_, q, _))| {
            let q = q
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
                .replace("$service", ".*");
            serde_json::json!({ "record": format!("uvs_dashboard:q{i}"), "expr": q })
        })
        .collect();
    let n = rules.len();
    let file = std::env::temp_dir().join(format!("uvs-dashboard-rules-{}.yml", std::process::id()));
    // JSON is YAML: promtool reads it as a rule file.
    let doc = serde_json::json!({ "groups": [{ "name": "uvs-dashboard", "rules": rules }] });
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {said}");
    assert!(
        said.contains(&format!("SUCCESS: {n} rules found")),
        "{said}"
    );
}
