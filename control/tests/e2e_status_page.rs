//! End to end (as root): the status page at `metrics.listen`, opened in a real headless
//! browser (Debian's chromium) while uvsd balances the testbed's nginx real servers. The
//! page must render every service and real server from the running daemon, update its
//! figures while traffic flows (without reloading), and show a real server whose nginx was
//! stopped as down, and the cluster role of a VIP group as `uvsadm cluster role` sets it.
//! Screenshots (desktop and phone width) are kept under the target
//! directory, `test-artifacts/e2e_status_page/`, and their paths printed.
//!
//! Meanwhile a real Prometheus (Debian's) scrapes uvsd, and every query of the Grafana
//! dashboard (`configs/grafana/uvs-dashboard.json`) is evaluated by it at the end: each
//! must be accepted, each whose metrics have samples now must return series, and the
//! overview's figures must match what happened (traffic flowed; rs2 is down, over IPv4 and
//! IPv6).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TAG: &str = "stpage";
const URL: &str = "http://127.0.0.1:9100/";

/// The demo configuration with fast health checks, so a stopped nginx shows within ~1 s,
/// and the IPv6 VIP in an active/backup group this node starts as master of.
fn config() -> String {
    let cluster = "\ncluster:\n  groups:\n    - name: v6group\n      vips: [\"2001:2:0:100::1\"]\n      role: master\n";
    (demo_config() + cluster)
        .replace(
            "      interval: 2\n      timeout: 1\n",
            "      interval: 0.5\n      timeout: 0.4\n",
        )
        .replace(
            "      rise: 2\n      fall: 3\n",
            "      rise: 1\n      fall: 2\n",
        )
}

/// `target/test-artifacts/e2e_status_page` (next to the profile directory uvsd was built in).
fn artifacts() -> PathBuf {
    let uvsd = Path::new(env!("CARGO_BIN_EXE_uvsd"));
    let target = uvsd.parent().and_then(Path::parent).expect("target dir");
    let dir = target.join("test-artifacts").join("e2e_status_page");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Headless chromium in the balancer's namespace (where `metrics.listen` is); its output
/// and how long it took.
fn chromium(tb: &Testbed, args: &[&str]) -> (String, Duration) {
    let profile = tb.state.join("chromium-profile");
    let profile_arg = format!("--user-data-dir={}", profile.display());
    let t = Instant::now();
    let out = Command::new("ip")
        .args(["netns", "exec", &tb.ns("lb"), "timeout", "30", "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
            &profile_arg,
        ])
        .args(args)
        .output()
        .expect("running chromium (apt-get install chromium)");
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "chromium {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), took)
}

/// The DOM after the page ran for `budget_ms` of virtual time (its script polls
/// status.json every second meanwhile).
fn dump(tb: &Testbed, budget_ms: u32) -> (String, Duration) {
    let budget = format!("--virtual-time-budget={budget_ms}");
    chromium(tb, &[&budget, "--dump-dom", URL])
}

/// A PNG of the page at `width`×`height` CSS pixels, kept as a test artifact.
fn screenshot(tb: &Testbed, name: &str, width: u32, height: u32) -> (PathBuf, Duration) {
    let file = artifacts().join(name);
    let _ = std::fs::remove_file(&file);
    let shot = format!("--screenshot={}", file.display());
    let size = format!("--window-size={width},{height}");
    let (_, took) = chromium(tb, &["--virtual-time-budget=2500", &size, &shot, URL]);
    let png = std::fs::read(&file).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{}: no screenshot ({} bytes)",
        file.display(),
        png.len()
    );
    println!("status page screenshot: {}", file.display());
    (file, took)
}

/// The `<article>` of service `name` in a dumped DOM.
fn article<'a>(dom: &'a str, name: &str) -> &'a str {
    let start = dom
        .find(&format!("data-service=\"{name}\""))
        .unwrap_or_else(|| panic!("service {name} not on the page:\n{dom}"));
    let end = dom[start..].find("</article>").expect("article end") + start;
    &dom[start..end]
}

/// The number in `attr="N"` of the first occurrence in `text`.
fn attr_num(text: &str, attr: &str) -> f64 {
    let pat = format!("{attr}=\"");
    let at = text
        .find(&pat)
        .unwrap_or_else(|| panic!("no {attr} in:\n{text}"))
        + pat.len();
    let end = text[at..].find('"').unwrap() + at;
    text[at..end]
        .parse()
        .unwrap_or_else(|e| panic!("{attr}: {e}"))
}

/// `real`'s state on the page ("up", "down", ...).
fn health(dom: &str, real: &str) -> String {
    let pat = format!("data-real=\"{real}\" data-health=\"");
    let at = dom
        .find(&pat)
        .unwrap_or_else(|| panic!("real server {real} not on the page:\n{dom}"))
        + pat.len();
    let end = dom[at..].find('"').unwrap() + at;
    dom[at..end].to_string()
}

/// `uvs_service_connections_total` of web4 from /metrics: the daemon's own count.
fn metrics_web4_conns(tb: &Testbed) -> f64 {
    tb.metrics()
        .lines()
        .find(|l| l.starts_with("uvs_service_connections_total{") && l.contains("service=\"web4\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("web4's connections in /metrics")
}

/// Requests wrk completed, from its report.
fn wrk_requests(report: &str) -> f64 {
    report
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("wrk report: {report}"))
}

/// Prometheus in the balancer's namespace, scraping uvsd every second; killed (by PID) on drop.
struct Prometheus(std::process::Child);

impl Prometheus {
    fn start(tb: &Testbed) -> Prometheus {
        let dir = tb.state.join("prometheus");
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("prometheus.yml");
        std::fs::write(
            &cfg,
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n\
             scrape_configs:\n  - job_name: uvs\n    static_configs: [{targets: ['127.0.0.1:9100']}]\n",
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &tb.ns("lb"), "prometheus"])
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:9090")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("running prometheus (apt-get install prometheus)");
        Prometheus(child)
    }

    /// The result vector of an instant query, or the error Prometheus gave.
    fn query(tb: &Testbed, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let q = format!("query={expr}");
        let out = tb.exec(
            "lb",
            &[
                "curl",
                "-s",
                "--max-time",
                "5",
                "--data-urlencode",
                &q,
                "http://127.0.0.1:9090/api/v1/query",
            ],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stdout)))?;
        if v["status"] != "success" {
            return Err(v.to_string());
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every panel query of the dashboard: (panel title, query with Grafana's variables set).
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("configs/grafana/uvs-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let q = t["expr"]
                .as_str()
                .unwrap()
                // A window over the whole test, so the traffic of step 2 is in it.
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*")
                .replace("$service", ".*");
            out.push((p["title"].as_str().unwrap().to_string(), q));
        }
    }
    out
}

/// The single value of an instant query's result.
fn scalar(result: &[serde_json::Value]) -> f64 {
    assert_eq!(result.len(), 1, "{result:?}");
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
#[ignore = "needs root: network namespaces, XDP, AF_XDP and chromium (scripts/test.sh runs it as root)"]
fn status_page_shows_the_running_balancer_in_a_browser() {
    require_root("status_page_shows_the_running_balancer_in_a_browser");
    let started = Instant::now();
    let mut tb = Testbed::up(TAG, "nat");
    tb.start_uvsd(&config());
    let prometheus = Prometheus::start(&tb);
    let reals = ["198.18.1.11:80", "198.18.1.12:80", "198.18.1.13:80"];
    let t = Instant::now();
    while !reals.iter().all(|r| real_up(&tb, r) == Some(true)) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "real servers not up:\n{}",
            tb.uvsd_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // 1. Every service and real server of the running configuration, all up.
    let (dom, took) = dump(&tb, 2000);
    println!("chromium --dump-dom took {took:?}");
    for s in ["web4", "dns4", "web6", "dns6"] {
        article(&dom, s);
    }
    for r in reals
        .iter()
        .chain(&["[2001:2:0:1::11]:80", "[2001:2:0:1::13]:80"])
    {
        assert_eq!(health(&dom, r), "up", "{r}");
    }
    assert!(dom.contains("data-worker=\"0\""), "workers table:\n{dom}");
    assert!(
        dom.contains("data-group=\"v6group\" data-role=\"master\""),
        "cluster role:\n{dom}"
    );
    // The group goes backup (as keepalived's notify script would make it): the page follows.
    let role = tb.uvsadm(&["cluster", "role", "v6group", "backup"]);
    assert!(
        role.status.success(),
        "uvsadm cluster role: {}",
        String::from_utf8_lossy(&role.stderr)
    );
    let before = attr_num(article(&dom, "web4"), "data-conns");

    // 2. Traffic: wrk opens a connection per request for 8 s; the page is opened (and
    //    photographed) while it runs, and again after.
    let tb_ref = &tb;
    let (during, desktop, phone, report) = std::thread::scope(|s| {
        let wrk = s.spawn(move || {
            let out = tb_ref.sh(
                "client",
                "timeout 25 wrk -t1 -c4 -d8s -H 'Connection: close' http://198.18.100.1/",
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        });
        std::thread::sleep(Duration::from_millis(1500));
        let (during, took) = dump(tb_ref, 3000);
        println!("chromium --dump-dom during traffic took {took:?}");
        let (desktop, took) = screenshot(tb_ref, "traffic-desktop.png", 1280, 1600);
        println!("chromium --screenshot took {took:?}");
        let (phone, _) = screenshot(tb_ref, "traffic-phone.png", 390, 844);
        (during, desktop, phone, wrk.join().unwrap())
    });
    let sent = wrk_requests(&report);
    assert!(sent > 50.0, "wrk ran: {report}");
    let polls = attr_num(&during, "data-polls");
    assert!(
        polls >= 2.0,
        "the page re-polled status.json without reloading ({polls} answers rendered)"
    );
    let web4 = article(&during, "web4");
    let mid = attr_num(web4, "data-conns");
    assert!(
        mid > before,
        "connections grew while traffic flowed: {before} -> {mid}"
    );
    let cps_peak = attr_num(web4, "data-max");
    assert!(
        cps_peak > 0.0,
        "the connections/s sparkline shows the traffic:\n{web4}"
    );

    let (after, _) = dump(&tb, 1500);
    let end = attr_num(article(&after, "web4"), "data-conns");
    let daemon = metrics_web4_conns(&tb);
    println!(
        "web4 connections on the page: {before} before, {mid} during, {end} after wrk's \
         {sent} requests; /metrics says {daemon}"
    );
    assert!(end > mid, "the figures kept changing: {mid} -> {end}");
    assert!(
        end >= before + sent,
        "every request wrk completed is a connection on the page: {before} + {sent} > {end}"
    );
    assert!(
        end <= daemon,
        "the page shows the daemon's own figures ({end} > /metrics' {daemon})"
    );

    // 3. rs2's nginx stops (by its PID): the page shows it down, the others up.
    let pid = std::fs::read_to_string(tb.state.join("rs2/nginx.pid")).expect("rs2's nginx.pid");
    let kill = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    assert!(kill.success(), "stopping rs2's nginx (PID {pid})");
    let t = Instant::now();
    while real_up(&tb, "198.18.1.12:80") != Some(false) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "rs2 not detected down:\n{}",
            tb.uvsd_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (dom, _) = dump(&tb, 1500);
    assert_eq!(health(&dom, "198.18.1.12:80"), "down");
    assert_eq!(health(&dom, "198.18.1.11:80"), "up");
    assert_eq!(health(&dom, "198.18.1.13:80"), "up");
    assert!(
        dom.contains("data-group=\"v6group\" data-role=\"backup\""),
        "cluster role after `uvsadm cluster role v6group backup`:\n{dom}"
    );
    assert!(
        article(&dom, "web4").contains("data-field=\"usable\">2/3 up<"),
        "{}",
        article(&dom, "web4")
    );
    let (down, _) = screenshot(&tb, "rs2-down-desktop.png", 1280, 1600);
    let (down_phone, _) = screenshot(&tb, "rs2-down-phone.png", 390, 844);
    std::fs::write(artifacts().join("rs2-down.html"), &dom).unwrap();

    // The page's data as scripts get it.
    let json = tb.exec(
        "lb",
        &[
            "curl",
            "-s",
            "--max-time",
            "2",
            "http://127.0.0.1:9100/status.json",
        ],
    );
    let status: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status.json");
    let web4 = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "web4")
        .expect("web4 in status.json");
    let cps = web4["history"]["cps"].as_array().unwrap();
    assert!(
        !cps.is_empty() && cps.len() <= 60 && cps.iter().any(|v| v.as_f64().unwrap() > 0.0),
        "web4's connections/s history: {cps:?}"
    );
    println!(
        "status.json: {} bytes for {} services",
        json.stdout.len(),
        status["services"].as_array().unwrap().len()
    );

    // 4. The Grafana dashboard's queries, evaluated by Prometheus over what it scraped.
    let queries = dashboard_queries();
    let panel = |title: &str| {
        let (_, q) = queries.iter().find(|(t, _)| t == title).unwrap();
        Prometheus::query(&tb, q).unwrap()
    };
    // Until Prometheus has scraped rs2 down over both families (not a fixed pause: the
    // IPv6 check and the scrape each take their interval).
    let t = Instant::now();
    while panel("Real servers down").is_empty() || scalar(&panel("Real servers down")) != 2.0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "rs2 not seen down over IPv4 and IPv6 by Prometheus: {:?}",
            panel("Real servers down")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let exported = tb.metrics();
    let mut problems = Vec::new();
    let mut with_data = 0;
    for (title, q) in &queries {
        match Prometheus::query(&tb, q) {
            Err(e) => problems.push(format!("{title}: `{q}`: {e}")),
            Ok(r) => {
                let all_exported = q
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with("uvs_"))
                    // Has samples now (no drop yet: no uvs_drops_total sample).
                    .all(|m| {
                        exported.lines().any(|l| {
                            l.starts_with(&format!("{m}{{")) || l.starts_with(&format!("{m} "))
                        })
                    });
                if r.is_empty() && all_exported {
                    problems.push(format!("{title}: `{q}` returned nothing"));
                }
                if !r.is_empty() {
                    with_data += 1;
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nprometheus log:\n{}",
        problems.join("\n"),
        std::fs::read_to_string(tb.state.join("prometheus/prometheus.log")).unwrap_or_default()
    );
    let down_count = scalar(&panel("Real servers down"));
    assert_eq!(down_count, 2.0, "rs2 is down over IPv4 and IPv6");
    let cps = scalar(&panel("New connections/s"));
    assert!(
        cps > 0.0,
        "the dashboard saw the traffic: {cps} connections/s"
    );
    println!(
        "dashboard: {with_data} of {} queries returned series from Prometheus; real servers \
         down {down_count}, new connections/s {cps:.1}",
        queries.len()
    );
    drop(prometheus);

    println!(
        "artifacts: {} {} {} {}; whole test {:?}",
        desktop.display(),
        phone.display(),
        down.display(),
        down_phone.display(),
        started.elapsed()
    );
}
