//! End to end (as root): `uvsadm drain` on a real server that holds a long download from
//! nginx. The drain sets the server's weight to 0 at once (new requests go to the other
//! server), `--wait` reports the connection and gives up at its `--timeout` while the
//! download runs, and waits it out when given time: it ends only after curl has finished
//! (the whole file received) and the connection's entry has expired. A drain of a server
//! that does not exist is refused and changes nothing. Under wrk, draining a server fails
//! no request and ends when its keep-alive connections have.

mod common;
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIG: u64 = 20_971_520;

/// The demo configuration with web4 on two servers, no health check, and short closing
/// timeouts (so a finished connection leaves the inactive count within seconds).
fn config() -> String {
    let demo = demo_config();
    let start = demo.find("  - name: web4\n").expect("web4 in the demo");
    let end = demo.find("  - name: dns4\n").expect("dns4 in the demo");
    let web4 = "  - name: web4
    vip: 198.18.100.1
    protocol: tcp
    port: 80
    scheduler: rr
    forwarding: nat
    real_servers:
      - address: 198.18.1.11
      - address: 198.18.1.12

";
    let timeouts = "timeouts:
  tcp_fin_wait: 2
  tcp_time_wait: 2
  tcp_close: 2
  tcp_close_wait: 2
  tcp_last_ack: 2

";
    let services = demo.find("services:\n").expect("services in the demo");
    format!(
        "{}{timeouts}{}{web4}{}",
        &demo[..services],
        &demo[services..start],
        &demo[end..]
    )
}

/// A download of /big at 4 MB/s (about 5 s) through the VIP, in the background.
fn start_download(tb: &Testbed) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &tb.ns("client"), "curl", "-s", "-o"])
        .args(["/dev/null", "-w", "%{size_download} %{http_code}"])
        .args(["--limit-rate", "4M", "--max-time", "40"])
        .arg("http://198.18.100.1/big")
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl")
}

/// The real server ("198.18.1.1N") that has an active connection, per `uvsadm -L -n`.
fn busy_server(tb: &Testbed) -> Option<String> {
    let out = tb.uvsadm(&["-L", "-n"]);
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        // "  -> 198.18.1.11:80   Masq   1   1   0"
        (w.len() == 6 && w[0] == "->" && w[4] == "1").then(|| w[1].to_string())
    })
}

/// Whether no real server of web4 has a connection, per `uvsadm -L -n`.
fn idle(tb: &Testbed) -> bool {
    let out = tb.uvsadm(&["-L", "-n", "-t", "198.18.100.1:80"]);
    text(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with("->") && !l.contains("RemoteAddress"))
        .all(|l| l.split_whitespace().skip(4).all(|w| w == "0"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn drain_waits_for_the_download_then_finishes() {
    require_root("drain_waits_for_the_download_then_finishes");
    let mut tb = Testbed::up("e2edrn", "nat");
    tb.start_uvsd(&config());
    let before = tb.curl_many("http://198.18.100.1/", 4);
    assert!(
        !before.iter().any(|a| a == "failed"),
        "the service answers before the drain: {before:?}\n{}",
        tb.uvsd_log()
    );

    // A bad target: refused, nothing changed.
    let rules = text(&tb.uvsadm(&["-S", "-n"]).stdout);
    for (args, why) in [
        (
            vec!["drain", "-t", "198.18.100.1:80", "-r", "198.18.1.99"],
            "No such destination: 198.18.1.99:80",
        ),
        (
            vec!["drain", "-t", "198.18.100.1:81", "-r", "198.18.1.11"],
            "No such service: TCP 198.18.100.1:81",
        ),
        (
            vec!["drain", "-t", "198.18.100.1:80", "--wait"],
            "which real server?",
        ),
    ] {
        let out = tb.uvsadm(&args);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            text(&out.stderr).contains(why),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(text(&tb.uvsadm(&["-S", "-n"]).stdout), rules);
    // The requests above leave closing entries for 2 s: let them expire first, so the
    // download is the drained server's only connection.
    let start = Instant::now();
    while !idle(&tb) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "entries never expired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut curl = start_download(&tb);
    let start = Instant::now();
    let server = loop {
        if let Some(s) = busy_server(&tb) {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the download never showed as an active connection:\n{}",
            text(&tb.uvsadm(&["-L", "-n"]).stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let other = if server == "198.18.1.11:80" {
        "rs2"
    } else {
        "rs1"
    };
    let drain = |timeout: &str| {
        tb.uvsadm(&[
            "drain",
            "-t",
            "198.18.100.1:80",
            "-r",
            &server,
            "--wait",
            "--timeout",
            timeout,
        ])
    };

    // The download outlasts a 1 s timeout: weight 0 at once, progress, then a clear failure.
    let out = drain("1");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    println!("drain --timeout 1:\n{stdout}{stderr}");
    assert!(!out.status.success(), "the drain cannot finish in 1 s");
    assert!(
        stdout.contains(&format!(
            "{server} in TCP 198.18.100.1:80: weight 0 (was 1), no new connections; 1 active"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{server}: 1 active, 0 inactive, ")),
        "{stdout}"
    );
    assert!(
        stderr.contains("still has 1 active and 0 inactive connections after 1 s"),
        "{stderr}"
    );
    assert!(
        curl.try_wait().unwrap().is_none(),
        "the download is still running"
    );

    // New connections all go to the other server meanwhile.
    let during = tb.curl_many("http://198.18.100.1/", 6);
    assert!(
        during.iter().all(|a| a == other),
        "while {server} drains, {other} answers everything: {during:?}"
    );

    // Given time, the drain waits for the download to end and its entry to expire.
    let t = Instant::now();
    let out = drain("40");
    let waited = t.elapsed();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    println!("drain --timeout 40 ({waited:?}):\n{stdout}{stderr}");
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        curl.try_wait().unwrap().is_some(),
        "the drain ended while the download was still running"
    );
    let got = curl.wait_with_output().unwrap();
    assert_eq!(
        text(&got.stdout),
        format!("{BIG} 200"),
        "the drained server's download ran to the end"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("weight already 0"), "{stdout}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{server}: 1 active, 0 inactive"))),
        "progress shows the download: {stdout}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with(&format!("{server}: drained, no connections left after ")),
        "{stdout}"
    );
    let listing = text(&tb.uvsadm(&["-L", "-n", "-t", "198.18.100.1:80"]).stdout);
    assert!(
        listing.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() == 6 && w[1] == server && w[3..] == ["0", "0", "0"]
        }),
        "weight 0, no connections: {listing}"
    );

    // Under wrk (keep-alive connections on both servers): the first server back at
    // weight 1, the other drained. No request fails, and the drain ends only after wrk's
    // connections have ended.
    let other_addr = if server == "198.18.1.11:80" {
        "198.18.1.12:80"
    } else {
        "198.18.1.11:80"
    };
    let back = tb.uvsadm(&[
        "-e",
        "-t",
        "198.18.100.1:80",
        "-r",
        &server,
        "-m",
        "-w",
        "1",
    ]);
    assert!(back.status.success(), "{}", text(&back.stderr));
    let wrk = Command::new("ip")
        .args([
            "netns",
            "exec",
            &tb.ns("client"),
            "wrk",
            "-t1",
            "-c4",
            "-d4s",
        ])
        .arg("http://198.18.100.1/")
        .stdout(Stdio::piped())
        .spawn()
        .expect("wrk");
    let mut wrk = Some(wrk);
    std::thread::sleep(Duration::from_millis(1000));
    let out = tb.uvsadm(&[
        "drain",
        "-t",
        "198.18.100.1:80",
        "-r",
        other_addr,
        "--wait",
        "--timeout",
        "40",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    println!("drain {other_addr} under wrk:\n{stdout}{stderr}");
    let wrk_out = wrk.take().unwrap().wait_with_output().unwrap();
    let wrk_text = text(&wrk_out.stdout);
    assert!(out.status.success(), "{stdout}{stderr}");
    // "… weight 0 (was 1), no new connections; A active, I inactive": wrk's connections
    // (or, if nginx recycled them, their closing entries) were there to wait for.
    let first_line = stdout.lines().next().unwrap_or("");
    let counts: Vec<u32> = first_line
        .rsplit("; ")
        .next()
        .unwrap_or("")
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        first_line.starts_with(&format!(
            "{other_addr} in TCP 198.18.100.1:80: weight 0 (was 1)"
        )) && counts.len() == 2
            && counts[0] + counts[1] > 0,
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .last()
            .unwrap_or("")
            .contains("drained, no connections left"),
        "{stdout}"
    );
    assert!(wrk_text.contains("Requests/sec"), "wrk output: {wrk_text}");
    assert!(
        !wrk_text.contains("Socket errors") && !wrk_text.contains("Non-2xx"),
        "wrk saw errors while a server drained:\n{wrk_text}"
    );
    let after = tb.curl_many("http://198.18.100.1/", 4);
    let first = if other == "rs1" { "rs2" } else { "rs1" };
    assert!(
        after.iter().all(|a| a == first),
        "after the drain {first} answers everything: {after:?}"
    );
}
