//! The Debian package end to end (as root): scripts/package.sh builds the .deb from the test
//! build's binaries, dpkg installs it into a fresh root filesystem (its postinst creates the
//! `uvs` user there), `systemd-analyze verify` accepts the unit, and the packaged uvsd runs
//! as the unit says — its user, only its capabilities, NOTIFY_SOCKET and WATCHDOG_USEC set,
//! the reload command of ExecReload — on the test network, serving real nginx. A changed
//! weight applied by the reload shows in `uvsadm -L` and in where requests go.
//!
//! systemd is not the service manager here (PID 1 of these machines is not systemd), so the
//! test plays its part: it reads the unit and reproduces its execution environment with
//! setpriv, and reads sd_notify's datagrams itself.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Removes the temporary root and stops the packaged uvsd (by PID) even when the test fails.
struct Scratch {
    dir: PathBuf,
    uvsd: Option<Child>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(mut c) = self.uvsd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The values of `key=` in the unit's [Service] section, in order.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_string())
        .collect()
}

fn unit_value(unit: &str, key: &str) -> String {
    let v = unit_values(unit, key);
    assert_eq!(v.len(), 1, "the unit should set {key}= once: {v:?}");
    v[0].clone()
}

/// A minimal root filesystem: the base accounts and an empty dpkg database.
fn fresh_root(root: &Path) {
    for d in ["etc", "var/lib/dpkg/info", "var/lib/dpkg/updates", "run"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let files = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        (
            "etc/shadow",
            "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
        ),
        ("etc/gshadow", "root:*::\nnogroup:*::\n"),
    ];
    for (f, text) in files {
        std::fs::write(root.join(f), text).unwrap();
    }
}

/// uid and gid of `user` in the root's /etc/passwd.
fn account(root: &Path, user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&user)).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
    })
}

/// Waits for the next sd_notify datagram (or panics with uvsd's log).
fn next_message(sock: &UnixDatagram, log: &Path, what: &str) -> String {
    let mut buf = [0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!(
            "no sd_notify message ({what}): {e}\nuvsd's log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        ),
    }
}

/// Skips WATCHDOG=1 pings until another message arrives; counts the pings seen.
fn next_state(sock: &UnixDatagram, log: &Path, what: &str, pings: &mut usize) -> String {
    loop {
        let m = next_message(sock, log, what);
        if m == "WATCHDOG=1\n" {
            *pings += 1;
        } else {
            return m;
        }
    }
}

fn tally(answers: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in answers {
        *m.entry(a.clone()).or_insert(0) += 1;
    }
    m
}

const CONFIG: &str = r#"
interfaces:
  - name: uvs-lb0
    local: [198.18.0.3]
    networks: [198.18.0.0/24]
  - name: uvs-lb1
    local: [198.18.1.3]
    networks: [198.18.1.0/24]
workers:
  count: 1
admin:
  socket: @ROOT@/run/uvs/uvsadm.sock
services:
  - name: web4
    vip: 198.18.100.1
    protocol: tcp
    port: 80
    scheduler: rr
    forwarding: nat
    health_check:
      # Passes only as the unit's user and with no capability at all: a check that
      # inherited uvsd's capabilities (or ran as root) takes every server down.
      type: command
      command: "test \"$(id -u)\" = @UID@ && grep -Eq '^CapEff:[[:space:]]+0+$' /proc/self/status && curl -sf -o /dev/null --max-time 1 http://%a:%p/"
      interval: 1
      timeout: 1
      rise: 1
      fall: 2
    real_servers:
      - address: 198.18.1.11
        weight: @W1@
      - address: 198.18.1.12
      - address: 198.18.1.13
"#;

fn config(root: &Path, uid: u32, w1: u32) -> String {
    CONFIG
        .replace("@ROOT@", root.to_str().unwrap())
        .replace("@UID@", &uid.to_string())
        .replace("@W1@", &w1.to_string())
}

#[test]
#[ignore = "needs root: dpkg --root, network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn the_package_installs_and_its_unit_serves_and_reloads() {
    require_root("the_package_installs_and_its_unit_serves_and_reloads");
    let scratch_dir = std::env::temp_dir().join(format!("uvs-e2epkg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch_dir);
    std::fs::create_dir_all(&scratch_dir).unwrap();
    let mut scratch = Scratch {
        dir: scratch_dir.clone(),
        uvsd: None,
    };
    let root = scratch_dir.join("root");

    // 1. The package, from this build's binaries (the dev profile: a release build is
    //    minutes; the package's content is the same but for the optimisation).
    let agent = uvs_agent_bin();
    let target = agent.parent().unwrap().parent().unwrap().to_path_buf();
    let deb = sh(Command::new(repo().join("scripts/package.sh"))
        .args(["--profile", "dev", "--no-build", "--fast", "--out"])
        .arg(scratch_dir.join("deb"))
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(repo()));
    let deb = PathBuf::from(deb.trim());
    assert!(deb.is_file(), "scripts/package.sh printed {deb:?}");

    // 2. Installed into a fresh root filesystem by dpkg, maintainer scripts included.
    fresh_root(&root);
    sh(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--log=/dev/null",
            "-i",
        ])
        .arg(&deb));
    let listed = sh(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["-L", "uvs"]));
    for f in [
        "/usr/sbin/uvsd",
        "/usr/sbin/uvsadm",
        "/usr/bin/uvs-agent",
        "/usr/lib/systemd/system/uvsd.service",
        "/etc/uvs/uvs.yaml",
        "/usr/share/man/man8/uvsd.8.gz",
        "/usr/share/man/man8/uvsadm.8.gz",
        "/usr/share/man/man5/uvs.yaml.5.gz",
        "/usr/share/bash-completion/completions/uvsadm",
        "/usr/share/zsh/vendor-completions/_uvsd",
        "/usr/share/fish/vendor_completions.d/uvs-agent.fish",
        "/usr/share/doc/uvs/examples/keepalived.conf",
        "/usr/lib/uvs/uvs-notify.sh",
        "/usr/share/doc/uvs/examples/grafana/uvs-dashboard.json",
    ] {
        assert!(
            listed.lines().any(|l| l == f),
            "{f} is not in the package:\n{listed}"
        );
        assert!(root.join(&f[1..]).exists(), "{f} was not installed");
    }
    // keepalived's script security runs the notify script only if root owns it and nobody
    // else may write it.
    let notify = std::fs::metadata(root.join("usr/lib/uvs/uvs-notify.sh")).unwrap();
    assert_eq!(
        (notify.uid(), notify.permissions().mode() & 0o7777),
        (0, 0o755),
        "/usr/lib/uvs/uvs-notify.sh should be root's, 0755"
    );
    // The configuration is a conffile: an upgrade does not overwrite the operator's edits.
    let status = sh(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["-s", "uvs"]));
    assert!(
        status
            .lines()
            .any(|l| l.trim_start().starts_with("/etc/uvs/uvs.yaml ")),
        "/etc/uvs/uvs.yaml is not a conffile:\n{status}"
    );
    let (uid, gid) = account(&root, "uvs").expect("the postinst created the uvs user");
    assert_eq!(
        account(&root, "root"),
        Some((0, 0)),
        "the root account was kept"
    );
    let cfg_meta = std::fs::metadata(root.join("etc/uvs/uvs.yaml")).unwrap();
    assert_eq!(
        (cfg_meta.gid(), cfg_meta.permissions().mode() & 0o777),
        (gid, 0o640),
        "/etc/uvs/uvs.yaml should be root:uvs 0640"
    );
    let uvsd = root.join("usr/sbin/uvsd");
    let uvsadm = root.join("usr/sbin/uvsadm");
    // The packaged default configuration validates, read as the uvs user.
    sh(Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
        ])
        .arg(&uvsd)
        .arg("--check-config")
        .arg(root.join("etc/uvs/uvs.yaml")));

    // 3. The unit, as systemd would judge it (when systemd-analyze is there): the
    //    packaged binaries stand at /usr/sbin in a private mount namespace, the manual
    //    pages it names are found under the root.
    let unit_path = root.join("usr/lib/systemd/system/uvsd.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    if Path::new("/usr/bin/systemd-analyze").exists() {
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind '{}' /usr/sbin && systemd-analyze verify '{}'",
                root.join("usr/sbin").display(),
                unit_path.display()
            ))
            .env("MANPATH", root.join("usr/share/man"))
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "systemd-analyze verify: {said}"
        );
    } else {
        eprintln!("systemd-analyze is not installed: the unit was not verified");
    }
    assert_eq!(unit_value(&unit, "Type"), "notify");
    assert_eq!(unit_value(&unit, "User"), "uvs");
    assert_eq!(unit_value(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    let caps = unit_value(&unit, "AmbientCapabilities");
    assert_eq!(caps, unit_value(&unit, "CapabilityBoundingSet"));
    let caps: Vec<String> = caps
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect();
    // uvsd's own list of what it needs is what the unit grants.
    let mut needed: Vec<String> = uvs_control::privileges::NEEDED
        .iter()
        .map(|c| c.name.trim_start_matches("CAP_").to_lowercase())
        .collect();
    let mut granted = caps.clone();
    needed.sort();
    granted.sort();
    assert_eq!(granted, needed, "the unit grants what uvsd checks for");
    let watchdog_sec = unit_value(&unit, "WatchdogSec");
    assert!(watchdog_sec.ends_with('s'), "WatchdogSec={watchdog_sec}");
    let exec_start = unit_value(&unit, "ExecStart");
    let argv: Vec<String> = exec_start
        .split_whitespace()
        .map(|a| match a.strip_prefix('/') {
            // Paths of the unit point into the installed root.
            Some(rel) if a.starts_with("/usr/") || a.starts_with("/etc/") => {
                root.join(rel).display().to_string()
            }
            _ => a.to_string(),
        })
        .collect();
    assert_eq!(argv[0], uvsd.display().to_string());

    // 4. Run as the unit would: RuntimeDirectory=uvs, the user, only those capabilities
    //    (ambient, inheritable and bounding), no new privileges, NOTIFY_SOCKET. The
    //    watchdog is 2 s instead of the unit's value, so its pings show within the test.
    let rundir = root.join("run").join(unit_value(&unit, "RuntimeDirectory"));
    std::fs::create_dir_all(&rundir).unwrap();
    std::os::unix::fs::chown(&rundir, Some(uid), Some(gid)).unwrap();
    let cfg_path = root.join("etc/uvs/uvs.yaml");
    std::fs::write(&cfg_path, config(&root, uid, 1)).unwrap();
    let notify_path = scratch_dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&scratch_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();

    let tb = Testbed::up("e2epkg", "nat");
    let capset = caps
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(",");
    let log = scratch_dir.join("uvsd.log");
    let logf = std::fs::File::create(&log).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &tb.ns("lb"), "setpriv"])
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            &format!("--inh-caps=-all,{capset}"),
            &format!("--ambient-caps=-all,{capset}"),
            &format!("--bounding-set=-all,{capset}"),
            "--no-new-privs",
        ])
        .args(&argv)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .expect("spawning the packaged uvsd");
    let pid = child.id();
    scratch.uvsd = Some(child);
    let mut pings = 0;
    let ready = next_state(&notify, &log, "READY after the start", &mut pings);
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert!(ready.contains("STATUS=serving 1 service(s)"), "{ready:?}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(field("Uid:"), uid.to_string(), "uvsd runs as uvs");
    // Effective: exactly the five capabilities; ambient: none left for its children.
    assert_eq!(
        u64::from_str_radix(&field("CapEff:"), 16).unwrap(),
        uvs_control::privileges::NEEDED
            .iter()
            .map(|c| 1u64 << c.bit)
            .sum::<u64>()
    );
    assert_eq!(u64::from_str_radix(&field("CapAmb:"), 16).unwrap(), 0);

    // Real nginx through the VIP: all three real servers (their command checks pass).
    std::thread::sleep(Duration::from_secs(2));
    let before = tally(&tb.curl_many("http://198.18.100.1/", 9));
    assert_eq!(
        before.keys().cloned().collect::<Vec<_>>(),
        ["rs1", "rs2", "rs3"],
        "{before:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let list = |tb: &Testbed| {
        let o = tb.exec(
            "lb",
            &[
                uvsadm.to_str().unwrap(),
                "--socket",
                rundir.join("uvsadm.sock").to_str().unwrap(),
                "-L",
                "-n",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let weight_of_rs1 = |l: &str| {
        l.lines()
            .find(|x| x.contains("198.18.1.11:80"))
            .and_then(|x| x.split_whitespace().nth(3).map(str::to_string))
            .unwrap_or_else(|| panic!("rs1 not listed:\n{l}"))
    };
    assert_eq!(weight_of_rs1(&list(&tb)), "1");

    // 5. `systemctl reload`: a new file, then ExecReload's command with $MAINPID.
    std::fs::write(&cfg_path, config(&root, uid, 0)).unwrap();
    let reload = unit_value(&unit, "ExecReload").replace("$MAINPID", &pid.to_string());
    let mut words = reload.split_whitespace();
    let kill = words.next().unwrap();
    let kill = if Path::new(kill).exists() {
        kill
    } else {
        "kill"
    };
    sh(Command::new(kill).args(words));
    let reloading = next_state(&notify, &log, "RELOADING after SIGHUP", &mut pings);
    let mut lines = reloading.lines();
    assert_eq!(lines.next(), Some("RELOADING=1"), "{reloading:?}");
    assert!(
        lines
            .next()
            .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|v| v > 0)),
        "{reloading:?}"
    );
    let ready = next_state(&notify, &log, "READY after the reload", &mut pings);
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert!(!ready.contains("rejected"), "{ready:?}");
    assert_eq!(
        weight_of_rs1(&list(&tb)),
        "0",
        "the reload set rs1's weight"
    );
    let after = tally(&tb.curl_many("http://198.18.100.1/", 8));
    assert_eq!(
        after.keys().cloned().collect::<Vec<_>>(),
        ["rs2", "rs3"],
        "weight 0 takes no new connections: {after:?}"
    );

    // 6. The watchdog pinged meanwhile (every 1 s); SIGTERM brings STOPPING=1 and a clean exit.
    let started = Instant::now();
    while pings == 0 && started.elapsed() < Duration::from_secs(5) {
        let m = next_message(&notify, &log, "a watchdog ping");
        if m == "WATCHDOG=1\n" {
            pings += 1;
        }
    }
    assert!(pings > 0, "no WATCHDOG=1 with WATCHDOG_USEC=2 s");
    sh(Command::new("kill").args(["-TERM", &pid.to_string()]));
    let stopping = next_state(&notify, &log, "STOPPING after SIGTERM", &mut pings);
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping:?}");
    let mut child = scratch.uvsd.take().unwrap();
    let st = child.wait().unwrap();
    assert!(
        st.success(),
        "uvsd exited with {st}:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    drop(tb);
}
