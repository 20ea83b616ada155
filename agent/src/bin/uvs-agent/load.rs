//! What this server's load is: CPU busy time and run queue from /proc/stat, and an
//! application's own figure (a file, a command, or pushed over the command socket). Each
//! is a percentage, 0 idle ..= 100 saturated; the load reported is the largest.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// CPU and run-queue counters of one /proc/stat reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// Jiffies spent not idle (user, nice, system, irq, softirq, steal).
    pub busy: u64,
    /// Every jiffy counted (busy + idle + iowait).
    pub total: u64,
    /// Threads runnable right now (`procs_running`), this one included.
    pub running: u64,
    /// Logical CPUs (`cpuN` lines).
    pub cpus: u64,
}

/// Parses /proc/stat (proc(5)).
pub fn parse_proc_stat(text: &str) -> Result<ProcStat> {
    let mut busy_total = None;
    let (mut running, mut cpus) = (None, 0u64);
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let v: Vec<u64> = f
                    .take(8)
                    .map(|x| x.parse::<u64>())
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("/proc/stat: bad cpu line {line:?}"))?;
                if v.len() < 4 {
                    bail!("/proc/stat: short cpu line {line:?}");
                }
                // user nice system idle iowait irq softirq steal; guest time is already
                // inside user and nice.
                let idle = v[3] + v.get(4).copied().unwrap_or(0);
                let total: u64 = v.iter().sum();
                busy_total = Some((total - idle, total));
            }
            Some(c) if c.starts_with("cpu") && c[3..].bytes().all(|b| b.is_ascii_digit()) => {
                cpus += 1
            }
            Some("procs_running") => {
                running = f.next().and_then(|x| x.parse().ok());
            }
            _ => {}
        }
    }
    let (busy, total) = busy_total.ok_or_else(|| anyhow!("/proc/stat has no cpu line"))?;
    Ok(ProcStat {
        busy,
        total,
        running: running.ok_or_else(|| anyhow!("/proc/stat has no procs_running line"))?,
        cpus: cpus.max(1),
    })
}

/// CPU busy percentage between two readings; `None` when no time passed.
pub fn cpu_busy_pct(before: &ProcStat, after: &ProcStat) -> Option<f64> {
    let total = after.total.checked_sub(before.total)?;
    let busy = after.busy.checked_sub(before.busy)?;
    (total > 0).then(|| (busy as f64 * 100.0 / total as f64).min(100.0))
}

/// Run queue as a percentage of the CPUs: one runnable thread per CPU is 100 (the
/// reader itself is running while it reads, so it is not counted).
pub fn runq_pct(s: &ProcStat) -> f64 {
    (s.running.saturating_sub(1) as f64 * 100.0 / s.cpus as f64).min(100.0)
}

/// An application's figure: `0..=100`, a number with optional `%`, first word of `text`.
pub fn parse_figure(text: &str) -> Result<f64> {
    let word = text
        .split_whitespace()
        .next()
        .ok_or_else(|| anyhow!("empty: expected a load 0..=100"))?;
    let v: f64 = word
        .trim_end_matches('%')
        .parse()
        .map_err(|_| anyhow!("{word:?} is not a number: expected a load 0..=100"))?;
    if !(0.0..=100.0).contains(&v) {
        bail!("{v} is out of range: expected a load 0..=100");
    }
    Ok(v)
}

/// Runs `sh -c cmd`, killed (with its process group) after `timeout`; its first line is
/// the figure.
pub fn run_command(cmd: &str, timeout: Duration) -> Result<f64> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .with_context(|| format!("running sh -c {cmd:?}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("{cmd:?} failed ({status})");
            }
            let mut out = String::new();
            if let Some(so) = child.stdout.take() {
                so.take(4096).read_to_string(&mut out)?;
            }
            return parse_figure(out.lines().next().unwrap_or(""))
                .with_context(|| format!("the output of {cmd:?}"));
        }
        if Instant::now() >= deadline {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill();
            let _ = child.wait();
            bail!("{cmd:?} did not finish within {timeout:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Which figures to gather.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub cpu: bool,
    pub runq: bool,
    pub file: Option<PathBuf>,
    pub command: Option<String>,
}

/// The latest figures (percentages); `None` = not gathered or failed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    pub cpu: Option<f64>,
    pub runq: Option<f64>,
    pub file: Option<f64>,
    pub command: Option<f64>,
    /// Pushed by the application over the command socket (still within its TTL).
    pub app: Option<f64>,
}

impl Figures {
    /// The load reported: the largest figure, 0 when there is none.
    pub fn load(&self) -> f64 {
        [self.cpu, self.runq, self.file, self.command, self.app]
            .into_iter()
            .flatten()
            .fold(0.0, f64::max)
    }

    /// `cpu 37, runq 10, app 40` for logs and `status`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("cpu", self.cpu),
            ("runq", self.runq),
            ("file", self.file),
            ("command", self.command),
            ("app", self.app),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| format!("{n} {v:.0}")))
        .collect();
        if parts.is_empty() {
            "no load figures".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Samples the sources every interval; the run queue is smoothed (it is an instant
/// count), the CPU figure is already an average over the interval.
pub struct Sampler {
    sources: Sources,
    interval: Duration,
    prev: Option<ProcStat>,
    runq: Option<f64>,
    /// Last error per source, so a persistent one is logged once, not every second.
    last_err: [Option<String>; 3],
}

/// Weight of a new run-queue sample in its moving average.
const RUNQ_SMOOTHING: f64 = 0.25;

impl Sampler {
    pub fn new(sources: Sources, interval: Duration) -> Sampler {
        Sampler {
            sources,
            interval,
            prev: None,
            runq: None,
            last_err: [None, None, None],
        }
    }

    /// One round: reads what is enabled and returns the figures (the app's is not ours).
    pub fn sample(&mut self) -> Figures {
        let mut f = Figures::default();
        if self.sources.cpu || self.sources.runq {
            match std::fs::read_to_string("/proc/stat")
                .context("reading /proc/stat")
                .and_then(|t| parse_proc_stat(&t))
            {
                Ok(now) => {
                    self.note(0, None);
                    if self.sources.cpu {
                        f.cpu = self.prev.as_ref().and_then(|p| cpu_busy_pct(p, &now));
                    }
                    if self.sources.runq {
                        let x = runq_pct(&now);
                        let r = match self.runq {
                            Some(r) => r + (x - r) * RUNQ_SMOOTHING,
                            None => x,
                        };
                        self.runq = Some(r);
                        f.runq = Some(r);
                    }
                    self.prev = Some(now);
                }
                Err(e) => self.note(0, Some(format!("{e:#}"))),
            }
        }
        if let Some(path) = self.sources.file.clone() {
            let r = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))
                .and_then(|t| parse_figure(&t).with_context(|| path.display().to_string()));
            f.file = self.keep(1, r);
        }
        if let Some(cmd) = self.sources.command.clone() {
            let timeout = self
                .interval
                .clamp(Duration::from_millis(100), Duration::from_secs(5));
            f.command = self.keep(2, run_command(&cmd, timeout));
        }
        f
    }

    fn keep(&mut self, i: usize, r: Result<f64>) -> Option<f64> {
        match r {
            Ok(v) => {
                self.note(i, None);
                Some(v)
            }
            Err(e) => {
                self.note(i, Some(format!("{e:#}")));
                None
            }
        }
    }

    fn note(&mut self, i: usize, err: Option<String>) {
        if err != self.last_err[i] {
            match &err {
                Some(e) => log::warn!("load figure unavailable: {e}"),
                None if self.last_err[i].is_some() => log::info!("load figure available again"),
                None => {}
            }
            self.last_err[i] = err;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 800 20 3 2 0 0 0\n\
cpu0 50 2 25 400 10 1 1 0 0 0\n\
cpu1 50 3 25 400 10 2 1 0 0 0\n\
intr 1234 0 0\n\
ctxt 999\n\
btime 1700000000\n\
processes 4242\n\
procs_running 3\n\
procs_blocked 0\n";

    #[test]
    fn proc_stat_fields() {
        let s = parse_proc_stat(STAT).unwrap();
        assert_eq!(
            s,
            ProcStat {
                busy: 100 + 5 + 50 + 3 + 2,
                total: 980,
                running: 3,
                cpus: 2
            }
        );
        // Two runnable besides the reader, on 2 CPUs: 100 %.
        assert_eq!(runq_pct(&s), 100.0);
        assert!(parse_proc_stat("intr 1\n").is_err());
        assert!(parse_proc_stat("cpu 1 2 x 4\nprocs_running 1\n").is_err());
    }

    #[test]
    fn cpu_busy_between_readings() {
        let a = ProcStat {
            busy: 100,
            total: 1000,
            running: 1,
            cpus: 4,
        };
        let b = ProcStat {
            busy: 175,
            total: 1100,
            ..a
        };
        assert_eq!(cpu_busy_pct(&a, &b), Some(75.0));
        assert_eq!(cpu_busy_pct(&a, &a), None);
        assert_eq!(
            cpu_busy_pct(&b, &a),
            None,
            "counters going back (CPU hot-unplug)"
        );
        assert_eq!(runq_pct(&a), 0.0);
    }

    #[test]
    fn figures() {
        assert_eq!(parse_figure("42\n").unwrap(), 42.0);
        assert_eq!(parse_figure(" 12.5% busy").unwrap(), 12.5);
        assert!(parse_figure("").is_err());
        assert!(parse_figure("lots")
            .unwrap_err()
            .to_string()
            .contains("not a number"));
        assert!(parse_figure("101")
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        let f = Figures {
            cpu: Some(30.0),
            app: Some(55.0),
            ..Figures::default()
        };
        assert_eq!(f.load(), 55.0);
        assert_eq!(f.describe(), "cpu 30, app 55");
        assert_eq!(Figures::default().load(), 0.0);
    }

    #[test]
    fn command_figure_and_timeout() {
        assert_eq!(
            run_command("echo 17", Duration::from_secs(5)).unwrap(),
            17.0
        );
        assert!(run_command("exit 3", Duration::from_secs(5)).is_err());
        let t = Instant::now();
        let e = run_command("sleep 5; echo 1", Duration::from_millis(200)).unwrap_err();
        assert!(e.to_string().contains("killed"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
