//! Fast-path classification: Ethernet (+VLAN/QinQ) → IPv4/IPv6 (+extension headers) → the
//! L4 fields a connection lookup needs, in one pass with no allocation.
//!
//! What is checked: every length field against the frame, the IPv4 header checksum (cheap,
//! and RFC 1122 §3.2.1.2 says discard), TCP data offset, UDP length, the SCTP chunk chain
//! (length < 4 and overrun, which would otherwise loop or read past the packet). What is not:
//! L4 checksums, which cost a pass over the payload; [`verify_l4_checksum`] does that on
//! demand, and [`crate::complete_l4_checksum`] (which the dataplane runs on every TCP/UDP
//! packet) also completes the partial checksums virtual interfaces hand over.
//!
//! Frames are limited to 64 KiB of frame offsets (`u16` fields of [`Parsed`]); an IP packet
//! that ends past offset 65535 is refused as a bad length.

use crate::bytes::get16;
use crate::checksum;
use crate::ethernet::{ethertype, parse_l2};
use crate::icmpv6;
use crate::ip_proto;
use crate::ipv6_ext;
use crate::sctp::{self, SctpPacket};
use crate::tcp::TcpPacket;
use crate::udp::{self, UdpPacket};
use crate::{ArpPacket, Ipv4Packet, Ipv6Packet, ParseError};

/// Network-layer family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L3 {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl L3 {
    /// Ethertype of this family.
    #[inline]
    pub fn ethertype(self) -> u16 {
        match self {
            L3::V4 => ethertype::IPV4,
            L3::V6 => ethertype::IPV6,
        }
    }

    /// Length of the fixed IP header of this family.
    #[inline]
    pub fn header_len(self) -> usize {
        match self {
            L3::V4 => crate::ipv4::HEADER_LEN,
            L3::V6 => crate::ipv6::HEADER_LEN,
        }
    }

    /// Bytes of an address of this family (4 or 16).
    #[inline]
    pub fn addr_len(self) -> usize {
        match self {
            L3::V4 => 4,
            L3::V6 => 16,
        }
    }
}

/// Fragmentation state of a packet; the identifier is widened to `u32` for IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frag {
    /// Not a fragment (including IPv6 atomic fragments, offset 0 and M clear, which RFC 6946
    /// says to process in isolation).
    None,
    /// First fragment (offset 0, more fragments): carries the L4 header.
    First {
        /// Identification.
        id: u32,
    },
    /// Any later fragment: no L4 header, `l4_off` points at fragment data.
    Later {
        /// Identification.
        id: u32,
    },
}

/// What the fast path knows about an IP frame after [`classify`]. Offsets are from the frame
/// start. Addresses of IPv4 packets sit in the first 4 bytes, the rest zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Family.
    pub l3: L3,
    /// VLAN id of the outermost tag.
    pub vlan: Option<u16>,
    /// Start of the IP header.
    pub l3_off: u16,
    /// Start of the L4 header (after IPv6 extension headers), or of the fragment data of a
    /// later fragment.
    pub l4_off: u16,
    /// Final protocol / next header (6, 17, 132, 1, 58, 4, 41, ...).
    pub l4_proto: u8,
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Source port; 0 unless TCP/UDP/SCTP with its header present.
    pub sport: u16,
    /// Destination port; 0 unless TCP/UDP/SCTP with its header present.
    pub dport: u16,
    /// TCP flags byte; 0 unless TCP.
    pub tcp_flags: u8,
    /// Fragmentation state.
    pub frag: Frag,
    /// Bytes of the IP packet (IPv6: 40 + payload length, extension headers included).
    pub ip_total_len: u16,
    /// Type of the first SCTP chunk; 0 unless SCTP.
    pub sctp_first_chunk: u8,
    /// SCTP verification tag; 0 unless SCTP.
    pub sctp_vtag: u32,
    /// ICMP/ICMPv6 type; 0 unless ICMP (check `l4_proto`: 0 is also echo reply).
    pub icmp_type: u8,
    /// ICMP/ICMPv6 code; 0 unless ICMP.
    pub icmp_code: u8,
}

impl Parsed {
    /// End of the IP packet in the frame (start of any Ethernet padding).
    #[inline]
    pub fn l3_end(&self) -> usize {
        usize::from(self.l3_off) + usize::from(self.ip_total_len)
    }

    /// Bytes from the L4 header to the end of the IP packet (the upper-layer length of the
    /// pseudo-header for unfragmented packets).
    #[inline]
    pub fn l4_len(&self) -> usize {
        self.l3_end().saturating_sub(usize::from(self.l4_off))
    }

    /// True when this frame carries the L4 header (not a later fragment).
    #[inline]
    pub fn has_l4_header(&self) -> bool {
        !matches!(self.frag, Frag::Later { .. })
    }

    /// True for any fragment.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        !matches!(self.frag, Frag::None)
    }

    /// The IPv4 source address (first 4 bytes of `src`).
    #[inline]
    pub fn src_v4(&self) -> [u8; 4] {
        [self.src[0], self.src[1], self.src[2], self.src[3]]
    }

    /// The IPv4 destination address (first 4 bytes of `dst`).
    #[inline]
    pub fn dst_v4(&self) -> [u8; 4] {
        [self.dst[0], self.dst[1], self.dst[2], self.dst[3]]
    }

    /// The source and destination addresses (`src`, `dst`), an IPv4 packet's read as their
    /// 4 bytes. Just after the parse, `src`/`dst` are the narrow stores they were built with,
    /// and a wider load of them cannot be forwarded from the store buffer: a stall on every
    /// frame of the per-packet path (bench/README.md, "Ninth pass").
    #[inline(always)]
    pub fn addrs(&self) -> ([u8; 16], [u8; 16]) {
        match self.l3 {
            L3::V4 => (widen_v4(self.src_v4()), widen_v4(self.dst_v4())),
            L3::V6 => (self.src, self.dst),
        }
    }

    /// An IPv4 packet's source ‖ destination address and source ‖ destination port as they
    /// lie in `frame` (8 and 4 bytes loaded whole, in the frame's byte order), if `self`
    /// describes such a packet there with ports. Loaded from the frame, not from `self`:
    /// the parse has just stored the fields one by one, and a wider load of them would
    /// wait for those stores to retire.
    #[inline(always)]
    pub fn v4_tuple(&self, frame: &[u8]) -> Option<(u64, u32)> {
        if self.l3 != L3::V4 || self.frag != Frag::None {
            return None;
        }
        let at = usize::from(self.l3_off) + crate::ipv4::SRC_OFFSET;
        let addrs = frame.get(at..at + 8)?;
        let l4 = usize::from(self.l4_off);
        let ports = frame.get(l4..l4 + 4)?;
        Some((
            u64::from_ne_bytes(addrs.try_into().ok()?),
            u32::from_ne_bytes(ports.try_into().ok()?),
        ))
    }

    /// [`addrs`](Self::addrs) with an IPv6 packet's taken from `frame`'s fixed header, the
    /// bytes `classify` copied them from, where they load without that stall (`src`/`dst`
    /// themselves when `frame` is too short for the header). An IPv6 address is 16 bytes,
    /// which no 4-byte read can stand in for.
    #[inline(always)]
    pub fn addrs_in(&self, frame: &[u8]) -> ([u8; 16], [u8; 16]) {
        if self.l3 == L3::V4 {
            return self.addrs();
        }
        match self.v6_header_addrs(frame) {
            Some(a) => {
                let (s, d) = a.split_at(16);
                (
                    s.try_into().unwrap_or(self.src),
                    d.try_into().unwrap_or(self.dst),
                )
            }
            None => (self.src, self.dst),
        }
    }

    /// The 32 address bytes (source, destination) of the IPv6 header `self` describes in
    /// `frame`, if `frame` holds them.
    #[inline(always)]
    fn v6_header_addrs<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8; 32]> {
        let at = usize::from(self.l3_off) + crate::ipv6::SRC_OFFSET;
        frame.get(at..at + 32)?.try_into().ok()
    }

    /// True when the protocol has ports the balancer schedules on.
    #[inline]
    pub fn has_ports(&self) -> bool {
        matches!(
            self.l4_proto,
            ip_proto::TCP | ip_proto::UDP | ip_proto::SCTP
        )
    }
}

/// Outcome of [`classify`] for a well-formed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified {
    /// IPv4 or IPv6.
    Ip(Parsed),
    /// ARP, with at least the 28 bytes of an Ethernet/IPv4 ARP packet at `l3_off`.
    Arp {
        /// Start of the ARP packet.
        l3_off: u16,
    },
    /// Any other ethertype (after VLAN tags): the balancer passes it to the kernel.
    Other(u16),
}

/// Classifies a frame: walks L2, validates L3 and L4 headers and extracts the flow fields.
/// Never panics.
///
/// Always inlined (it has few callers): called out of line, it stored `Parsed` field by
/// field in its return slot and the caller's copy of it out of the enum read those
/// narrow stores back as 16-byte loads, a store-forwarding stall on every packet
/// (measured: ~40 % of the worker loop's own samples).
///
/// The frame nearly every packet is (untagged Ethernet, a 20-byte IPv4 header or an IPv6
/// header without extension headers, not a fragment; TCP, UDP or SCTP) is read at fixed
/// offsets first; anything else, or anything that reading would refuse, goes through the general
/// walk ([`classify_walk`]), which decides and names the error.
#[inline(always)]
pub fn classify(frame: &[u8]) -> Result<Classified, ParseError> {
    if let Some(p) = common(frame) {
        return Ok(Classified::Ip(p));
    }
    classify_walk(frame)
}

/// What [`Parsed::v4_tuple`] and the protocol number would be for the commonest frame, an
/// untagged Ethernet frame with an IPv4 header without options, read without a parse: to
/// start loading something keyed by a frame's tuple before its turn comes. `None` for a
/// frame that does not start that way; for any other frame the answer may be wrong, so it
/// is only a hint.
#[inline(always)]
pub fn guess_v4_tuple(frame: &[u8]) -> Option<(u64, u32, u8)> {
    const L3: usize = crate::ethernet::HEADER_LEN;
    const L4: usize = L3 + crate::ipv4::HEADER_LEN;
    let head: &[u8; L4 + 4] = frame.get(..L4 + 4)?.try_into().ok()?;
    if head[12..14] != [0x08, 0x00] || head[L3] != 0x45 {
        return None;
    }
    let at = L3 + crate::ipv4::SRC_OFFSET;
    let addrs: [u8; 8] = head[at..at + 8].try_into().ok()?;
    let ports: [u8; 4] = head[L4..L4 + 4].try_into().ok()?;
    Some((
        u64::from_ne_bytes(addrs),
        u32::from_ne_bytes(ports),
        head[L3 + crate::ipv4::TTL_OFFSET + 1],
    ))
}

/// [`classify`] without its fixed-offset reading of the common IPv4 frame: the general walk
/// through every header. Public so tests and the `classify` fuzz target can check that the
/// two agree on every frame the fixed-offset reading accepts.
#[inline(always)]
pub fn classify_walk(frame: &[u8]) -> Result<Classified, ParseError> {
    let l2 = parse_l2(frame)?;
    match l2.ethertype {
        ethertype::IPV4 => parse_ipv4(frame, l2.l3_off, l2.vlan).map(Classified::Ip),
        ethertype::IPV6 => parse_ipv6(frame, l2.l3_off, l2.vlan).map(Classified::Ip),
        ethertype::ARP => {
            ArpPacket::new_checked(&frame[l2.l3_off..])?;
            Ok(Classified::Arp {
                l3_off: l2.l3_off as u16,
            })
        }
        other => Ok(Classified::Other(other)),
    }
}

/// The common frame at fixed offsets: untagged Ethernet, then an IPv4 header without
/// options (version and IHL byte 0x45), not a fragment (offset 0, MF clear), header
/// checksum valid ([`common_v4`]), or an IPv6 header followed directly by the L4 header, no
/// extension header ([`common_v6`]); total length within the frame; TCP with its fixed
/// header and a data offset within the segment, UDP with a length within the datagram, or
/// SCTP read as the walk reads it ([`common_l4`]). One bounds check for the headers, the
/// IPv4 header's sum as three words, no walk. `None` for every other frame, valid or not:
/// [`classify_walk`] then decides. What it returns is what the walk returns for the frame
/// (`common_frames_agree_with_the_walk` below, and the `classify` fuzz target).
///
/// Measured (bench/README.md, "Twelfth pass"): the walk is a chain of small checks (L2
/// tags, version, four lengths, fragments, extension headers, the protocol's lengths),
/// ~240 instructions an IPv4 frame with the header sum out of line.
#[inline(always)]
fn common(frame: &[u8]) -> Option<Parsed> {
    match u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) {
        ethertype::IPV4 => common_v4(frame),
        ethertype::IPV6 => common_v6(frame),
        _ => None,
    }
}

/// Start of the IP header in an untagged frame.
const COMMON_IP: usize = crate::ethernet::HEADER_LEN;

/// Start of the L4 header in the common IPv4 frame.
const COMMON_V4_L4: usize = COMMON_IP + crate::ipv4::HEADER_LEN;

#[inline(always)]
fn common_v4(frame: &[u8]) -> Option<Parsed> {
    let (h, total) = common_v4_ip(frame)?;
    let l4_len = total - crate::ipv4::HEADER_LEN;
    let l4_proto = h[COMMON_IP + 9];
    let l4 = common_l4(frame, COMMON_V4_L4, l4_len, l4_proto, h.last_chunk()?)?;
    let addr = |i: usize| widen_v4([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let addrs = (addr(COMMON_IP + 12), addr(COMMON_IP + 16));
    Some(common_parsed(L3::V4, l4_proto, addrs, total, l4))
}

/// The IPv4 part of [`common_v4`]: the headers' bytes up to the first 8 of L4, and the IP
/// total length (at least the header's).
#[inline(always)]
fn common_v4_ip(frame: &[u8]) -> Option<(&[u8; COMMON_V4_L4 + 8], usize)> {
    let h: &[u8; COMMON_V4_L4 + udp::HEADER_LEN] = frame.first_chunk()?;
    let be = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    // Version/IHL, and the fragment offset and MF bit (DF and the reserved bit do not
    // matter, as in the walk).
    if h[COMMON_IP] != 0x45 || be(COMMON_IP + 6) & 0x3fff != 0 {
        return None;
    }
    let total = usize::from(be(COMMON_IP + 2));
    let header: &[u8; crate::ipv4::HEADER_LEN] = h[COMMON_IP..COMMON_V4_L4].try_into().ok()?;
    if checksum::fold(checksum::header_sum_ne(header)) != 0xffff {
        return None;
    }
    if total < crate::ipv4::HEADER_LEN {
        return None;
    }
    Some((h, total))
}

/// An IPv4 TCP or UDP frame that [`classify`] reads at fixed offsets (see `common`: the
/// same checks, by the same code), as a flow cache needs it: its tuple as it lies in the
/// frame, protocol, TCP flags and IP total length, without the [`Parsed`] a frame that
/// goes further needs. `None` for any other frame (which may still be valid: `classify`
/// decides).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommonV4 {
    /// Source ‖ destination address, as they lie in the frame.
    pub addrs: u64,
    /// Source ‖ destination port, as they lie in the frame.
    pub ports: u32,
    /// TCP or UDP.
    pub proto: u8,
    /// TCP flags; 0 for UDP.
    pub tcp_flags: u8,
    /// Bytes of the IP packet.
    pub ip_total_len: u16,
}

impl CommonV4 {
    /// Start of the IP header.
    pub const L3_OFF: usize = COMMON_IP;
    /// Start of the TCP or UDP header.
    pub const L4_OFF: usize = COMMON_V4_L4;

    /// The frame's fields if it is such a frame.
    #[inline(always)]
    pub fn read(frame: &[u8]) -> Option<CommonV4> {
        if frame.get(12..14)? != ethertype::IPV4.to_be_bytes() {
            return None;
        }
        let (h, total) = common_v4_ip(frame)?;
        let proto = h[COMMON_IP + 9];
        if proto != ip_proto::TCP && proto != ip_proto::UDP {
            return None;
        }
        let head = h.last_chunk()?;
        let l4 = common_l4(
            frame,
            COMMON_V4_L4,
            total - crate::ipv4::HEADER_LEN,
            proto,
            head,
        )?;
        let addrs: &[u8; 8] = h[COMMON_IP + 12..COMMON_IP + 20].try_into().ok()?;
        Some(CommonV4 {
            addrs: u64::from_ne_bytes(*addrs),
            ports: u32::from_ne_bytes(*h.last_chunk::<8>()?.first_chunk::<4>()?),
            proto,
            tcp_flags: l4.tcp_flags,
            ip_total_len: total as u16,
        })
    }

    /// The IP packet's end in the frame.
    #[inline(always)]
    pub fn l3_end(&self) -> usize {
        COMMON_IP + usize::from(self.ip_total_len)
    }

    /// The TCP/UDP checksum's pseudo-header sum in the frame's byte order (as
    /// `pseudo_header_ne` takes it), `l4_len` the segment's or datagram's length.
    #[inline(always)]
    pub fn pseudo_header_ne(&self, l4_len: usize) -> u64 {
        let a = self.addrs.to_ne_bytes();
        checksum::pseudo_header_v4_ne(
            &[a[0], a[1], a[2], a[3]],
            &[a[4], a[5], a[6], a[7]],
            self.proto,
            l4_len as u16,
        )
    }
}

/// Start of the L4 header in the common IPv6 frame.
const COMMON_V6_L4: usize = COMMON_IP + crate::ipv6::HEADER_LEN;

#[inline(always)]
fn common_v6(frame: &[u8]) -> Option<Parsed> {
    let (h, l4_len) = common_v6_ip(frame)?;
    let total = crate::ipv6::HEADER_LEN + l4_len;
    // A next header that is an extension header is not TCP, UDP or SCTP: the walk's.
    let l4_proto = h[COMMON_IP + 6];
    let l4 = common_l4(frame, COMMON_V6_L4, l4_len, l4_proto, h.last_chunk()?)?;
    let addr = |i: usize| -> [u8; 16] { h[i..i + 16].try_into().unwrap_or([0; 16]) };
    let addrs = (addr(COMMON_IP + 8), addr(COMMON_IP + 24));
    Some(common_parsed(L3::V6, l4_proto, addrs, total, l4))
}

/// The IPv6 part of [`common_v6`]: the headers' bytes up to the first 8 of L4, and the
/// payload length.
#[inline(always)]
fn common_v6_ip(frame: &[u8]) -> Option<(&[u8; COMMON_V6_L4 + 8], usize)> {
    let h: &[u8; COMMON_V6_L4 + udp::HEADER_LEN] = frame.first_chunk()?;
    if h[COMMON_IP] >> 4 != 6 {
        return None;
    }
    Some((
        h,
        usize::from(u16::from_be_bytes([h[COMMON_IP + 4], h[COMMON_IP + 5]])),
    ))
}

/// [`CommonV4`] for IPv6: a frame [`classify`] reads at fixed offsets (untagged, the TCP or
/// UDP header right after the fixed IPv6 header), as a flow cache needs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommonV6 {
    /// Source ‖ destination address, as they lie in the frame.
    pub addrs: [u8; 32],
    /// Source ‖ destination port, as they lie in the frame.
    pub ports: u32,
    /// TCP or UDP.
    pub proto: u8,
    /// TCP flags; 0 for UDP.
    pub tcp_flags: u8,
    /// Bytes of the IP packet (40 + the payload length).
    pub ip_total_len: u16,
}

impl CommonV6 {
    /// Start of the IP header.
    pub const L3_OFF: usize = COMMON_IP;
    /// Start of the TCP or UDP header.
    pub const L4_OFF: usize = COMMON_V6_L4;

    /// The frame's fields if it is such a frame.
    #[inline(always)]
    pub fn read(frame: &[u8]) -> Option<CommonV6> {
        if frame.get(12..14)? != ethertype::IPV6.to_be_bytes() {
            return None;
        }
        let (h, l4_len) = common_v6_ip(frame)?;
        let proto = h[COMMON_IP + 6];
        if proto != ip_proto::TCP && proto != ip_proto::UDP {
            return None;
        }
        let l4 = common_l4(frame, COMMON_V6_L4, l4_len, proto, h.last_chunk()?)?;
        Some(CommonV6 {
            addrs: h[COMMON_IP + 8..COMMON_V6_L4].try_into().ok()?,
            ports: u32::from_ne_bytes(*h.last_chunk::<8>()?.first_chunk::<4>()?),
            proto,
            tcp_flags: l4.tcp_flags,
            ip_total_len: (crate::ipv6::HEADER_LEN + l4_len) as u16,
        })
    }

    /// The IP packet's end in the frame.
    #[inline(always)]
    pub fn l3_end(&self) -> usize {
        COMMON_IP + usize::from(self.ip_total_len)
    }

    /// The TCP/UDP checksum's pseudo-header sum in the frame's byte order, `l4_len` the
    /// segment's or datagram's length.
    #[inline(always)]
    pub fn pseudo_header_ne(&self, l4_len: usize) -> u64 {
        checksum::pseudo_header_v6_ne(&self.addrs, self.proto, l4_len as u32)
    }
}

/// The common frame's `Parsed`, in one struct literal (see [`L4Fields`]): its IP header at
/// [`COMMON_IP`], the L4 header right after the fixed one, not a fragment.
#[inline(always)]
fn common_parsed(
    l3: L3,
    l4_proto: u8,
    (src, dst): ([u8; 16], [u8; 16]),
    total: usize,
    l4: L4Fields,
) -> Parsed {
    Parsed {
        l3,
        vlan: None,
        l3_off: COMMON_IP as u16,
        l4_off: (COMMON_IP + l3.header_len()) as u16,
        l4_proto,
        src,
        dst,
        sport: l4.sport,
        dport: l4.dport,
        tcp_flags: l4.tcp_flags,
        frag: Frag::None,
        ip_total_len: total as u16,
        sctp_first_chunk: l4.sctp_first_chunk,
        sctp_vtag: l4.sctp_vtag,
        icmp_type: 0,
        icmp_code: 0,
    }
}

/// The L4 checks of the common frame, whose L4 header starts at `l4_off` (its first 8
/// bytes are `head`) and whose IP packet ends `l4_len` bytes later: that end within the
/// frame and within 64 KiB of frame offsets, then TCP's fixed header and data offset,
/// UDP's length, or SCTP's header and chunk chain. The L4 fields, or `None` for any other
/// protocol or any check that fails.
#[inline(always)]
fn common_l4(
    frame: &[u8],
    l4_off: usize,
    l4_len: usize,
    proto: u8,
    head: &[u8; 8],
) -> Option<L4Fields> {
    let end = l4_off + l4_len;
    if end > frame.len() || end > usize::from(u16::MAX) {
        return None;
    }
    let tcp_flags = match proto {
        ip_proto::TCP => {
            // `end` is within the frame, so the fixed header is too once it fits the segment.
            if l4_len < crate::tcp::HEADER_LEN {
                return None;
            }
            let data_off = usize::from(*frame.get(l4_off + 12)? >> 4) * 4;
            if data_off < crate::tcp::HEADER_LEN || data_off > l4_len {
                return None;
            }
            *frame.get(l4_off + 13)?
        }
        ip_proto::UDP => {
            let udp_len = usize::from(u16::from_be_bytes([head[4], head[5]]));
            if l4_len < udp::HEADER_LEN || udp_len < udp::HEADER_LEN || udp_len > l4_len {
                return None;
            }
            0
        }
        // The walk's own SCTP reading (chunk chain included) on the whole packet: an SCTP
        // frame refused here would otherwise have its headers read, and IPv4's summed,
        // twice.
        ip_proto::SCTP => return parse_sctp(frame.get(l4_off..end)?, true).ok(),
        _ => return None,
    };
    Some(L4Fields {
        sport: u16::from_be_bytes([head[0], head[1]]),
        dport: u16::from_be_bytes([head[2], head[3]]),
        tcp_flags,
        ..L4Fields::default()
    })
}

/// [`classify`] for callers that only want IP: ARP and other ethertypes are
/// `Err(UnsupportedEtherType)`.
#[inline]
pub fn parse_frame(frame: &[u8]) -> Result<Parsed, ParseError> {
    match classify(frame)? {
        Classified::Ip(p) => Ok(p),
        Classified::Arp { .. } | Classified::Other(_) => Err(ParseError::UnsupportedEtherType),
    }
}

/// L4 fields gathered before `Parsed` is assembled in one struct literal: building it field
/// by field through `&mut` made the compiler spill and reload it with overlapping stores
/// (store-forwarding stalls that doubled the cost of `classify`).
#[derive(Clone, Copy, Default)]
struct L4Fields {
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    sctp_first_chunk: u8,
    sctp_vtag: u32,
    icmp_type: u8,
    icmp_code: u8,
}

pub(crate) use uvs_ip::widen_v4;

#[inline(always)]
fn parse_ipv4(frame: &[u8], l3_off: usize, vlan: Option<u16>) -> Result<Parsed, ParseError> {
    let ip = &frame[l3_off..];
    if ip.len() < crate::ipv4::HEADER_LEN {
        return Err(ParseError::TruncatedIpv4);
    }
    let pkt = Ipv4Packet::new_unchecked(ip);
    if pkt.version() != 4 {
        return Err(ParseError::BadIpVersion);
    }
    pkt.check_len()?;
    if !pkt.verify_checksum() {
        return Err(ParseError::BadIpv4Checksum);
    }
    let total = usize::from(pkt.total_len());
    let end = l3_off + total;
    if end > usize::from(u16::MAX) {
        return Err(ParseError::BadIpv4TotalLength);
    }
    let id = u32::from(pkt.ident());
    let frag = if pkt.frag_offset() != 0 {
        Frag::Later { id }
    } else if pkt.more_frags() {
        Frag::First { id }
    } else {
        Frag::None
    };
    let l4_off = l3_off + pkt.header_len();
    let l4_proto = pkt.protocol();
    let l4 = parse_l4(L3::V4, l4_proto, frag, &frame[l4_off..end])?;
    Ok(Parsed {
        l3: L3::V4,
        vlan,
        l3_off: l3_off as u16,
        l4_off: l4_off as u16,
        l4_proto,
        src: widen_v4(pkt.src_addr()),
        dst: widen_v4(pkt.dst_addr()),
        sport: l4.sport,
        dport: l4.dport,
        tcp_flags: l4.tcp_flags,
        frag,
        ip_total_len: total as u16,
        sctp_first_chunk: l4.sctp_first_chunk,
        sctp_vtag: l4.sctp_vtag,
        icmp_type: l4.icmp_type,
        icmp_code: l4.icmp_code,
    })
}

#[inline(always)]
fn parse_ipv6(frame: &[u8], l3_off: usize, vlan: Option<u16>) -> Result<Parsed, ParseError> {
    let ip = &frame[l3_off..];
    if ip.len() < crate::ipv6::HEADER_LEN {
        return Err(ParseError::TruncatedIpv6);
    }
    let pkt = Ipv6Packet::new_unchecked(ip);
    if pkt.version() != 6 {
        return Err(ParseError::BadIpVersion);
    }
    pkt.check_len()?;
    let total = crate::ipv6::HEADER_LEN + usize::from(pkt.payload_len());
    let end = l3_off + total;
    if end > usize::from(u16::MAX) {
        return Err(ParseError::BadIpv6PayloadLength);
    }
    let chain = ipv6_ext::walk(pkt.next_header(), pkt.payload())?;
    let frag = match chain.fragment {
        Some(f) if f.offset != 0 => Frag::Later { id: f.ident },
        Some(f) if f.more => Frag::First { id: f.ident },
        _ => Frag::None,
    };
    let l4_off = l3_off + crate::ipv6::HEADER_LEN + chain.l4_off;
    let l4 = parse_l4(L3::V6, chain.l4_proto, frag, &frame[l4_off..end])?;
    Ok(Parsed {
        l3: L3::V6,
        vlan,
        l3_off: l3_off as u16,
        l4_off: l4_off as u16,
        l4_proto: chain.l4_proto,
        src: pkt.src_addr(),
        dst: pkt.dst_addr(),
        sport: l4.sport,
        dport: l4.dport,
        tcp_flags: l4.tcp_flags,
        frag,
        ip_total_len: total as u16,
        sctp_first_chunk: l4.sctp_first_chunk,
        sctp_vtag: l4.sctp_vtag,
        icmp_type: l4.icmp_type,
        icmp_code: l4.icmp_code,
    })
}

/// Reads the L4 fields from `l4` (the bytes from the L4 header to the end of the IP packet).
/// A first fragment holds only part of the datagram, so lengths that describe the whole
/// datagram (UDP length, the SCTP chunk chain) are not checked against it.
#[inline(always)]
fn parse_l4(l3: L3, proto: u8, frag: Frag, l4: &[u8]) -> Result<L4Fields, ParseError> {
    let whole = match frag {
        Frag::Later { .. } => return Ok(L4Fields::default()),
        Frag::First { .. } => false,
        Frag::None => true,
    };
    let mut f = L4Fields::default();
    match (proto, l3) {
        (ip_proto::TCP, _) => {
            let t = TcpPacket::new_checked(l4)?;
            f.sport = t.src_port();
            f.dport = t.dst_port();
            f.tcp_flags = t.flags();
        }
        (ip_proto::UDP, _) => {
            let u = UdpPacket::new_unchecked(l4);
            if whole {
                u.check_len()?;
            } else if l4.len() < udp::HEADER_LEN {
                return Err(ParseError::TruncatedUdp);
            }
            f.sport = u.src_port();
            f.dport = u.dst_port();
        }
        (ip_proto::SCTP, _) => f = parse_sctp(l4, whole)?,
        (ip_proto::ICMP, L3::V4) => {
            if l4.len() < crate::icmpv4::HEADER_LEN {
                return Err(ParseError::TruncatedIcmp);
            }
            f.icmp_type = l4[0];
            f.icmp_code = l4[1];
        }
        (ip_proto::ICMPV6, L3::V6) => {
            if l4.len() < icmpv6::HEADER_LEN {
                return Err(ParseError::TruncatedIcmpv6);
            }
            f.icmp_type = l4[0];
            f.icmp_code = l4[1];
        }
        _ => {}
    }
    Ok(f)
}

/// SCTP is rarer than TCP/UDP and walks its chunks: kept out of line.
#[inline(never)]
fn parse_sctp(l4: &[u8], whole: bool) -> Result<L4Fields, ParseError> {
    let s = SctpPacket::new_checked(l4)?;
    if whole {
        s.validate_chunks()?;
    }
    Ok(L4Fields {
        sport: s.src_port(),
        dport: s.dst_port(),
        sctp_vtag: s.verification_tag(),
        sctp_first_chunk: s.first_chunk_type(),
        ..L4Fields::default()
    })
}

/// The unfolded pseudo-header sum for `p`'s addresses, protocol and `l4_len`.
#[inline]
pub(crate) fn pseudo_header(p: &Parsed, l4_len: usize) -> u64 {
    match p.l3 {
        L3::V4 => checksum::pseudo_header_v4(&p.src_v4(), &p.dst_v4(), p.l4_proto, l4_len as u16),
        L3::V6 => checksum::pseudo_header_v6(&p.src, &p.dst, p.l4_proto, l4_len as u32),
    }
}

/// [`pseudo_header`] in native byte order, to add to a [`checksum::data_sum_ne`], or `None`
/// when `p`'s IPv6 header does not fit `frame`. An IPv6 packet's addresses are read from the
/// frame's fixed header (the ones `classify` copied into `p`), not from `p`: just after the
/// parse, `p`'s addresses are still the narrow stores it was built with, and a 16-byte load
/// of them cannot be forwarded from the store buffer, a stall on every IPv6 segment
/// (bench/README.md, "Ninth pass"). Inlined: out of line it is a call (and six saved
/// registers) on every verified segment.
#[inline(always)]
pub(crate) fn pseudo_header_ne(frame: &[u8], p: &Parsed, l4_len: usize) -> Option<u64> {
    match p.l3 {
        L3::V4 => Some(checksum::pseudo_header_v4_ne(
            &p.src_v4(),
            &p.dst_v4(),
            p.l4_proto,
            l4_len as u16,
        )),
        L3::V6 => {
            let addrs = p.v6_header_addrs(frame)?;
            Some(checksum::pseudo_header_v6_ne(
                addrs,
                p.l4_proto,
                l4_len as u32,
            ))
        }
    }
}

/// Verifies the L4 checksum of an unfragmented packet: TCP, UDP, ICMPv6 with their
/// pseudo-header, ICMPv4 without, SCTP's CRC32c. Returns `true` when there is nothing this
/// function can check: fragments (the checksum covers the reassembled datagram), protocols
/// without a checksum, and UDP over IPv4 with checksum 0 (RFC 768 "no checksum"). UDP over
/// IPv6 with checksum 0 is `false` (RFC 8200 §8.1). Never panics, whatever `p` says.
pub fn verify_l4_checksum(frame: &[u8], p: &Parsed) -> bool {
    if p.is_fragment() {
        return true;
    }
    let Some(l4) = frame.get(usize::from(p.l4_off)..p.l3_end()) else {
        return false;
    };
    match (p.l4_proto, p.l3) {
        (ip_proto::TCP, _) | (ip_proto::ICMPV6, L3::V6) => {
            checksum::fold(pseudo_header(p, l4.len()) + checksum::data_sum(l4)) == 0xffff
        }
        (ip_proto::UDP, _) => {
            let (Some(csum), Some(len)) = (get16(l4, udp::CHECKSUM_OFFSET), get16(l4, 4)) else {
                return false;
            };
            if csum == 0 {
                return p.l3 == L3::V4;
            }
            let Some(dgram) = l4.get(..usize::from(len)) else {
                return false;
            };
            checksum::fold(pseudo_header(p, dgram.len()) + checksum::data_sum(dgram)) == 0xffff
        }
        (ip_proto::ICMP, L3::V4) => checksum::verify(l4),
        (ip_proto::SCTP, _) => {
            l4.len() >= sctp::HEADER_LEN && SctpPacket::new_unchecked(l4).verify_checksum()
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 (198.18.0.2 → 198.18.100.1) + TCP SYN 40000 → 80, checksums valid
    /// (built by hand; IP checksum 0x6d1f... verified by `classify` itself).
    fn v4_tcp() -> Vec<u8> {
        let mut f = vec![
            2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00, // Ethernet
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 100,
            1, // IPv4
            0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0,
            0, // TCP
            0, 0, 0, 0, 0, 0, // Ethernet padding to 60 bytes
        ];
        crate::Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
        let pseudo = checksum::pseudo_header_v4(&[198, 18, 0, 2], &[198, 18, 100, 1], 6, 20);
        TcpPacket::new_unchecked(&mut f[34..54]).fill_checksum(pseudo);
        f
    }

    #[test]
    fn classify_v4_tcp() {
        let f = v4_tcp();
        let Classified::Ip(p) = classify(&f).unwrap() else {
            panic!("not IP")
        };
        assert_eq!(p.l3, L3::V4);
        assert_eq!((p.l3_off, p.l4_off, p.l4_proto), (14, 34, 6));
        assert_eq!(p.src_v4(), [198, 18, 0, 2]);
        assert_eq!(&p.src[4..], &[0; 12]);
        assert_eq!(
            (p.sport, p.dport, p.tcp_flags),
            (40000, 80, crate::tcp::flags::SYN)
        );
        assert_eq!(p.ip_total_len, 40);
        assert_eq!(p.l3_end(), 54);
        assert_eq!(p.frag, Frag::None);
        assert!(verify_l4_checksum(&f, &p));
        let mut bad = f.clone();
        bad[50] ^= 1;
        assert!(!verify_l4_checksum(&bad, &p));
        assert_eq!(parse_frame(&f), Ok(p));
    }

    #[test]
    fn classify_rejects_bad_ipv4() {
        let f = v4_tcp();
        let mut bad = f.clone();
        bad[24] ^= 1;
        assert_eq!(classify(&bad), Err(ParseError::BadIpv4Checksum));
        let mut bad = f.clone();
        bad[14] = 0x65;
        assert_eq!(classify(&bad), Err(ParseError::BadIpVersion));
        let mut bad = f.clone();
        bad[14] = 0x44;
        assert_eq!(classify(&bad), Err(ParseError::BadIhl));
        let mut bad = f.clone();
        bad[46] = 0x40;
        crate::Ipv4Packet::new_unchecked(&mut bad[14..34]).fill_checksum();
        assert_eq!(classify(&bad), Err(ParseError::BadTcpDataOffset));
    }

    #[test]
    fn later_fragment_has_no_ports() {
        let mut f = v4_tcp();
        f[20] = 0x00;
        f[21] = 0x03; // offset 24 bytes
        crate::Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
        let p = parse_frame(&f).unwrap();
        assert_eq!(p.frag, Frag::Later { id: 1 });
        assert_eq!((p.sport, p.dport, p.tcp_flags), (0, 0, 0));
        assert_eq!(p.l4_off, 34);
        assert!(!p.has_l4_header());
        assert!(verify_l4_checksum(&f, &p));
    }

    #[test]
    fn arp_and_other_ethertypes() {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 0x08, 0x06]);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[0; 20]);
        assert_eq!(classify(&f), Ok(Classified::Arp { l3_off: 14 }));
        assert_eq!(parse_frame(&f), Err(ParseError::UnsupportedEtherType));
        assert_eq!(classify(&f[..41]), Err(ParseError::TruncatedArp));
        f[12] = 0x88;
        f[13] = 0xcc;
        assert_eq!(classify(&f), Ok(Classified::Other(0x88cc)));
    }

    #[test]
    fn addrs_in_are_the_parsed_addresses() {
        let v4 = v4_tcp();
        let p = parse_frame(&v4).unwrap();
        assert_eq!(p.addrs_in(&v4), (p.src, p.dst));
        assert_eq!(p.addrs(), (p.src, p.dst));
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[0x20, 0x01, 0, 2]);
        let mut dst = src;
        src[15] = 10;
        dst[14] = 7;
        dst[15] = 1;
        let mut v6 = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(src, dst, 64)
            .tcp(40000, 80, 1, 65535)
            .write(&mut v6, &[])
            .unwrap();
        let p = parse_frame(&v6).unwrap();
        assert_eq!((p.src, p.dst), (src, dst));
        assert_eq!(p.addrs_in(&v6), (src, dst));
        assert_eq!(p.addrs(), (src, dst));
        // A frame too short for the header `p` describes: `p`'s own addresses.
        assert_eq!(p.addrs_in(&v6[..40]), (src, dst));
        // The header's bytes, where the frame has them.
        let mut other = v6.clone();
        other[14 + 8] = 0xfe;
        assert_eq!(p.addrs_in(&other).0[0], 0xfe);
    }

    #[test]
    fn verify_survives_a_foreign_parsed() {
        let f = v4_tcp();
        let mut p = parse_frame(&f).unwrap();
        p.ip_total_len = 60000;
        assert!(!verify_l4_checksum(&f, &p));
        p.l4_proto = ip_proto::UDP;
        p.ip_total_len = 40;
        p.l4_off = 52;
        assert!(!verify_l4_checksum(&f, &p));
    }

    /// The fixed-offset reading of the common frame returns exactly what the walk returns,
    /// for every frame it accepts: valid IPv4 and IPv6, TCP, UDP and SCTP frames of several
    /// lengths, then each with bytes of its headers set at random (an IPv4 header checksum
    /// refilled in half of the cases, so frames get past it), truncated, padded, or with
    /// its IP length moved. Both outcomes occur often in both families, so the comparison
    /// is not vacuous.
    #[test]
    fn common_frames_agree_with_the_walk() {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let v4 = (
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            IpAddr::V4(Ipv4Addr::new(198, 19, 1, 1)),
        );
        let v6 = (
            IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 1)),
        );
        let mut bases = Vec::new();
        for (a, b) in [v4, v6] {
            for len in [0usize, 1, 6, 7, 40, 300] {
                let payload: Vec<u8> = (0..len as u8).collect();
                let flags = uvs_testkit::Flags {
                    ack: true,
                    ..Default::default()
                };
                let (m1, m2) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
                bases.push(uvs_testkit::tcp(m1, m2, a, 40000, b, 80, flags, &payload));
                bases.push(uvs_testkit::udp(m1, m2, a, 40000, b, 53, &payload));
                let data = uvs_testkit::sctp::data_chunk(&payload);
                bases.push(uvs_testkit::sctp::frame(
                    m1,
                    m2,
                    a,
                    5000,
                    b,
                    38412,
                    7,
                    &[data],
                ));
            }
        }
        for f in &bases {
            assert!(
                common(f).is_some(),
                "the common frame takes the fixed offsets"
            );
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Accepted and refused, IPv4 and IPv6.
        let mut outcomes = [[0u32; 2]; 2];
        let mut commons = 0;
        for _ in 0..400_000 {
            let mut f = bases[next() as usize % bases.len()].clone();
            let is_v6 = f[12] == 0x86;
            // The IP length field, and the bytes up to the L4 header's first 14.
            let (len_at, reach) = if is_v6 { (18, 68) } else { (16, 48) };
            for _ in 0..1 + next() % 3 {
                let r = next();
                match r % 8 {
                    0..=4 if !f.is_empty() => {
                        let at = (r >> 8) as usize % reach.min(f.len());
                        f[at] = (r >> 32) as u8;
                    }
                    5 => f.truncate((r >> 8) as usize % (f.len() + 1)),
                    6 => f.extend(std::iter::repeat_n(0, (r >> 8) as usize % 8)),
                    _ if f.len() >= len_at + 2 => {
                        let t = u16::from_be_bytes([f[len_at], f[len_at + 1]]);
                        let t = t.wrapping_add((r >> 8) as u16 % 16).wrapping_sub(8);
                        f[len_at..len_at + 2].copy_from_slice(&t.to_be_bytes());
                    }
                    _ => {}
                }
            }
            if !is_v6 && next() % 2 == 0 && f.len() >= 34 {
                // Over the first 20 bytes whatever the IHL says.
                f[24..26].fill(0);
                let c = checksum::checksum(&f[14..34]);
                f[24..26].copy_from_slice(&c.to_be_bytes());
            }
            let fast = common(&f);
            outcomes[usize::from(is_v6)][usize::from(fast.is_some())] += 1;
            if let Some(p) = fast {
                assert_eq!(classify_walk(&f), Ok(Classified::Ip(p)), "{f:?}");
            }
            assert_eq!(classify(&f), classify_walk(&f), "{f:?}");
            // `CommonV4` reads exactly the common IPv4 TCP and UDP frames, the same fields,
            // and its checksum check and completion are the parse's.
            let tcp_udp = |p: &Parsed| p.l4_proto == ip_proto::TCP || p.l4_proto == ip_proto::UDP;
            let expect = fast.filter(|p| p.l3 == L3::V4 && tcp_udp(p)).map(|p| {
                let (addrs, ports) = p.v4_tuple(&f).unwrap();
                CommonV4 {
                    addrs,
                    ports,
                    proto: p.l4_proto,
                    tcp_flags: p.tcp_flags,
                    ip_total_len: p.ip_total_len,
                }
            });
            let read = CommonV4::read(&f);
            assert_eq!(read, expect, "{f:?}");
            let expect6 = fast.filter(|p| p.l3 == L3::V6 && tcp_udp(p)).map(|p| {
                let mut addrs = [0; 32];
                addrs[..16].copy_from_slice(&p.src);
                addrs[16..].copy_from_slice(&p.dst);
                let ports = [p.sport.to_be_bytes(), p.dport.to_be_bytes()].concat();
                CommonV6 {
                    addrs,
                    ports: u32::from_ne_bytes(ports.try_into().unwrap()),
                    proto: p.l4_proto,
                    tcp_flags: p.tcp_flags,
                    ip_total_len: p.ip_total_len,
                }
            });
            let read6 = CommonV6::read(&f);
            assert_eq!(read6, expect6, "{f:?}");
            if let (Some(c), Some(p)) = (read6, fast) {
                commons += 1;
                let (mut a, mut b) = (f.clone(), f.clone());
                assert_eq!(
                    crate::l4_checksum::complete_common_v6_checksum(&mut a, &c),
                    crate::l4_checksum::complete_l4_checksum(&mut b, &p),
                    "{f:?}"
                );
                assert_eq!(a, b);
            }
            if let (Some(c), Some(p)) = (read, fast) {
                commons += 1;
                let (mut a, mut b) = (f.clone(), f.clone());
                assert_eq!(
                    crate::l4_checksum::complete_common_v4_checksum(&mut a, &c),
                    crate::l4_checksum::complete_l4_checksum(&mut b, &p),
                    "{f:?}"
                );
                assert_eq!(a, b);
            }
        }
        assert!(
            commons > 40_000,
            "{commons} frames read by CommonV4 and CommonV6"
        );
        assert!(
            outcomes.iter().flatten().all(|&n| n > 20_000),
            "{outcomes:?}"
        );
    }

    /// The 20-byte header sum is `data_sum_ne`'s, unfolded, for any bytes.
    #[test]
    fn header_sum_is_the_data_sum() {
        let mut x = 1u64;
        for _ in 0..100_000 {
            let mut h = [0u8; 20];
            for b in &mut h {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *b = (x >> 56) as u8;
                if x >> 60 == 0 {
                    *b = 0xff;
                }
            }
            assert_eq!(checksum::header_sum_ne(&h), checksum::data_sum_ne(&h));
        }
        assert_eq!(
            checksum::header_sum_ne(&[0xff; 20]),
            checksum::data_sum_ne(&[0xff; 20])
        );
    }
}
