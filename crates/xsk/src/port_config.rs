//! Configuration, counters and setup-error mapping of [`XskPort`](crate::XskPort).

use crate::XskError;

/// Whether the socket binds in zero-copy mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Zero-copy where the driver supports it, copy mode otherwise (veth).
    Auto,
    /// Zero-copy or fail.
    On,
    /// Copy mode always.
    Off,
}

/// How to open an [`XskPort`](crate::XskPort).
#[derive(Clone, Debug)]
pub struct XskConfig {
    /// Descriptors in each of the RX, TX, fill and completion rings
    /// (a power of two, 64..=16384).
    pub ring_size: u32,
    /// Zero-copy policy.
    pub zero_copy: ZeroCopy,
}

impl Default for XskConfig {
    fn default() -> Self {
        Self {
            ring_size: 2048,
            zero_copy: ZeroCopy::Auto,
        }
    }
}

/// Port counters (this socket only; see also [`XskPort::kernel_stats`](crate::XskPort::kernel_stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskPortStats {
    /// Frames received.
    pub rx: u64,
    /// Frames longer than `FRAME_CAPACITY` (jumbo MTU), dropped on receipt.
    pub rx_oversize: u64,
    /// Frames handed to the TX ring (tx_burst + tx_copy).
    pub tx: u64,
    /// Transmissions the kernel completed.
    pub tx_completed: u64,
    /// `tx_copy` refusals: no free TX frame, no ring slot, or too long.
    pub tx_copy_refused: u64,
    /// `sendto` kicks issued.
    pub kicks: u64,
    /// Frames given back that this port had not handed out (double free,
    /// forged address): ignored.
    pub misuse: u64,
}

/// The OS error inside an xsk-rs error (they keep it as `source`).
pub(crate) fn source_io(e: &dyn std::error::Error) -> std::io::Error {
    match e.source().and_then(|s| s.downcast_ref::<std::io::Error>()) {
        Some(io) => match io.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::other(io.to_string()),
        },
        None => std::io::Error::other(e.to_string()),
    }
}

/// Maps a failed `xsk_socket__create` to the error that names the fix.
pub(crate) fn bind_error(
    ifname: &str,
    queue: u32,
    count: Option<u32>,
    zero_copy: bool,
    bytes: usize,
    io: std::io::Error,
) -> XskError {
    let ifname_s = ifname.to_string();
    match io.raw_os_error() {
        Some(libc::EBUSY) => XskError::QueueBusy {
            ifname: ifname_s,
            queue,
        },
        Some(libc::ENODEV) => XskError::NoSuchInterface(ifname_s),
        Some(libc::ENOBUFS) | Some(libc::ENOMEM) => XskError::Memlock { bytes, source: io },
        Some(libc::EOPNOTSUPP) if zero_copy => XskError::ZeroCopyUnsupported {
            ifname: ifname_s,
            source: io,
        },
        Some(libc::EINVAL) if count.is_some_and(|c| queue >= c) => XskError::QueueOutOfRange {
            ifname: ifname_s,
            queue,
            count: count.unwrap_or(0),
        },
        _ => XskError::os("bind the AF_XDP socket", ifname, io),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(errno: i32, count: Option<u32>, zero_copy: bool) -> XskError {
        let io = std::io::Error::from_raw_os_error(errno);
        bind_error("uvs0", 2, count, zero_copy, 1 << 24, io)
    }

    #[test]
    fn bind_errnos_map_to_the_error_that_names_the_fix() {
        assert!(matches!(
            map(libc::EBUSY, None, false),
            XskError::QueueBusy { queue: 2, .. }
        ));
        assert!(matches!(
            map(libc::ENODEV, None, false),
            XskError::NoSuchInterface(_)
        ));
        assert!(matches!(
            map(libc::EPERM, None, false),
            XskError::Permission { .. }
        ));
        assert!(matches!(
            map(libc::ENOBUFS, None, false),
            XskError::Memlock {
                bytes: 16777216,
                ..
            }
        ));
        assert!(matches!(
            map(libc::EOPNOTSUPP, None, true),
            XskError::ZeroCopyUnsupported { .. }
        ));
        // Copy mode refused is not a zero-copy problem.
        assert!(matches!(
            map(libc::EOPNOTSUPP, None, false),
            XskError::Os { .. }
        ));
        assert!(matches!(
            map(libc::EINVAL, Some(2), false),
            XskError::QueueOutOfRange { count: 2, .. }
        ));
        // EINVAL with the queue in range is something else: keep the errno.
        let e = map(libc::EINVAL, Some(4), false);
        assert!(e.to_string().contains("Invalid argument"), "{e}");
    }

    #[test]
    fn the_os_error_is_dug_out_of_an_xsk_rs_error() {
        #[derive(Debug)]
        struct Wrapper(std::io::Error);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrapper(std::io::Error::from_raw_os_error(libc::EBUSY));
        assert_eq!(source_io(&e).raw_os_error(), Some(libc::EBUSY));
        let plain = std::fmt::Error;
        assert_eq!(source_io(&plain).raw_os_error(), None);
    }
}
