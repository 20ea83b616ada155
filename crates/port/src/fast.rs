//! The kernel fast path's flow table: lines a worker writes and the XDP program reads.
//!
//! With `workers.kernel_fast_path` on, the XDP program in front of each interface
//! (`crates/xsk/bpf/uvs_xdp.c`, `fast_path`) rewrites the established packets of the flows
//! a worker wrote here and gives them to the kernel, which forwards them (IPv4 and IPv6
//! forwarding on, as IPVS's NAT needs): they never cross to a worker thread. A line is one
//! direction of one TCP or UDP flow of a NAT or FullNAT connection: the tuple as it
//! arrives, the tuple it leaves with, until when it holds (`CLOCK_MONOTONIC`, the XDP
//! program's `bpf_ktime_get_ns`), and the packets and bytes the program forwarded by it.
//! Each family has its own table of its own lines ([`FastLineOf`]: [`FastLine`], 64 bytes,
//! for IPv4; [`FastLine6`], 128 bytes, for IPv6), written and read by the same code.
//!
//! The table is direct-mapped ([`index`]): a line displaced by another flow sends its
//! packets back to the workers, which is always right. One table per interface, shared by
//! its workers and mapped from the kernel (a `BPF_F_MMAPABLE` array), so writing a line is
//! a few stores, never a syscall. Writers take a line with a sequence word (odd while
//! written, [`FastLine::install`]); the XDP program reads the sequence before and after
//! its copy of the line and, when they differ or are odd, hands the packet to the worker.
//!
//! The layouts are `struct fast_line` (the `fast4` table) and `struct fast_line6` (`fast6`)
//! in `uvs_xdp.c`; [`index`] is its `fast_index` and `fast_index6`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Lines per interface (a power of two; `FAST_LINES` in uvs_xdp.c).
pub const LINES: usize = 65536;

/// `kind` bit: the line's packets go towards the real server (counted as in-packets).
const INBOUND: u32 = 1 << 8;
/// `kind` bit: only TCP segments with payload take the line (the client's, written before
/// the client's ACK that completes the handshake, which the workers must see).
const DATA_ONLY: u32 = 1 << 9;
/// `kind` bit: the real server's SYN-ACK takes the line too (the line towards the client
/// written at the client's SYN).
const SYN_ACK: u32 = 1 << 10;
/// `kind` bit: a weak line, written at a connection's handshake or after its first FIN,
/// which gives way to another flow's weak line ([`FastLine::offer`]); the XDP program
/// does not read it.
const WEAK: u32 = 1 << 11;

/// One direction of one flow, of an address family whose addresses are `N` 32-bit words
/// ([`FastLine`]: IPv4, 64 bytes, `struct fast_line` in uvs_xdp.c; [`FastLine6`]: IPv6,
/// 128 bytes, `struct fast_line6`). Cache-line aligned: a line never shares a cache line
/// with another.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct FastLineOf<const N: usize> {
    seq: AtomicU32,
    /// Protocol number | [`INBOUND`] | [`DATA_ONLY`] | [`SYN_ACK`] | [`WEAK`]; 0: empty.
    kind: AtomicU32,
    saddr: [AtomicU32; N],
    daddr: [AtomicU32; N],
    ports: AtomicU32,
    to_saddr: [AtomicU32; N],
    to_daddr: [AtomicU32; N],
    to_ports: AtomicU32,
    until_ns: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
    service: AtomicU32,
    real: AtomicU32,
}

/// An IPv4 line (`struct fast_line` in uvs_xdp.c, the `fast4` table).
pub type FastLine = FastLineOf<1>;
/// An IPv6 line (`struct fast_line6` in uvs_xdp.c, the `fast6` table).
pub type FastLine6 = FastLineOf<4>;

fn words<const N: usize>() -> [AtomicU32; N] {
    std::array::from_fn(|_| AtomicU32::new(0))
}

fn load<const N: usize>(a: &[AtomicU32; N]) -> [u32; N] {
    std::array::from_fn(|i| a[i].load(Ordering::Relaxed))
}

fn store<const N: usize>(a: &[AtomicU32; N], v: &[u32; N]) {
    for (a, v) in a.iter().zip(v) {
        a.store(*v, Ordering::Relaxed);
    }
}

impl<const N: usize> Default for FastLineOf<N> {
    fn default() -> Self {
        FastLineOf {
            seq: AtomicU32::new(0),
            kind: AtomicU32::new(0),
            saddr: words(),
            daddr: words(),
            ports: AtomicU32::new(0),
            to_saddr: words(),
            to_daddr: words(),
            to_ports: AtomicU32::new(0),
            until_ns: AtomicU64::new(0),
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            service: AtomicU32::new(0),
            real: AtomicU32::new(0),
        }
    }
}

/// A packet's tuple as the XDP program reads it: the addresses (`N` words each: 1 for
/// IPv4, 4 for IPv6) and the port pair as they lie in the frame, each word loaded
/// native-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FastKeyOf<const N: usize> {
    pub saddr: [u32; N],
    pub daddr: [u32; N],
    /// Source port ‖ destination port, as the 4 bytes lie in the L4 header.
    pub ports: u32,
    pub proto: u8,
}

/// An IPv4 tuple.
pub type FastKey = FastKeyOf<1>;
/// An IPv6 tuple.
pub type FastKey6 = FastKeyOf<4>;

impl<const N: usize> Default for FastKeyOf<N> {
    fn default() -> Self {
        FastKeyOf {
            saddr: [0; N],
            daddr: [0; N],
            ports: 0,
            proto: 0,
        }
    }
}

fn port_pair(sport: u16, dport: u16) -> u32 {
    let mut p = [0; 4];
    p[..2].copy_from_slice(&sport.to_be_bytes());
    p[2..].copy_from_slice(&dport.to_be_bytes());
    u32::from_ne_bytes(p)
}

fn addr_words<const N: usize>(a: &[u8]) -> [u32; N] {
    std::array::from_fn(|i| {
        u32::from_ne_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]])
    })
}

impl FastKeyOf<1> {
    /// The key of an IPv4 tuple given in network order (addresses as octets, ports as
    /// numbers).
    pub fn new(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, proto: u8) -> FastKey {
        FastKeyOf {
            saddr: addr_words(&src),
            daddr: addr_words(&dst),
            ports: port_pair(sport, dport),
            proto,
        }
    }
}

impl FastKeyOf<4> {
    /// The key of an IPv6 tuple given in network order (addresses as octets, ports as
    /// numbers).
    pub fn new(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16, proto: u8) -> FastKey6 {
        FastKeyOf {
            saddr: addr_words(&src),
            daddr: addr_words(&dst),
            ports: port_pair(sport, dport),
            proto,
        }
    }
}

impl<const N: usize> FastKeyOf<N> {
    /// The tuple of the other direction: addresses and ports swapped.
    pub fn reversed(&self) -> FastKeyOf<N> {
        let p = self.ports.to_ne_bytes();
        FastKeyOf {
            saddr: self.daddr,
            daddr: self.saddr,
            ports: u32::from_ne_bytes([p[2], p[3], p[0], p[1]]),
            proto: self.proto,
        }
    }
}

/// What a line says: where its packets' tuple goes, for whom they are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastEntryOf<const N: usize> {
    pub key: FastKeyOf<N>,
    /// The tuple the packet leaves with (`proto` unused).
    pub to: FastKeyOf<N>,
    pub inbound: bool,
    /// Only TCP segments with payload take the line (and, with `syn_ack`, SYN-ACKs).
    pub data_only: bool,
    /// TCP segments with SYN and ACK and neither FIN nor RST take the line too: the real
    /// server's SYN-ACK, on the line towards the client written at the client's SYN.
    pub syn_ack: bool,
    /// Written at the connection's handshake or after its first FIN: it gives way to
    /// another flow's weak line (see [`FastLine::offer`]).
    pub weak: bool,
    pub until_ns: u64,
    /// Service and real server slots of the snapshot the line was written from.
    pub service: u32,
    pub real: u32,
}

/// An IPv4 line's entry.
pub type FastEntry = FastEntryOf<1>;
/// An IPv6 line's entry.
pub type FastEntry6 = FastEntryOf<4>;

/// Another writer holds the line: it is left as that writer leaves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

/// Packets and bytes the XDP program forwarded by a line, taken from it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    pub service: u32,
    pub real: u32,
    pub inbound: bool,
    pub packets: u64,
    pub bytes: u64,
}

/// The line of `key` (`fast_index` and `fast_index6` in uvs_xdp.c): each pair of
/// address words (source word ‖ destination word; IPv4 has one pair, IPv6 four) XOR-ed in
/// and multiplied, before the protocol and ports are folded in, then the whole multiplied
/// again; the top bits pick the line. For IPv4 that is the addresses' word multiplied
/// once, the first form of this hash.
///
/// The first multiplication matters: XOR-ing the two words before any mixing (the first
/// form) let a change in a real server's last octet cancel a change in a client's port,
/// so a few servers and sequential client ports landed on each other's lines: 14 of the
/// 100 lines of 50 connections, ~175× what random placement gives, each pair of flows
/// then taking turns on the line and crossing to a worker at every turn
/// (`structured_keys_spread_as_random_ones_would`).
#[inline]
pub fn index<const N: usize>(key: &FastKeyOf<N>) -> usize {
    let mut a = 0u64;
    for i in 0..N {
        a = (a ^ ((u64::from(key.saddr[i]) << 32) | u64::from(key.daddr[i])))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    let b = (u64::from(key.proto) << 32) | u64::from(key.ports);
    let h = (a ^ b).wrapping_mul(0xff51_afd7_ed55_8ccd);
    (h >> (64 - LINES.trailing_zeros())) as usize
}

/// An interface's two tables, [`LINES`] IPv4 lines and [`LINES`] IPv6 lines: the kernel's
/// maps (uvs-xsk) or heap arrays ([`MemFastTable`], for tests).
pub trait FastTable: Send + Sync {
    fn lines(&self) -> &[FastLine];

    fn lines6(&self) -> &[FastLine6];

    /// The line `key` lives in.
    fn line(&self, key: &FastKey) -> &FastLine {
        &self.lines()[index(key)]
    }

    /// The IPv6 line `key` lives in.
    fn line6(&self, key: &FastKey6) -> &FastLine6 {
        &self.lines6()[index(key)]
    }
}

/// An address family's lines in a [`FastTable`]: lets code written once for both families
/// (`FastLineOf<N>`) find its table.
pub trait Family<const N: usize> {
    fn family_lines(&self) -> &[FastLineOf<N>];

    /// The line `key` lives in.
    fn line_of(&self, key: &FastKeyOf<N>) -> &FastLineOf<N> {
        &self.family_lines()[index(key)]
    }
}

impl<T: FastTable + ?Sized> Family<1> for T {
    fn family_lines(&self) -> &[FastLine] {
        self.lines()
    }
}

impl<T: FastTable + ?Sized> Family<4> for T {
    fn family_lines(&self) -> &[FastLine6] {
        self.lines6()
    }
}

/// A fast-path table on the heap: what a worker writes, without a kernel to read it.
pub struct MemFastTable(Box<[FastLine]>, Box<[FastLine6]>);

impl Default for MemFastTable {
    fn default() -> Self {
        MemFastTable(
            (0..LINES).map(|_| FastLine::default()).collect(),
            (0..LINES).map(|_| FastLine6::default()).collect(),
        )
    }
}

impl FastTable for MemFastTable {
    fn lines(&self) -> &[FastLine] {
        &self.0
    }

    fn lines6(&self) -> &[FastLine6] {
        &self.1
    }
}

impl<const N: usize> FastLineOf<N> {
    /// Takes the line for writing: the even sequence it had, or `None` while another
    /// writer holds it (the caller leaves the line as it is).
    fn lock(&self) -> Option<u32> {
        let s = self.seq.load(Ordering::Relaxed);
        if s & 1 != 0 {
            return None;
        }
        self.seq
            .compare_exchange(s, s | 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()
    }

    fn unlock(&self, s: u32) {
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// The counts of the line's flow, reset to zero (with the lock held).
    fn take_locked(&self) -> Option<Taken> {
        let kind = self.kind.load(Ordering::Relaxed);
        let packets = self.packets.swap(0, Ordering::Relaxed);
        let bytes = self.bytes.swap(0, Ordering::Relaxed);
        (kind != 0 && packets != 0).then(|| Taken {
            service: self.service.load(Ordering::Relaxed),
            real: self.real.load(Ordering::Relaxed),
            inbound: kind & INBOUND != 0,
            packets,
            bytes,
        })
    }

    /// Whether the line holds `key`'s flow (with the lock held).
    fn holds_locked(&self, key: &FastKeyOf<N>) -> bool {
        self.kind.load(Ordering::Relaxed) != 0 && self.key_locked() == *key
    }

    fn key_locked(&self) -> FastKeyOf<N> {
        FastKeyOf {
            saddr: load(&self.saddr),
            daddr: load(&self.daddr),
            ports: self.ports.load(Ordering::Relaxed),
            proto: self.kind.load(Ordering::Relaxed) as u8,
        }
    }

    /// Writes `e` into the line, whatever it held: `Ok` with the counts of the flow it
    /// held, to be credited; `Err(Busy)` when another writer held the line (nothing written).
    pub fn install(&self, e: &FastEntryOf<N>) -> Result<Option<Taken>, Busy> {
        let s = self.lock().ok_or(Busy)?;
        let taken = self.write_locked(e);
        self.unlock(s);
        Ok(taken)
    }

    /// [`install`](Self::install) for a weak entry (`weak`: a handshake's or a closing
    /// connection's), which stands aside (`Ok(None)`, nothing written) rather than
    /// displace another flow's line that still holds at `now_ns` and is not weak — an
    /// established flow's: a flood of handshakes (a SYN flood) cannot push established
    /// flows off the fast path, and neither can closed connections' lines.
    pub fn offer(&self, e: &FastEntryOf<N>, now_ns: u64) -> Result<Option<Taken>, Busy> {
        let s = self.lock().ok_or(Busy)?;
        let kind = self.kind.load(Ordering::Relaxed);
        let established = kind != 0
            && kind & WEAK == 0
            && self.key_locked() != e.key
            && self.until_ns.load(Ordering::Relaxed) > now_ns;
        let taken = if established {
            None
        } else {
            self.write_locked(e)
        };
        self.unlock(s);
        Ok(taken)
    }

    /// Writes `e` with the lock held: the counts of the flow the line held.
    fn write_locked(&self, e: &FastEntryOf<N>) -> Option<Taken> {
        let taken = self.take_locked();
        // Stop the program's readers first: a reader that copied half the old line
        // sees the sequence change.
        store(&self.saddr, &e.key.saddr);
        store(&self.daddr, &e.key.daddr);
        self.ports.store(e.key.ports, Ordering::Relaxed);
        store(&self.to_saddr, &e.to.saddr);
        store(&self.to_daddr, &e.to.daddr);
        self.to_ports.store(e.to.ports, Ordering::Relaxed);
        self.until_ns.store(e.until_ns, Ordering::Relaxed);
        self.service.store(e.service, Ordering::Relaxed);
        self.real.store(e.real, Ordering::Relaxed);
        let inbound = if e.inbound { INBOUND } else { 0 };
        let data_only = if e.data_only { DATA_ONLY } else { 0 };
        let syn_ack = if e.syn_ack { SYN_ACK } else { 0 };
        let weak = if e.weak { WEAK } else { 0 };
        self.kind.store(
            u32::from(e.key.proto) | inbound | data_only | syn_ack | weak,
            Ordering::Relaxed,
        );
        taken
    }

    /// Empties the line if it holds `key`: `Ok` with the flow's last counts; `Err(Busy)`
    /// when another writer held it.
    pub fn clear(&self, key: &FastKeyOf<N>) -> Result<Option<Taken>, Busy> {
        let s = self.lock().ok_or(Busy)?;
        let mut taken = None;
        if self.holds_locked(key) {
            taken = self.take_locked();
            self.kind.store(0, Ordering::Relaxed);
        }
        self.unlock(s);
        Ok(taken)
    }

    /// Ends the line at once if it holds `key` (its time set to 0, so the program hands the
    /// flow's packets to the workers), keeping its counts for whoever takes them next
    /// (worker 0's harvest, or the flow that writes the line): for a writer that may not
    /// credit counts itself (the control thread; a counter slot has one writer). `Ok(true)`
    /// when the line held `key`; `Err(Busy)` when another writer held it.
    pub fn expire(&self, key: &FastKeyOf<N>) -> Result<bool, Busy> {
        let s = self.lock().ok_or(Busy)?;
        let held = self.holds_locked(key);
        if held {
            self.until_ns.store(0, Ordering::Relaxed);
        }
        self.unlock(s);
        Ok(held)
    }

    /// Empties the line, whatever it holds: its flow's last counts.
    pub fn clear_any(&self) -> Result<Option<Taken>, Busy> {
        let s = self.lock().ok_or(Busy)?;
        let taken = self.take_locked();
        self.kind.store(0, Ordering::Relaxed);
        self.unlock(s);
        Ok(taken)
    }

    /// The counts forwarded since they were last taken, the line kept; `None` when there
    /// are none (or another writer holds the line: they wait for the next call).
    pub fn take(&self) -> Option<Taken> {
        if self.packets.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let s = self.lock()?;
        let taken = self.take_locked();
        self.unlock(s);
        taken
    }

    /// Whether the line holds a flow.
    pub fn is_used(&self) -> bool {
        self.kind.load(Ordering::Relaxed) != 0
    }

    /// The line as the XDP program reads it for a packet of `key` at `now_ns`: its entry
    /// if it holds `key`, is not being written, and holds until after `now_ns`.
    pub fn read(&self, key: &FastKeyOf<N>, now_ns: u64) -> Option<FastEntryOf<N>> {
        let s = self.seq.load(Ordering::Acquire);
        if s & 1 != 0 {
            return None;
        }
        let kind = self.kind.load(Ordering::Relaxed);
        let e = FastEntryOf {
            key: self.key_locked(),
            to: FastKeyOf {
                saddr: load(&self.to_saddr),
                daddr: load(&self.to_daddr),
                ports: self.to_ports.load(Ordering::Relaxed),
                proto: kind as u8,
            },
            inbound: kind & INBOUND != 0,
            data_only: kind & DATA_ONLY != 0,
            syn_ack: kind & SYN_ACK != 0,
            weak: kind & WEAK != 0,
            until_ns: self.until_ns.load(Ordering::Relaxed),
            service: self.service.load(Ordering::Relaxed),
            real: self.real.load(Ordering::Relaxed),
        };
        std::sync::atomic::fence(Ordering::Acquire);
        (self.seq.load(Ordering::Relaxed) == s && kind != 0 && e.key == *key && now_ns < e.until_ns)
            .then_some(e)
    }

    /// Counts a packet forwarded by the line, as the XDP program does.
    pub fn count(&self, bytes: u64) {
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sport: u16, until_ns: u64) -> FastEntry {
        let key = FastKey::new([198, 18, 0, 2], [198, 18, 100, 1], sport, 80, 6);
        FastEntry {
            key,
            to: FastKey::new([198, 18, 0, 2], [198, 18, 1, 11], sport, 8080, 6),
            inbound: true,
            data_only: false,
            syn_ack: false,
            weak: false,
            until_ns,
            service: 3,
            real: 1,
        }
    }

    /// Lines taken by more than one of `keys` (each key past the first on a line).
    fn collisions(keys: &[FastKey]) -> usize {
        let mut used = std::collections::HashSet::new();
        keys.iter().filter(|k| !used.insert(index(k))).count()
    }

    #[test]
    fn structured_keys_spread_as_random_ones_would() {
        // Both directions of NAT connections from one client to a VIP, spread round robin
        // over three real servers, on sequential client ports (step 1 and 2, as Linux
        // hands them out); FullNAT's, from one local address; and many clients.
        let (client, vip) = ([198, 18, 0, 2], [198, 18, 100, 1]);
        let rs = |i: u16| [198, 18, 1, 11 + (i % 3) as u8];
        let mut sets: Vec<Vec<FastKey>> = Vec::new();
        for step in [1u16, 2] {
            let nat: Vec<FastKey> = (0..1000u16)
                .flat_map(|i| {
                    let port = 20000 + step * i;
                    [
                        FastKey::new(client, vip, port, 80, 6),
                        FastKey::new(rs(i), client, 80, port, 6),
                    ]
                })
                .collect();
            sets.push(nat);
        }
        sets.push(
            (0..1000u16)
                .flat_map(|i| {
                    let port = 40000 + i;
                    [
                        FastKey::new(client, vip, 20000 + i, 80, 6),
                        FastKey::new(rs(i), [198, 18, 1, 3], 80, port, 6),
                    ]
                })
                .collect(),
        );
        sets.push(
            (0..2000u16)
                .map(|i| FastKey::new([198, 18, 0, (i % 250) as u8], vip, 30000 + i / 250, 80, 6))
                .collect(),
        );
        for keys in &sets {
            // Random placement would share about n²/2 / LINES lines (30 for 2 000 keys).
            let n = keys.len();
            let random = n * n / 2 / LINES;
            let c = collisions(keys);
            assert!(
                c <= 2 * random + 2,
                "{c} of {n} keys share a line (random: ~{random})"
            );
        }
    }

    #[test]
    fn layout_is_the_programs() {
        assert_eq!(std::mem::size_of::<FastLine>(), 64);
        assert_eq!(std::mem::align_of::<FastLine>(), 64);
        assert_eq!(std::mem::offset_of!(FastLine, ports), 16);
        assert_eq!(std::mem::offset_of!(FastLine, to_ports), 28);
        assert_eq!(std::mem::offset_of!(FastLine, until_ns), 32);
        assert_eq!(std::mem::offset_of!(FastLine, packets), 40);
        assert_eq!(std::mem::offset_of!(FastLine, service), 56);
        // struct fast_line6: two cache lines.
        assert_eq!(std::mem::size_of::<FastLine6>(), 128);
        assert_eq!(std::mem::align_of::<FastLine6>(), 64);
        assert_eq!(std::mem::offset_of!(FastLine6, saddr), 8);
        assert_eq!(std::mem::offset_of!(FastLine6, daddr), 24);
        assert_eq!(std::mem::offset_of!(FastLine6, ports), 40);
        assert_eq!(std::mem::offset_of!(FastLine6, to_saddr), 44);
        assert_eq!(std::mem::offset_of!(FastLine6, to_daddr), 60);
        assert_eq!(std::mem::offset_of!(FastLine6, to_ports), 76);
        assert_eq!(std::mem::offset_of!(FastLine6, until_ns), 80);
        assert_eq!(std::mem::offset_of!(FastLine6, packets), 88);
        assert_eq!(std::mem::offset_of!(FastLine6, bytes), 96);
        assert_eq!(std::mem::offset_of!(FastLine6, service), 104);
        assert_eq!(std::mem::offset_of!(FastLine6, real), 108);
        assert!(LINES.is_power_of_two());
    }

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<std::net::Ipv6Addr>().unwrap().octets()
    }

    #[test]
    fn ipv6_keys_lie_as_in_the_frame_and_spread_as_random_ones_would() {
        let (a, b) = (v6("2001:2::2"), v6("2001:2:0:100::1"));
        let k = FastKey6::new(a, b, 0x1122, 0x3344, 6);
        let bytes: Vec<u8> = k.saddr.iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert_eq!(bytes, a);
        let bytes: Vec<u8> = k.daddr.iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert_eq!(bytes, b);
        assert_eq!(k.ports.to_ne_bytes(), [0x11, 0x22, 0x33, 0x44]);
        assert_eq!(k.reversed(), FastKey6::new(b, a, 0x3344, 0x1122, 6));
        // The IPv4 sets' shapes: one client, sequential ports, three servers; FullNAT
        // from one local address; many clients (their last octets, the top byte of the
        // last word).
        let (client, vip, local) = (a, b, v6("2001:2:0:1::3"));
        let rs = |i: u16| {
            let mut r = v6("2001:2:0:1::11");
            r[15] += (i % 3) as u8;
            r
        };
        let mut sets: Vec<Vec<FastKey6>> = Vec::new();
        for step in [1u16, 2] {
            sets.push(
                (0..1000u16)
                    .flat_map(|i| {
                        let port = 20000 + step * i;
                        [
                            FastKey6::new(client, vip, port, 80, 6),
                            FastKey6::new(rs(i), client, 80, port, 6),
                        ]
                    })
                    .collect(),
            );
        }
        sets.push(
            (0..1000u16)
                .flat_map(|i| {
                    [
                        FastKey6::new(client, vip, 20000 + i, 80, 6),
                        FastKey6::new(rs(i), local, 80, 40000 + i, 6),
                    ]
                })
                .collect(),
        );
        sets.push(
            (0..2000u16)
                .map(|i| {
                    let mut c = client;
                    c[15] = (i % 250) as u8;
                    c[14] = (i / 250) as u8;
                    FastKey6::new(c, vip, 30000 + i / 250, 80, 6)
                })
                .collect(),
        );
        for keys in &sets {
            let n = keys.len();
            let random = n * n / 2 / LINES;
            let c = collisions6(keys);
            assert!(
                c <= 2 * random + 2,
                "{c} of {n} IPv6 keys share a line (random: ~{random})"
            );
        }
    }

    fn collisions6(keys: &[FastKey6]) -> usize {
        let mut used = std::collections::HashSet::new();
        keys.iter().filter(|k| !used.insert(index(*k))).count()
    }

    #[test]
    fn an_ipv6_line_holds_its_tuple_and_counts() {
        let t = MemFastTable::default();
        let key = FastKey6::new(v6("2001:2::2"), v6("2001:2:0:100::1"), 40000, 80, 6);
        let e = FastEntry6 {
            key,
            to: FastKey6::new(v6("2001:2::2"), v6("2001:2:0:1::11"), 40000, 8080, 6),
            inbound: true,
            data_only: false,
            syn_ack: false,
            weak: false,
            until_ns: 1_000,
            service: 3,
            real: 1,
        };
        let line = t.line6(&key);
        assert!(std::ptr::eq(line, t.line_of(&key)));
        line.install(&e).unwrap();
        assert_eq!(line.read(&key, 999), Some(e));
        assert_eq!(line.read(&key, 1_000), None, "expired");
        let mut other = key;
        other.saddr[3] ^= 1 << 24;
        assert_eq!(line.read(&other, 0), None, "another address's last byte");
        line.count(100);
        assert_eq!(line.take().map(|t| (t.packets, t.bytes)), Some((1, 100)));
        assert!(
            !t.line(&FastKey::default()).is_used(),
            "the IPv4 table untouched"
        );
        assert_eq!(line.expire(&key), Ok(true));
        assert_eq!(line.read(&key, 0), None);
        assert!(line.clear(&key).unwrap().is_none());
        assert!(!line.is_used());
    }

    #[test]
    fn keys_lie_as_in_the_frame() {
        let k = FastKey::new([1, 2, 3, 4], [5, 6, 7, 8], 0x1122, 0x3344, 17);
        assert_eq!(k.saddr[0].to_ne_bytes(), [1, 2, 3, 4]);
        assert_eq!(k.ports.to_ne_bytes(), [0x11, 0x22, 0x33, 0x44]);
        let r = k.reversed();
        assert_eq!(
            r,
            FastKey::new([5, 6, 7, 8], [1, 2, 3, 4], 0x3344, 0x1122, 17)
        );
        assert_eq!(r.reversed(), k);
    }

    #[test]
    fn a_line_holds_until_its_time_and_counts_what_it_forwarded() {
        let t = MemFastTable::default();
        let e = entry(40000, 1_000);
        let line = t.line(&e.key);
        assert_eq!(line.install(&e), Ok(None));
        assert_eq!(line.read(&e.key, 999), Some(e));
        assert_eq!(line.read(&e.key, 1_000), None, "expired");
        assert_eq!(
            line.read(&entry(40001, 1_000).key, 0),
            None,
            "another tuple"
        );
        line.count(100);
        line.count(60);
        let taken = Taken {
            service: 3,
            real: 1,
            inbound: true,
            packets: 2,
            bytes: 160,
        };
        assert_eq!(line.take(), Some(taken));
        assert_eq!(line.take(), None, "taken once");
        line.count(10);
        // Displaced by another flow: the old one's counts come back.
        let other = FastEntry {
            key: FastKey::new([9, 9, 9, 9], [198, 18, 100, 1], 1, 80, 6),
            ..e
        };
        assert_eq!(
            line.install(&other),
            Ok(Some(Taken {
                packets: 1,
                bytes: 10,
                ..taken
            }))
        );
        assert_eq!(line.read(&e.key, 0), None);
        line.count(5);
        assert_eq!(line.clear(&e.key), Ok(None), "not the line's flow: kept");
        assert!(line.is_used());
        assert_eq!(line.clear(&other.key).unwrap().unwrap().bytes, 5);
        assert!(!line.is_used());
        assert_eq!(line.read(&other.key, 0), None);
    }

    #[test]
    fn a_handshake_does_not_displace_an_established_flow() {
        let t = MemFastTable::default();
        let established = entry(40000, 1_000);
        let line = t.line(&established.key);
        line.install(&established).unwrap();
        let other = FastKey {
            saddr: [established.key.saddr[0] ^ 1],
            ..established.key
        };
        let handshake = FastEntry {
            key: other,
            data_only: true,
            weak: true,
            ..established
        };
        assert_eq!(line.offer(&handshake, 999), Ok(None));
        assert_eq!(line.read(&established.key, 999), Some(established), "kept");
        assert_eq!(line.read(&other, 999), None);
        // Once the established line has run out, or over another handshake's, it is written.
        line.offer(&handshake, 1_000).unwrap();
        assert_eq!(line.read(&other, 999), Some(handshake));
        let third = FastEntry {
            key: FastKey {
                saddr: [established.key.saddr[0] ^ 2],
                ..established.key
            },
            ..handshake
        };
        line.offer(&third, 0).unwrap();
        assert_eq!(line.read(&third.key, 0), Some(third));
        // Its own flow's line is always rewritten.
        line.install(&established).unwrap();
        let own = FastEntry {
            data_only: true,
            weak: true,
            ..established
        };
        line.offer(&own, 0).unwrap();
        assert_eq!(line.read(&established.key, 0), Some(own));
    }

    #[test]
    fn an_expired_line_passes_its_packets_to_the_workers_and_keeps_its_counts() {
        let t = MemFastTable::default();
        let e = entry(40000, u64::MAX);
        let line = t.line(&e.key);
        line.install(&e).unwrap();
        line.count(100);
        assert_eq!(
            line.expire(&entry(40001, 0).key),
            Ok(false),
            "another tuple: kept"
        );
        assert_eq!(line.read(&e.key, 0), Some(e));
        assert_eq!(line.expire(&e.key), Ok(true));
        assert_eq!(line.read(&e.key, 0), None, "no packet takes it any more");
        let taken = line.take().expect("the counts stay for the harvest");
        assert_eq!((taken.packets, taken.bytes, taken.real), (1, 100, 1));
        // Expired, it gives way to another flow's handshake as a line run out does.
        let other = FastEntry {
            key: FastKey::new([9, 9, 9, 9], [198, 18, 100, 1], 1, 80, 6),
            weak: true,
            ..e
        };
        line.offer(&other, 1).unwrap();
        assert_eq!(line.read(&other.key, 0), Some(other));
        let s = line.lock().unwrap();
        assert_eq!(line.expire(&other.key), Err(Busy));
        line.unlock(s);
    }

    #[test]
    fn a_held_line_is_neither_read_nor_written() {
        let t = MemFastTable::default();
        let e = entry(40000, u64::MAX);
        let line = t.line(&e.key);
        line.install(&e).unwrap();
        let s = line.lock().unwrap();
        assert_eq!(
            line.read(&e.key, 0),
            None,
            "a reader never takes a half-written line"
        );
        assert_eq!(line.install(&e), Err(Busy));
        assert_eq!(line.clear(&e.key), Err(Busy));
        line.unlock(s);
        assert_eq!(line.read(&e.key, 0), Some(e));
    }

    #[test]
    fn flows_spread_over_the_lines() {
        let mut used = std::collections::HashSet::new();
        for port in 0..4096u16 {
            used.insert(index(&FastKey::new(
                [198, 18, 0, 2],
                [198, 18, 100, 1],
                1024 + port,
                80,
                6,
            )));
        }
        assert!(used.len() > 3900, "{} lines for 4096 flows", used.len());
    }
}
