//! Errors of the AF_XDP port and the XDP program loader.
//!
//! Each variant a user can cause by setup (privileges, interface name, MTU,
//! memlock limit, queue id, a leftover XDP program) says the fix in one
//! sentence (STYLE.md rule 11); the rest carry the OS error and what was being
//! done.

use std::io;

/// Why opening an [`XskPort`](crate::XskPort) or attaching an
/// [`XdpProgram`](crate::XdpProgram) failed.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// EPERM from `bpf()`, `socket(AF_XDP)` or the link attach.
    #[error(
        "permission denied to {op}: run as root or grant CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, \
         CAP_PERFMON and CAP_IPC_LOCK (e.g. `setcap \
         cap_net_admin,cap_net_raw,cap_bpf,cap_perfmon,cap_ipc_lock+ep <binary>`)"
    )]
    Permission { op: &'static str },

    /// `if_nametoindex` found nothing (in the caller's network namespace).
    #[error(
        "no such interface '{0}': check the name with `ip link show` (and the network namespace)"
    )]
    NoSuchInterface(String),

    /// ERANGE from a native attach: veth refuses XDP when the peer's MTU
    /// leaves no room for a frame in one page.
    #[error(
        "the MTU of '{ifname}' (or of its veth peer) is too large for native XDP: the peer MTU \
         must be ≤ 3506 (`ip link set dev PEER mtu 1500`), or use generic mode"
    )]
    MtuTooLarge { ifname: String },

    /// ENOBUFS/ENOMEM registering the UMEM: the pages could not be locked.
    #[error(
        "cannot lock the {bytes}-byte UMEM in memory ({source}): raise the memlock limit \
         (`ulimit -l unlimited`, or LimitMEMLOCK=infinity in the systemd unit)"
    )]
    Memlock { bytes: usize, source: io::Error },

    /// The queue id is not below the device's queue count.
    #[error(
        "queue {queue} does not exist on '{ifname}', which has {count} queue(s): use a queue id \
         below {count} or add queues (`ethtool -L {ifname} combined N`)"
    )]
    QueueOutOfRange {
        ifname: String,
        queue: u32,
        count: u32,
    },

    /// EBUSY from the attach: another XDP program (netlink-attached or a
    /// link) already sits on the interface.
    #[error(
        "another XDP program is attached to '{ifname}': detach it with \
         `ip link set dev {ifname} xdp off` (or stop the process holding its link)"
    )]
    ProgramBusy { ifname: String },

    /// EBUSY from the bind: the queue already has an AF_XDP socket.
    #[error(
        "queue {queue} of '{ifname}' already has an AF_XDP socket: stop the other process bound \
         to it or use another queue"
    )]
    QueueBusy { ifname: String, queue: u32 },

    /// Zero-copy was required (`ZeroCopy::On`) but the driver refused it.
    #[error(
        "the driver of '{ifname}' refused zero-copy AF_XDP ({source}): use zero_copy auto or off \
         (veth supports copy mode only)"
    )]
    ZeroCopyUnsupported { ifname: String, source: io::Error },

    /// The XSKMAP has 64 slots, one per receive queue.
    #[error("queue {0} is beyond the 64 slots of the XSKMAP: use queues 0..63")]
    QueueBeyondMap(u32),

    /// The kernel verifier or libbpf refused the embedded program.
    #[error("the XDP program failed to load ({0}); the verifier's log is logged at warn level (target `libbpf`)")]
    ProgramLoad(io::Error),

    /// Any other OS error, with the operation and interface.
    #[error("failed to {op} on '{ifname}': {source}")]
    Os {
        op: &'static str,
        ifname: String,
        source: io::Error,
    },

    /// A configuration value the port cannot use.
    #[error("invalid AF_XDP configuration: {0}")]
    Config(String),
}

impl XskError {
    /// Wraps an OS error, turning EPERM/EACCES into [`XskError::Permission`].
    pub(crate) fn os(op: &'static str, ifname: &str, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => XskError::Permission { op },
            _ => XskError::Os {
                op,
                ifname: ifname.to_string(),
                source,
            },
        }
    }
}

/// An `io::Error` from a libbpf return value (negative errno) or, when that
/// is not negative, from `errno`.
pub(crate) fn libbpf_error(ret: i64) -> io::Error {
    if ret < 0 {
        io::Error::from_raw_os_error((-ret) as i32)
    } else {
        io::Error::last_os_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eperm_becomes_the_privilege_hint() {
        let e = XskError::os("load", "uvs0", io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(e, XskError::Permission { op: "load" }));
        assert!(e.to_string().contains("CAP_BPF"));
        let e = XskError::os("load", "uvs0", io::Error::from_raw_os_error(libc::EINVAL));
        assert!(e.to_string().contains("'uvs0'"), "{e}");
    }

    #[test]
    fn messages_name_the_fix() {
        let e = XskError::ProgramBusy {
            ifname: "eth1".into(),
        };
        assert!(e
            .to_string()
            .contains("detach it with `ip link set dev eth1 xdp off`"));
        let e = XskError::MtuTooLarge {
            ifname: "v0".into(),
        };
        assert!(e.to_string().contains("peer MTU must be ≤ 3506"));
        let e = XskError::NoSuchInterface("x".into());
        assert!(e.to_string().starts_with("no such interface 'x'"));
        let e = XskError::QueueOutOfRange {
            ifname: "v0".into(),
            queue: 3,
            count: 1,
        };
        assert!(e.to_string().contains("below 1"));
    }

    #[test]
    fn libbpf_negative_errno_is_decoded() {
        assert_eq!(
            libbpf_error(-(libc::EBUSY as i64)).raw_os_error(),
            Some(libc::EBUSY)
        );
    }
}
