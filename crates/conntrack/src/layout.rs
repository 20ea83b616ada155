//! How a connection is laid out in 64-bit words, and the key hash.
//!
//! An entry is `3 + 2·A` words, `A` = address words per tuple (1 for IPv4: src‖dst as two
//! u32; 4 for IPv6):
//!
//! | word | contents |
//! |---|---|
//! | 0 `ctl`  | generation (23) ‖ dead (1) ‖ state (8) ‖ deadline (32) |
//! | 1 `meta` | proto (8) ‖ flags (8) ‖ method (8) ‖ 0 (8) ‖ service (16) ‖ real (16) |
//! | 2..2+A | original tuple addresses |
//! | 2+A..2+2A | reply tuple addresses |
//! | 2+2A | original sport ‖ dport ‖ reply sport ‖ dport |
//!
//! IPv4: 5 words = 40 bytes. IPv6: 11 words = 88 bytes.
//!
//! `ctl` is the per-slot seqlock and more: an odd generation means the slot is free (or being
//! torn down), an even one that it holds a connection. Key words change only while the
//! generation is odd; state and deadline live in `ctl` itself so that `update` is one CAS that
//! also proves the slot still holds the same connection.

use crate::flow::{Conn, Dir, FlowKey};

pub(crate) const CTL: usize = 0;
pub(crate) const META: usize = 1;
pub(crate) const MAX_WORDS: usize = 11;

/// State value of an entry whose insert has not finished: invisible to lookups, but counted by
/// concurrent inserts of the same tuple.
pub(crate) const STATE_PENDING: u8 = 0xFE;
/// `ctl` bit of an expired entry that an insert of the same tuple has retired, so a late
/// `update` cannot revive it next to its successor; only `expire_step` reclaims it (and
/// reports it, with its last state intact).
pub(crate) const CTL_DEAD: u64 = 1 << 40;

pub(crate) const GEN_MASK: u32 = 0x007f_ffff;

/// State value of a slot no insert has ever taken (a freed slot has state 0).
const STATE_NEVER_USED: u8 = 0xFD;

/// `ctl` of a slot no insert has ever taken (generation 1, free; a state no used slot has).
/// The free list starts in slot order and takes and returns slots at its head, so the
/// slots ever taken are always a prefix of the slab: the first never-used slot ends it,
/// and the control thread's walks stop there instead of reading an idle table's whole slab.
pub(crate) const CTL_NEVER_USED: u64 = ctl_pack(1, STATE_NEVER_USED, 0);

#[inline]
pub(crate) const fn ctl_pack(gen: u32, state: u8, deadline: u32) -> u64 {
    (((gen & GEN_MASK) as u64) << 41) | ((state as u64) << 32) | deadline as u64
}
#[inline]
pub(crate) fn ctl_gen(ctl: u64) -> u32 {
    (ctl >> 41) as u32
}
#[inline]
pub(crate) fn ctl_dead(ctl: u64) -> bool {
    ctl & CTL_DEAD != 0
}
#[inline]
pub(crate) fn ctl_state(ctl: u64) -> u8 {
    (ctl >> 32) as u8
}
#[inline]
pub(crate) fn ctl_deadline(ctl: u64) -> u32 {
    ctl as u32
}
#[inline]
pub(crate) fn ctl_live(ctl: u64) -> bool {
    ctl_gen(ctl) & 1 == 0
}

// The `meta` word's fields, as `encode_conn` packs them: proto ‖ flags ‖ method ‖ 0 ‖
// service ‖ real. Read through these by the decode, `Hit` and `Entry` alike.
#[inline(always)]
pub(crate) fn meta_proto(meta: u64) -> u8 {
    (meta >> 56) as u8
}
#[inline(always)]
pub(crate) fn meta_flags(meta: u64) -> u8 {
    (meta >> 48) as u8
}
#[inline(always)]
pub(crate) fn meta_method(meta: u64) -> u8 {
    (meta >> 40) as u8
}
#[inline(always)]
pub(crate) fn meta_service(meta: u64) -> u16 {
    (meta >> 16) as u16
}
#[inline(always)]
pub(crate) fn meta_real(meta: u64) -> u16 {
    meta as u16
}

/// True once `now` has reached `deadline`, comparing in wrapping tick arithmetic so a u32
/// millisecond clock can wrap (valid while deadlines are less than 2^31 ticks ahead).
#[inline]
pub(crate) fn expired(deadline: u32, now: u32) -> bool {
    (now.wrapping_sub(deadline) as i32) >= 0
}

/// A tuple in table form: address words, the two ports as one u32, protocol.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct EncKey {
    pub addr: [u64; 4],
    pub ports: u32,
    pub proto: u8,
}

#[inline]
pub(crate) fn encode_key(k: &FlowKey) -> EncKey {
    let mut addr = [0u64; 4];
    if k.v6 {
        addr[0] = u64::from_be_bytes(k.src[0..8].try_into().unwrap_or_default());
        addr[1] = u64::from_be_bytes(k.src[8..16].try_into().unwrap_or_default());
        addr[2] = u64::from_be_bytes(k.dst[0..8].try_into().unwrap_or_default());
        addr[3] = u64::from_be_bytes(k.dst[8..16].try_into().unwrap_or_default());
    } else {
        let s = u32::from_be_bytes([k.src[0], k.src[1], k.src[2], k.src[3]]);
        let d = u32::from_be_bytes([k.dst[0], k.dst[1], k.dst[2], k.dst[3]]);
        addr[0] = ((s as u64) << 32) | d as u64;
    }
    EncKey {
        addr,
        ports: ((k.sport as u32) << 16) | k.dport as u32,
        proto: k.proto,
    }
}

#[inline]
fn decode_key<const AW: usize>(addr: &[u64], ports: u32, proto: u8) -> FlowKey {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    if AW == 4 {
        src[0..8].copy_from_slice(&addr[0].to_be_bytes());
        src[8..16].copy_from_slice(&addr[1].to_be_bytes());
        dst[0..8].copy_from_slice(&addr[2].to_be_bytes());
        dst[8..16].copy_from_slice(&addr[3].to_be_bytes());
    } else {
        src[0..4].copy_from_slice(&((addr[0] >> 32) as u32).to_be_bytes());
        dst[0..4].copy_from_slice(&(addr[0] as u32).to_be_bytes());
    }
    FlowKey {
        proto,
        v6: AW == 4,
        src,
        dst,
        sport: (ports >> 16) as u16,
        dport: ports as u16,
    }
}

/// Words 1.. of an entry (everything but `ctl`) for a connection with `AW` address words per
/// tuple.
pub(crate) fn encode_conn<const AW: usize>(c: &Conn) -> [u64; MAX_WORDS] {
    let mut w = [0u64; MAX_WORDS];
    let o = encode_key(&c.orig);
    let r = encode_key(&c.reply);
    w[META] = ((c.orig.proto as u64) << 56)
        | ((c.flags as u64) << 48)
        | ((c.method as u64) << 40)
        | ((c.service as u64) << 16)
        | c.real as u64;
    w[2..2 + AW].copy_from_slice(&o.addr[..AW]);
    w[2 + AW..2 + 2 * AW].copy_from_slice(&r.addr[..AW]);
    w[2 + 2 * AW] = ((o.ports as u64) << 32) | r.ports as u64;
    w
}

/// The connection held in `w` (a consistent copy of an entry), with the state from `ctl`.
#[inline]
pub(crate) fn decode_conn<const AW: usize>(w: &[u64; MAX_WORDS]) -> Conn {
    let meta = w[META];
    let proto = meta_proto(meta);
    let ports = w[2 + 2 * AW];
    Conn {
        orig: decode_key::<AW>(&w[2..2 + AW], (ports >> 32) as u32, proto),
        reply: decode_key::<AW>(&w[2 + AW..2 + 2 * AW], ports as u32, proto),
        service: meta_service(meta),
        real: meta_real(meta),
        method: meta_method(meta),
        state: ctl_state(w[CTL]),
        flags: meta_flags(meta),
    }
}

/// Does the entry copy `w` hold `k` as its `dir` tuple? Word compares combined without
/// short-circuit (no `memcmp`, one branch for the caller).
#[inline]
pub(crate) fn key_matches<const AW: usize>(w: &[u64; MAX_WORDS], dir: Dir, k: &EncKey) -> bool {
    let ports = w[2 + 2 * AW];
    let (base, p) = match dir {
        Dir::Original => (2, (ports >> 32) as u32),
        Dir::Reply => (2 + AW, ports as u32),
    };
    let mut same = ((w[META] >> 56) as u8 == k.proto) & (p == k.ports);
    for i in 0..AW {
        same &= w[base + i] == k.addr[i];
    }
    same
}

/// 64×64→128 multiply folded to 64 bits (the wyhash/foldhash mixing step).
#[inline]
fn mum(a: u64, b: u64) -> u64 {
    let p = (a as u128) * (b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
const P3: u64 = 0x5899_65cc_7537_4cc3;

/// A table's hash seed, with the word IPv4's hash derives from it computed once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seed {
    s: u64,
    s1: u64,
}

impl Seed {
    pub(crate) fn new(seed: u64) -> Self {
        Seed {
            s: seed,
            s1: seed.rotate_left(29) ^ P0,
        }
    }
}

/// Keyed hash of a tuple. The seed is random per table so clients cannot aim many flows at
/// one bucket pair (hash flooding would turn into `Overflow` refusals).
///
/// Each folded multiply takes two key words at once (as foldhash does). IPv4's whole key is
/// two words (addresses `a`, protocol and ports `pp`), so one keyed multiply is the hash
/// (foldhash's step for inputs of up to 16 bytes): the lookup's chain to its first index
/// load is one multiply shorter than with a second, finishing one. But a product is linear
/// in each factor: with `a` in one factor and `pp` in the other, keys that step in one
/// field (sequential source ports, sequential client addresses) gave arithmetic sequences
/// in every bit window of the product: bucket numbers correlated across keys and, for
/// some seeds, `Overflow` long before the table was full
/// (`structured_keys_overflow_no_earlier_than_random_ones`). So each word enters both
/// factors: the ports also go into the first, shifted to its high half, and the addresses
/// into the second, byte-swapped and rotated by 45. A field that steps then steps in both
/// factors and the product gains a square term; filled from such keys a table refuses
/// about as rarely as with random ones (bench/README.md). The byte swap undoes the one
/// that made `a` big-endian, so the compiler rotates the words as loaded, which are ready
/// one operation before `a`. The cost is a shift, a rotate and two xors beside the multiply, in
/// parallel on the two factors (the second seed word is computed once per table, `Seed`),
/// one operation more on the chain to the multiply. The map from (`a`, `pp`) to the two
/// factors stays one-to-one for every key (`v4_factors_are_one_to_one`; some rotations or
/// shifts would make whole families of keys share both factors for every seed).
///
/// IPv6 mixes the two address halves in parallel, then folds them with the ports, then
/// spreads every input bit over the result with the seed again.
#[inline]
pub(crate) fn hash_key<const AW: usize>(seed: &Seed, k: &EncKey) -> u64 {
    if AW == 1 {
        let (x, y) = v4_factors(seed, k);
        return mum(x, y);
    }
    let pp = ((k.proto as u64) << 32) | k.ports as u64;
    let seed = seed.s;
    let a = mum(k.addr[0] ^ seed, k.addr[1] ^ P0);
    let b = mum(k.addr[2] ^ seed.rotate_left(41), k.addr[3] ^ P1);
    let h = mum(a ^ pp, b ^ P3);
    mum(h ^ seed.rotate_left(29), P2)
}

/// The two factors of IPv4's hash: the addresses with the ports in the high half, and
/// protocol and ports with the addresses byte-swapped and rotated, each with its seed word.
#[inline]
fn v4_factors(seed: &Seed, k: &EncKey) -> (u64, u64) {
    let a = k.addr[0];
    let pp = ((k.proto as u64) << 32) | k.ports as u64;
    (
        a ^ seed.s ^ ((k.ports as u64) << 32),
        pp ^ a.swap_bytes().rotate_left(45) ^ seed.s1,
    )
}

/// Second, independent-looking hash bits for the index tag: 31 bits, never 0, so an empty
/// lane (all zero) can never match a tag and the probe needs no separate emptiness test. A
/// lane from another tuple matches with probability ~2^-31, so false candidates that cost
/// an entry read are negligible (≤ 16 lanes per lookup: < 10^-8).
#[inline]
pub(crate) fn tag_of(h: u64) -> u32 {
    ((mum(h, P3) as u32) & 0x7fff_ffff).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn4() -> Conn {
        Conn {
            orig: FlowKey::v4(6, [198, 18, 0, 2], 40000, [198, 18, 100, 1], 80),
            reply: FlowKey::v4(6, [198, 18, 1, 11], 8080, [198, 18, 0, 2], 40000),
            service: 3,
            real: 65535,
            method: 2,
            state: 0,
            flags: 0xA5,
        }
    }

    #[test]
    fn v4_roundtrip_and_match() {
        let c = conn4();
        let mut w = encode_conn::<1>(&c);
        w[CTL] = ctl_pack(2, 0, 1234);
        assert_eq!(decode_conn::<1>(&w), c);
        assert!(key_matches::<1>(&w, Dir::Original, &encode_key(&c.orig)));
        assert!(key_matches::<1>(&w, Dir::Reply, &encode_key(&c.reply)));
        assert!(!key_matches::<1>(&w, Dir::Reply, &encode_key(&c.orig)));
        let mut other = c.orig;
        other.proto = 17;
        assert!(!key_matches::<1>(&w, Dir::Original, &encode_key(&other)));
    }

    #[test]
    fn v6_roundtrip() {
        let mut c = conn4();
        let a = |x: u8| {
            let mut b = [0u8; 16];
            b[0] = 0x20;
            b[1] = 0x01;
            b[3] = 2;
            b[15] = x;
            b
        };
        c.orig = FlowKey::v6(17, a(2), 5353, a(100), 53);
        c.reply = FlowKey::v6(17, a(11), 53, a(2), 5353);
        let mut w = encode_conn::<4>(&c);
        w[CTL] = ctl_pack(4, 0, 0);
        assert_eq!(decode_conn::<4>(&w), c);
        assert!(key_matches::<4>(&w, Dir::Reply, &encode_key(&c.reply)));
    }

    /// The factors are the key xor the seed words through a map that is linear over GF(2):
    /// one-to-one iff the images of the key's 104 bits (64 address, 32 port, 8 protocol)
    /// are linearly independent.
    #[test]
    fn v4_factors_are_one_to_one() {
        let seed = Seed::new(0x0123_4567_89ab_cdef);
        let zero = v4_factors(&seed, &EncKey::default());
        let image = |k: EncKey| {
            let (x, y) = v4_factors(&seed, &k);
            (((x ^ zero.0) as u128) << 64) | (y ^ zero.1) as u128
        };
        let keys = (0..64)
            .map(|i| EncKey {
                addr: [1 << i, 0, 0, 0],
                ..Default::default()
            })
            .chain((0..32).map(|i| EncKey {
                ports: 1 << i,
                ..Default::default()
            }))
            .chain((0..8).map(|i| EncKey {
                proto: 1 << i,
                ..Default::default()
            }));
        // Gaussian elimination, the basis kept in decreasing order of leading bit (distinct
        // leading bits), so reducing by each in turn leaves 0 exactly for a combination.
        let mut basis: Vec<u128> = Vec::new();
        for k in keys {
            let mut v = image(k);
            for b in &basis {
                v = v.min(v ^ b);
            }
            assert_ne!(v, 0, "{k:?} is a combination of other key bits");
            basis.push(v);
            basis.sort_unstable_by(|a, b| b.cmp(a));
        }
        assert_eq!(basis.len(), 104);
        // linear indeed: the images of two bits xor to the image of both
        let both = EncKey {
            addr: [1 << 40, 0, 0, 0],
            ports: 1 << 3,
            proto: 0,
        };
        let one = EncKey {
            addr: [1 << 40, 0, 0, 0],
            ..Default::default()
        };
        let other = EncKey {
            ports: 1 << 3,
            ..Default::default()
        };
        assert_eq!(image(both), image(one) ^ image(other));
    }

    #[test]
    fn a_never_used_slot_is_free_and_unlike_any_freed_one() {
        assert_eq!(CTL_NEVER_USED, ctl_pack(1, 0xFD, 0));
        assert!(!ctl_live(CTL_NEVER_USED));
        assert_ne!(ctl_state(CTL_NEVER_USED), STATE_PENDING);
        // A freed slot has state 0, whatever its generation (after a wrap, 1 again).
        for gen in [1, 3, GEN_MASK] {
            assert_ne!(ctl_pack(gen, 0, 0), CTL_NEVER_USED);
        }
    }

    #[test]
    fn ctl_fields_and_wrapping_expiry() {
        let c = ctl_pack(0x002b_cdef, 7, 0xdead_beef);
        assert_eq!(ctl_gen(c), 0x002b_cdef);
        assert!(!ctl_dead(c));
        assert!(ctl_dead(c | CTL_DEAD));
        assert_eq!(ctl_gen(c | CTL_DEAD), 0x002b_cdef);
        assert_eq!(ctl_state(c), 7);
        assert_eq!(ctl_deadline(c), 0xdead_beef);
        assert!(!ctl_live(c));
        assert!(expired(10, 10));
        assert!(!expired(11, 10));
        // deadline just past the wrap, now just before it: still alive
        assert!(!expired(5, u32::MAX - 5));
        assert!(expired(u32::MAX - 5, 5));
    }
}
