//! `XskPair`: two AF_XDP sockets (two interfaces, or two queues) on one shared UMEM, so a
//! frame received on one side is transmitted on the other by its descriptor, without a
//! copy (`XDP_SHARED_UMEM`; each socket has its own fill and completion rings).
//!
//! It exists to measure that path against [`XskPort`](crate::XskPort)'s two UMEMs and one
//! `memcpy` per forwarded frame (`uvs-bench testbed`'s `l2fwd-shared` subject; the result is
//! in ARCHITECTURE.md, platform facts). Frames: one pool feeds both fill rings; a frame
//! goes fill ring → RX ring → caller → TX ring of either side (or back to the pool) →
//! that side's completion ring → pool. The owner bytes and the panicking `buf_mut` are
//! [`XskPort`](crate::XskPort)'s, so no safe call hands one chunk to two owners.

use std::os::fd::{AsRawFd, RawFd};

use uvs_port::{Frame, FRAME_CAPACITY};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

use crate::port::{bind_socket, check_open, new_umem, BATCH, CHUNK_SHIFT, CHUNK_SIZE};
use crate::{sys, XskConfig, XskError, XskPortStats};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Kernel,
    Pool,
    Caller,
}

struct Side {
    name: String,
    fd: RawFd,
    fill: FillQueue,
    comp: CompQueue,
    rx: RxQueue,
    tx: TxQueue,
    /// Produced to the TX ring, not yet reclaimed from the completion ring.
    tx_outstanding: usize,
    stats: XskPortStats,
}

/// Two AF_XDP sockets sharing one UMEM; sides are 0 and 1, in the order opened.
pub struct XskPair {
    // Field order is drop order: the sockets' rings go before the UMEM they map.
    sides: [Side; 2],
    umem: Umem,
    ring_size: usize,
    max_kicks: u32,
    table: Vec<FrameDesc>,
    owner: Vec<Owner>,
    pool: Vec<FrameDesc>,
    scratch: Vec<FrameDesc>,
}

impl XskPair {
    /// Opens a socket on (`a`, `qa`) and one on (`b`, `qb`) over one UMEM big enough for
    /// both sides' rings (`2 × (RX + TX + batch)` frames, ARCHITECTURE.md, platform facts).
    /// Register each side's [`XskPair::fd`] with its interface's XDP program to receive.
    pub fn open(a: (&str, u32), b: (&str, u32), config: &XskConfig) -> Result<XskPair, XskError> {
        if a == b {
            return Err(XskError::Config(format!(
                "a shared-UMEM pair needs two different (interface, queue)s, not {}/q{} twice",
                a.0, a.1
            )));
        }
        let ring = config.ring_size;
        let counts = [check_open(a.0, a.1, ring)?, check_open(b.0, b.1, ring)?];
        let ring_size = ring as usize;
        let total = 2 * (2 * ring_size + BATCH);
        let bytes = total * CHUNK_SIZE;
        let (umem, descs) = new_umem(a.0, ring, total)?;
        let open_side = |(ifname, queue): (&str, u32), count| -> Result<Side, XskError> {
            // SAFETY: the two (device, queue)s differ (checked above), so each socket of
            // this UMEM is the first on its pair and gets fill/completion rings of its own.
            let (zc, tx, rx, fill, comp) =
                unsafe { bind_socket(&umem, ifname, queue, config, count, bytes)? };
            let fd = rx.fd().as_raw_fd();
            if !zc {
                let _ = sys::set_tx_budget(fd, ring);
            }
            Ok(Side {
                name: format!("{ifname}/q{queue}"),
                fd,
                fill,
                comp,
                rx,
                tx,
                tx_outstanding: 0,
                stats: XskPortStats::default(),
            })
        };
        let sa = open_side(a, counts[0])?;
        let sb = open_side(b, counts[1])?;
        let mut pair = XskPair {
            sides: [sa, sb],
            umem,
            ring_size,
            max_kicks: (ring / 32) + 2,
            owner: vec![Owner::Pool; total],
            pool: descs.clone(),
            table: descs,
            scratch: vec![FrameDesc::default(); BATCH],
        };
        pair.refill(0);
        pair.refill(1);
        log::info!(
            "{} + {}: AF_XDP sockets on one shared UMEM ({total} frames, {} MiB)",
            pair.sides[0].name,
            pair.sides[1].name,
            bytes >> 20
        );
        Ok(pair)
    }

    /// A side's socket fd, for the XSKMAP of its interface.
    pub fn fd(&self, side: usize) -> RawFd {
        self.sides[side].fd
    }

    /// A side's counters (`tx` counts frames forwarded from either side).
    pub fn stats(&self, side: usize) -> XskPortStats {
        self.sides[side].stats
    }

    /// The kernel's counters for a side's socket (RX ring full, fill ring empty, …).
    pub fn kernel_stats(&self, side: usize) -> std::io::Result<xsk_rs::socket::XdpStatistics> {
        self.sides[side].rx.fd().xdp_statistics()
    }

    /// Idle frames in the shared pool.
    pub fn pool_level(&self) -> usize {
        self.pool.len()
    }

    #[inline]
    fn index(&self, addr: u64) -> Option<usize> {
        let idx = (addr >> CHUNK_SHIFT) as usize;
        (idx < self.table.len()).then_some(idx)
    }

    #[inline]
    fn caller_index(&self, addr: u64) -> Option<usize> {
        self.index(addr).filter(|&i| self.owner[i] == Owner::Caller)
    }

    #[inline]
    fn release(&mut self, idx: usize) {
        self.owner[idx] = Owner::Pool;
        self.pool.push(self.table[idx]);
    }

    /// Moves idle frames into a side's fill ring (the pool holds enough for both sides'
    /// rings to be full at once).
    fn refill(&mut self, side: usize) {
        let idle = self.pool.len();
        if idle == 0 {
            return;
        }
        let s = &mut self.sides[side];
        let n = (s.fill.nb_free(idle.min(BATCH) as u32) as usize).min(idle);
        if n == 0 {
            return;
        }
        let start = idle - n;
        for d in &self.pool[start..] {
            self.owner[d.addr() >> CHUNK_SHIFT] = Owner::Kernel;
        }
        // SAFETY: these frames were idle (now marked Kernel); nothing touches them until
        // an RX ring returns them. `n` ≤ free slots, so the produce takes them all.
        let done = unsafe { s.fill.produce(&self.pool[start..]) };
        debug_assert_eq!(done, n);
        self.pool.truncate(start);
    }

    /// Receives up to `out.len()` frames on `side`; they are the caller's until
    /// [`forward`](Self::forward)ed or [`free`](Self::free)d.
    pub fn rx_burst(&mut self, side: usize, out: &mut [Frame]) -> usize {
        let want = out.len().min(BATCH);
        let s = &mut self.sides[side];
        // SAFETY: RX descriptors name frames the kernel has finished writing.
        let n = unsafe { s.rx.consume(&mut self.scratch[..want]) };
        if n == 0 && s.fill.needs_wakeup() {
            let _ = s.fill.wakeup(s.rx.fd_mut(), 0);
        }
        let mut kept = 0;
        for i in 0..n {
            let d = self.scratch[i];
            let idx = d.addr() >> CHUNK_SHIFT;
            self.table[idx] = d;
            let len = d.lengths().data();
            if len > FRAME_CAPACITY {
                self.sides[side].stats.rx_oversize += 1;
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
        self.sides[side].stats.rx += kept as u64;
        self.refill(side);
        kept
    }

    /// The writable buffer of a frame handed out by `rx_burst` (either side).
    pub fn buf_mut(&mut self, frame: &Frame) -> &mut [u8] {
        let idx = self.caller_index(frame.addr).unwrap_or_else(|| {
            panic!(
                "buf_mut on frame {:#x} this pair has not handed out",
                frame.addr
            )
        });
        // SAFETY: the frame is the caller's (owner byte): neither the kernel nor another
        // buffer touches it while `&mut self` is borrowed.
        unsafe { crate::port::whole_frame(&mut self.umem, &mut self.table[idx]) }
    }

    /// Queues frames received on either side for transmission on `side`, by descriptor.
    /// Returns how many were queued (a prefix); the caller frees the rest.
    pub fn forward(&mut self, side: usize, frames: &[Frame]) -> usize {
        let mut queued = 0;
        for chunk in frames.chunks(BATCH) {
            let mut room = self.sides[side].tx.nb_free(chunk.len() as u32) as usize;
            if room < chunk.len() {
                self.kick(side);
                room = self.sides[side].tx.nb_free(chunk.len() as u32) as usize;
            }
            let take = room.min(chunk.len());
            let mut n = 0;
            for f in &chunk[..take] {
                let Some(idx) = self.caller_index(f.addr) else {
                    self.sides[side].stats.misuse += 1;
                    continue;
                };
                self.owner[idx] = Owner::Kernel;
                let len = (f.len as usize).min(FRAME_CAPACITY);
                let desc = &mut self.table[idx];
                // SAFETY: the caller gave the frame back; only the descriptor's length
                // is set (no data access).
                unsafe { self.umem.data_mut(desc) }.cursor().set_pos(len);
                self.scratch[n] = *desc;
                n += 1;
            }
            let s = &mut self.sides[side];
            // SAFETY: these frames now belong to the kernel and `n ≤ room` slots are free.
            let done = unsafe { s.tx.produce(&self.scratch[..n]) };
            debug_assert_eq!(done, n);
            s.tx_outstanding += done;
            s.stats.tx += n as u64;
            queued += take;
            if take < chunk.len() {
                break;
            }
        }
        queued
    }

    /// Gives frames back without sending them.
    pub fn free(&mut self, frames: &[Frame]) {
        for f in frames {
            match self.caller_index(f.addr) {
                Some(idx) => self.release(idx),
                None => self.sides[0].stats.misuse += 1,
            }
        }
    }

    /// Kicks both sides' transmissions and takes completed frames back into the pool.
    pub fn flush(&mut self) {
        for side in 0..2 {
            self.kick(side);
            self.reclaim(side);
        }
    }

    /// Copy mode moves a budget of descriptors per `sendto`: kick until the ring drains.
    fn kick(&mut self, side: usize) {
        let mut kicks = 0;
        while self.sides[side].tx_outstanding > 0 && kicks < self.max_kicks {
            let s = &mut self.sides[side];
            if self.ring_size == s.tx.nb_free_exact() as usize {
                break;
            }
            if let Err(e) = s.tx.wakeup() {
                log::debug!("{}: TX kick failed: {e}", s.name);
            }
            s.stats.kicks += 1;
            kicks += 1;
            self.reclaim(side);
        }
    }

    fn reclaim(&mut self, side: usize) {
        while self.sides[side].tx_outstanding > 0 {
            let s = &mut self.sides[side];
            // SAFETY: completion descriptors name frames the kernel has finished sending.
            let n = unsafe { s.comp.consume(&mut self.scratch) };
            s.stats.tx_completed += n as u64;
            s.tx_outstanding = s.tx_outstanding.saturating_sub(n);
            for i in 0..n {
                let d = self.scratch[i];
                if let Some(idx) = self.index(d.addr() as u64) {
                    self.table[idx] = d;
                    self.release(idx);
                }
            }
            if n < self.scratch.len() {
                break;
            }
        }
    }
}
