#![deny(unsafe_code)]
//! Frame I/O ports: the one small trait the pipeline sees.
//!
//! A port hands out frames in bursts and takes them back for transmission or
//! release. The pipeline never knows whether frames live in an AF_XDP UMEM
//! (`uvs-xsk`), in memory ([`MemPort`], for tests and the pipeline benchmark),
//! or anywhere else. Nothing here allocates per packet or per burst.
//!
//! Ownership: a [`Frame`] returned by [`Port::rx_burst`] belongs to the caller
//! until it is given back with [`Port::tx_burst`] (transmitted on the same port)
//! or [`Port::free`]. Frames for *another* port are sent with [`Port::tx_copy`]
//! on that port and then freed on their own port: two-armed forwarding between
//! separate UMEMs costs one copy, which measured cheaper than sharing a UMEM on
//! veth (ARCHITECTURE.md, platform facts: 4–21 % less CPU per frame).

pub mod fast;

/// Largest frame a port carries, including room for encapsulation headers.
pub const FRAME_CAPACITY: usize = 2048;

/// The largest interface MTU whose frames a port carries whole (an Ethernet header with a
/// VLAN tag before the packet): a longer frame is dropped on arrival and counted
/// ([`Port::take_oversized`]).
pub const MAX_MTU: usize = FRAME_CAPACITY - 18;

/// A received frame: an opaque, port-specific address and the packet length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// Port-specific handle (UMEM address, slot index, ...).
    pub addr: u64,
    /// Bytes of packet data starting at the buffer's first byte.
    pub len: u32,
}

/// Burst-oriented frame I/O.
pub trait Port {
    /// Receives up to `out.len()` frames and returns how many were written.
    fn rx_burst(&mut self, out: &mut [Frame]) -> usize;

    /// The writable buffer of a frame this port handed out. Its length is the
    /// buffer's capacity (at least the frame's `len`); the packet occupies the
    /// first `frame.len` bytes, so a rewrite may grow it (encapsulation) up to
    /// the capacity and then update `len`.
    fn buf_mut(&mut self, frame: &Frame) -> &mut [u8];

    /// Queues frames received on this port for transmission on it. Returns how
    /// many were queued (a prefix of `frames`); the caller frees the rest.
    fn tx_burst(&mut self, frames: &[Frame]) -> usize;

    /// Queues a copy of `data` for transmission. Used for frames received on
    /// another port and for packets the slow path builds. Returns false when no
    /// transmit buffer is free (the caller counts a drop).
    fn tx_copy(&mut self, data: &[u8]) -> bool;

    /// Gives frames back without sending them.
    fn free(&mut self, frames: &[Frame]);

    /// Completes the burst: kicks the kernel for queued transmissions and
    /// reclaims completed ones. Called once per burst, never per packet.
    fn flush(&mut self);

    /// A short name for logs and counters (interface and queue).
    fn name(&self) -> &str;

    /// A file descriptor that polls readable when frames wait to be received, for a worker
    /// that sleeps while idle; `None` when the port cannot be waited on (the in-memory
    /// port), which keeps its worker polling.
    fn wait_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }

    /// Frames lost on their way in because the port's user was not taking them fast
    /// enough (an AF_XDP socket: its receive ring full or its fill ring empty), since the
    /// port opened; `None` when the port cannot tell. A syscall for an AF_XDP socket: for
    /// a caller's timer, never per burst.
    fn rx_lost(&self) -> Option<u64> {
        None
    }

    /// Frames that arrived longer than `FRAME_CAPACITY` and were dropped since the last
    /// call (an interface MTU above [`MAX_MTU`]); the worker counts them.
    fn take_oversized(&mut self) -> u64 {
        0
    }
}

/// An in-memory port: frames are injected by a test or benchmark and
/// transmitted frames are collected (or, in replay mode, recycled).
///
/// It exists for unit tests and the pipeline benchmark, never in place of the
/// real path in end-to-end tests.
pub struct MemPort {
    name: String,
    /// All frame buffers, `FRAME_CAPACITY` bytes each, like a UMEM.
    umem: Vec<u8>,
    free_slots: Vec<u32>,
    rx: std::collections::VecDeque<Frame>,
    tx: Vec<Frame>,
    replay: Option<Replay>,
    /// Transmitted frames are released at once instead of collected.
    sink: bool,
    /// Frames refused by `tx_copy` or `push_rx` because no slot was free.
    pub exhausted: u64,
    /// Frames refused by `push_rx` because no slot was free: what [`Port::rx_lost`] reports.
    pub rx_refused: u64,
    /// Oversized arrivals (`push_oversized`) not yet taken.
    oversized: u64,
    /// Per slot: handed out by `rx_burst` and not yet given back (`tx_burst`, `free`).
    /// `buf_mut` on any other frame is a caller's bug that `XskPort` panics on; so does
    /// this port, in debug builds (the tests), and the benchmarks pay nothing for it.
    held: Vec<bool>,
}

/// The frames a replaying port hands out, one after another in one buffer at a fixed
/// stride (the longest template rounded up to 8 bytes: the densest stream), each prefetched
/// [`REPLAY_AHEAD`] frames before it is copied out when there are more than
/// [`REPLAY_CACHED`] bytes of them. A forwarder reads a received frame from cache: the
/// kernel's copy (copy mode) or the NIC's DMA into the last-level cache has just written it.
/// A million templates (64 MB) do not fit any cache, and read without the prefetch each cost
/// a miss to main memory that competed with the connection table's own prefetches: the
/// harness's cost, charged to every scenario at 1 000 000 flows (bench/README.md, "Twelfth
/// pass").
struct Replay {
    frames: Vec<u8>,
    lens: Vec<u16>,
    stride: usize,
    next: usize,
    /// Frames still to hand out (`None`: without end).
    left: Option<usize>,
}

impl MemPort {
    /// A port with `slots` frame buffers.
    pub fn new(name: &str, slots: usize) -> Self {
        Self {
            name: name.to_string(),
            umem: vec![0; slots * FRAME_CAPACITY],
            free_slots: (0..slots as u32).rev().collect(),
            rx: std::collections::VecDeque::with_capacity(slots),
            tx: Vec::with_capacity(slots),
            replay: None,
            sink: false,
            exhausted: 0,
            rx_refused: 0,
            oversized: 0,
            held: vec![false; slots],
        }
    }

    /// Replay mode: every `rx_burst` copies the next templates (round robin)
    /// into free slots, as a NIC would DMA them, and transmitted frames are
    /// released at once. For benchmarks: the per-frame cost is one copy.
    pub fn replay(name: &str, slots: usize, templates: Vec<Vec<u8>>) -> Self {
        assert!(!templates.is_empty(), "replay needs at least one template");
        let longest = templates.iter().map(Vec::len).max().unwrap_or(0);
        assert!(
            longest <= FRAME_CAPACITY,
            "a template longer than a frame buffer"
        );
        let stride = longest.div_ceil(8).max(1) * 8;
        let mut frames = vec![0; templates.len() * stride];
        for (t, at) in templates.iter().zip(frames.chunks_exact_mut(stride)) {
            at[..t.len()].copy_from_slice(t);
        }
        let lens = templates.iter().map(|t| t.len() as u16).collect();
        let mut port = Self::new(name, slots);
        port.replay = Some(Replay {
            frames,
            lens,
            stride,
            next: 0,
            left: None,
        });
        port.sink = true;
        port
    }

    /// [`replay`](Self::replay) that hands each template out once, in order, and then
    /// receives nothing: for a benchmark phase that must see every frame exactly once
    /// (a round-robin replay would send the first templates again in the last poll).
    pub fn replay_once(name: &str, slots: usize, templates: Vec<Vec<u8>>) -> Self {
        let left = templates.len();
        let mut port = Self::replay(name, slots, templates);
        if let Some(r) = port.replay.as_mut() {
            r.left = Some(left);
        }
        port
    }

    /// Sink mode: receives nothing, releases transmitted frames at once (the far side of
    /// a benchmark, where what leaves is counted, not kept).
    pub fn sink(name: &str, slots: usize) -> Self {
        let mut port = Self::new(name, slots);
        port.sink = true;
        port
    }

    /// Queues a copy of `data` as a received frame. False when no slot is free (counted as
    /// [`Port::rx_lost`] reports it) or `data` is longer than a frame buffer (not counted).
    pub fn push_rx(&mut self, data: &[u8]) -> bool {
        if data.len() > FRAME_CAPACITY {
            // No NIC delivers it (see `push_oversized`): not a full ring, not counted as one.
            return false;
        }
        match self.fill_slot(data) {
            Some(frame) => {
                self.rx.push_back(frame);
                true
            }
            None => {
                self.exhausted += 1;
                self.rx_refused += 1;
                false
            }
        }
    }

    /// Records a frame that arrived too long for a frame buffer, as an AF_XDP port drops
    /// one from an interface whose MTU is above [`MAX_MTU`].
    pub fn push_oversized(&mut self) {
        self.oversized += 1;
    }

    /// Removes and returns every transmitted frame's bytes, oldest first.
    pub fn take_tx(&mut self) -> Vec<Vec<u8>> {
        let frames = std::mem::take(&mut self.tx);
        let out = frames
            .iter()
            .map(|f| self.slot(f.addr)[..f.len as usize].to_vec())
            .collect();
        for f in frames {
            self.free_slots.push(f.addr as u32);
        }
        out
    }

    /// Frame buffers not currently handed out or queued.
    pub fn free_slot_count(&self) -> usize {
        self.free_slots.len()
    }

    fn slot(&self, addr: u64) -> &[u8] {
        let at = addr as usize * FRAME_CAPACITY;
        &self.umem[at..at + FRAME_CAPACITY]
    }

    fn slot_mut(&mut self, addr: u64) -> &mut [u8] {
        let at = addr as usize * FRAME_CAPACITY;
        &mut self.umem[at..at + FRAME_CAPACITY]
    }

    /// Marks `slot` handed out (debug builds; see `held`).
    #[inline(always)]
    fn hand_out(&mut self, slot: u32) {
        if cfg!(debug_assertions) {
            if let Some(h) = self.held.get_mut(slot as usize) {
                *h = true;
            }
        }
    }

    /// Marks `frames` given back (debug builds; see `held`).
    #[inline(always)]
    fn take_back(&mut self, frames: &[Frame]) {
        if cfg!(debug_assertions) {
            for f in frames {
                if let Some(h) = self.held.get_mut(f.addr as usize) {
                    *h = false;
                }
            }
        }
    }

    fn fill_slot(&mut self, data: &[u8]) -> Option<Frame> {
        if data.len() > FRAME_CAPACITY {
            return None;
        }
        let slot = self.free_slots.pop()?;
        self.slot_mut(u64::from(slot))[..data.len()].copy_from_slice(data);
        Some(Frame {
            addr: u64::from(slot),
            len: data.len() as u32,
        })
    }
}

/// How many frames ahead a replaying port prefetches its templates (half a burst of 32: far
/// enough for a main-memory miss, near enough to stay in the L1 cache).
const REPLAY_AHEAD: usize = 16;

/// Bytes of templates that stay in the cache between rounds (the L2 cache of a core is
/// 1–2 MiB on current x86 servers): no prefetch below that.
const REPLAY_CACHED: usize = 1 << 20;

/// `i` wrapped to `0..n` (`n > 0`), without a division in the common case of `i < n`.
#[inline(always)]
fn wrap(i: usize, n: usize) -> usize {
    if i < n {
        i
    } else {
        i % n
    }
}

/// Starts loading the cache line of `buf[at]` (nothing when `at` is out of range).
#[inline(always)]
fn prefetch(buf: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = buf.get(at) {
        // SAFETY: a prefetch is a hint: it never faults, reads nothing into the program and
        // writes nothing; SSE is part of the x86-64 baseline, and `b` is a valid reference.
        #[allow(unsafe_code)]
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(b).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (buf, at);
}

impl Port for MemPort {
    fn rx_burst(&mut self, out: &mut [Frame]) -> usize {
        if let Some(replay) = self.replay.as_mut() {
            let mut n = 0;
            while n < out.len() {
                if replay.left == Some(0) {
                    break;
                }
                let Some(slot) = self.free_slots.pop() else {
                    break;
                };
                if let Some(left) = replay.left.as_mut() {
                    *left -= 1;
                }
                let count = replay.lens.len();
                if replay.frames.len() > REPLAY_CACHED {
                    // Both ends: a frame can straddle two cache lines.
                    let ahead = wrap(replay.next + REPLAY_AHEAD, count) * replay.stride;
                    prefetch(&replay.frames, ahead);
                    prefetch(&replay.frames, ahead + replay.stride - 1);
                }
                let len = usize::from(replay.lens[replay.next]);
                let from = replay.next * replay.stride;
                let t = &replay.frames[from..from + len];
                replay.next = wrap(replay.next + 1, count);
                let at = slot as usize * FRAME_CAPACITY;
                self.umem[at..at + t.len()].copy_from_slice(t);
                out[n] = Frame {
                    addr: u64::from(slot),
                    len: t.len() as u32,
                };
                if cfg!(debug_assertions) {
                    self.held[slot as usize] = true;
                }
                n += 1;
            }
            return n;
        }
        let mut n = 0;
        while n < out.len() {
            match self.rx.pop_front() {
                Some(f) => {
                    out[n] = f;
                    self.hand_out(f.addr as u32);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    fn buf_mut(&mut self, frame: &Frame) -> &mut [u8] {
        debug_assert!(
            self.held.get(frame.addr as usize) == Some(&true),
            "{}: buf_mut on frame {:#x} this port has not handed out",
            self.name,
            frame.addr
        );
        self.slot_mut(frame.addr)
    }

    fn tx_burst(&mut self, frames: &[Frame]) -> usize {
        self.take_back(frames);
        if self.sink {
            self.free_slots.extend(frames.iter().map(|f| f.addr as u32));
        } else {
            self.tx.extend_from_slice(frames);
        }
        frames.len()
    }

    fn tx_copy(&mut self, data: &[u8]) -> bool {
        match self.fill_slot(data) {
            Some(frame) => {
                self.tx_burst(&[frame]);
                true
            }
            None => {
                self.exhausted += 1;
                false
            }
        }
    }

    fn free(&mut self, frames: &[Frame]) {
        self.take_back(frames);
        self.free_slots.extend(frames.iter().map(|f| f.addr as u32));
    }

    fn flush(&mut self) {}

    fn take_oversized(&mut self) -> u64 {
        std::mem::take(&mut self.oversized)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn rx_lost(&self) -> Option<u64> {
        Some(self.rx_refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_once_hands_each_template_out_once() {
        let mut p = MemPort::replay_once("mem0", 8, vec![vec![1; 60], vec![2; 60], vec![3; 60]]);
        let mut burst = [Frame::default(); 2];
        let mut seen = Vec::new();
        loop {
            let n = p.rx_burst(&mut burst);
            if n == 0 {
                break;
            }
            for f in &burst[..n] {
                seen.push(p.buf_mut(f)[0]);
            }
            p.free(&burst[..n]);
        }
        assert_eq!(seen, [1, 2, 3]);
        assert_eq!(p.rx_burst(&mut burst), 0, "nothing after the last template");
    }

    #[test]
    fn frames_round_trip_and_slots_are_conserved() {
        let mut p = MemPort::new("mem0", 4);
        assert!(p.push_rx(&[1, 2, 3]));
        assert!(p.push_rx(&[4, 5]));
        let mut burst = [Frame::default(); 8];
        let n = p.rx_burst(&mut burst);
        assert_eq!(n, 2);
        p.buf_mut(&burst[0])[0] = 9;
        assert_eq!(p.tx_burst(&burst[..1]), 1);
        p.free(&burst[1..2]);
        assert_eq!(p.take_tx(), vec![vec![9, 2, 3]]);
        assert_eq!(p.free_slot_count(), 4);
    }

    /// A frame longer than a buffer is refused but is no full ring: `rx_lost` stays 0.
    #[test]
    fn an_oversized_push_is_not_a_full_ring() {
        let mut p = MemPort::new("mem0", 4);
        assert!(!p.push_rx(&vec![0; FRAME_CAPACITY + 1]));
        assert_eq!(p.rx_lost(), Some(0));
        assert_eq!(p.free_slot_count(), 4);
    }

    /// As `XskPort`: `buf_mut` on a frame the port has not handed out (never received, or
    /// already given back) is a caller's bug, caught in the tests.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "has not handed out")]
    fn buf_mut_on_a_frame_not_handed_out_panics() {
        let mut p = MemPort::new("mem0", 4);
        assert!(p.push_rx(&[1, 2, 3]));
        let mut burst = [Frame::default(); 4];
        let n = p.rx_burst(&mut burst);
        p.free(&burst[..n]);
        p.buf_mut(&burst[0]);
    }

    #[test]
    fn exhaustion_is_counted_not_panicked() {
        let mut p = MemPort::new("mem0", 1);
        assert!(p.push_rx(&[1]));
        assert!(!p.push_rx(&[2]));
        assert!(!p.tx_copy(&[3]));
        assert_eq!(p.exhausted, 2);
        assert!(!p.push_rx(&vec![0; FRAME_CAPACITY + 1]));
    }

    #[test]
    fn sink_releases_what_it_sends() {
        let mut p = MemPort::sink("sink", 2);
        for _ in 0..10 {
            assert!(p.tx_copy(&[1, 2, 3]));
        }
        assert!(p.take_tx().is_empty());
        let mut burst = [Frame::default(); 4];
        assert_eq!(p.rx_burst(&mut burst), 0);
    }

    #[test]
    fn replay_recycles_templates() {
        let mut p = MemPort::replay("mem0", 4, vec![vec![1; 60], vec![2; 60]]);
        let mut burst = [Frame::default(); 3];
        for _ in 0..10 {
            let n = p.rx_burst(&mut burst);
            assert_eq!(n, 3);
            assert_eq!(p.buf_mut(&burst[0])[0] + p.buf_mut(&burst[1])[0], 3);
            p.tx_burst(&burst[..n]);
        }
        assert_eq!(p.free_slot_count(), 4);
    }

    /// Templates of different lengths (stored at one stride) come out whole, in order, and
    /// round robin, byte for byte.
    #[test]
    fn replay_keeps_each_template_whole() {
        let templates: Vec<Vec<u8>> = [60usize, 130, 1, 64, 2048]
            .iter()
            .enumerate()
            .map(|(k, &len)| (0..len).map(|i| (i * 7 + k) as u8).collect())
            .collect();
        let mut p = MemPort::replay("mem0", 8, templates.clone());
        let mut burst = [Frame::default(); 3];
        let mut seen = Vec::new();
        while seen.len() < 3 * templates.len() {
            let n = p.rx_burst(&mut burst);
            for f in &burst[..n] {
                seen.push(p.buf_mut(f)[..f.len as usize].to_vec());
            }
            p.free(&burst[..n]);
        }
        for (i, frame) in seen.iter().enumerate() {
            assert_eq!(frame, &templates[i % templates.len()], "frame {i}");
        }
    }
}
