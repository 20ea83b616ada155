//! `uvsadm import-keepalived`: every keepalived.conf under tests/keepalived/ok translates to
//! exactly its .yaml (which uvs's loader accepts) with exactly its .notes, and every one under
//! tests/keepalived/err fails with exactly its .err line and prints nothing.
//!
//! Each .conf names its command-line options on a `# args:` line. `UVS_BLESS=1` rewrites
//! the expectations from the current output (then read the diff before committing it).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use uvs_control::admin::keepalived::{import, import_args, import_in, Diag, ImportOptions};

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keepalived")
        .join(kind)
}

/// The `.conf` files of a directory, sorted.
fn confs(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no examples in {kind}/");
    v
}

/// The `# args:` line as argv.
fn args_of(src: &str) -> Vec<String> {
    src.lines()
        .find_map(|l| l.strip_prefix("# args:"))
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

fn options(src: &str) -> ImportOptions {
    let mut argv = args_of(src);
    argv.push("file.conf".into());
    import_args(&argv).unwrap().0
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn render_notes(notes: &[Diag]) -> String {
    notes
        .iter()
        .map(|n| {
            let p = n.pos.expect("notes have positions");
            format!("{}:{}:{}: note: {}\n", n.file, p.line, p.column, n.message)
        })
        .collect()
}

fn bless() -> bool {
    std::env::var_os("UVS_BLESS").is_some()
}

/// Compares with the expectation file, or writes it when blessing.
fn expect(path: PathBuf, got: &str) {
    if bless() {
        fs::write(&path, got).unwrap();
        return;
    }
    let want = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UVS_BLESS=1 writes it)", path.display()));
    assert_eq!(got, want, "{} differs", path.display());
}

#[test]
fn translations_are_exact_and_load() {
    for conf in confs("ok") {
        let src = fs::read_to_string(&conf).unwrap();
        let file = name(&conf);
        let done = import_in(&dir("ok"), &src, &file, &options(&src))
            .unwrap_or_else(|e| panic!("{file} did not translate: {e}"));
        let cfg = uvs_config::load_str(&done.yaml, &file)
            .unwrap_or_else(|e| panic!("{file}: the translation does not load: {e}"));
        assert!(!cfg.services.is_empty(), "{file}: no services");
        expect(conf.with_extension("yaml"), &done.yaml);
        expect(conf.with_extension("notes"), &render_notes(&done.notes));
    }
}

#[test]
fn refusals_are_located_and_exact() {
    for conf in confs("err") {
        let src = fs::read_to_string(&conf).unwrap();
        let file = name(&conf);
        let e = match import_in(&dir("err"), &src, &file, &options(&src)) {
            Ok(done) => panic!("{file} translated but should not have:\n{}", done.yaml),
            Err(e) => e,
        };
        expect(conf.with_extension("err"), &format!("{e}\n"));
    }
}

/// The translation keeps keepalived's semantics where they differ from uvs's defaults.
#[test]
fn keepalived_defaults_are_written_out() {
    let src = "virtual_server 198.18.100.1 80 {\n protocol TCP\n real_server 198.18.1.11 80 {\n  \
               TCP_CHECK {\n  }\n }\n}\n";
    let opts = ImportOptions {
        interface: Some("uvs-lb0".into()),
        networks: vec!["198.18.1.0/24".into()],
        local: vec!["198.18.1.250".into()],
        ..ImportOptions::default()
    };
    let cfg = uvs_config::load_str(&import(src, "k.conf", &opts).unwrap().yaml, "y").unwrap();
    let s = &cfg.services[0];
    // keepalived: NAT (uvs: dr), wlc, delay_loop 60 s, connect_timeout 5 s, retry 1.
    assert_eq!(s.forwarding, uvs_config::Forwarding::Nat);
    assert_eq!(s.scheduler, uvs_config::Scheduler::WeightedLeastConnection);
    let hc = s.health_check.as_ref().unwrap();
    assert_eq!(hc.interval, std::time::Duration::from_secs(60));
    assert_eq!(hc.timeout, std::time::Duration::from_secs(5));
    assert_eq!((hc.rise, hc.fall), (1, 2));
}

/// lvs_sync_daemon's sync id as keepalived sets it: `id N`, the older form (the number
/// right after the instance), or else the instance's virtual_router_id; a sync daemon
/// whose instance is not in the file is dropped, as keepalived drops it.
#[test]
fn sync_daemon_ids() {
    let opts = ImportOptions {
        interface: Some("uvs-lb1".into()),
        networks: vec!["198.18.1.0/24".into()],
        local: vec!["198.18.1.250".into()],
        ..ImportOptions::default()
    };
    let sync_id = |daemon: &str| {
        let src = format!(
            "global_defs {{\n {daemon}\n}}\nvrrp_instance VI_1 {{\n virtual_router_id 51\n}}\n\
             virtual_server 198.18.100.1 80 {{\n protocol TCP\n real_server 198.18.1.11 80 {{\n \
             }}\n}}\n"
        );
        let done = import(&src, "k.conf", &opts).unwrap();
        let cfg = uvs_config::load_str(&done.yaml, "y").unwrap();
        cfg.sync.map(|s| s.syncid)
    };
    assert_eq!(sync_id("lvs_sync_daemon uvs-lb1 VI_1 id 7"), Some(7));
    assert_eq!(sync_id("lvs_sync_daemon uvs-lb1 VI_1 9 port 8850"), Some(9));
    assert_eq!(sync_id("lvs_sync_daemon uvs-lb1 inst VI_1"), Some(51));
    assert_eq!(sync_id("lvs_sync_daemon uvs-lb1 VI_1"), Some(51));
    assert_eq!(sync_id("lvs_sync_daemon uvs-lb1"), Some(0));
    assert_eq!(sync_id("lvs_sync_daemon uvs-lb1 VI_2"), None);
}

/// `${_PWD}` is the directory of the file it is written in, as keepalived defines it.
#[test]
fn pwd_is_the_directory_of_the_file() {
    let src = "$CHECK=${_PWD}/check.sh\nvirtual_server 198.18.100.1 80 {\n protocol TCP\n \
               real_server 198.18.1.11 80 {\n  MISC_CHECK {\n   misc_path \"$CHECK 7\"\n  }\n \
               }\n}\n";
    let opts = ImportOptions {
        interface: Some("uvs-lb0".into()),
        networks: vec!["198.18.1.0/24".into()],
        local: vec!["198.18.1.250".into()],
        ..ImportOptions::default()
    };
    let done = import_in(&dir("ok"), src, "k.conf", &opts).unwrap();
    let cfg = uvs_config::load_str(&done.yaml, "y").unwrap();
    let hc = cfg.services[0].health_check.as_ref().unwrap();
    let want = format!("{}/check.sh 7", dir("ok").display());
    assert!(format!("{hc:?}").contains(&want), "{want} not in {hc:?}");
}

fn uvsadm(cwd: &Path, args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_uvsadm"))
        .current_dir(cwd)
        .arg("import-keepalived")
        .args(args)
        .env("UVSADM_SOCKET", "/nonexistent/uvs-import-test.sock")
        .output()
        .unwrap()
}

/// The command line: YAML on stdout and notes on stderr; on a refusal only the error.
#[test]
fn uvsadm_prints_the_yaml_or_only_the_error() {
    if bless() {
        return;
    }
    for conf in confs("ok") {
        let src = fs::read_to_string(&conf).unwrap();
        let mut args = args_of(&src);
        args.push(name(&conf));
        let out = uvsadm(&dir("ok"), &args);
        assert!(out.status.success(), "{}: {:?}", name(&conf), out);
        let yaml = fs::read_to_string(conf.with_extension("yaml")).unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), yaml);
        let notes = fs::read_to_string(conf.with_extension("notes")).unwrap();
        assert_eq!(String::from_utf8(out.stderr).unwrap(), notes);
    }
    for conf in confs("err") {
        let src = fs::read_to_string(&conf).unwrap();
        let mut args = args_of(&src);
        args.push(name(&conf));
        let out = uvsadm(&dir("err"), &args);
        assert_eq!(out.status.code(), Some(1), "{}", name(&conf));
        assert!(
            out.stdout.is_empty(),
            "{}: printed {:?}",
            name(&conf),
            out.stdout
        );
        let want = fs::read_to_string(conf.with_extension("err")).unwrap();
        let got = String::from_utf8(out.stderr).unwrap();
        // Command-line problems carry the command's name in front.
        assert!(got.ends_with(&want), "{}: {got}", name(&conf));
    }
    let out = uvsadm(&dir("ok"), &["missing.conf".to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .starts_with("uvsadm: missing.conf: cannot read the file"));
}

/// No stray expectations: each .yaml/.notes/.err belongs to a .conf.
#[test]
fn every_expectation_has_its_example() {
    for kind in ["ok", "err"] {
        for e in fs::read_dir(dir(kind)).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                // Files the examples include.
                continue;
            }
            let ext = p.extension().unwrap().to_string_lossy().into_owned();
            let allowed: &[&str] = if kind == "ok" {
                &["conf", "yaml", "notes"]
            } else {
                &["conf", "err"]
            };
            assert!(allowed.contains(&ext.as_str()), "{}", p.display());
            assert!(
                p.with_extension("conf").exists(),
                "{} has no .conf",
                p.display()
            );
        }
    }
}
