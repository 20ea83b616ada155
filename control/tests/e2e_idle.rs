//! End to end (as root): adaptive polling. An idle uvsd sleeps on its AF_XDP sockets and
//! uses at most 2 % of a core, with the default (a 200 µs spin before the sleep) and with
//! `spin_us: 0` (asleep at the first empty poll); the first request after the idle period wakes it and is
//! served. The same with `busy_poll: true` shows what polling costs (reported, not
//! asserted: timings are for the benchmark, not for tests).

mod common;
use common::*;
use std::time::{Duration, Instant};

/// CPU seconds (user + system) in one `/proc/.../stat` line.
fn stat_seconds(stat: &str) -> f64 {
    // Fields after the command name (which is in parentheses): utime is the 14th field
    // overall, stime the 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

/// CPU seconds each of `pid`'s threads has used so far, by thread name.
fn thread_seconds(pid: u32) -> Vec<(u32, String, f64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(tid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let name = stat[stat.find('(').unwrap() + 1..stat.rfind(')').unwrap()].to_string();
        out.push((tid, name, stat_seconds(&stat)));
    }
    out
}

/// Share of one core uvsd used over `over`, and which threads used it.
fn idle_share(tb: &Testbed, over: Duration) -> (f64, String) {
    let pid = tb.uvsd_pid();
    let read = || std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("uvsd stat");
    let (c0, threads0, t0) = (stat_seconds(&read()), thread_seconds(pid), Instant::now());
    std::thread::sleep(over);
    let (c1, threads1) = (stat_seconds(&read()), thread_seconds(pid));
    let secs = t0.elapsed().as_secs_f64();
    let mut by_thread = Vec::new();
    for (tid, name, s1) in threads1 {
        let s0 = threads0.iter().find(|t| t.0 == tid).map_or(0.0, |t| t.2);
        if s1 > s0 {
            by_thread.push(format!("{name} {:.1} %", (s1 - s0) / secs * 100.0));
        }
    }
    ((c1 - c0) / secs, by_thread.join(", "))
}

/// Seconds the first request after an idle period takes (curl's time_total).
fn first_request(tb: &Testbed) -> f64 {
    let o = tb.exec(
        "client",
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{time_total}",
            "--max-time",
            "3",
            "http://198.18.100.1/",
        ],
    );
    assert!(o.status.success(), "request after idle failed");
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// Three requests through the VIP, every one answered.
fn served(tb: &Testbed) {
    let got = tb.curl_many("http://198.18.100.1/", 3);
    assert!(!got.iter().any(|a| a == "failed"), "{got:?}");
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn an_idle_uvsd_sleeps_and_wakes_for_traffic() {
    require_root("an_idle_uvsd_sleeps_and_wakes_for_traffic");
    let mut tb = Testbed::up("e2eidle", "nat");
    // No health checks: their own traffic would wake the workers.
    let cfg = demo_config()
        .replace(
            "    health_check:\n      type: http\n      interval: 2\n      timeout: 1\n      rise: 2\n      fall: 3\n      path: /\n      expect_status: 200\n",
            "",
        )
        .replace(
            "    health_check:\n      type: http\n      interval: 2\n      timeout: 1\n      path: /\n      expect_status: 200\n",
            "",
        );
    assert!(!cfg.contains("health_check"), "{cfg}");
    tb.start_uvsd(&cfg);
    served(&tb);
    std::thread::sleep(Duration::from_millis(500));
    // 10 s: a 10 ms scheduler tick is 0.1 % of it, so a loaded machine's stray ticks do
    // not decide the 2 %.
    let (adaptive, adaptive_by) = idle_share(&tb, Duration::from_secs(10));
    let wake = first_request(&tb);
    assert!(
        adaptive <= 0.02,
        "an idle uvsd used {:.1} % of a core ({adaptive_by})",
        adaptive * 100.0
    );
    tb.stop_uvsd("TERM");

    tb.start_uvsd(&cfg.replace("  count: 1\n", "  count: 1\n  spin_us: 0\n"));
    served(&tb);
    std::thread::sleep(Duration::from_millis(500));
    let (no_spin, no_spin_by) = idle_share(&tb, Duration::from_secs(10));
    let no_spin_first = first_request(&tb);
    assert!(
        no_spin <= 0.02,
        "an idle uvsd with spin_us: 0 used {:.1} % of a core ({no_spin_by})",
        no_spin * 100.0
    );
    tb.stop_uvsd("TERM");

    tb.start_uvsd(&cfg.replace("  count: 1\n", "  count: 1\n  busy_poll: true\n"));
    served(&tb);
    std::thread::sleep(Duration::from_millis(500));
    let (busy, busy_by) = idle_share(&tb, Duration::from_secs(5));
    let busy_first = first_request(&tb);
    eprintln!(
        "idle uvsd: adaptive {:.2} % of a core, first request after idle {:.0} us; \
         spin_us 0: {:.2} %, {:.0} us; busy_poll {:.0} % of a core, first request {:.0} us; by thread: [{adaptive_by}], [{no_spin_by}], [{busy_by}]",
        adaptive * 100.0,
        wake * 1e6,
        no_spin * 100.0,
        no_spin_first * 1e6,
        busy * 100.0,
        busy_first * 1e6
    );
}
