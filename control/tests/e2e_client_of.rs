//! End to end (as root): behind FullNAT, a real server learns its client's address. curl
//! downloads from nginx through a FullNAT service; nginx sees uvs's pool address. In the
//! real server's namespace, `ss -tn` gives the connection's two ends; `uvs-agent client-of`
//! (through the real server's uvs-agent, which asks uvsd's `client_lookup` service over UDP
//! with HMAC-SHA256) answers the client's own address and port, as `ss -tn` shows them in
//! the client's namespace (IPv4 and IPv6), and so does the Rust library (`uvs_agent::client::client_of`).
//! An unknown connection gets a clear "no such connection", and an agent with the wrong key
//! gets no answer at all from uvsd.

mod common;
use common::*;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "e2e-client-lookup-key-0123456789";
const LOOKUP: &str = "198.18.1.1:7946";

fn config() -> String {
    format!(
        "{}\nclient_lookup:\n  listen: {LOOKUP}\n  auth_key: \"{KEY}\"\n",
        with_method(&demo_config(), "fullnat")
    )
}

/// Processes this test started, killed by PID when dropped.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn socket(tb: &Testbed, name: &str) -> String {
    tb.state
        .join(format!("{name}.sock"))
        .to_string_lossy()
        .into_owned()
}

/// uvs-agent in `rs`'s namespace, asking uvsd with the key in `key_file`.
fn start_agent(tb: &Testbed, rs: &str, name: &str, key_file: &std::path::Path) -> Child {
    let log = std::fs::File::create(tb.state.join(format!("{name}.log"))).unwrap();
    let sock = socket(tb, name);
    let child = Command::new("ip")
        .args(["netns", "exec", &tb.ns(rs)])
        .arg(uvs_agent_bin())
        .args(["--socket", &sock, "run", "--load", "none"])
        .args(["--listen", &format!("198.18.1.1{}:0", &rs[2..])])
        .args(["--lookup", LOOKUP])
        .arg("--lookup-key-file")
        .arg(key_file)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawning uvs-agent");
    let t = Instant::now();
    while !std::path::Path::new(&sock).exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "uvs-agent {name} did not start: {}",
            std::fs::read_to_string(tb.state.join(format!("{name}.log"))).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// The established TCP connections of a namespace with port 80 at either end, as
/// (local, peer) pairs from `ss -tnH`.
fn connections(tb: &Testbed, role: &str) -> Vec<(SocketAddr, SocketAddr)> {
    let out = tb.exec(
        role,
        &[
            "ss",
            "-tnH",
            "state",
            "established",
            "( sport = :80 or dport = :80 )",
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // "0  0  198.18.1.11:80  198.18.1.100:40001"
            let w: Vec<&str> = l.split_whitespace().collect();
            let n = w.len();
            (n >= 2).then(|| Some((w[n - 2].parse().ok()?, w[n - 1].parse().ok()?)))?
        })
        .collect()
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_fullnat_real_server_learns_its_clients_address() {
    require_root("a_fullnat_real_server_learns_its_clients_address");
    let mut tb = Testbed::up("e2ecli", "fullnat");
    tb.start_uvsd(&config());
    let key_file = tb.state.join("lookup.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let wrong_key = tb.state.join("wrong.key");
    std::fs::write(&wrong_key, "not-the-key-of-this-uvsd-000000").unwrap();
    let mut procs = Procs(Vec::new());
    for rs in ["rs1", "rs2", "rs3"] {
        procs
            .0
            .push(start_agent(&tb, rs, &format!("agent-{rs}"), &key_file));
    }

    // nginx sees the pool address, not the client.
    let body = tb.curl_bodies("http://198.18.100.1/", 1).remove(0);
    assert!(
        body.ends_with(" 198.18.1.100"),
        "the real server sees uvs's pool address: {body:?}\n{}",
        tb.uvsd_log()
    );

    let agent = uvs_agent_bin();
    let ask = |rs: &str, sock: &str, local: &str, peer: &str| {
        tb.exec(
            rs,
            &[
                agent.to_str().unwrap(),
                "--socket",
                sock,
                "client-of",
                local,
                peer,
            ],
        )
    };
    let mut first = None;
    for (url, vip, pool, client_ip) in [
        (
            "http://198.18.100.1/big",
            "198.18.100.1:80",
            "198.18.1.100",
            "198.18.0.2",
        ),
        (
            "http://[2001:2:0:100::1]/big",
            "[2001:2:0:100::1]:80",
            "2001:2:0:1::100",
            "2001:2::2",
        ),
    ] {
        // A long download keeps one connection open while we ask.
        procs.0.push(
            Command::new("ip")
                .args(["netns", "exec", &tb.ns("client"), "curl", "-s", "-g", "-o"])
                .args(["/dev/null", "--limit-rate", "1M", "--max-time", "40", url])
                .stdout(Stdio::null())
                .spawn()
                .expect("curl"),
        );
        let t = Instant::now();
        let (rs, local, peer, client) = loop {
            let client: Vec<_> = connections(&tb, "client")
                .into_iter()
                .filter(|(_, p)| p.to_string() == vip)
                .collect();
            let server = ["rs1", "rs2", "rs3"].into_iter().find_map(|rs| {
                connections(&tb, rs)
                    .into_iter()
                    // Health checks come from the balancer's kernel, not the pool.
                    .find(|(l, p)| l.port() == 80 && p.ip().to_string() == pool)
                    .map(|(l, p)| (rs, l, p))
            });
            if let (Some((rs, l, p)), [(c, _)]) = (server, &client[..]) {
                break (rs, l, p, *c);
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the download from {url} never showed in ss"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        println!("client {client}; {rs} sees {local} <-> {peer}");
        assert_eq!(client.ip().to_string(), client_ip);

        // The command, in the real server's namespace, through its agent.
        let sock = socket(&tb, &format!("agent-{rs}"));
        let out = ask(rs, &sock, &local.to_string(), &peer.to_string());
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success(),
            "client-of: {said} {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            tb.uvsd_log()
        );
        assert_eq!(said, format!("{client} {vip}"));

        // The library, as an application would call it (the agent's socket is a file).
        let found = uvs_agent::client::client_of(
            sock.as_ref(),
            uvs_agent::lookup::Protocol::Tcp,
            local,
            peer,
        )
        .unwrap()
        .expect("a connection uvsd knows");
        assert_eq!(found.client, client);
        assert_eq!(found.virtual_service.to_string(), vip);
        first.get_or_insert((rs, sock, local, peer));
    }
    let (rs, sock, local, peer) = first.unwrap();

    // A connection uvsd does not have: a clear answer, exit 1.
    let other = SocketAddr::new(peer.ip(), if peer.port() == 1 { 2 } else { 1 });
    let out = ask(rs, &sock, &local.to_string(), &other.to_string());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("uvsd tracks no tcp connection"), "{err}");

    // An agent with another key: uvsd does not answer it.
    procs
        .0
        .push(start_agent(&tb, rs, &format!("wrongkey-{rs}"), &wrong_key));
    let out = ask(
        rs,
        &socket(&tb, &format!("wrongkey-{rs}")),
        &local.to_string(),
        &peer.to_string(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no answer from uvsd at 198.18.1.1:7946"),
        "{err}"
    );

    // uvsd counted it all.
    let metrics = tb.metrics();
    let value = |line: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{line} not in the metrics:\n{metrics}"))
    };
    assert_eq!(
        value("uvs_client_lookup_answers_total{result=\"found\"}"),
        4,
        "two families, by command and by library"
    );
    assert_eq!(
        value("uvs_client_lookup_answers_total{result=\"unknown\"}"),
        1
    );
    // The wrong-key agent asked twice (a retry within its timeout).
    assert_eq!(
        value("uvs_client_lookup_refused_total{reason=\"bad_tag\"}"),
        2
    );
}
