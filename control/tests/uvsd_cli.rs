//! uvsd's command line: --check-config on good and bad files, and startup problems told in
//! one sentence with the fix.

use std::process::Command;

fn uvsd(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_uvsd"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn repo(p: &str) -> String {
    format!("{}/../{p}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_config_accepts_every_example() {
    for entry in std::fs::read_dir(repo("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let (ok, text) = uvsd(&["--check-config", path.to_str().unwrap()]);
            assert!(ok, "{}: {text}", path.display());
            assert!(text.contains("configuration OK"), "{text}");
        }
    }
}

#[test]
fn check_config_names_file_line_and_column() {
    let dir = std::env::temp_dir().join(format!("uvsd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    let text = std::fs::read_to_string(repo("configs/demo.yaml"))
        .unwrap()
        .replacen("scheduler: rr", "scheduler: rrr", 1);
    std::fs::write(&bad, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("scheduler: rrr"))
        .unwrap()
        + 1;
    let (ok, out) = uvsd(&["--check-config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains(&format!("bad.yaml:{line}:")), "{out}");
    assert!(out.contains("did you mean 'rr'"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--check-config` refuses what starting uvsd (or a reload) would refuse without touching
/// the network: an https check's `ca_file` that cannot be read or holds no certificate, a
/// command check's `user` with no account. "A file that passes will load" (uvsd(8)).
#[test]
fn check_config_refuses_what_a_start_would() {
    let dir = std::env::temp_dir().join(format!("uvsd-cli-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let demo = std::fs::read_to_string(repo("configs/demo.yaml")).unwrap();
    let with_check = |check: &str| {
        demo.replacen(
            "      type: http\n      interval: 2\n      timeout: 1\n      rise: 2\n      fall: 3\n      path: /\n      expect_status: 200\n",
            check,
            1,
        )
    };
    let not_pem = dir.join("not-a-ca.pem");
    std::fs::write(&not_pem, "no certificate here\n").unwrap();
    let cases = [
        (
            "missing-ca.yaml",
            with_check(
                "      type: https\n      verify: true\n      ca_file: /nonexistent/uvs-ca.pem\n",
            ),
            "cannot read ca_file /nonexistent/uvs-ca.pem",
        ),
        (
            "not-pem.yaml",
            with_check(&format!(
                "      type: https\n      verify: true\n      ca_file: {}\n",
                not_pem.display()
            )),
            "holds no PEM certificate",
        ),
        (
            "no-user.yaml",
            with_check(
                "      type: command\n      command: /bin/true\n      user: uvs-no-such-user\n",
            ),
            "uvs-no-such-user",
        ),
    ];
    for (name, text, expected) in cases {
        assert_ne!(text, demo, "the demo's health check moved");
        let path = dir.join(name);
        std::fs::write(&path, &text).unwrap();
        let (ok, out) = uvsd(&["--check-config", path.to_str().unwrap()]);
        assert!(!ok, "{name} passed --check-config: {out}");
        assert!(
            out.contains(expected) && out.contains(name),
            "{name}: {out}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn startup_problems_say_what_to_do() {
    let dir = std::env::temp_dir().join(format!("uvsd-cli-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("uvs.yaml");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(repo("configs/demo.yaml"))
            .unwrap()
            .replace("uvs-lb0", "uvs-nosuch0"),
    )
    .unwrap();
    let (ok, out) = uvsd(&["--config", cfg.to_str().unwrap(), "--run-for", "1"]);
    assert!(!ok);
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if root {
        assert!(
            out.contains("no such interface 'uvs-nosuch0'") && out.contains("ip link show"),
            "{out}"
        );
    } else {
        assert!(out.contains("needs root") && out.contains("sudo"), "{out}");
    }
    assert_eq!(
        out.trim().lines().count(),
        1,
        "one sentence, no backtrace: {out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every `--flag` the operator's documentation gives uvsd or uvsadm (README, the book, the
/// example configurations) is one its `--help` lists: a newcomer who reads `uvsd --man DIR`
/// in the docs finds it in `uvsd --help` too.
#[test]
fn help_lists_every_flag_the_docs_use() {
    let help = |bin: &str, flag: &str| {
        let out = Command::new(bin).arg(flag).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let programs = [
        ("uvsd", help(env!("CARGO_BIN_EXE_uvsd"), "--help")),
        ("uvsadm", help(env!("CARGO_BIN_EXE_uvsadm"), "-h")),
    ];
    let mut files = vec![repo("README.md")];
    for dir in ["docs/src", "configs"] {
        for e in std::fs::read_dir(repo(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "md" || x == "yaml") {
                files.push(p.to_string_lossy().into_owned());
            }
        }
    }
    let mut missing = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for (prog, help) in &programs {
                let word = format!("{prog} ");
                for (at, _) in line.match_indices(&word) {
                    // A whole word: not `ipvsadm ` for `uvsadm `, nor `uvsd-x `.
                    if line[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
                    {
                        continue;
                    }
                    // Its arguments: up to the end of the code span, a pipe, a comment.
                    let rest = &line[at + word.len()..];
                    let end = rest.find(['`', '|', ';', '#']).unwrap_or(rest.len());
                    for arg in rest[..end].split_whitespace() {
                        let flag = arg.split('=').next().unwrap_or(arg);
                        if flag.len() > 2
                            && flag.starts_with("--")
                            && flag[2..]
                                .chars()
                                .all(|c| c.is_ascii_lowercase() || c == '-')
                            && !help.contains(flag)
                        {
                            missing.push(format!("{file}:{}: {prog} {flag}", n + 1));
                        }
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "not in --help: {missing:#?}");
}

/// Run without root and without the capabilities it needs, uvsd refuses before it touches
/// the network, naming each missing capability (and only those) in one sentence.
#[test]
#[ignore = "needs root: setpriv to an unprivileged user with chosen capabilities (scripts/test.sh runs it as root)"]
fn missing_capabilities_are_named() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "missing_capabilities_are_named needs root (setpriv)"
    );
    let dir = std::env::temp_dir().join(format!("uvsd-caps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("uvs.yaml");
    std::fs::copy(repo("configs/package.yaml"), &cfg).unwrap();
    let bin = dir.join("uvsd");
    std::fs::copy(env!("CARGO_BIN_EXE_uvsd"), &bin).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for (p, mode) in [(&dir, 0o755), (&cfg, 0o644), (&bin, 0o755)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let run = |caps: &str| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        if caps.is_empty() {
            cmd.args(["--inh-caps=-all", "--bounding-set=-all"]);
        } else {
            cmd.arg(format!("--inh-caps=-all,{caps}"))
                .arg(format!("--ambient-caps=-all,{caps}"))
                .arg(format!("--bounding-set=-all,{caps}"));
        }
        let out = cmd.arg(&bin).arg("--config").arg(&cfg).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let none = run("");
    for c in [
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_IPC_LOCK",
    ] {
        assert!(none.contains(c), "{c} not named: {none}");
    }
    assert_eq!(none.lines().count(), 1, "one sentence: {none}");
    let four = run("+net_admin,+net_raw,+bpf,+ipc_lock");
    assert!(four.starts_with("uvsd: missing CAP_PERFMON ("), "{four}");
    assert!(!four.contains("CAP_BPF"), "{four}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A uvsd that died without withdrawing (SIGKILL, a crash, the watchdog) leaves BIRD
/// announcing its VIPs, so routers keep sending that node its share of the flows.
/// `uvsd --bgp-withdraw FILE` (uvsd.service's ExecStopPost) writes the include with no
/// route and tells BIRD to `configure`, as uvsd does when it stops; without a `bgp:`
/// section it does nothing.
#[test]
fn bgp_withdraw_empties_the_include_and_reconfigures_bird() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    let dir = std::env::temp_dir().join(format!("uvsd-cli-bgp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let include = dir.join("uvs-vips.conf");
    std::fs::write(
        &include,
        "protocol static uvs_vips4 {\n  ipv4;\n  route 198.18.100.1/32 blackhole;\n}\n",
    )
    .unwrap();
    // BIRD's control socket, as birdc sees it.
    let socket = dir.join("bird.ctl");
    let listener = UnixListener::bind(&socket).unwrap();
    let bird = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        (&s).write_all(b"0001 BIRD 2.15 ready.\n").unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        (&s).write_all(b"0002-Reading configuration from /etc/bird/bird.conf\n0003 Reconfigured\n")
            .unwrap();
        line
    });
    let base = std::fs::read_to_string(repo("configs/demo.yaml")).unwrap();
    let cfg = dir.join("uvs.yaml");
    std::fs::write(
        &cfg,
        format!(
            "{base}\nbgp:\n  include: {}\n  socket: {}\n",
            include.display(),
            socket.display()
        ),
    )
    .unwrap();
    let (ok, out) = uvsd(&["--bgp-withdraw", cfg.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert_eq!(bird.join().unwrap(), "configure\n");
    let now = std::fs::read_to_string(&include).unwrap();
    assert!(
        now.contains("protocol static uvs_vips4 {\n  ipv4;\n}\n"),
        "{now}"
    );
    assert!(!now.contains("route "), "{now}");
    assert!(out.contains("withdrew"), "{out}");

    // No bgp section: nothing to do, and not an error.
    let plain = dir.join("plain.yaml");
    std::fs::write(&plain, &base).unwrap();
    let (ok, out) = uvsd(&["--bgp-withdraw", plain.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("no bgp section"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
