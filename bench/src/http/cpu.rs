//! What a wrk run cost the machine: the CPU time every process and softirq spent while it
//! ran (/proc/stat's `cpu` line, proc(5)), per request.
//!
//! On this bench's one-host testbed, wrk, the nginx servers and the balancer share the same
//! CPUs, so requests per second is set mostly by the client and the servers (bench/README.md,
//! "What bounds keep-alive here"), and by how the host schedules the guest. The CPU time a
//! request costs is what the balancer adds to it; with `--wrk-cpus` and `--server-cpus` on one
//! CPU, that CPU is saturated and requests per second is the inverse of it, less the time the
//! host took the CPU away (steal, counted here apart).

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

/// One reading of a /proc/stat CPU line (`cpu`, all CPUs, or `cpuN`), in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq (guest time is inside user and nice).
    pub busy: u64,
    /// Taken by the host (the hypervisor ran something else on this CPU).
    pub steal: u64,
    /// Every tick counted: busy + idle + iowait + steal.
    pub total: u64,
}

impl CpuTimes {
    /// Parses the line named `name` (`cpu` for all CPUs, `cpu0` for the first) of
    /// /proc/stat's text.
    pub fn parse(text: &str, name: &str) -> Result<CpuTimes> {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .ok_or_else(|| anyhow!("/proc/stat has no {name} line"))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("/proc/stat: bad cpu line {line:?}"))?;
        let [user, nice, system, idle, iowait, irq, softirq, steal] = v[..] else {
            return Err(anyhow!("/proc/stat: short cpu line {line:?}"));
        };
        let busy = user + nice + system + irq + softirq;
        Ok(CpuTimes {
            busy,
            steal,
            total: busy + idle + iowait + steal,
        })
    }

    pub fn read(name: &str) -> Result<CpuTimes> {
        let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        CpuTimes::parse(&text, name)
    }
}

/// A run's CPU use, from the readings before and after it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CpuUse {
    /// CPU seconds busy (of the CPUs the reading's line counts).
    pub busy_s: f64,
    /// CPU seconds the host took.
    pub steal_s: f64,
    /// CPU seconds counted (the run's wall time × those CPUs).
    pub total_s: f64,
    /// Busy microseconds a request.
    pub busy_us_per_request: f64,
}

impl CpuUse {
    /// `before` and `after` a run of `requests` requests; `hz` clock ticks a second.
    pub fn between(before: CpuTimes, after: CpuTimes, requests: u64, hz: f64) -> CpuUse {
        let s = |a: u64, b: u64| a.saturating_sub(b) as f64 / hz;
        let busy_s = s(after.busy, before.busy);
        CpuUse {
            busy_s,
            steal_s: s(after.steal, before.steal),
            total_s: s(after.total, before.total),
            busy_us_per_request: busy_s * 1e6 / requests.max(1) as f64,
        }
    }
}

/// Clock ticks a second (`sysconf(_SC_CLK_TCK)`, the unit of /proc/stat).
pub fn ticks_per_second() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(hz)) if hz > 0 => hz as f64,
        _ => 100.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  3053879 2145 678202 2723024 12921 0 292017 15849 0 0\n\
                        cpu0 1538428 1066 350521 1339032 7446 0 144544 8105 0 0\n\
                        intr 1 2 3\n";

    #[test]
    fn the_aggregate_line_is_read_and_steal_kept_apart() {
        let t = CpuTimes::parse(STAT, "cpu").unwrap();
        assert_eq!(t.busy, 3053879 + 2145 + 678202 + 292017);
        assert_eq!(t.steal, 15849);
        assert_eq!(t.total, t.busy + 2723024 + 12921 + 15849);
        let c0 = CpuTimes::parse(STAT, "cpu0").unwrap();
        assert_eq!(
            (c0.busy, c0.steal),
            (1538428 + 1066 + 350521 + 144544, 8105)
        );
        assert!(CpuTimes::parse(STAT, "cpu1").is_err());
        assert!(CpuTimes::parse("cpu0 1 2 3 4 5 6 7 8\n", "cpu").is_err());
        assert!(CpuTimes::parse("cpu 1 2 3\n", "cpu").is_err());
        assert!(CpuTimes::parse("cpu 1 2 x 4 5 6 7 8\n", "cpu").is_err());
    }

    #[test]
    fn use_is_per_request_and_in_seconds() {
        let before = CpuTimes {
            busy: 1000,
            steal: 10,
            total: 2000,
        };
        let after = CpuTimes {
            busy: 1500,
            steal: 30,
            total: 3000,
        };
        let u = CpuUse::between(before, after, 250_000, 100.0);
        assert_eq!(u.busy_s, 5.0);
        assert_eq!(u.steal_s, 0.2);
        assert_eq!(u.total_s, 10.0);
        assert_eq!(u.busy_us_per_request, 20.0);
    }
}
