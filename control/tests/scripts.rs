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
