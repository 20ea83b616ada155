//! A two-namespace veth test network, removed on drop even when the test
//! fails (DESIGN.md "Test network": `uvs-` names, 198.18.0.0/15 and
//! 2001:2::/48 only; no host interface is touched).
//!
//! ```text
//!  ns <tag>-lb  A 02:00:00:00:00:01  ── veth ──  B 02:00:00:00:00:02  ns <tag>-peer
//!     198.18.0.1/24  2001:2::1/64                198.18.0.2/24  2001:2::2/64
//! ```
//! The veths are created directly inside the namespaces. Work runs in a
//! thread that `setns`-es into one of them: sockets, interface lookups and
//! BPF attaches then all resolve in that namespace.
#![allow(dead_code)]

use std::{
    fs::File,
    os::fd::AsRawFd,
    process::Command,
    thread::{self, JoinHandle},
};

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

/// Runs a command; panics with its output when it fails.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "`{}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command, returning whether it succeeded.
pub fn try_sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub struct TestNet {
    pub lb: String,
    pub peer: String,
    pub a: String,
    pub b: String,
}

impl TestNet {
    /// `tag` is short and unique per test (tests run in parallel).
    pub fn new(tag: &str) -> Self {
        let pid = std::process::id();
        let net = TestNet {
            lb: format!("uvs-xt-{pid}-{tag}-lb"),
            peer: format!("uvs-xt-{pid}-{tag}-peer"),
            // IFNAMSIZ is 16: "uvs-" + up to 11 characters.
            a: format!("uvs-{}{tag}a", pid % 100_000),
            b: format!("uvs-{}{tag}b", pid % 100_000),
        };
        assert!(net.a.len() < 16, "interface name too long: {}", net.a);
        // The guard exists before the first namespace, so any failure below
        // still removes what was made.
        for ns in [&net.lb, &net.peer] {
            sh(&["ip", "netns", "add", ns]);
            // Before the veths exist, or their first IPv6 packets wait for DAD.
            for key in [
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ] {
                sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", key]);
            }
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip",
            "link",
            "add",
            &net.a,
            "address",
            "02:00:00:00:00:01",
            "netns",
            &net.lb,
            "type",
            "veth",
            "peer",
            "name",
            &net.b,
            "address",
            "02:00:00:00:00:02",
            "netns",
            &net.peer,
        ]);
        for (ns, dev, v4, v6) in [
            (&net.lb, &net.a, "198.18.0.1/24", "2001:2::1/64"),
            (&net.peer, &net.b, "198.18.0.2/24", "2001:2::2/64"),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", v4, "dev", dev]);
            sh(&["ip", "-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        net
    }

    /// Runs `f` on a new thread inside namespace `ns`.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        ns: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let path = format!("/var/run/netns/{ns}");
        thread::spawn(move || {
            enter_netns(&path);
            f()
        })
    }

    /// `ip netns exec NS ...` returning success.
    pub fn exec_ok(&self, ns: &str, args: &[&str]) -> bool {
        let mut all = vec!["ip", "netns", "exec", ns];
        all.extend_from_slice(args);
        try_sh(&all)
    }
}

#[allow(unsafe_code)]
fn enter_netns(path: &str) {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns on a valid namespace fd changes only this thread's
    // network namespace (allowed in a multi-threaded process for NEWNET).
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in [&self.lb, &self.peer] {
            // Deleting a namespace deletes its veth end, and with it the pair.
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Capability numbers (linux/capability.h).
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_IPC_LOCK: u32 = 14;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_RESOURCE: u32 = 24;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// Removes `caps` from the calling thread's effective set (capset(2) acts
/// per thread), to see how the crate reports a missing privilege.
#[allow(unsafe_code)]
pub fn drop_effective_caps(caps: &[u32]) {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and a two-element data array, as capget(2) v3 requires.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    assert_eq!(r, 0, "capget: {}", std::io::Error::last_os_error());
    for &c in caps {
        data[(c / 32) as usize].effective &= !(1 << (c % 32));
    }
    // SAFETY: as above; pid 0 is the calling thread.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) };
    assert_eq!(r, 0, "capset: {}", std::io::Error::last_os_error());
}
