//! Hostile configurations: each file in tests/hostile/ must be refused with exactly the message
//! in the table below (file:line:column first), and quickly. Inputs too large to keep in the
//! repository (deep nesting, oversized files, devices, FIFOs) are generated here.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use uvs_config::{load_file, load_file_for_host, load_str, load_str_for_host, ConfigError};

/// Addresses the host holds, for the cases that need them (as the daemon passes its own).
const HOST: &[&str] = &["127.0.0.1", "198.18.0.1", "198.18.1.1", "2001:2::1", "::1"];

/// Refusals must not take long: the worst of these took 37 s or crashed before the limits.
const QUICK: Duration = Duration::from_millis(500);

/// (file in tests/hostile/, needs the host's addresses, the exact error).
const CORPUS: &[(&str, bool, &str)] = &[
    (
        "deep-flow.yaml",
        false,
        "tests/hostile/deep-flow.yaml:2:44: nesting deeper than 32 levels \
         — a uvs configuration nests 6 levels at most",
    ),
    (
        "deep-block.yaml",
        false,
        "tests/hostile/deep-block.yaml:3:63: nesting deeper than 32 levels \
         — a uvs configuration nests 6 levels at most",
    ),
    (
        "alias-bomb.yaml",
        false,
        "tests/hostile/alias-bomb.yaml:8:20: aliases expand the document to more than \
         4194304 nodes — each alias copies its anchor's whole value",
    ),
    (
        "not-utf8.yaml",
        false,
        "tests/hostile/not-utf8.yaml:2:16: the file is not UTF-8 (byte 0xff) \
         — save it as UTF-8",
    ),
    (
        "not-utf8-column.yaml",
        false,
        "tests/hostile/not-utf8-column.yaml:2:28: the file is not UTF-8 (byte 0xe9) \
         — save it as UTF-8",
    ),
    (
        "utf16.yaml",
        false,
        "tests/hostile/utf16.yaml:1:1: the file is UTF-16 (it starts with a UTF-16 \
         byte-order mark) — save it as UTF-8",
    ),
    (
        "bom.yaml",
        false,
        "tests/hostile/bom.yaml:1:1: servises: unknown field 'servises' \
         — did you mean 'services'?",
    ),
    (
        "vip-loopback.yaml",
        false,
        "tests/hostile/vip-loopback.yaml:9:10: services[0].vip: VIP 127.0.0.1 is a \
         loopback address — loopback addresses never leave this host",
    ),
    (
        "vip6-loopback.yaml",
        false,
        "tests/hostile/vip6-loopback.yaml:9:10: services[0].vip: VIP ::1 is a \
         loopback address — loopback addresses never leave this host",
    ),
    (
        "vip-multicast.yaml",
        false,
        "tests/hostile/vip-multicast.yaml:9:10: services[0].vip: VIP 224.0.0.18 is a \
         multicast address — uvs balances unicast traffic only",
    ),
    (
        "vip6-multicast.yaml",
        false,
        "tests/hostile/vip6-multicast.yaml:9:10: services[0].vip: VIP ff02::12 is a \
         multicast address — uvs balances unicast traffic only",
    ),
    (
        "vip-broadcast.yaml",
        false,
        "tests/hostile/vip-broadcast.yaml:9:10: services[0].vip: VIP 255.255.255.255 is \
         the broadcast address — a broadcast reaches every host on the link",
    ),
    (
        "vip-subnet-broadcast.yaml",
        false,
        "tests/hostile/vip-subnet-broadcast.yaml:9:10: services[0].vip: VIP 198.18.1.255 \
         is the broadcast address of 198.18.1.0/24 (interfaces[1].networks[0], line 7) \
         — a broadcast reaches every host on the link",
    ),
    (
        "vip-unspecified.yaml",
        false,
        "tests/hostile/vip-unspecified.yaml:9:10: services[0].vip: VIP 0.0.0.0 is the \
         unspecified address — 0.0.0.0 and :: mean \"no address\": write a real one",
    ),
    (
        "vip6-unspecified.yaml",
        false,
        "tests/hostile/vip6-unspecified.yaml:9:10: services[0].vip: VIP :: is the \
         unspecified address — 0.0.0.0 and :: mean \"no address\": write a real one",
    ),
    (
        "vip-is-local.yaml",
        false,
        "tests/hostile/vip-is-local.yaml:9:10: services[0].vip: VIP 198.18.0.3 is also \
         interfaces[0].local[0] (line 3) — give the service an address of its own",
    ),
    (
        "vip-is-host.yaml",
        true,
        "tests/hostile/vip-is-host.yaml:9:10: services[0].vip: VIP 198.18.0.1 is an \
         address this host holds — uvs would take the host's own traffic to it: \
         choose an address the host does not use",
    ),
    (
        "local-is-host.yaml",
        true,
        "tests/hostile/local-is-host.yaml:6:13: interfaces[1].local[0]: local address \
         198.18.1.1 is an address this host holds — uvs would take the host's own \
         traffic to it: choose an address the host does not use",
    ),
    (
        "real-is-local.yaml",
        false,
        "tests/hostile/real-is-local.yaml:15:18: services[0].real_servers[1].address: \
         real server 198.18.1.3 is also interfaces[1].local[0] (line 6) \
         — uvs owns this address; a real server is another machine",
    ),
    (
        "real-is-host.yaml",
        true,
        "tests/hostile/real-is-host.yaml:14:18: services[0].real_servers[0].address: \
         real server 198.18.1.1 is an address this host holds \
         — uvs forwards to other machines; a service on this host cannot be a real server",
    ),
    (
        "real-is-other-vip.yaml",
        false,
        "tests/hostile/real-is-other-vip.yaml:15:18: services[0].real_servers[1].address: \
         real server 198.18.1.50 is also services[1].vip (line 16) \
         — uvs owns this address; a real server is another machine",
    ),
    (
        "real-unspecified.yaml",
        false,
        "tests/hostile/real-unspecified.yaml:14:18: services[0].real_servers[0].address: \
         real server 0.0.0.0 is the unspecified address \
         — 0.0.0.0 and :: mean \"no address\": write a real one",
    ),
    (
        "sorry-is-local.yaml",
        false,
        "tests/hostile/sorry-is-local.yaml:13:30: services[0].sorry_server.address: \
         sorry server 198.18.0.3 is also interfaces[0].local[0] (line 3) \
         — uvs owns this address; a real server is another machine",
    ),
    (
        "networks-overlap.yaml",
        false,
        "tests/hostile/networks-overlap.yaml:7:16: interfaces[1].networks[0]: network \
         198.18.0.0/16 overlaps 198.18.0.0/24 (interfaces[0].networks[0], line 4) \
         — an on-link network belongs to one interface, once: reach others through `routes`",
    ),
    (
        "networks6-overlap.yaml",
        false,
        "tests/hostile/networks6-overlap.yaml:4:46: interfaces[0].networks[2]: network \
         2001:2::/48 overlaps 2001:2::/64 (interfaces[0].networks[1], line 4) \
         — an on-link network belongs to one interface, once: reach others through `routes`",
    ),
    (
        "pool-is-vip.yaml",
        false,
        "tests/hostile/pool-is-vip.yaml:13:20: services[0].fullnat_pool[0]: fullnat pool \
         address 198.18.1.100 is also services[1].vip (line 16) \
         — the pool is the source address towards real servers: give it addresses of its own",
    ),
    (
        "pool-off-link.yaml",
        false,
        "tests/hostile/pool-off-link.yaml:13:20: services[0].fullnat_pool[0]: fullnat pool \
         address 198.19.0.100 is not inside any interface's networks \
         — real servers reply to it, so uvs answers ARP/NDP for it on a link: \
         add its prefix to an interface's `networks`",
    ),
    (
        "no-route.yaml",
        false,
        "tests/hostile/no-route.yaml:15:18: services[0].real_servers[1].address: no route \
         to real server 198.19.5.5: no interface network or route contains it \
         — add its prefix to an interface's `networks`, or a route through a next hop \
         (`routes: [{ prefix: 0.0.0.0/0, via: <gateway> }]`)",
    ),
    (
        "no-route-sorry.yaml",
        false,
        "tests/hostile/no-route-sorry.yaml:13:30: services[0].sorry_server.address: no route \
         to sorry server 198.19.5.5: no interface network or route contains it \
         — add its prefix to an interface's `networks`, or a route through a next hop \
         (`routes: [{ prefix: 0.0.0.0/0, via: <gateway> }]`)",
    ),
    (
        "one-packet-fullnat.yaml",
        false,
        "tests/hostile/one-packet-fullnat.yaml:13:17: services[0].one_packet: one_packet \
         scheduling cannot be combined with fullnat (real server 198.18.1.11) \
         — a reply would carry no trace of its client: use nat, or drop one_packet",
    ),
    (
        "mh-table-not-larger.yaml",
        false,
        "tests/hostile/mh-table-not-larger.yaml:14:20: services[0].mh_table_size: \
         mh_table_size 3 is not larger than the 3 real servers \
         — Maglev needs a prime table size above the number of real servers; 65537 is the default",
    ),
];

fn host() -> Vec<IpAddr> {
    HOST.iter().map(|a| a.parse().unwrap()).collect()
}

/// Loads `path` (with the host's addresses if asked), timing it.
fn refuse(path: &Path, with_host: bool) -> (ConfigError, Duration) {
    let t = Instant::now();
    let r = if with_host {
        load_file_for_host(path, &host())
    } else {
        load_file(path)
    };
    let took = t.elapsed();
    match r {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => (e, took),
    }
}

#[test]
fn every_hostile_file_is_refused_with_its_exact_message() {
    // Relative paths: cargo runs integration tests in the crate's directory.
    let dir = Path::new("tests/hostile");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS.iter().map(|(f, ..)| f.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "every file in tests/hostile has one expected error"
    );
    let mut failures = Vec::new();
    for &(file, with_host, want) in CORPUS {
        let (err, took) = refuse(&dir.join(file), with_host);
        if err.to_string() != want {
            failures.push(format!("{file}:\n  got  {err}\n  want {want}"));
        }
        assert!(took < QUICK, "{file} took {took:?}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn host_address_cases_load_when_the_host_does_not_hold_them() {
    // The same files are fine on a host that does not hold those addresses: the refusal comes
    // from the host's addresses, not from the file alone.
    for &(file, with_host, _) in CORPUS.iter().filter(|c| c.1) {
        assert!(with_host);
        let path = Path::new("tests/hostile").join(file);
        load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        load_file_for_host(&path, &["198.18.0.9".parse().unwrap()])
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A scratch directory for generated inputs, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("uvs-config-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn nesting_100_000_deep_is_refused_at_once() {
    let s = Scratch::new("deep");
    let n = 100_000;
    let flow = format!("interfaces: {}{}\n", "[".repeat(n), "]".repeat(n));
    let block = format!("interfaces:\n{}x\n", "- ".repeat(n));
    let mapping = format!("interfaces: {}b{}\n", "{a: ".repeat(n), "}".repeat(n));
    // Saphyr's scanner reads flow collections ahead, up to 255 levels, before its parser
    // hands over the 33rd: the long flow runs are refused where that read-ahead stops.
    for (name, text, at) in [
        ("flow.yaml", &flow, "1:268"),
        ("block.yaml", &block, "2:63"),
        ("mapping.yaml", &mapping, "1:137"),
    ] {
        assert!(text.len() >= 200_000, "{name} is {} bytes", text.len());
        let path = s.write(name, text.as_bytes());
        let (err, took) = refuse(&path, false);
        assert_eq!(
            err.to_string(),
            format!(
                "{}:{at}: nesting deeper than 32 levels — a uvs configuration nests 6 levels at most",
                path.display()
            )
        );
        assert!(took < QUICK, "{name} took {took:?}");
        let t = Instant::now();
        let err = load_str(text, name).unwrap_err();
        assert_eq!(format!("{}:{}", err.line, err.column), at);
        assert!(
            t.elapsed() < QUICK,
            "load_str {name} took {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn oversized_files_and_texts_are_refused_unread() {
    let s = Scratch::new("big");
    let limit = 4 << 20;
    // Valid YAML (comments) past the limit: the size alone refuses it.
    let line = "# padding padding padding padding padding padding padding padding\n";
    let text = line.repeat(limit / line.len() + 1);
    assert!(text.len() > limit);
    let path = s.write("big.yaml", text.as_bytes());
    let (err, took) = refuse(&path, false);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the configuration is larger than the 4 MiB limit — is this the right file?",
            path.display()
        )
    );
    assert!(took < QUICK, "took {took:?}");
    let err = load_str(&text, "big.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "big.yaml: the configuration is larger than the 4 MiB limit — is this the right file?"
    );
}

#[test]
fn devices_directories_and_fifos_are_refused_without_reading() {
    let s = Scratch::new("special");
    let fifo = s.0.join("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo (coreutils)");
    assert!(made.success());
    for (path, kind) in [
        (PathBuf::from("/dev/zero"), "a character device"),
        (s.0.clone(), "a directory"),
        // Opening a FIFO with no writer would block forever: it must not be opened at all.
        (fifo, "a FIFO"),
    ] {
        let (err, took) = refuse(&path, false);
        assert_eq!(
            err.to_string(),
            format!(
                "{}: not a regular file but {kind} — the configuration must be a regular \
                 file (or a symbolic link to one)",
                path.display()
            )
        );
        assert!(took < QUICK, "{} took {took:?}", path.display());
    }
}

#[test]
fn a_utf8_byte_order_mark_is_skipped() {
    let src = "\u{feff}interfaces:\n  - name: uvs-lb0\n    networks: [198.18.0.0/24]\n";
    let cfg = load_str(src, "bom.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.interfaces[0].name, "uvs-lb0");
    let s = Scratch::new("bom");
    let path = s.write("bom.yaml", src.as_bytes());
    load_file(&path).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn more_than_1024_real_servers_in_a_service_is_refused_at_the_1025th() {
    let mut src = String::from(
        "interfaces:\n  - name: uvs-lb0\n    local: [198.18.0.3]\n    networks: [198.18.0.0/16]\n\
         services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         forwarding: nat\n    real_servers:\n",
    );
    for i in 0..1025u32 {
        src.push_str(&format!(
            "      - address: 198.18.{}.{}\n",
            10 + i / 250,
            1 + i % 250
        ));
    }
    let err = load_str(&src, "uvs.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "uvs.yaml:1035:9: services[0].real_servers[1024]: more than 1024 real servers in one \
         service — uvs keeps live counters for at most 1024 real servers per service"
    );
    // 1024 is fine.
    let cut = src.rfind("      - address").unwrap();
    load_str(&src[..cut], "uvs.yaml").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn host_addresses_apply_to_load_str_too() {
    let src = std::fs::read_to_string("tests/hostile/vip-is-host.yaml").unwrap();
    let err = load_str_for_host(&src, "uvs.yaml", &host()).unwrap_err();
    assert_eq!((err.line, err.column), (9, 10));
    assert_eq!(err.path, "services[0].vip");
    load_str(&src, "uvs.yaml").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn aliases_that_stay_small_are_fine() {
    // The shared-pool idiom: one anchored list of real servers used by many services.
    let mut src = String::from(
        "interfaces:\n  - name: uvs-lb0\n    local: [198.18.0.3]\n    networks: [198.18.0.0/16]\n\
         services:\n",
    );
    for i in 0..200 {
        src.push_str(&format!(
            "  - vip: 198.18.100.{}\n    protocol: tcp\n    port: 80\n    forwarding: nat\n",
            i + 1
        ));
        if i == 0 {
            src.push_str("    real_servers: &pool\n");
            for j in 0..100 {
                src.push_str(&format!("      - address: 198.18.1.{}\n", j + 1));
            }
        } else {
            src.push_str("    real_servers: *pool\n");
        }
    }
    let cfg = load_str(&src, "uvs.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.services[199].real_servers.len(), 100);
}

#[test]
fn a_route_or_a_network_makes_a_real_server_reachable() {
    let src = std::fs::read_to_string("tests/hostile/no-route.yaml").unwrap();
    let routed = src.replace(
        "    networks: [198.18.1.0/24, \"2001:2:0:1::/64\"]\n",
        "    networks: [198.18.1.0/24, \"2001:2:0:1::/64\"]\n    \
         routes: [{ prefix: 198.19.0.0/16, via: 198.18.1.1 }]\n",
    );
    assert_ne!(routed, src);
    load_str(&routed, "uvs.yaml").unwrap_or_else(|e| panic!("{e}"));
    let sorry = std::fs::read_to_string("tests/hostile/no-route-sorry.yaml").unwrap();
    let on_link = sorry.replace("198.19.5.5", "198.18.1.200");
    load_str(&on_link, "uvs.yaml").unwrap_or_else(|e| panic!("{e}"));
}
