//! ipvsadm parity against a running uvsd on the test network: a firewall-mark service
//! balancing a whole destination prefix with dh (the cache-cluster case), `-R` restoring
//! `-S` output whole (and refusing a bad input whole), `--set` and `-L --timeout`, and the
//! listing's first line as ipvsadm prints it; a persistence template that lives while its
//! connections do; keepalived's `alpha` (`start_down`): servers start down until checked.

mod common;

use common::{real_up, require_root, Testbed};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The demo configuration plus mark 1 (TCP 80 to 198.18.200.0/24 and 2001:2:0:200::/64) and
/// its two firewall-mark services, NAT to the three servers with dh.
fn config() -> String {
    let mut cfg = common::demo_config();
    let at = cfg.find("\nservices:").expect("demo has services");
    cfg.insert_str(
        at,
        "\nmarks:\n  - mark: 1\n    name: web-cache\n    destinations: [198.18.200.0/24, \
         \"2001:2:0:200::/64\"]\n    protocols: [tcp]\n    ports: [80]\n",
    );
    cfg.push_str(
        "
  - fwmark: 1
    scheduler: dh
    forwarding: nat
    real_servers:
      - address: 198.18.1.11
      - address: 198.18.1.12
      - address: 198.18.1.13
  - fwmark: 1
    family: ipv6
    scheduler: dh
    forwarding: nat
    real_servers:
      - address: \"2001:2:0:1::11\"
      - address: \"2001:2:0:1::12\"
      - address: \"2001:2:0:1::13\"
",
    );
    cfg
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `uvsadm ARGS < input` in the balancer's namespace.
fn uvsadm_stdin(tb: &Testbed, args: &[&str], input: &str) -> Output {
    let sock = tb.socket();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &tb.ns("lb"), env!("CARGO_BIN_EXE_uvsadm")])
        .arg("--socket")
        .arg(&sock)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning uvsadm");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn fwmark_restore_and_timeouts_on_a_running_uvsd() {
    require_root("fwmark_restore_and_timeouts_on_a_running_uvsd");
    let mut tb = Testbed::up("e2epar", "nat");
    tb.start_uvsd(&config());

    // 1. The mark's destinations (no address uvs or the host owns) reach the servers, spread
    //    by destination, each destination always to the same server; replies come from the
    //    destination the client asked for (curl would refuse anything else).
    for (v6, url) in [
        (false, "http://198.18.200.{}/"),
        (true, "http://[2001:2:0:200::{}]/"),
    ] {
        let mut by_dest: HashMap<u32, String> = HashMap::new();
        for d in 1..=24u32 {
            let u = url.replace("{}", &if v6 { format!("{d:x}") } else { d.to_string() });
            let got = tb.curl_many(&u, 2);
            assert!(
                !got.contains(&"failed".to_string()),
                "{u}: {got:?}\n{}",
                tb.uvsd_log()
            );
            assert_eq!(got[0], got[1], "{u}: dh sends a destination to one server");
            by_dest.insert(d, got[0].clone());
        }
        let servers: HashSet<&String> = by_dest.values().collect();
        assert_eq!(
            servers.len(),
            3,
            "v6={v6}: destinations spread: {by_dest:?}"
        );
    }

    // 2. The listing as ipvsadm prints it, firewall-mark services included.
    let list = text(&tb.uvsadm(&["-L", "-n"]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines[0], "IP Virtual Server version 1.2.1 (size=65536)",
        "{list}"
    );
    assert!(lines.contains(&"FWM  1 dh"), "{list}");
    assert!(lines.contains(&"FWM  1 IPv6 dh"), "{list}");
    let one = text(&tb.uvsadm(&["-L", "-n", "-f", "1", "-6"]));
    assert!(
        one.contains("FWM  1 IPv6 dh") && !one.contains("FWM  1 dh"),
        "{one}"
    );

    // Without -n, uvsadm names ports (and hosts, where the resolver knows them); names are
    // taken as input too.
    let named = text(&tb.uvsadm(&["-L"]));
    assert!(
        named.starts_with("IP Virtual Server version 1.2.1 (size=65536)\n"),
        "{named}"
    );
    assert!(named.contains("\nTCP  198.18.100.1:http rr\n"), "{named}");
    assert!(named.contains("  -> 198.18.1.11:http "), "{named}");
    let one = text(&tb.uvsadm(&["-L", "-t", "198.18.100.1:http"]));
    assert!(
        one.contains("TCP  198.18.100.1:http rr") && !one.contains("FWM"),
        "{one}"
    );
    let rules_named = text(&tb.uvsadm(&["-S"]));
    assert!(
        rules_named.contains("-A -t 198.18.100.1:http -s rr\n"),
        "{rules_named}"
    );
    let conns = text(&tb.uvsadm(&["-L", "-c"]));
    assert!(conns.contains(" 198.18.200."), "{conns}");
    assert!(conns.lines().any(|l| l.contains(":http ")), "{conns}");

    // 3. -S, -C, -R: the same rules again. Then a restore with one bad line: nothing changes.
    let rules = tb.uvsadm(&["-S", "-n"]);
    assert!(rules.status.success(), "{}", text(&rules));
    let rules = String::from_utf8_lossy(&rules.stdout).to_string();
    assert!(rules.contains("-A -f 1 -s dh\n"), "{rules}");
    // -n: port numbers, as ipvsadm -S -n (also clustered).
    assert!(rules.contains("-A -t 198.18.100.1:80 -s rr\n"), "{rules}");
    assert!(!rules.contains(":http"), "{rules}");
    assert_eq!(text(&tb.uvsadm(&["-Sn"])), rules);
    assert!(tb.uvsadm(&["-C"]).status.success());
    assert!(
        text(&tb.uvsadm(&["-L", "-n"])).lines().count() == 3,
        "cleared"
    );
    let r = uvsadm_stdin(&tb, &["-R"], &rules);
    assert!(r.status.success(), "restore: {}", text(&r));
    assert_eq!(
        text(&tb.uvsadm(&["-S", "-n"])),
        rules,
        "restored the same rules"
    );
    assert_eq!(
        tb.curl_many("http://198.18.100.1/", 3)
            .iter()
            .filter(|a| *a == "failed")
            .count(),
        0,
        "the restored VIP serves"
    );
    let bad = format!("-C\n{rules}-a -t 198.18.100.99:80 -r 198.18.1.11:80 -m\n");
    let r = uvsadm_stdin(&tb, &["-R"], &bad);
    assert!(!r.status.success());
    let err = text(&r);
    let last = bad.lines().count();
    assert!(
        err.contains(&format!(
            "line {last}: Service not defined: TCP 198.18.100.99:80"
        )),
        "{err}"
    );
    assert_eq!(
        text(&tb.uvsadm(&["-S", "-n"])),
        rules,
        "a bad restore changed nothing"
    );

    // ipvsadm's own save format, names included, is read too (ports by service name).
    let ipvsadm_save =
        "-A -t 198.18.100.7:http -s rr\n-a -t 198.18.100.7:http -r 198.18.1.11:http -m -w 1\n";
    let r = uvsadm_stdin(&tb, &["-R"], ipvsadm_save);
    assert!(r.status.success(), "{}", text(&r));
    let list = text(&tb.uvsadm(&["-L", "-n", "-t", "198.18.100.7:80"]));
    assert!(list.contains("198.18.1.11:80"), "{list}");
    assert_eq!(tb.curl_many("http://198.18.100.7/", 2), ["rs1", "rs1"]);

    // 4. --set and -L --timeout.
    assert_eq!(
        text(&tb.uvsadm(&["-L", "--timeout"])),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    let s = tb.uvsadm(&["--set", "600", "0", "30"]);
    assert!(s.status.success(), "{}", text(&s));
    assert_eq!(
        text(&tb.uvsadm(&["-L", "--timeout"])),
        "Timeout (tcp tcpfin udp): 600 120 30\n"
    );
    let saved = text(&tb.uvsadm(&["save"]));
    assert!(
        saved.contains("tcp_established: 600") && saved.contains("udp: 30"),
        "{saved}"
    );
    // A connection made now gets the new UDP timeout (<= 30 s left).
    let _ = tb.exec(
        "client",
        &["bash", "-c", "echo x > /dev/udp/198.18.100.1/53"],
    );
    let conns = text(&tb.uvsadm(&["-L", "-n", "-c"]));
    let udp: Vec<&str> = conns.lines().filter(|l| l.starts_with("UDP")).collect();
    assert!(!udp.is_empty(), "{conns}");
    assert!(udp.iter().all(|l| l[4..].starts_with("00:")), "{conns}");

    // 5. -Z of one service zeroes it alone (the restore made the marks' services anew: some
    //    traffic first).
    assert_eq!(tb.curl_many("http://198.18.200.5/", 1).len(), 1);
    assert_eq!(tb.curl_many("http://[2001:2:0:200::5]/", 1).len(), 1);
    let before = text(&tb.uvsadm(&["-L", "-n", "--stats", "--exact"]));
    assert!(tb.uvsadm(&["-Z", "-f", "1"]).status.success());
    let after = text(&tb.uvsadm(&["-L", "-n", "--stats", "--exact"]));
    let conns_of = |list: &str, prefix: &str| -> u64 {
        let line = list
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix}: {list}"));
        line[33..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(conns_of(&before, "FWM  1 IPv6") > 0, "{before}");
    assert!(conns_of(&before, "FWM  1 ") > 0, "{before}");
    assert_eq!(
        conns_of(&after, "FWM  1 IPv6"),
        conns_of(&before, "FWM  1 IPv6")
    );
    assert_eq!(conns_of(&after, "FWM  1 "), 0, "{after}");
}

/// A persistence template lives while connections it placed do, as IPVS keeps one while its
/// `n_control` is not 0: a client whose download outlasts the persistence timeout still
/// goes to the download's server. Before, the template went `timeout` after the client's
/// last new connection and rr sent its next ones elsewhere.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_persistent_clients_template_lives_while_its_download_does() {
    require_root("a_persistent_clients_template_lives_while_its_download_does");
    let mut tb = Testbed::up("e2epers", "nat");
    let cfg = common::demo_config().replace(
        "    scheduler: rr\n    forwarding: nat\n    health_check:\n      type: http",
        "    scheduler: rr\n    persistence: { timeout: 2 }\n    forwarding: nat\n    \
         health_check:\n      type: http",
    );
    assert!(
        cfg.contains("persistence: { timeout: 2 }"),
        "web4 made persistent"
    );
    tb.start_uvsd(&cfg);
    // 20 MB at 2 MB/s: about 10 s, far beyond the 2 s of persistence.
    let dl = Command::new("ip")
        .args([
            "netns",
            "exec",
            &tb.ns("client"),
            "curl",
            "-s",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{size_download} %{http_code}", "--limit-rate", "2M"])
        .args(["--max-time", "40", "http://198.18.100.1/big"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    let t = std::time::Instant::now();
    let real = loop {
        let listing = text(&tb.uvsadm(&["-L", "-n", "-c"]));
        let found = listing.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (l.starts_with("TCP") && f.len() >= 6 && f[2] == "ESTABLISHED")
                .then(|| f[5].split(':').next().unwrap_or_default().to_string())
        });
        if let Some(r) = found {
            break r;
        }
        assert!(
            t.elapsed().as_secs() < 10,
            "no established download:\n{listing}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let name = format!("rs{}", &real[real.len() - 1..]);
    // Well past the template's 2 s (the expiry sweep passes the table many times a second).
    std::thread::sleep(std::time::Duration::from_secs(5));
    let listing = text(&tb.uvsadm(&["-L", "-n", "-c"]));
    assert!(
        listing
            .lines()
            .any(|l| l.contains("NONE") && l.contains(&real)),
        "the template is still listed:\n{listing}"
    );
    let got = tb.curl_many("http://198.18.100.1/", 3);
    assert!(
        got.iter().all(|g| *g == name),
        "the client's new connections follow its download to {name}: {got:?}"
    );
    let out = dl.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "20971520 200");
}

/// keepalived's `alpha` (`start_down: true`): every server of web4 starts down, taking no
/// connection, until its checks pass (`rise: 2`: one check at once, one 5 s later); then it
/// takes connections. Before, uvsd started every server up whatever the file said.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn start_down_servers_take_no_connection_until_checked() {
    require_root("start_down_servers_take_no_connection_until_checked");
    let mut tb = Testbed::up("galpha", "nat");
    let cfg = common::demo_config();
    let check = "      interval: 2\n      timeout: 1\n      rise: 2\n      fall: 3\n";
    assert!(cfg.contains(check), "demo.yaml's web4 check changed");
    let alpha = "      interval: 5\n      timeout: 1\n      rise: 2\n      fall: 3\n      \
                 start_down: true\n";
    tb.start_uvsd(&cfg.replacen(check, alpha, 1));
    let t = std::time::Instant::now();
    let servers = ["198.18.1.11:80", "198.18.1.12:80", "198.18.1.13:80"];
    for rs in servers {
        assert_eq!(
            real_up(&tb, rs),
            Some(false),
            "{rs} starts down\n{}",
            tb.uvsd_log()
        );
    }
    let got = tb.curl_many("http://198.18.100.1/", 2);
    // Unless the second checks came in the meantime, no server took them.
    if servers.iter().all(|rs| real_up(&tb, rs) == Some(false)) {
        assert!(
            got.iter().all(|a| a == "failed"),
            "no server before its checks: {got:?}"
        );
    }
    while real_up(&tb, "198.18.1.11:80") != Some(true) {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(9),
            "rs1 never came up:\n{}",
            tb.uvsd_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let got = tb.curl_many("http://198.18.100.1/", 3);
    assert!(
        got.iter().all(|a| a.starts_with("rs")),
        "checked servers serve: {got:?}"
    );
}
