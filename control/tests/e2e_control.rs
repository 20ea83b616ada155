//! End to end (as root), the operator's view: a 20 MB download survives while other flows
//! come and go and its real server is quiesced with uvsadm (weight 0: it finishes, gets no
//! new flows); a reload while a download and a wrk run are in flight loses nothing and new
//! flows follow the new configuration; a real server whose nginx stops is taken out within
//! the health check's detection time and comes back when nginx restarts; a bad
//! configuration is rejected and the running one keeps serving.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIG: u64 = 20 * 1024 * 1024;

fn fast_health(cfg: &str) -> String {
    cfg.replace(
        "      interval: 2\n      timeout: 1\n",
        "      interval: 0.5\n      timeout: 0.4\n",
    )
    .replace(
        "      rise: 2\n      fall: 3\n",
        "      rise: 2\n      fall: 2\n",
    )
}

/// A rate-limited download of /big from the client through the VIP, in the background.
fn start_download(tb: &Testbed, rate: &str) -> std::process::Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &tb.ns("client"),
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{http_code}",
        ])
        .args([
            "--limit-rate",
            rate,
            "--max-time",
            "60",
            "http://198.18.100.1/big",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl")
}

fn finish_download(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn operator_view_quiesce_reload_health() {
    require_root("operator_view_quiesce_reload_health");
    let mut tb = Testbed::up("e2eops", "nat");
    let cfg = fast_health(&demo_config());
    tb.start_uvsd(&cfg);

    // 1. A 20 MB download (rr: the first flow goes to rs1) while other flows come and go;
    //    rs1 is quiesced mid-download.
    let dl = start_download(&tb, "4M");
    std::thread::sleep(Duration::from_millis(500));
    let q = tb.uvsadm(&[
        "-e",
        "-t",
        "198.18.100.1:80",
        "-r",
        "198.18.1.11:80",
        "-m",
        "-w",
        "0",
    ]);
    assert!(
        q.status.success(),
        "quiesce: {}",
        String::from_utf8_lossy(&q.stderr)
    );
    let during = tb.curl_many("http://198.18.100.1/", 12);
    assert!(
        !during.iter().any(|a| a == "failed"),
        "requests failed during the download: {during:?}"
    );
    assert!(
        !during.iter().any(|a| a == "rs1"),
        "the quiesced server got new flows: {during:?}"
    );
    let list = String::from_utf8_lossy(&tb.uvsadm(&["-L", "-n"]).stdout).to_string();
    assert!(
        list.lines()
            .any(|l| l.contains("198.18.1.11:80") && l.contains(" 0 ")),
        "weight 0 shown:\n{list}"
    );
    let got = finish_download(dl);
    assert_eq!(
        got,
        format!("{BIG} 200"),
        "the download through the quiesced server must complete"
    );

    // 2. Reload while a download and wrk are in flight: rs3 removed, rs1 back to weight 1.
    let dl = start_download(&tb, "5M");
    let wrk = Command::new("ip")
        .args([
            "netns",
            "exec",
            &tb.ns("client"),
            "wrk",
            "-t1",
            "-c8",
            "-d4s",
            "http://198.18.100.1/",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("wrk");
    std::thread::sleep(Duration::from_millis(1000));
    let new_cfg = cfg.replace("      - address: 198.18.1.13\n", "");
    assert_ne!(new_cfg, cfg);
    std::fs::write(tb.state.join("uvs.yaml"), &new_cfg).unwrap();
    let logged = tb.uvsd_log().len();
    let _ = Command::new("kill")
        .args(["-HUP", &tb.uvsd_pid().to_string()])
        .status();
    tb.wait_log(logged, "configuration reloaded");
    let after = tb.curl_many("http://198.18.100.1/", 12);
    assert!(
        !after.iter().any(|a| a == "failed"),
        "requests failed after the reload: {after:?}\n{}",
        tb.uvsd_log()
    );
    assert!(
        !after.iter().any(|a| a == "rs3"),
        "new flows must follow the new configuration: {after:?}"
    );
    assert!(
        after.iter().any(|a| a == "rs1"),
        "rs1 is back at weight 1: {after:?}"
    );
    let wrk_out = wrk.wait_with_output().unwrap();
    let wrk_text = String::from_utf8_lossy(&wrk_out.stdout).to_string();
    assert!(wrk_text.contains("Requests/sec"), "wrk output: {wrk_text}");
    assert!(
        !wrk_text.contains("Socket errors") && !wrk_text.contains("Non-2xx"),
        "wrk saw errors across the reload:\n{wrk_text}"
    );
    assert_eq!(
        finish_download(dl),
        format!("{BIG} 200"),
        "the download must survive the reload"
    );
    assert!(
        tb.uvsd_log().contains("configuration reloaded"),
        "{}",
        tb.uvsd_log()
    );

    // 3. A configuration that does not validate is rejected; the running one keeps serving.
    std::fs::write(
        tb.state.join("uvs.yaml"),
        new_cfg.replace("scheduler: rr", "scheduler: rrr"),
    )
    .unwrap();
    let logged = tb.uvsd_log().len();
    let _ = Command::new("kill")
        .args(["-HUP", &tb.uvsd_pid().to_string()])
        .status();
    tb.wait_log(logged, "did you mean 'rr'");
    let still = tb.curl_many("http://198.18.100.1/", 4);
    assert!(!still.iter().any(|a| a == "failed"), "{still:?}");

    // 3b. So is one whose VIP the balancer's kernel holds (198.18.0.1 on uvs-lb0): only the
    //     running host can tell, and the error still names the file, line and column.
    let path = tb.state.join("uvs.yaml");
    let host_vip = new_cfg.replacen("vip: 198.18.100.1", "vip: 198.18.0.1", 1);
    assert_ne!(host_vip, new_cfg);
    std::fs::write(&path, &host_vip).unwrap();
    let logged = tb.uvsd_log().len();
    let _ = Command::new("kill")
        .args(["-HUP", &tb.uvsd_pid().to_string()])
        .status();
    let before = &host_vip[..host_vip.find("vip: 198.18.0.1").unwrap()];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 6;
    let want = format!(
        "{}:{line}:{column}: services[0].vip: VIP 198.18.0.1 is an address this host holds",
        path.display()
    );
    tb.wait_log(logged, &want);
    let still = tb.curl_many("http://198.18.100.1/", 4);
    assert!(!still.iter().any(|a| a == "failed"), "{still:?}");
    std::fs::write(tb.state.join("uvs.yaml"), &new_cfg).unwrap();

    // 4. nginx stops on rs2: out within interval × fall + timeout; back after it restarts.
    let conf = tb.state.join("rs2/nginx.conf");
    let stop = tb.exec(
        "rs2",
        &["nginx", "-c", conf.to_str().unwrap(), "-s", "stop"],
    );
    assert!(stop.status.success());
    let t0 = Instant::now();
    while real_up(&tb, "198.18.1.12:80") != Some(false) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "rs2 not detected down; log:\n{}",
            tb.uvsd_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let detect = t0.elapsed();
    let down = tb.curl_many("http://198.18.100.1/", 8);
    assert!(
        !down.iter().any(|a| a == "failed" || a == "rs2"),
        "after detection every request succeeds elsewhere: {down:?}"
    );
    let start = tb.exec("rs2", &["nginx", "-c", conf.to_str().unwrap()]);
    assert!(start.status.success());
    let t1 = Instant::now();
    while real_up(&tb, "198.18.1.12:80") != Some(true) {
        assert!(t1.elapsed() < Duration::from_secs(5), "rs2 not back up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let back = tb.curl_many("http://198.18.100.1/", 6);
    assert!(
        back.iter().any(|a| a == "rs2"),
        "rs2 takes flows again: {back:?}"
    );
    eprintln!(
        "health: rs2 detected down in {detect:?}, back in {:?}",
        t1.elapsed()
    );
}

/// A SIGHUP that comes while uvsd starts (systemd's `reload` right after `start`, 50 ms
/// into it here: loading the file, attaching XDP, opening the sockets) is handled once it
/// runs, as a reload; before, SIGHUP's handler was installed only when the control loop
/// began, and the default action killed uvsd.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_sighup_while_starting_is_a_reload_not_a_kill() {
    require_root("a_sighup_while_starting_is_a_reload_not_a_kill");
    let mut tb = Testbed::up("e2ehup", "nat");
    tb.start_uvsd_signalled(&demo_config(), Some(("HUP", Duration::from_millis(50))));
    tb.wait_log(0, "configuration reloaded");
    let got = tb.curl_many("http://198.18.100.1/", 3);
    assert!(got.iter().all(|g| g.starts_with("rs")), "{got:?}");
}
