//! Small system calls around the port and the loader: interface lookup,
//! queue count, memlock, and the copy-mode TX budget socket option.
//!
//! Everything here is evaluated in the calling thread's network namespace
//! (an interface index, an ioctl socket), which is what lets a test thread
//! that `setns`-ed into a namespace open ports there. `/sys/class/net` is
//! only a fallback: it shows the namespace sysfs was mounted in.

use std::{ffi::CString, io, os::fd::RawFd};

use crate::XskError;

/// The interface index of `ifname`, or [`XskError::NoSuchInterface`].
pub(crate) fn ifindex(ifname: &str) -> Result<u32, XskError> {
    let c = CString::new(ifname).map_err(|_| XskError::NoSuchInterface(ifname.to_string()))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(XskError::NoSuchInterface(ifname.to_string()));
    }
    Ok(idx)
}

/// `struct ethtool_channels` (linux/ethtool.h); not in the libc crate.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;
const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// The number of queues an AF_XDP socket can bind to on `ifname`, if known.
///
/// The kernel accepts a queue id below both the real RX and TX queue counts
/// (`xsk_bind`). ETHTOOL_GCHANNELS reports them per namespace (veth gives
/// rx/tx counts, NICs usually "combined"); sysfs is the fallback for drivers
/// without `get_channels`.
pub(crate) fn queue_count(ifname: &str) -> Option<u32> {
    channels_ioctl(ifname).or_else(|| sysfs_queue_count(ifname))
}

fn channels_ioctl(ifname: &str) -> Option<u32> {
    if ifname.len() >= libc::IFNAMSIZ {
        return None;
    }
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    // SAFETY: plain socket(2) call; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(ifname.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
    // SAFETY: `ifr` names the device and points at `ch`, a correctly laid out
    // `ethtool_channels` that outlives the call; the kernel writes only into it.
    let ret = unsafe { libc::ioctl(fd, SIOCETHTOOL as _, &mut ifr) };
    // SAFETY: `fd` is ours and closed exactly once.
    unsafe { libc::close(fd) };
    if ret < 0 {
        return None;
    }
    let rx = ch.rx_count + ch.combined_count;
    let tx = ch.tx_count + ch.combined_count;
    match (rx, tx) {
        (0, _) => None,
        (rx, 0) => Some(rx),
        (rx, tx) => Some(rx.min(tx)),
    }
}

fn sysfs_queue_count(ifname: &str) -> Option<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{ifname}/queues")).ok()?;
    let n = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count() as u32;
    (n > 0).then_some(n)
}

/// Lifts RLIMIT_MEMLOCK as far as allowed: UMEM pages are charged to it
/// (unless the process has CAP_IPC_LOCK), and a 16 MiB UMEM fails with
/// ENOBUFS under the usual 8 MiB limit (ARCHITECTURE.md, platform facts). Infinity needs
/// CAP_SYS_RESOURCE; without it the soft limit is raised to the hard one.
/// Failure is not fatal: registration may still succeed, and if it does not
/// the caller reports [`XskError::Memlock`] with the fix.
pub(crate) fn raise_memlock() {
    let inf = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `inf` is a valid rlimit read by the kernel during the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf) } == 0 {
        return;
    }
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `cur` is a valid rlimit the kernel writes during the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur) } != 0 {
        return;
    }
    if cur.rlim_cur < cur.rlim_max {
        cur.rlim_cur = cur.rlim_max;
        // SAFETY: as above; raising the soft limit to the hard one is always allowed.
        unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &cur) };
    }
    log::debug!(
        "RLIMIT_MEMLOCK stays at {} bytes (no CAP_SYS_RESOURCE); fine with CAP_IPC_LOCK",
        cur.rlim_max
    );
}

/// `XDP_MAX_TX_SKB_BUDGET` (SOL_XDP optname 9): how many descriptors one
/// copy-mode `sendto` moves (default 32). Kernels without it refuse the
/// option; the caller loops its kick instead, so the error is only returned
/// for logging.
pub(crate) fn set_tx_budget(fd: RawFd, budget: u32) -> io::Result<()> {
    const SOL_XDP: libc::c_int = 283;
    const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
    // SAFETY: the option value is a `u32` that lives across the call.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            SOL_XDP,
            XDP_MAX_TX_SKB_BUDGET,
            (&budget as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True when the process runs as root (tests skip themselves otherwise).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_exists_and_bogus_names_do_not() {
        assert!(ifindex("lo").unwrap() > 0);
        let e = ifindex("uvs-nope-xyz").unwrap_err();
        assert_eq!(
            e.to_string().split(':').next().unwrap(),
            "no such interface 'uvs-nope-xyz'"
        );
        assert!(matches!(ifindex("a\0b"), Err(XskError::NoSuchInterface(_))));
    }

    #[test]
    fn loopback_has_a_queue_count() {
        // lo has no get_channels; the sysfs fallback counts rx-0.
        assert!(queue_count("lo").unwrap_or(1) >= 1);
        assert_eq!(queue_count("uvs-nope-xyz"), None);
    }
}
