//! The scripts run the binaries from where cargo built them, CARGO_TARGET_DIR included.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn target_dir(env: Option<&str>) -> String {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/target-dir.sh"))
        .env("CARGO", env!("CARGO"))
        .env_remove("CARGO_BUILD_TARGET_DIR");
    match env {
        Some(dir) => cmd.env("CARGO_TARGET_DIR", dir),
        None => cmd.env_remove("CARGO_TARGET_DIR"),
    };
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn target_dir_follows_cargo() {
    assert_eq!(target_dir(Some("/tmp/uvs-elsewhere")), "/tmp/uvs-elsewhere");
    assert_eq!(
        PathBuf::from(target_dir(None)),
        repo().join("target"),
        "without CARGO_TARGET_DIR: the workspace's target/"
    );
}

/// The demo runs uvsd and uvsadm from the directory cargo built them in (it once ran
/// target/release/uvsd whatever CARGO_TARGET_DIR said).
#[test]
fn demo_uses_the_target_dir() {
    let demo = std::fs::read_to_string(repo().join("scripts/demo.sh")).unwrap();
    let bin_lines: Vec<&str> = demo
        .lines()
        .filter(|l| l.trim_start().starts_with("bin="))
        .collect();
    assert_eq!(bin_lines, ["bin=$(scripts/target-dir.sh)/release"]);
    for script in ["demo.sh", "test.sh", "testbed.sh"] {
        let text = std::fs::read_to_string(repo().join("scripts").join(script)).unwrap();
        assert!(
            !text.contains("target/release") && !text.contains("target/debug"),
            "{script} names a fixed target directory"
        );
    }
}

/// Where the Debian package puts each asset: (source relative to control/, destination).
fn deb_assets() -> Vec<(String, String)> {
    let toml = std::fs::read_to_string(repo().join("control/Cargo.toml")).unwrap();
    toml.lines()
        .filter_map(|l| l.trim().strip_prefix("[\""))
        .filter_map(|l| {
            let mut parts = l.split("\", \"");
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

/// The keepalived example (configs/keepalived.conf, docs/src/active-backup.md) works as
/// written on a node installed from the Debian package: every program its track and
/// notify scripts run is one the package installs, at that path, and the example itself
/// is among the package's examples.
#[test]
fn the_package_installs_what_the_keepalived_example_runs() {
    let assets = deb_assets();
    let installed = |path: &str| {
        assets.iter().any(|(src, dest)| {
            let name = src.rsplit('/').next().unwrap_or(src);
            let dest = format!("/{dest}");
            dest == path || (dest.ends_with('/') && format!("{dest}{name}") == path)
        })
    };
    let conf = std::fs::read_to_string(repo().join("configs/keepalived.conf")).unwrap();
    let mut programs = Vec::new();
    for line in conf.lines().map(str::trim) {
        for key in ["script \"", "notify \""] {
            if let Some(rest) = line.strip_prefix(key) {
                programs.push(rest.split([' ', '"']).next().unwrap().to_string());
            }
        }
    }
    assert!(programs.len() >= 2, "{programs:?}");
    for p in &programs {
        assert!(
            installed(p),
            "configs/keepalived.conf runs {p}, which the Debian package does not install \
             (control/Cargo.toml's assets: {assets:?})"
        );
    }
    assert!(
        installed("/usr/share/doc/uvs/examples/keepalived.conf"),
        "the keepalived example is not among the package's examples"
    );
    let guide = std::fs::read_to_string(repo().join("docs/src/active-backup.md")).unwrap();
    for p in programs.iter().filter(|p| p.ends_with("uvs-notify.sh")) {
        assert!(
            guide.contains(p.as_str()),
            "active-backup.md does not say {p}"
        );
    }
}
