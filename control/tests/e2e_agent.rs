//! End to end (as root): uvs-agent on the real servers, uvsd's `agent` health check on the
//! balancer. An application drains its server (`uvs-agent drain`): no new client
//! connection reaches it — not one SYN — while the downloads it holds run to the end and
//! its connections go to 0; `ready` brings it back. `uvs-agent down` takes a server out
//! at once (no `fall` wait), `up` brings it back at once; a load the application reports
//! scales its weight; an agent that stops answering is a failed check.

mod common;
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIG: u64 = 20_971_520;
const AGENT_PORT: u16 = 9900;

/// The demo configuration with web4 checked by agents (0.5 s apart, fall 12: a `down` that
/// waited for fall would take 5.5 s, far from the one check it takes) and weighted
/// least-connection over servers of weight 4.
fn config() -> String {
    let demo = demo_config();
    let start = demo
        .find("  - name: web4\n")
        .expect("web4 in the demo config");
    let end = demo
        .find("  - name: dns4\n")
        .expect("dns4 in the demo config");
    let web4 = format!(
        "  - name: web4
    vip: 198.18.100.1
    protocol: tcp
    port: 80
    scheduler: wlc
    forwarding: nat
    health_check:
      type: agent
      port: {AGENT_PORT}
      interval: 0.5
      timeout: 0.4
      rise: 2
      fall: 12
    real_servers:
      - {{ address: 198.18.1.11, weight: 4 }}
      - {{ address: 198.18.1.12, weight: 4 }}
      - {{ address: 198.18.1.13, weight: 4 }}

"
    );
    format!("{}{web4}{}", &demo[..start], &demo[end..])
}

/// The agents, one per real server; killed by PID when dropped (the testbed's teardown
/// would get them too).
struct Agents {
    children: Vec<(u32, Child)>,
}

impl Drop for Agents {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn agent_socket(tb: &Testbed, rs: u32) -> String {
    tb.state
        .join(format!("agent-rs{rs}.sock"))
        .to_string_lossy()
        .into_owned()
}

/// Starts uvs-agent in each real server's namespace, on its address, reporting no load
/// (so weights stay 100 % on a busy test machine) unless the application pushes one.
fn start_agents(tb: &Testbed) -> Agents {
    let bin = uvs_agent_bin();
    let mut children = Vec::new();
    for rs in 1..=3u32 {
        let log = std::fs::File::create(tb.state.join(format!("agent-rs{rs}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &tb.ns(&format!("rs{rs}"))])
            .arg(&bin)
            .args(["--socket", &agent_socket(tb, rs), "run", "--load", "none"])
            .args(["--listen", &format!("198.18.1.1{rs}:{AGENT_PORT}")])
            .args(["--interval", "0.2"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning uvs-agent");
        children.push((rs, child));
    }
    let t = Instant::now();
    for rs in 1..=3 {
        while !std::path::Path::new(&agent_socket(tb, rs)).exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "uvs-agent on rs{rs} did not start: {}",
                std::fs::read_to_string(tb.state.join(format!("agent-rs{rs}.log")))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Agents { children }
}

/// `uvs-agent <args>` against rs`rs`'s agent, as the application there would run it.
fn agent_cmd(tb: &Testbed, rs: u32, args: &[&str]) -> String {
    let bin = uvs_agent_bin();
    let sock = agent_socket(tb, rs);
    let mut a = vec![bin.to_str().unwrap(), "--socket", sock.as_str()];
    a.extend_from_slice(args);
    let out = tb.exec(&format!("rs{rs}"), &a);
    assert!(
        out.status.success(),
        "uvs-agent {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// (weight, ActiveConn, InActConn) of a web4 real server from `uvsadm -L -n`.
fn listed(tb: &Testbed, real: &str) -> Option<(u32, u64, u64)> {
    let list = String::from_utf8_lossy(&tb.uvsadm(&["-L", "-n"]).stdout).to_string();
    let mut in_web4 = false;
    for l in list.lines() {
        if l.starts_with("TCP") || l.starts_with("UDP") || l.starts_with("SCTP") {
            in_web4 = l.starts_with("TCP  198.18.100.1:80");
            continue;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        // -> addr:port Forward Weight ActiveConn InActConn
        if in_web4 && f.len() >= 6 && f[0] == "->" && f[1] == real {
            return Some((f[3].parse().ok()?, f[4].parse().ok()?, f[5].parse().ok()?));
        }
    }
    None
}

fn wait_for(what: &str, tb: &Testbed, limit: Duration, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(
            t.elapsed() < limit,
            "{what} within {limit:?}:\n{}\n{}",
            String::from_utf8_lossy(&tb.uvsadm(&["-L", "-n"]).stdout),
            tb.uvsd_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A rate-limited download of /big through the VIP, in the background.
fn start_download(tb: &Testbed) -> Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &tb.ns("client"),
            "curl",
            "-s",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{size_download} %{http_code}", "--limit-rate", "3M"])
        .args(["--max-time", "60", "http://198.18.100.1/big"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl")
}

/// Counts, in `rs`'s namespace, SYNs from the client (checks come from the balancer).
fn count_client_syns(tb: &Testbed, rs: &str) {
    let out = tb.sh(
        rs,
        "nft add table inet uvsagent && \
         nft add chain inet uvsagent input '{ type filter hook input priority 0; }' && \
         nft add rule inet uvsagent input ip saddr 198.18.0.2 tcp flags syn / syn,ack counter",
    );
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn client_syns(tb: &Testbed, rs: &str) -> u64 {
    let out = tb.exec(rs, &["nft", "list", "chain", "inet", "uvsagent", "input"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("nft counter: {text}"))
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn an_application_drains_its_server_through_uvs_agent() {
    require_root("an_application_drains_its_server_through_uvs_agent");
    let mut tb = Testbed::up("e2eagent", "nat");
    let agents = start_agents(&tb);
    tb.start_uvsd(&config());
    let (rs1, rs2, rs3) = ("198.18.1.11:80", "198.18.1.12:80", "198.18.1.13:80");
    let first = tb.curl_many("http://198.18.100.1/", 6);
    assert!(
        ["rs1", "rs2", "rs3"]
            .iter()
            .all(|r| first.iter().any(|x| x == r)),
        "every server serves: {first:?}"
    );

    // 1. Three downloads: wlc puts one on each server.
    // Each started once the one before is counted active, so wlc sees it.
    let active = |tb: &Testbed| -> u64 {
        [rs1, rs2, rs3]
            .iter()
            .filter_map(|r| listed(tb, r).map(|(_, act, _)| act))
            .sum()
    };
    let downloads: Vec<Child> = (0..3u64)
        .map(|i| {
            let d = start_download(&tb);
            wait_for(
                "the download counted active",
                &tb,
                Duration::from_secs(5),
                || active(&tb) > i,
            );
            d
        })
        .collect();
    wait_for(
        "a download on each server",
        &tb,
        Duration::from_secs(5),
        || {
            [rs1, rs2, rs3]
                .iter()
                .all(|r| listed(&tb, r).is_some_and(|(_, act, _)| act == 1))
        },
    );

    // 2. rs2's application drains it.
    let said = agent_cmd(&tb, 2, &["drain"]);
    assert_eq!(said, "up drain 100%");
    wait_for("rs2 shown at weight 0", &tb, Duration::from_secs(3), || {
        listed(&tb, rs2).is_some_and(|(w, _, _)| w == 0)
    });
    count_client_syns(&tb, "rs2");
    let during = tb.curl_many("http://198.18.100.1/", 30);
    assert!(
        !during.iter().any(|a| a == "failed"),
        "requests failed while rs2 drained: {during:?}"
    );
    assert!(
        !during.iter().any(|a| a == "rs2"),
        "the drained server got new flows: {during:?}"
    );
    assert_eq!(
        client_syns(&tb, "rs2"),
        0,
        "client SYNs reached the drained rs2"
    );
    assert_eq!(real_up(&tb, rs2), Some(true), "draining is not down");

    // Its download (and the others) run to the end; its connections go to 0.
    for d in downloads {
        let out = d.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{BIG} 200"),
            "a download did not complete"
        );
    }
    wait_for(
        "rs2's connections at 0",
        &tb,
        Duration::from_secs(5),
        || listed(&tb, rs2).is_some_and(|(_, act, _)| act == 0),
    );
    assert_eq!(client_syns(&tb, "rs2"), 0);

    // 3. ready: back in rotation at its weight.
    assert_eq!(agent_cmd(&tb, 2, &["ready"]), "up ready 100%");
    wait_for("rs2 back at weight 4", &tb, Duration::from_secs(3), || {
        listed(&tb, rs2).is_some_and(|(w, _, _)| w == 4)
    });
    let after = tb.curl_many("http://198.18.100.1/", 12);
    assert!(after.iter().any(|a| a == "rs2"), "rs2 not back: {after:?}");

    // 4. The application's load scales the weight: 75 % busy → 25 % of 4.
    assert_eq!(agent_cmd(&tb, 1, &["load", "75"]), "up ready 25%");
    wait_for("rs1 at weight 1", &tb, Duration::from_secs(3), || {
        listed(&tb, rs1).is_some_and(|(w, _, _)| w == 1)
    });
    assert_eq!(agent_cmd(&tb, 1, &["load", "none"]), "up ready 100%");

    // 5. down: out at once — one check, not fall = 12 of them (5.5 s); up: back at once.
    assert_eq!(
        agent_cmd(&tb, 3, &["down", "deploying"]),
        "stopped ready 100% #deploying"
    );
    let t = Instant::now();
    wait_for("rs3 down", &tb, Duration::from_secs(3), || {
        real_up(&tb, rs3) == Some(false)
    });
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let during = tb.curl_many("http://198.18.100.1/", 12);
    assert!(
        !during.iter().any(|a| a == "rs3" || a == "failed"),
        "while rs3 is down: {during:?}"
    );
    assert!(
        tb.uvsd_log().contains("the agent says stopped (deploying)"),
        "{}",
        tb.uvsd_log()
    );
    assert_eq!(agent_cmd(&tb, 3, &["up"]), "up ready 100%");
    wait_for("rs3 up", &tb, Duration::from_secs(3), || {
        real_up(&tb, rs3) == Some(true)
    });

    // 6. An agent that stops answering fails the check: down after fall = 12.
    drop(agents);
    wait_for(
        "servers down without agents",
        &tb,
        Duration::from_secs(20),
        || real_up(&tb, rs1) == Some(false),
    );
}
