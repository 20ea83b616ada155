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
