//! uvsadm's edits against a running uvsd on the test network, where only the running host can
//! tell what is wrong: an address the balancer's kernel holds (198.18.0.1 and 198.18.1.1 in
//! the testbed) is refused as a VIP or a real server, as the file's loader refuses it, so
//! `uvsadm save` never writes a file the next reload or start rejects.

mod common;

use common::{demo_config, require_root, Testbed};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `uvsadm ARGS < input` in the balancer's namespace.
fn uvsadm_stdin(tb: &Testbed, args: &[&str], input: &str) -> Output {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &tb.ns("lb"), env!("CARGO_BIN_EXE_uvsadm")])
        .arg("--socket")
        .arg(tb.socket())
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

/// Asserts that `o` failed with a message naming `address` as one the host holds.
fn refused(o: &Output, what: &str, address: &str) {
    let t = text(o);
    assert!(!o.status.success(), "{what} was accepted:\n{t}");
    assert!(
        t.contains("rejected, nothing changed")
            && t.contains(&format!("{address} is an address this host holds")),
        "{what}: {t}"
    );
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn edits_with_the_hosts_own_addresses_are_refused() {
    require_root("edits_with_the_hosts_own_addresses_are_refused");
    let mut tb = Testbed::up("e2eadmh", "nat");
    tb.start_uvsd(&demo_config());
    let saved = text(&tb.uvsadm(&["save"]));

    // A VIP of the balancer's kernel (it would take the host's port 80), a real server that
    // is the host, and the same in a restore: each refused, naming the address.
    refused(
        &tb.uvsadm(&["-A", "-t", "198.18.0.1:80"]),
        "-A with the host's address",
        "VIP 198.18.0.1",
    );
    refused(
        &tb.uvsadm(&["-A", "-u", "[2001:2::1]:53"]),
        "-A with the host's IPv6 address",
        "VIP 2001:2::1",
    );
    refused(
        &tb.uvsadm(&["-a", "-t", "198.18.100.1:80", "-r", "198.18.1.1:80", "-m"]),
        "-a with the host's address",
        "real server 198.18.1.1",
    );
    let r = uvsadm_stdin(
        &tb,
        &["-R"],
        "-A -t 198.18.100.2:80 -s rr\n-A -t 198.18.1.1:80 -s rr\n",
    );
    refused(&r, "-R with the host's address", "VIP 198.18.1.1");
    assert_eq!(
        text(&tb.uvsadm(&["save"])),
        saved,
        "refusals changed nothing"
    );

    // Other addresses still go in, and what `save` writes then loads on reload.
    let ok = tb.uvsadm(&["-A", "-t", "198.18.100.2:80", "-s", "rr"]);
    assert!(ok.status.success(), "{}", text(&ok));
    let ok = tb.uvsadm(&["-a", "-t", "198.18.100.2:80", "-r", "198.18.1.11:80", "-m"]);
    assert!(ok.status.success(), "{}", text(&ok));
    let yaml = tb.uvsadm(&["save"]);
    assert!(yaml.status.success(), "{}", text(&yaml));
    std::fs::write(tb.state.join("uvs.yaml"), &yaml.stdout).unwrap();
    let logged = tb.uvsd_log().len();
    let _ = Command::new("kill")
        .args(["-HUP", &tb.uvsd_pid().to_string()])
        .status();
    tb.wait_log(logged, "configuration reloaded");

    // The host takes an address that is already a real server's (added while it was not
    // the host's): edits are not held hostage by it, so it can be taken out with -d, while a
    // new use of a host address is still refused.
    let ok = tb.uvsadm(&["-a", "-t", "198.18.100.2:80", "-r", "198.18.1.14:80", "-m"]);
    assert!(ok.status.success(), "{}", text(&ok));
    let add = tb.exec(
        "lb",
        &["ip", "addr", "add", "198.18.1.14/32", "dev", "uvs-lb1"],
    );
    assert!(add.status.success(), "{}", text(&add));
    let ok = tb.uvsadm(&[
        "-e",
        "-t",
        "198.18.100.2:80",
        "-r",
        "198.18.1.11:80",
        "-m",
        "-w",
        "2",
    ]);
    assert!(ok.status.success(), "{}", text(&ok));
    refused(
        &tb.uvsadm(&["-A", "-t", "198.18.1.14:80"]),
        "-A with an address the host took since",
        "198.18.1.14",
    );
    let ok = tb.uvsadm(&["-d", "-t", "198.18.100.2:80", "-r", "198.18.1.14:80"]);
    assert!(ok.status.success(), "{}", text(&ok));
    let list = text(&tb.uvsadm(&["-L", "-n"]));
    assert!(!list.contains("198.18.1.14"), "{list}");
    let del = tb.exec(
        "lb",
        &["ip", "addr", "del", "198.18.1.14/32", "dev", "uvs-lb1"],
    );
    assert!(del.status.success(), "{}", text(&del));
}

/// `uvsadm -L -n -c` lists persistence templates as ipvsadm lists IPVS's (protocol, the
/// client with port 0, the VIP, the real server, state NONE, the time left), `-L -n
/// --persistent-conn` counts them on their real server, and `-L -n -c --json` marks them
/// `"template": true`. Without them an operator cannot see why a client sticks to a server.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn persistence_templates_are_listed_as_ipvsadm_lists_them() {
    require_root("persistence_templates_are_listed_as_ipvsadm_lists_them");
    let mut tb = Testbed::up("e2eadmp", "nat");
    tb.start_uvsd(&demo_config());
    let o = tb.uvsadm(&["-E", "-t", "198.18.100.1:80", "-s", "rr", "-p", "300"]);
    assert!(o.status.success(), "-E -p: {}", text(&o));
    let got = tb.curl_many("http://198.18.100.1/", 3);
    assert!(
        got[0] != "failed" && got.iter().all(|s| *s == got[0]),
        "persistence keeps the client on one server: {got:?}"
    );
    let server = format!("198.18.1.1{}:80", got[0].trim_start_matches("rs"));

    let list = text(&tb.uvsadm(&["-L", "-n", "-c"]));
    let templates: Vec<Vec<&str>> = list
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.get(2) == Some(&"NONE"))
        .collect();
    assert_eq!(templates.len(), 1, "one template:\n{list}");
    let w = &templates[0];
    assert_eq!(
        [w[0], w[3], w[4], w[5]],
        ["TCP", "198.18.0.2:0", "198.18.100.1:80", server.as_str()],
        "{list}"
    );
    assert!(
        ("04:5".."05:01").contains(&w[1]),
        "about 300 s left: {}\n{list}",
        w[1]
    );
    // The connections it placed are listed too, on the same server.
    assert!(
        list.lines()
            .filter(|l| l.contains("198.18.0.2:") && !l.contains("198.18.0.2:0 "))
            .all(|l| l.trim_end().ends_with(&server)),
        "{list}"
    );

    let pc = text(&tb.uvsadm(&["-L", "-n", "--persistent-conn"]));
    let persist: Vec<(String, String)> = pc
        .lines()
        .filter(|l| l.starts_with("  -> 198.18.1."))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[1].to_string(), w[3].to_string())
        })
        .collect();
    for (real, n) in &persist {
        let want = if *real == server { "1" } else { "0" };
        assert_eq!(n, want, "PersistConn of {real}:\n{pc}");
    }
    assert!(persist.iter().any(|(r, _)| *r == server), "{pc}");

    let json = text(&tb.uvsadm(&["-L", "-n", "-c", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).expect(&json);
    let marked: Vec<&serde_json::Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["template"] == serde_json::Value::Bool(true))
        .collect();
    assert_eq!(marked.len(), 1, "{json}");
    assert_eq!(marked[0]["state"], "NONE", "{json}");
    assert_eq!(marked[0]["client"][1], 0, "{json}");
}
