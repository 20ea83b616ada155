//! The manual pages cannot drift from the programs: `uvsd --man DIR` writes them, and every
//! flag `uvsd --help` and `uvsadm -h` print is in its page, every field of
//! configs/reference.yaml is in uvs.yaml(5), and groff renders each page without warnings.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(bin: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env("UVSADM_SOCKET", "/nonexistent/uvs-man-test.sock")
        .output()
        .unwrap()
}

/// Writes the pages into a fresh directory under the target dir, one per test.
fn pages(test: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("man-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = run(
        env!("CARGO_BIN_EXE_uvsd"),
        &["--man", dir.to_str().unwrap()],
    );
    assert!(out.status.success(), "uvsd --man: {out:?}");
    let listed = String::from_utf8(out.stdout).unwrap();
    for p in ["man8/uvsd.8", "man8/uvsadm.8", "man5/uvs.yaml.5"] {
        assert!(dir.join(p).is_file(), "{p} not written");
        assert!(listed.contains(p), "{p} not reported: {listed}");
    }
    dir
}

fn read(dir: &Path, p: &str) -> String {
    std::fs::read_to_string(dir.join(p)).unwrap()
}

/// Every `-x` / `--long-option` in a help text.
fn flags(help: &str) -> BTreeSet<String> {
    help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| {
            let body = w.trim_start_matches('-');
            w.starts_with('-')
                && w.len() - body.len() <= 2
                && body.starts_with(|c: char| c.is_ascii_alphanumeric())
        })
        .map(str::to_string)
        .collect()
}

/// How a flag is written in roff (`-` as `\-`).
fn roff(flag: &str) -> String {
    flag.replace('-', "\\-")
}

#[test]
fn uvsd_page_has_every_flag_of_its_help() {
    let dir = pages("uvsd");
    let page = read(&dir, "man8/uvsd.8");
    let help = String::from_utf8(run(env!("CARGO_BIN_EXE_uvsd"), &["--help"]).stdout).unwrap();
    let f = flags(&help);
    for expected in [
        "--config",
        "-c",
        "--check-config",
        "--admin-socket",
        "--run-for",
        "--man",
        "--completions",
    ] {
        assert!(
            f.contains(expected),
            "{expected} not found in --help: {help}"
        );
    }
    for flag in &f {
        assert!(page.contains(&roff(flag)), "uvsd.8 lacks {flag}");
    }
    // The page- and completion-writing flags are in --help and the page: the docs tell
    // operators who build uvs in place to run them (docs/src/installation.md).
    assert!(page.contains("\n.TH uvsd 8 "), "no title line");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn uvsadm_page_has_every_flag_and_command_of_its_help() {
    let dir = pages("uvsadm");
    let page = read(&dir, "man8/uvsadm.8");
    let out = run(env!("CARGO_BIN_EXE_uvsadm"), &["-h"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert_eq!(help, uvs_control::admin::usage());
    let f = flags(&help);
    assert!(f.len() > 40, "too few flags found: {f:?}");
    for flag in &f {
        assert!(page.contains(&roff(flag)), "uvsadm.8 lacks {flag}");
    }
    for word in ["save", "top", "import-keepalived"] {
        assert!(
            page.contains(&format!("\\fB{}\\fR", roff(word))),
            "uvsadm.8 lacks {word}"
        );
    }
    // Every description line of the help is in the page (continuations joined).
    for row in [
        "add virtual service with options",
        "one-packet scheduling (UDP)",
    ] {
        assert!(page.contains(row), "uvsadm.8 lacks '{row}'");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Every key path of a YAML document, lists of mappings as `[]`.
fn paths(v: &yaml_serde::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        yaml_serde::Value::Mapping(m) => {
            for (k, v) in m {
                let k = k.as_str().unwrap();
                let p = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                paths(v, &p, out);
            }
        }
        yaml_serde::Value::Sequence(s) if s.iter().any(|i| i.is_mapping()) => {
            let p = format!("{prefix}[]");
            out.remove(prefix);
            out.insert(p.clone());
            for item in s {
                paths(item, &p, out);
            }
        }
        _ => {}
    }
}

#[test]
fn uvs_yaml_page_has_every_field_of_the_reference() {
    let dir = pages("yaml");
    let page = read(&dir, "man5/uvs.yaml.5");
    let doc: yaml_serde::Value = yaml_serde::from_str(uvs_control::man::REFERENCE_YAML).unwrap();
    let mut all = BTreeSet::new();
    paths(&doc, "", &mut all);
    // Member mode's section, from configs/member.yaml.
    let member: yaml_serde::Value = yaml_serde::from_str(uvs_control::man::MEMBER_YAML).unwrap();
    let mut member_paths = BTreeSet::new();
    paths(&member, "", &mut member_paths);
    all.extend(
        member_paths
            .into_iter()
            .filter(|p| p == "member" || p.starts_with("member.")),
    );
    // Shown commented out in the reference, since a check has one type.
    all.insert("services[].health_check.command".to_string());
    all.insert("services[].health_check.send".to_string());
    all.insert("services[].health_check.user".to_string());
    // Commented out too: it needs `syn_proxy: true`, which the reference leaves off.
    all.insert("services[].proxy_protocol".to_string());
    for commented in [
        "start_down",
        "expect_digest",
        "urls",
        "host",
        "sni",
        "verify",
        "ca_file",
    ] {
        all.insert(format!("services[].health_check.{commented}"));
    }
    assert!(all.len() > 60, "too few fields: {all:?}");
    let entries: BTreeSet<&str> = page.lines().filter_map(|l| l.strip_prefix(".B ")).collect();
    for p in &all {
        assert!(
            entries.contains(p.as_str()),
            "uvs.yaml.5 has no entry for {p}"
        );
    }
    // And nothing the reference does not have.
    for e in entries
        .iter()
        .filter(|e| e.contains('.') || e.ends_with("[]"))
    {
        if e.starts_with('/') || e.contains(' ') {
            continue;
        }
        assert!(
            all.contains(*e),
            "uvs.yaml.5 has an entry {e} the reference lacks"
        );
    }
    // The reference file itself is the EXAMPLE section, verbatim.
    assert!(page.contains("merge keys (<<) do not"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn groff_renders_the_pages_without_warnings() {
    if Command::new("groff").arg("--version").output().is_err() {
        eprintln!("SKIPPED groff_renders_the_pages_without_warnings: groff is not installed");
        return;
    }
    let dir = pages("groff");
    for p in ["man8/uvsd.8", "man8/uvsadm.8", "man5/uvs.yaml.5"] {
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(dir.join(p))
            .output()
            .unwrap();
        assert!(out.status.success(), "{p}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.trim().is_empty(), "{p}: groff says:\n{err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
