//! What a study needs beside its figures, written into every `--json` file as
//! `"environment"`: the command line and when it ran, the machine (kernel, CPU model and
//! count, memory, load), the versions (uvs-bench, the source tree's commit, the uvsd
//! measured) and the versions of the peers measured beside uvs (wrk, nginx, HAProxy, nft).
//! Figures from two machines or two commits are not comparable; the file says which.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

struct Start {
    unix: u64,
    loadavg: String,
}

static START: OnceLock<Start> = OnceLock::new();

/// Notes the start of the run (its time and load); `record` reports them.
pub fn start() {
    START.get_or_init(|| Start {
        unix: now(),
        loadavg: loadavg(),
    });
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn loadavg() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `2026-12-05T14:20:15Z` from seconds since the epoch (proleptic Gregorian, UTC).
pub fn utc(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days_from_civil, inverted.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The first line a program prints about its version (stdout or stderr), if it runs.
fn version_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// The machine the run is on.
pub fn machine() -> Value {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let logical_cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let memory_kib = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
    json!({
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "cpu_model": cpu_model,
        "logical_cpus": logical_cpus,
        "cpus_usable": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memory_kib": memory_kib,
        "virtualization": version_of("systemd-detect-virt", &[]),
    })
}

/// The source tree uvs-bench was built from, as it is now: its commit and whether files
/// tracked by git differ from it (`null` outside a git checkout).
fn source_tree() -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(commit) => json!({
            "commit": commit,
            "modified": git(&["status", "--porcelain", "--untracked-files=no"])
                .map(|s| !s.is_empty()),
        }),
        None => Value::Null,
    }
}

/// The `"environment"` record of a `--json` file. `uvsd`: the uvsd binary the run used;
/// `tools`: the other programs measured or driving the load (their `-v`/`--version`).
pub fn record(uvsd: Option<&Path>, tools: &[&str]) -> Value {
    start();
    let s = START.get().expect("set above");
    let mut tool_versions = serde_json::Map::new();
    for &t in tools {
        let flag = match t {
            "nft" | "curl" => "--version",
            "ip" => "-V",
            _ => "-v",
        };
        tool_versions.insert(t.to_string(), json!(version_of(t, &[flag])));
    }
    json!({
        "command": std::env::args().collect::<Vec<_>>(),
        "started_utc": utc(s.unix),
        "finished_utc": utc(now()),
        "loadavg_at_start": s.loadavg,
        "loadavg_at_end": loadavg(),
        "machine": machine(),
        "uvs_bench": {
            "version": env!("CARGO_PKG_VERSION"),
            "executable": std::env::current_exe().ok(),
            "debug_build": cfg!(debug_assertions),
        },
        "source_tree": source_tree(),
        "uvsd": uvsd.map(|p| json!({
            "path": p,
            "version": version_of(&p.to_string_lossy(), &["--version"]),
        })),
        "tools": tool_versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_480_415), "2026-12-05T14:20:15Z");
    }

    #[test]
    fn the_record_names_the_machine_and_the_run() {
        let r = record(None, &["sh"]);
        assert!(r["machine"]["logical_cpus"].as_u64().unwrap() >= 1, "{r}");
        assert!(!r["machine"]["kernel"].as_str().unwrap().is_empty(), "{r}");
        assert!(
            r["command"].as_array().is_some_and(|a| !a.is_empty()),
            "{r}"
        );
        assert_eq!(r["uvs_bench"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(r["tools"].get("sh").is_some(), "{r}");
        assert!(r["uvsd"].is_null());
    }
}
