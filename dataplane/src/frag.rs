//! Fragments follow their flow: the first fragment of a datagram carries the ports and
//! finds (or creates) the connection; later fragments carry only the IP header, so the
//! worker remembers which connection each datagram's first fragment found, keyed by
//! (addresses, protocol, fragment id), for a few seconds.
//!
//! NICs steer fragments by addresses only (their RSS cannot see ports), so a datagram's
//! fragments reach one queue: the table is per worker, direct-mapped, fixed size, and a
//! newer datagram simply takes an older one's slot. A later fragment that arrives before
//! its first fragment (reordering) is dropped and counted, as Maglev's fragment handling
//! does when its hash-on-addresses mode is off; DPVS drops every non-first fragment.

use uvs_conntrack::Hit;
use uvs_wire::{Parsed, L3};

/// Slots per worker.
pub const FRAG_SLOTS: usize = 1024;
/// Seconds a first fragment's verdict stays usable (RFC 791 suggests 15 s reassembly).
pub const FRAG_TTL_S: u32 = 15;

#[derive(Clone, Copy, PartialEq, Eq)]
struct FragKey {
    v6: bool,
    proto: u8,
    id: u32,
    src: [u8; 16],
    dst: [u8; 16],
}

#[derive(Clone, Copy)]
struct Slot {
    key: FragKey,
    hit: Hit,
    expires: u32,
}

pub struct FragTable {
    slots: Vec<Option<Slot>>,
}

impl Default for FragTable {
    fn default() -> Self {
        Self {
            slots: vec![None; FRAG_SLOTS],
        }
    }
}

fn key(p: &Parsed, id: u32) -> FragKey {
    FragKey {
        v6: p.l3 == L3::V6,
        proto: p.l4_proto,
        id,
        src: p.src,
        dst: p.dst,
    }
}

fn index(k: &FragKey) -> usize {
    let mut h = u64::from(k.id) ^ (u64::from(k.proto) << 32);
    for chunk in k.src.chunks(8).chain(k.dst.chunks(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
    (h as usize) % FRAG_SLOTS
}

impl FragTable {
    /// Records the connection the first fragment `id` of `p`'s datagram found.
    pub fn remember(&mut self, p: &Parsed, id: u32, hit: &Hit, now_s: u32) {
        let k = key(p, id);
        self.slots[index(&k)] = Some(Slot {
            key: k,
            hit: *hit,
            expires: now_s.saturating_add(FRAG_TTL_S),
        });
    }

    /// The connection of the datagram a later fragment belongs to.
    pub fn find(&self, p: &Parsed, id: u32, now_s: u32) -> Option<Hit> {
        let k = key(p, id);
        match self.slots[index(&k)] {
            Some(s) if s.key == k && s.expires >= now_s => Some(s.hit),
            _ => None,
        }
    }
}

/// Most pieces one packet is cut into for TUN (`Pieces`): a 3840-byte frame over a
/// 576-byte link is 8.
pub const MAX_PIECES: usize = 8;
/// Bytes each piece may take, as a frame buffer (the Ethernet header, the outer headers
/// and the fragment).
const PIECE_CAPACITY: usize = 4096;

/// The later fragments of a packet TUN cut to fit its tunnel (`uvs_wire::fragment`), each a
/// whole frame: the packet keeps its first fragment and its verdict; the worker sends (or
/// holds for the neighbour) these after it, with its MACs. Per worker, empty between frames.
pub struct Pieces {
    buf: Vec<u8>,
    lens: [usize; MAX_PIECES],
    n: usize,
}

impl Default for Pieces {
    fn default() -> Self {
        Self {
            buf: vec![0; MAX_PIECES * PIECE_CAPACITY],
            lens: [0; MAX_PIECES],
            n: 0,
        }
    }
}

impl Pieces {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn clear(&mut self) {
        self.n = 0;
    }

    /// Cuts the IPv4 packet at `frame[l3_off..len]` (no DF) into fragments of at most
    /// `max_ip` bytes: the later ones are kept here, each after a copy of the frame's first
    /// `l3_off` bytes; the frame keeps the first. Returns the frame's new length, or `None`
    /// (nothing changed) when it cannot be cut into at most `MAX_PIECES` + 1.
    pub fn cut_v4(
        &mut self,
        frame: &mut [u8],
        len: usize,
        l3_off: usize,
        max_ip: usize,
    ) -> Option<usize> {
        let ip = frame.get(l3_off..len)?;
        let cut = uvs_wire::fragment::Cut::new(ip, max_ip)?;
        let later = cut.count() - 1;
        if later > MAX_PIECES {
            return None;
        }
        self.n = 0;
        for k in 1..=later {
            let piece = &mut self.buf[(k - 1) * PIECE_CAPACITY..k * PIECE_CAPACITY];
            piece[..l3_off].copy_from_slice(&frame[..l3_off]);
            let n = cut.write_later(ip, k, &mut piece[l3_off..])?;
            self.lens[k - 1] = l3_off + n;
        }
        self.n = later;
        Some(l3_off + cut.keep_first(&mut frame[l3_off..len]))
    }

    /// Each piece's buffer and length, to rewrite in place (`set_len` the new length).
    pub fn for_each_mut<E>(
        &mut self,
        mut f: impl FnMut(&mut [u8], usize) -> Result<usize, E>,
    ) -> Result<(), E> {
        for i in 0..self.n {
            let piece = &mut self.buf[i * PIECE_CAPACITY..(i + 1) * PIECE_CAPACITY];
            self.lens[i] = f(piece, self.lens[i])?;
        }
        Ok(())
    }

    /// The pieces as frames, in order; empties the set.
    pub fn drain(&mut self) -> impl Iterator<Item = &[u8]> + '_ {
        let n = std::mem::take(&mut self.n);
        let buf = &self.buf[..];
        self.lens[..n]
            .iter()
            .enumerate()
            .map(move |(i, &len)| &buf[i * PIECE_CAPACITY..i * PIECE_CAPACITY + len])
    }
}
