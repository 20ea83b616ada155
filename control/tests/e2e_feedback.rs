//! End to end (as root): what the feedback schedulers read, across a reload. web4 runs
//! `load` with a command check that reports rs1 at 900/1000 and the others idle; a reload
//! that replaces the check by a `tcp` one (no reports any more) must not leave rs1's last
//! report steering traffic: reports that stop fade out, whether the agent fell silent or
//! the configuration stopped asking. `uvs_real_load` shows what the scheduler reads.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const LOAD_CHECK: &str = "    health_check:
      type: command
      interval: 1
      timeout: 1
      command: \"case %a in 198.18.1.11) echo 900;; *) echo 0;; esac\"
    real_servers:";
const TCP_CHECK: &str = "    health_check:
      type: tcp
      interval: 1
      timeout: 1
    real_servers:";

/// The demo configuration with web4 scheduled by `load`, checked by `check`.
fn config(check: &str) -> String {
    let demo = demo_config();
    let start = demo.find("    scheduler: rr\n").expect("web4's scheduler");
    let end = start
        + demo[start..]
            .find("    real_servers:")
            .expect("web4's reals");
    let out = format!(
        "{}    scheduler: load\n    forwarding: nat\n{check}{}",
        &demo[..start],
        &demo[end + "    real_servers:".len()..]
    );
    assert!(out.contains("scheduler: load"), "{out}");
    out
}

/// rs1's `uvs_real_load` sample, if listed.
fn rs1_load(tb: &Testbed) -> Option<f64> {
    tb.metrics()
        .lines()
        .find(|l| {
            l.starts_with("uvs_real_load{")
                && l.contains("service=\"web4\"")
                && l.contains("real=\"198.18.1.11:80\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_reload_that_stops_load_reports_forgets_the_last_one() {
    require_root("a_reload_that_stops_load_reports_forgets_the_last_one");
    let mut tb = Testbed::up("l7fb", "nat");
    tb.start_uvsd(&config(LOAD_CHECK));
    let t = Instant::now();
    while rs1_load(&tb) != Some(0.9) {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "rs1's report of 900 not seen:\n{}",
            tb.metrics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The busy server gets the smaller share while its report holds.
    let got = tb.curl_many("http://198.18.100.1/", 12);
    assert!(
        got.iter().filter(|s| *s == "rs1").count() <= 2,
        "rs1 reports 900/1000 yet took {got:?}"
    );

    let from = tb.uvsd_log().len();
    std::fs::write(tb.state.join("uvs.yaml"), config(TCP_CHECK)).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &tb.uvsd_pid().to_string()])
        .status();
    tb.wait_log(from, "configuration reloaded");
    // A report fades out 4 check intervals after it was made (LoadFilter); with no check
    // reporting any more, rs1 is as idle as the others well before 8 s.
    let t = Instant::now();
    while rs1_load(&tb).is_some_and(|l| l > 0.0) {
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "rs1's last report still counts {:?} s after the reload:\n{}",
            t.elapsed(),
            tb.metrics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // No longer shunned: `load` now weighs connections alone, and rs1, which took the
    // fewest so far, gets at least its third.
    let got = tb.curl_many("http://198.18.100.1/", 12);
    assert!(
        got.iter().filter(|s| *s == "rs1").count() >= 4,
        "rs1 is idle yet took {got:?}"
    );
}
