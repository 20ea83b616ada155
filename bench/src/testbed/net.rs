//! The test network under a benchmark: `scripts/testbed.sh` namespaces torn down by a
//! Drop guard (also when a run fails or panics, and by `crate::interrupt` when it is
//! interrupted), commands run inside them, and child
//! processes (generator, uvsd, l2fwd, HAProxy, wrk) ended by their own PID only; the kernel
//! peers' setup (forwarding, RPS, nftables DNAT), undone on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::Family;

/// Whether this process runs as root (namespaces, veth, XDP and AF_XDP need it).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// The repository's `scripts/testbed.sh`: next to the sources this binary was built from,
/// or under the current directory.
pub fn default_testbed_script() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/testbed.sh");
    if built.exists() {
        return built;
    }
    PathBuf::from("scripts/testbed.sh")
}

/// A binary built beside this one (same target directory): `uvsd` by default.
pub fn sibling_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    // Test executables live in target/<profile>/deps; binaries one level up.
    [dir.join(name), dir.join("..").join(name)]
        .into_iter()
        .find(|p| p.is_file())
}

/// One test network (`scripts/testbed.sh up TAG --mode MODE`); `down` on drop.
/// `tx_csum_offload: false` turns the veths' transmit checksum offload off, so sockets send
/// full checksums; with it on (veth's default) they send partial ones that uvs completes.
pub struct Testbed {
    pub tag: String,
    script: PathBuf,
    pub state: PathBuf,
    /// `down` also when uvs-bench is interrupted (Ctrl-C, SIGTERM), which skips Drop.
    _interrupt: crate::interrupt::Guard,
}

impl Testbed {
    pub fn up(script: &Path, tag: &str, mode: &str, tx_csum_offload: bool) -> Result<Testbed> {
        Self::up_queues(script, tag, mode, tx_csum_offload, 1)
    }

    /// [`Testbed::up`] with `queues` receive/transmit queues on the balancer's two links.
    pub fn up_queues(
        script: &Path,
        tag: &str,
        mode: &str,
        tx_csum_offload: bool,
        queues: usize,
    ) -> Result<Testbed> {
        if !is_root() {
            bail!("the testbed needs root (network namespaces, veth, XDP, AF_XDP): run with sudo");
        }
        if !script.exists() {
            bail!(
                "{} not found: run from the repository or pass --testbed-script",
                script.display()
            );
        }
        // The guard exists before `up` so a half-built network is removed too.
        let (down_script, down_tag) = (script.to_path_buf(), tag.to_string());
        let tb = Testbed {
            tag: tag.to_string(),
            script: script.to_path_buf(),
            state: PathBuf::from(format!("/run/uvs-testbed/{tag}")),
            _interrupt: crate::interrupt::on_interrupt(move || {
                let _ = Command::new(&down_script)
                    .args(["down", &down_tag])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }),
        };
        let out = Command::new(script)
            .args(["up", tag, "--mode", mode, "--tx-csum-offload"])
            .arg(if tx_csum_offload { "on" } else { "off" })
            .args(["--queues", &queues.to_string()])
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "testbed up failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(tb)
    }

    pub fn ns(&self, role: &str) -> String {
        format!("uvs-{}-{role}", self.tag)
    }

    /// A command that runs `args` inside the namespace of `role`.
    pub fn command(&self, role: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(role)]).args(args);
        c
    }

    /// Runs a command in a namespace and fails with its output when it fails.
    pub fn run(&self, role: &str, args: &[&str]) -> Result<String> {
        let out = self
            .command(role, args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("ip netns exec {} {}", self.ns(role), args.join(" ")))?;
        check(&out, &format!("{}: {}", self.ns(role), args.join(" ")))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a shell script in a namespace.
    pub fn sh(&self, role: &str, script: &str) -> Result<String> {
        self.run(role, &["sh", "-c", script])
    }

    /// Feeds `rules` to `nft -f -` in a namespace.
    pub fn nft(&self, role: &str, rules: &str) -> Result<()> {
        use std::io::Write;
        let mut child = self
            .command(role, &["nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running nft")?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(rules.as_bytes())?;
        let out = child.wait_with_output()?;
        check(&out, &format!("nft in {}", self.ns(role)))
    }

    /// The MAC address of an interface inside a namespace.
    pub fn mac(&self, role: &str, dev: &str) -> Result<[u8; 6]> {
        let s = self.run(role, &["cat", &format!("/sys/class/net/{dev}/address")])?;
        parse_mac(s.trim())
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .args(["down", &self.tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The kernel peers' setup in the balancer namespace: forwarding on, receive processing
/// of the client link moved to `dut_core` by RPS, nftables DNAT for `nft` (over the first
/// `reals` real servers).
pub struct KernelPeer<'a> {
    tb: &'a Testbed,
    nft: bool,
    family: Family,
}

impl<'a> KernelPeer<'a> {
    pub fn set_up(
        tb: &'a Testbed,
        nft: Option<(&str, u16, usize)>,
        rps_core: Option<usize>,
    ) -> Result<KernelPeer<'a>> {
        Self::set_up_family(tb, Family::Ipv4, nft, rps_core)
    }

    /// As [`KernelPeer::set_up`] for `family`: its forwarding on, the DNAT (if any) to its
    /// VIP and real servers in an `ip` or `ip6` table.
    pub fn set_up_family(
        tb: &'a Testbed,
        family: Family,
        nft: Option<(&str, u16, usize)>,
        rps_core: Option<usize>,
    ) -> Result<KernelPeer<'a>> {
        let peer = KernelPeer {
            tb,
            nft: nft.is_some(),
            family,
        };
        tb.run(
            "lb",
            &[
                "sysctl",
                "-qw",
                &format!("{}=1", family.forwarding_sysctl()),
            ],
        )?;
        if let Some(c) = rps_core {
            tb.sh(
                "lb",
                &format!(
                    "echo {:x} > /sys/class/net/uvs-lb0/queues/rx-0/rps_cpus",
                    1u64 << c
                ),
            )?;
        }
        if let Some((proto, port, reals)) = nft {
            tb.nft("lb", &super::dnat_rules(family, proto, port, reals))?;
        }
        Ok(peer)
    }
}

impl Drop for KernelPeer<'_> {
    fn drop(&mut self) {
        if self.nft {
            let _ = self.tb.run(
                "lb",
                &[
                    "nft",
                    "delete",
                    "table",
                    self.family.nft_table(),
                    "uvsbench",
                ],
            );
        }
        let _ = self.tb.sh(
            "lb",
            &format!(
                "echo 0 > /sys/class/net/uvs-lb0/queues/rx-0/rps_cpus; sysctl -qw {}=0",
                self.family.forwarding_sysctl()
            ),
        );
    }
}

fn check(out: &Output, what: &str) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC address '{s}'"))?;
    v.try_into()
        .map_err(|_| anyhow::anyhow!("bad MAC address '{s}'"))
}

pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A child process this run started, ended by its own PID (SIGTERM, then SIGKILL) on
/// drop. `ip netns exec` execs its command, so the PID is the command's.
pub struct Spawned {
    pub name: String,
    child: Option<Child>,
}

impl Spawned {
    pub fn new(name: &str, child: Child) -> Spawned {
        Spawned {
            name: name.to_string(),
            child: Some(child),
        }
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Waits for it to exit by itself within `limit`, then collects its output.
    pub fn wait_output(mut self, limit: Duration) -> Result<Output> {
        let start = Instant::now();
        loop {
            let c = self.child.as_mut().expect("child present until consumed");
            if c.try_wait()?.is_some() {
                break;
            }
            if start.elapsed() > limit {
                self.stop();
                bail!(
                    "{} did not finish within {:?}; stopped it",
                    self.name,
                    limit
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let child = self.child.take().expect("present");
        Ok(child.wait_with_output()?)
    }

    /// SIGTERM, a grace period, then SIGKILL — to this PID only.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let m = parse_mac("02:00:0a:ff:10:01").unwrap();
        assert_eq!(m, [2, 0, 10, 255, 16, 1]);
        assert_eq!(format_mac(&m), "02:00:0a:ff:10:01");
        assert!(parse_mac("02:00").is_err());
        assert!(parse_mac("zz:00:00:00:00:00").is_err());
    }
}
