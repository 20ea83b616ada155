//! `XskPort`: one AF_XDP socket on (interface, queue) with its own UMEM,
//! behind the `uvs_port::Port` trait.
//!
//! Frames: the UMEM has 4096-byte chunks so that the packet, which the kernel
//! places `XDP_PACKET_HEADROOM` (256) bytes into its chunk, still has
//! [`FRAME_CAPACITY`] writable bytes after its start. A [`Frame`]'s `addr` is
//! the UMEM offset of the packet's first byte, as the kernel reports it.
//!
//! The chunks are split once into two partitions, by index:
//! - RX frames (`rx ring + tx ring + one batch` of them, ARCHITECTURE.md, platform facts: fewer
//!   ran the fill ring dry) cycle fill ring → RX ring → caller → either back
//!   to the pool (`free`) or TX ring → completion ring → pool;
//! - TX frames (one TX ring's worth) serve `tx_copy`: they never enter the
//!   fill ring, so copies from another port cannot starve reception.
//!
//! A per-frame owner byte records where each frame is (kernel, pool, caller).
//! `buf_mut` panics instead of aliasing memory the kernel may write, and a
//! frame freed twice or never handed out is ignored and counted, so no safe
//! call can make the port hand the same chunk to two owners.
//!
//! Kicks (ARCHITECTURE.md, platform facts): sockets are bound with
//! `XDP_USE_NEED_WAKEUP`; in copy mode one `sendto` moves at most 32
//! descriptors unless `XDP_MAX_TX_SKB_BUDGET` is raised (tried, failure
//! ignored), so `flush` kicks until the TX ring is drained. xsk-rs's
//! `produce` is all-or-nothing, so free slots are checked first. Nothing is
//! allocated after `open`.

use std::{num::NonZeroU32, os::fd::AsRawFd, os::fd::RawFd};

use uvs_port::{Frame, Port, FRAME_CAPACITY};
use xsk_rs::{
    config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig},
    socket::XdpStatistics,
    CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem,
};

use crate::{
    port_config::{bind_error, source_io},
    sys, XskConfig, XskError, XskPortStats, ZeroCopy,
};

/// UMEM chunk size (a power of two, as aligned UMEMs require).
pub(crate) const CHUNK_SIZE: usize = 4096;
pub(crate) const CHUNK_SHIFT: u32 = CHUNK_SIZE.trailing_zeros();
/// Most descriptors moved through a ring in one call.
pub(crate) const BATCH: usize = 256;

/// Where a frame is; one byte per chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// In the fill, RX, TX or completion ring.
    Kernel,
    /// Idle in this port's RX or TX pool.
    Pool,
    /// Handed out by `rx_burst`, not yet given back.
    Caller,
}

/// An AF_XDP socket on one (interface, queue) with its own UMEM.
pub struct XskPort {
    name: String,
    fd: RawFd,
    zero_copy: bool,
    ring_size: usize,
    /// Kicks per flush before giving up on draining the TX ring (copy mode).
    max_kicks: u32,
    umem: Umem,
    fill: FillQueue,
    comp: CompQueue,
    rx: RxQueue,
    tx: TxQueue,
    /// Each chunk's descriptor (address as the kernel last reported it).
    table: Vec<FrameDesc>,
    owner: Vec<Owner>,
    /// Chunks `0..rx_frames` are the RX partition, the rest the TX partition.
    rx_frames: usize,
    rx_pool: Vec<FrameDesc>,
    tx_pool: Vec<FrameDesc>,
    /// Descriptors moved through rings (RX consume, TX produce, completions).
    scratch: Vec<FrameDesc>,
    /// `tx_copy` frames waiting to enter the TX ring at the next batch.
    staged: Vec<FrameDesc>,
    /// Frames in the TX or completion ring (produced, not yet reclaimed):
    /// when zero, `flush` touches no ring.
    tx_outstanding: usize,
    stats: XskPortStats,
    /// `stats.rx_oversize` as of the last `take_oversized`.
    oversize_taken: u64,
}

impl XskPort {
    /// Opens an AF_XDP socket on `queue` of `ifname` (in the calling thread's
    /// network namespace). Register [`XskPort::fd`] with
    /// [`XdpProgram::register_socket`](crate::XdpProgram::register_socket)
    /// for frames to arrive; this socket never loads a program of its own.
    pub fn open(ifname: &str, queue: u32, config: &XskConfig) -> Result<Self, XskError> {
        let ring = config.ring_size;
        let count = check_open(ifname, queue, ring)?;

        let ring_size = ring as usize;
        let rx_frames = 2 * ring_size + BATCH;
        let total = rx_frames + ring_size;
        let bytes = total * CHUNK_SIZE;
        let (umem, descs) = new_umem(ifname, ring, total)?;
        // SAFETY: this UMEM is fresh and used by no other socket.
        let (zero_copy, tx, rx, fill, comp) =
            unsafe { bind_socket(&umem, ifname, queue, config, count, bytes)? };

        let fd = rx.fd().as_raw_fd();
        if !zero_copy {
            if let Err(e) = sys::set_tx_budget(fd, ring) {
                log::debug!(
                    "{ifname}: XDP_MAX_TX_SKB_BUDGET not accepted ({e}); kicking per 32 frames"
                );
            }
        }
        let max_kicks = (ring / 32) + 2;
        let mut port = XskPort {
            name: format!("{ifname}/q{queue}"),
            fd,
            zero_copy,
            ring_size,
            max_kicks,
            umem,
            fill,
            comp,
            rx,
            tx,
            owner: vec![Owner::Pool; total],
            rx_pool: descs[..rx_frames].to_vec(),
            tx_pool: descs[rx_frames..].to_vec(),
            table: descs,
            rx_frames,
            scratch: vec![FrameDesc::default(); BATCH],
            staged: Vec::with_capacity(BATCH),
            tx_outstanding: 0,
            stats: XskPortStats::default(),
            oversize_taken: 0,
        };
        // Pools pop from the end; both start full.
        port.refill();
        log::info!(
            "{}: AF_XDP socket open ({} mode, {} frames, {} MiB UMEM)",
            port.name,
            if zero_copy { "zero-copy" } else { "copy" },
            total,
            bytes >> 20
        );
        Ok(port)
    }

    /// The socket fd, for the XSKMAP.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The socket fd as a borrow tied to this port.
    fn borrowed_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: `fd` is the AF_XDP socket `self.rx` owns; it stays open for as long as
        // `self` lives, which bounds the borrow.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) }
    }

    /// True when bound in zero-copy mode.
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// This port's counters.
    pub fn stats(&self) -> XskPortStats {
        self.stats
    }

    /// The kernel's counters for this socket (drops for a full RX ring or an
    /// empty fill ring, invalid descriptors).
    pub fn kernel_stats(&self) -> std::io::Result<XdpStatistics> {
        self.rx.fd().xdp_statistics()
    }

    /// Idle frames in the (RX, TX) pools, for tests and diagnostics.
    pub fn pool_levels(&self) -> (usize, usize) {
        (self.rx_pool.len(), self.tx_pool.len())
    }

    #[inline]
    fn index(&self, addr: u64) -> Option<usize> {
        let idx = (addr >> CHUNK_SHIFT) as usize;
        (idx < self.table.len()).then_some(idx)
    }

    /// Returns a frame to the pool of its partition.
    #[inline]
    fn release(&mut self, idx: usize) {
        self.owner[idx] = Owner::Pool;
        let d = self.table[idx];
        if idx < self.rx_frames {
            self.rx_pool.push(d);
        } else {
            self.tx_pool.push(d);
        }
    }

    /// Moves idle RX frames into the fill ring.
    fn refill(&mut self) {
        let idle = self.rx_pool.len();
        if idle == 0 {
            return;
        }
        let n = (self.fill.nb_free(idle.min(BATCH) as u32) as usize).min(idle);
        if n == 0 {
            return;
        }
        let start = idle - n;
        for d in &self.rx_pool[start..] {
            self.owner[d.addr() >> CHUNK_SHIFT] = Owner::Kernel;
        }
        // SAFETY: these frames are idle (owner byte just moved from Pool);
        // nothing reads or writes them until the RX ring returns them. `n`
        // does not exceed the free slots, so the all-or-nothing produce
        // takes them all.
        let done = unsafe { self.fill.produce(&self.rx_pool[start..]) };
        debug_assert_eq!(done, n);
        self.rx_pool.truncate(start);
    }

    /// Free TX ring slots beyond the staged descriptors, for `want` more.
    #[inline]
    fn tx_room(&mut self, want: usize) -> usize {
        let staged = self.staged.len();
        (self.tx.nb_free((staged + want) as u32) as usize).saturating_sub(staged)
    }

    /// Moves staged `tx_copy` descriptors into the TX ring.
    fn publish_staged(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        // SAFETY: staged frames are written and owned by the kernel from now
        // on (owner byte Kernel); tx_room reserved their slots, so the
        // all-or-nothing produce takes them all.
        let done = unsafe { self.tx.produce(&self.staged) };
        debug_assert_eq!(done, self.staged.len());
        self.tx_outstanding += done;
        self.staged.clear();
    }

    /// Kicks the kernel to transmit. Copy mode moves only a budget of
    /// descriptors per `sendto`, so kick until the ring drains (bounded);
    /// zero-copy drivers consume asynchronously and need one kick at most.
    fn kick(&mut self) {
        if self.tx_outstanding == 0 {
            return;
        }
        let mut kicks = 0;
        loop {
            let pending = self.ring_size - self.tx.nb_free_exact() as usize;
            if pending == 0 {
                break;
            }
            if self.zero_copy && !self.tx.needs_wakeup() {
                break;
            }
            if kicks == self.max_kicks {
                break;
            }
            // EAGAIN/EBUSY/ENOBUFS/ENETDOWN are "try later" and swallowed by
            // xsk-rs; anything else would repeat every burst, so log it.
            if let Err(e) = self.tx.wakeup() {
                log::debug!("{}: TX kick failed: {e}", self.name);
            }
            kicks += 1;
            self.stats.kicks += 1;
            if self.zero_copy {
                break;
            }
            // The kernel needs completion slots to go on.
            self.reclaim();
        }
    }

    /// Takes completed transmissions back into their pools.
    fn reclaim(&mut self) {
        while self.tx_outstanding > 0 {
            // SAFETY: completion descriptors name frames whose transmission
            // the kernel has finished; they are ours again.
            let n = unsafe { self.comp.consume(&mut self.scratch) };
            for i in 0..n {
                let d = self.scratch[i];
                if let Some(idx) = self.index(d.addr() as u64) {
                    self.table[idx] = d;
                    self.release(idx);
                }
            }
            self.stats.tx_completed += n as u64;
            self.tx_outstanding = self.tx_outstanding.saturating_sub(n);
            if n < self.scratch.len() {
                break;
            }
        }
    }

    #[cold]
    fn refuse_copy(&mut self) -> bool {
        self.stats.tx_copy_refused += 1;
        false
    }
}

/// Checks the ring size, the interface and the queue before a bind, and raises the
/// memlock limit; returns the interface's queue count where known.
pub(crate) fn check_open(ifname: &str, queue: u32, ring: u32) -> Result<Option<u32>, XskError> {
    if !ring.is_power_of_two() || !(64..=16384).contains(&ring) {
        return Err(XskError::Config(format!(
            "ring_size {ring} must be a power of two between 64 and 16384"
        )));
    }
    sys::ifindex(ifname)?;
    let count = sys::queue_count(ifname);
    if let Some(count) = count {
        if queue >= count {
            return Err(XskError::QueueOutOfRange {
                ifname: ifname.to_string(),
                queue,
                count,
            });
        }
    }
    sys::raise_memlock();
    Ok(count)
}

/// A UMEM of `total` chunks with fill and completion rings of `ring` descriptors.
pub(crate) fn new_umem(
    ifname: &str,
    ring: u32,
    total: usize,
) -> Result<(Umem, Vec<FrameDesc>), XskError> {
    let bytes = total * CHUNK_SIZE;
    let qsize = QueueSize::new(ring).map_err(|e| XskError::Config(e.to_string()))?;
    let umem_config = UmemConfig::builder()
        .frame_size(FrameSize::new(CHUNK_SIZE as u32).map_err(|e| XskError::Config(e.to_string()))?)
        .fill_queue_size(qsize)
        .comp_queue_size(qsize)
        .frame_headroom(0)
        .build()
        .map_err(|e| XskError::Config(e.to_string()))?;
    let frames = NonZeroU32::new(total as u32).expect("ring_size ≥ 64");
    Umem::new(umem_config, frames, false).map_err(|e| {
        let io = source_io(&e);
        match io.raw_os_error() {
            Some(libc::ENOBUFS) | Some(libc::ENOMEM) => XskError::Memlock { bytes, source: io },
            _ => XskError::os("create the UMEM", ifname, io),
        }
    })
}

/// Binds a socket on (`ifname`, `queue`) to `umem`, zero-copy first where `config`
/// allows; returns (zero-copy?, TX, RX, fill, completion).
///
/// # Safety
/// No other socket of `umem` may be bound to (`ifname`, `queue`): the socket gets fill
/// and completion rings of its own (a fresh UMEM, or XDP_SHARED_UMEM on another device
/// or queue).
pub(crate) unsafe fn bind_socket(
    umem: &Umem,
    ifname: &str,
    queue: u32,
    config: &XskConfig,
    count: Option<u32>,
    bytes: usize,
) -> Result<(bool, TxQueue, RxQueue, FillQueue, CompQueue), XskError> {
    let qsize = QueueSize::new(config.ring_size).map_err(|e| XskError::Config(e.to_string()))?;
    let iface: Interface = ifname
        .parse()
        .map_err(|_| XskError::NoSuchInterface(ifname.to_string()))?;
    let attempts: &[bool] = match config.zero_copy {
        ZeroCopy::Auto => &[true, false],
        ZeroCopy::On => &[true],
        ZeroCopy::Off => &[false],
    };
    let mut last = None;
    for &zc in attempts {
        let mode = if zc {
            BindFlags::XDP_ZEROCOPY
        } else {
            BindFlags::XDP_COPY
        };
        let socket_config = SocketConfig::builder()
            .rx_queue_size(qsize)
            .tx_queue_size(qsize)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(mode | BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        // SAFETY: the caller guarantees no socket of this UMEM is bound to this
        // (device, queue) yet; a queue busy with another UMEM is reported as EBUSY.
        match unsafe { Socket::new(socket_config, umem, &iface, queue) } {
            Ok((tx, rx, Some((fill, comp)))) => return Ok((zc, tx, rx, fill, comp)),
            Ok((_, _, None)) => {
                return Err(XskError::os(
                    "bind the AF_XDP socket",
                    ifname,
                    std::io::Error::other(
                        "libxdp returned no fill/completion rings for a new (device, queue)",
                    ),
                ))
            }
            Err(e) => {
                let io = source_io(&e);
                if zc && config.zero_copy == ZeroCopy::Auto {
                    log::info!("{ifname} queue {queue}: zero-copy refused ({io}); using copy mode");
                }
                last = Some((zc, io));
            }
        }
    }
    let (zc, io) = last.expect("at least one attempt");
    Err(bind_error(ifname, queue, count, zc, bytes, io))
}

impl Port for XskPort {
    fn rx_burst(&mut self, out: &mut [Frame]) -> usize {
        let want = out.len().min(BATCH);
        // SAFETY: RX descriptors name frames the kernel has finished writing;
        // from here they belong to the caller until given back.
        let n = unsafe { self.rx.consume(&mut self.scratch[..want]) };
        // Top the fill ring up right after taking frames out, not at the
        // next call: the caller may take a while with this burst, and the
        // kernel keeps receiving meanwhile (a window test lost frames to an
        // empty fill ring otherwise). The kernel publishes its fill consumer
        // index after the RX descriptors (`xsk_flush`), so a top-up right
        // after a receive may see fewer free slots than there are: hence
        // also on empty polls. `refill` reads the shared index only when its
        // cached view shows fewer than a batch of free slots.
        self.refill();
        if n == 0 {
            if self.fill.needs_wakeup() {
                // A zero-copy driver waits for a poll once the fill ring ran dry.
                let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
            }
            return 0;
        }
        let mut kept = 0;
        for i in 0..n {
            let d = self.scratch[i];
            let idx = d.addr() >> CHUNK_SHIFT;
            self.table[idx] = d;
            let len = d.lengths().data();
            if len > FRAME_CAPACITY {
                // Only with an MTU above ~2000: `buf_mut` could not cover it.
                self.stats.rx_oversize += 1;
                self.release(idx);
                continue;
            }
            self.owner[idx] = Owner::Caller;
            out[kept] = Frame {
                addr: d.addr() as u64,
                len: len as u32,
            };
            kept += 1;
        }
        self.stats.rx += kept as u64;
        kept
    }

    fn buf_mut(&mut self, frame: &Frame) -> &mut [u8] {
        let idx = self
            .index(frame.addr)
            .filter(|&i| self.owner[i] == Owner::Caller)
            .unwrap_or_else(|| {
                panic!(
                    "{}: buf_mut on frame {:#x} this port has not handed out",
                    self.name, frame.addr
                )
            });
        // SAFETY: the frame is the caller's (owner byte), so neither the kernel nor another
        // buffer of this port touches it; `&mut self` keeps it exclusive for the returned
        // lifetime.
        unsafe { whole_frame(&mut self.umem, &mut self.table[idx]) }
    }

    fn tx_burst(&mut self, frames: &[Frame]) -> usize {
        self.publish_staged();
        let mut queued = 0;
        for chunk in frames.chunks(BATCH) {
            let mut room = self.tx_room(chunk.len());
            if room < chunk.len() {
                self.kick();
                room = self.tx_room(chunk.len());
            }
            let take = room.min(chunk.len());
            let mut n = 0;
            for f in &chunk[..take] {
                let Some(idx) = self
                    .index(f.addr)
                    .filter(|&i| self.owner[i] == Owner::Caller)
                else {
                    self.stats.misuse += 1;
                    continue;
                };
                self.owner[idx] = Owner::Kernel;
                let len = (f.len as usize).min(FRAME_CAPACITY);
                let desc = &mut self.table[idx];
                // SAFETY: the caller gave the frame back; only its descriptor
                // length is set (no data access).
                unsafe { self.umem.data_mut(desc) }.cursor().set_pos(len);
                self.scratch[n] = *desc;
                n += 1;
            }
            // SAFETY: these frames now belong to the kernel (owner byte) and
            // `n ≤ room` slots are free, so all are taken.
            let done = unsafe { self.tx.produce(&self.scratch[..n]) };
            debug_assert_eq!(done, n);
            self.tx_outstanding += done;
            self.stats.tx += n as u64;
            queued += take;
            if take < chunk.len() {
                break;
            }
        }
        queued
    }

    fn tx_copy(&mut self, data: &[u8]) -> bool {
        if data.len() > FRAME_CAPACITY {
            return self.refuse_copy();
        }
        if self.tx_pool.is_empty() {
            self.reclaim();
        }
        if self.tx_room(1) == 0 {
            self.publish_staged();
            self.kick();
            if self.tx_room(1) == 0 {
                return self.refuse_copy();
            }
        }
        let Some(mut desc) = self.tx_pool.pop() else {
            return self.refuse_copy();
        };
        let idx = desc.addr() >> CHUNK_SHIFT;
        self.owner[idx] = Owner::Kernel;
        {
            // SAFETY: the frame came from the idle TX pool: nobody else
            // reads or writes it until it is queued below.
            let mut buf = unsafe { self.umem.data_mut(&mut desc) };
            let mut cursor = buf.cursor();
            cursor.set_pos(0);
            std::io::Write::write_all(&mut cursor, data).expect("length checked against the chunk");
        }
        self.table[idx] = desc;
        self.staged.push(desc);
        self.stats.tx += 1;
        if self.staged.len() == BATCH {
            self.publish_staged();
        }
        true
    }

    fn free(&mut self, frames: &[Frame]) {
        for f in frames {
            match self
                .index(f.addr)
                .filter(|&i| self.owner[i] == Owner::Caller)
            {
                Some(idx) => self.release(idx),
                None => self.stats.misuse += 1,
            }
        }
    }

    fn flush(&mut self) {
        self.publish_staged();
        self.kick();
        self.reclaim();
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// The socket polls readable (POLLIN) when its RX ring holds descriptors; in copy mode
    /// the kernel fills the ring on the sender's CPU and wakes the sleeper.
    fn take_oversized(&mut self) -> u64 {
        let n = self.stats.rx_oversize - self.oversize_taken;
        self.oversize_taken = self.stats.rx_oversize;
        n
    }

    fn wait_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(self.borrowed_fd())
    }

    /// The kernel's `rx_ring_full` (the RX ring had no room) and `rx_dropped` (no buffer
    /// in the fill ring, among others) for this socket.
    fn rx_lost(&self) -> Option<u64> {
        self.kernel_stats()
            .ok()
            .map(|k| k.rx_ring_full() + k.rx_dropped())
    }
}

/// The whole writable buffer of a frame (`FRAME_CAPACITY` bytes: the packet sits 256 bytes
/// into a 4096-byte chunk, 3840 bytes follow), whatever its current length.
///
/// # Safety
/// The frame must be the caller's: neither the kernel nor another buffer may touch it
/// while the returned slice lives (its lifetime is bound to the exclusive borrow of `umem`).
pub(crate) unsafe fn whole_frame<'a>(umem: &'a mut Umem, desc: &mut FrameDesc) -> &'a mut [u8] {
    // SAFETY: the caller guarantees exclusive use of the frame.
    let mut data = unsafe { umem.data_mut(desc) };
    data.cursor().set_pos(FRAME_CAPACITY);
    let buf = data.contents_mut();
    assert_eq!(
        buf.len(),
        FRAME_CAPACITY,
        "chunk too small for FRAME_CAPACITY"
    );
    let ptr = buf.as_mut_ptr();
    // SAFETY: valid for FRAME_CAPACITY bytes inside this frame's chunk (asserted); the
    // mapping lives as long as `umem`, whose borrow bounds the slice.
    unsafe { std::slice::from_raw_parts_mut(ptr, FRAME_CAPACITY) }
}
