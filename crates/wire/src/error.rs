//! Why a frame was refused. One variant per reason so that the dataplane can keep one drop
//! counter per variant (Katran style: drop reasons map 1:1 to counters).

macro_rules! parse_errors {
    ($( $(#[doc = $doc:literal])* $name:ident => $text:literal, )*) => {
        /// A reason a frame could not be parsed. `Copy` and small: returned on the hot path.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
        #[repr(u8)]
        pub enum ParseError {
            $( $(#[doc = $doc])* #[error($text)] $name, )*
        }

        impl ParseError {
            /// Every variant, in `index()` order.
            pub const ALL: &'static [ParseError] = &[ $( ParseError::$name, )* ];
            /// Number of variants: the size of a per-reason counter array.
            pub const COUNT: usize = Self::ALL.len();

            /// Dense index in `0..COUNT`, stable within a build, for counter arrays.
            #[inline]
            pub fn index(self) -> usize {
                self as usize
            }

            /// The variant name, for metrics labels.
            pub fn name(self) -> &'static str {
                match self {
                    $( ParseError::$name => stringify!($name), )*
                }
            }
        }
    };
}

parse_errors! {
    /// Shorter than the 14-byte Ethernet header.
    TruncatedEthernet => "frame shorter than an Ethernet header",
    /// An 802.1Q/802.1ad tag announced but cut short.
    TruncatedVlan => "frame truncated inside an 802.1Q tag",
    /// More VLAN tags than the two of QinQ (802.1ad outer + 802.1Q inner).
    TooManyVlanTags => "more than two VLAN tags",
    /// Ethertype is neither IPv4 nor IPv6 (from `parse_frame`; `classify` reports it as
    /// `Classified::Other`).
    UnsupportedEtherType => "ethertype is not IPv4 or IPv6",
    /// ARP shorter than its fixed header or than the addresses it announces.
    TruncatedArp => "ARP packet truncated",
    /// Shorter than 20 bytes, than IHL*4, or than the IPv4 total length.
    TruncatedIpv4 => "IPv4 packet truncated",
    /// Version nibble does not match the ethertype.
    BadIpVersion => "IP version does not match the ethertype",
    /// IHL below 5.
    BadIhl => "IPv4 IHL below 5",
    /// Total length smaller than the header length.
    BadIpv4TotalLength => "IPv4 total length smaller than its header",
    /// An IPv4 option with a length below 2 or past the options area (RFC 791 §3.1).
    BadIpv4Option => "IPv4 option malformed",
    /// Header checksum does not verify (RFC 791; hosts MUST discard, RFC 1122 §3.2.1.2).
    BadIpv4Checksum => "IPv4 header checksum mismatch",
    /// Shorter than the 40-byte IPv6 header.
    TruncatedIpv6 => "IPv6 packet truncated",
    /// Payload length runs past the end of the frame.
    BadIpv6PayloadLength => "IPv6 payload length exceeds the frame",
    /// More than eight extension headers (a loop or an attack: RFC 8200 §4.1 order has six).
    Ipv6ExtChainTooLong => "IPv6 extension header chain too long",
    /// An extension header runs past the payload.
    TruncatedIpv6Ext => "IPv6 extension header truncated",
    /// Hop-by-hop options anywhere but first (RFC 8200 §4.3).
    Ipv6HopByHopNotFirst => "IPv6 hop-by-hop header not first",
    /// TCP shorter than 20 bytes.
    TruncatedTcp => "TCP header truncated",
    /// TCP data offset below 5 or past the end of the segment.
    BadTcpDataOffset => "TCP data offset invalid",
    /// UDP shorter than 8 bytes.
    TruncatedUdp => "UDP header truncated",
    /// UDP length below 8 or past the IP payload (RFC 768).
    BadUdpLength => "UDP length invalid",
    /// SCTP shorter than its 12-byte common header plus one chunk header.
    TruncatedSctp => "SCTP packet truncated",
    /// An SCTP chunk length below 4 (RFC 9260 §3.2: the length includes the 4-byte header).
    SctpChunkTooShort => "SCTP chunk length below 4",
    /// An SCTP chunk runs past the end of the packet.
    SctpChunkOverrun => "SCTP chunk overruns the packet",
    /// ICMPv4 shorter than its 8-byte header.
    TruncatedIcmp => "ICMP message truncated",
    /// ICMPv6 shorter than its 8-byte header.
    TruncatedIcmpv6 => "ICMPv6 message truncated",
    /// `parse_icmp_embedded` on something that is not an ICMP error message.
    NotIcmpError => "not an ICMP error message",
    /// The packet quoted in an ICMP error is too short for its IP header.
    TruncatedEmbedded => "packet embedded in ICMP error truncated",
    /// The packet quoted in an ICMP error is not of the outer family or has a bad header.
    BadEmbeddedIp => "packet embedded in ICMP error malformed",
    /// A GUE header shorter than its 4 bytes plus the optional words it announces.
    TruncatedGue => "GUE header truncated",
    /// A GRE header shorter than its 4 bytes plus the optional fields its flags announce.
    TruncatedGre => "GRE header truncated",
    /// A GRE version other than 0 (RFC 2784 §2.3.1; version 1 is PPTP's).
    BadGreVersion => "GRE version is not 0",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_dense_and_names_unique() {
        for (i, e) in ParseError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
        let mut names: Vec<_> = ParseError::ALL.iter().map(|e| e.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ParseError::COUNT);
        assert_eq!(ParseError::BadIhl.name(), "BadIhl");
        assert_eq!(ParseError::BadIhl.to_string(), "IPv4 IHL below 5");
    }
}
