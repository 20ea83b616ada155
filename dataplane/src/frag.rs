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
