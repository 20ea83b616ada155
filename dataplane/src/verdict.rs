//! What a pipeline stage decides about a frame, and why frames are dropped.
//!
//! Every drop has a reason, and every reason is a counter (Katran's per-reason stats):
//! `DropReason::index` maps 1:1 onto the worker's drop counters.

use uvs_wire::ParseError;

/// The outcome of processing one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (rewritten) frame on this port index.
    Forward(u8),
    /// Hold the frame until the next hop's link-layer address is known, then
    /// transmit it on `port`.
    AwaitNeighbour {
        port: u8,
        next_hop: [u8; 16],
        v6: bool,
    },
    /// Hand the frame to the slow path (ARP, NDP, ICMP echo for our addresses).
    SlowPath,
    /// The pipeline kept a copy to send later (SYN proxy: a client's first segment before
    /// its real server answered); it is counted when it leaves or is dropped.
    Held,
    /// Drop and count.
    Drop(DropReason),
    /// The frame opens a new connection whose insert waits for the end of the worker's
    /// burst (`pipeline/staged.rs`): the worker gives the frame its verdict then. Only
    /// while the worker has armed its stage for the frame.
    Deferred,
}

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $name:ident => $label:literal,)*) => {
        /// Why a frame was dropped. Parse failures carry the parser's own reason.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum DropReason {
            /// The frame failed to parse.
            Parse(ParseError),
            $($(#[$doc])* $name,)*
        }

        const LOCAL_NAMES: &[&str] = &[$($label,)*];

        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[repr(usize)]
        enum LocalIndex { $($name,)* }

        impl DropReason {
            /// Number of distinct reasons (the length of a drop-counter array).
            pub const COUNT: usize = ParseError::COUNT + LOCAL_NAMES.len();

            /// Dense index for counter arrays.
            #[inline]
            pub fn index(self) -> usize {
                match self {
                    DropReason::Parse(e) => e.index(),
                    $(DropReason::$name => ParseError::COUNT + LocalIndex::$name as usize,)*
                }
            }

            /// The counter's name, as shown by `uvsadm` and the metrics endpoint.
            pub fn name_of(index: usize) -> &'static str {
                if index < ParseError::COUNT {
                    ParseError::ALL[index].name()
                } else {
                    LOCAL_NAMES.get(index - ParseError::COUNT).copied().unwrap_or("unknown")
                }
            }
        }
    };
}

drop_reasons! {
    /// Not an IPv4/IPv6/ARP frame.
    UnsupportedEtherType => "unsupported_ethertype",
    /// Addressed to neither a virtual service nor a tracked flow.
    NoService => "no_service",
    /// An IP protocol the dataplane does not balance (not TCP, UDP, SCTP or ICMP).
    UnsupportedProtocol => "unsupported_protocol",
    /// A real server's reply on a DR or TUN connection came back through uvs: with those
    /// methods the real server answers the client directly (its route to the client must
    /// not point at uvs), so uvs has nothing to rewrite it with.
    DirectReplyReturned => "dr_tun_reply_returned",
    /// A TCP segment without SYN for a flow we do not track (IPVS schedules only on SYN).
    NotSyn => "tcp_not_syn",
    /// The scheduler found no usable real server and there is no sorry server.
    NoRealServer => "no_real_server",
    /// The connection table is full; new flows are refused, established ones keep going.
    TableFull => "conn_table_full",
    /// A new connection's reply tuple is a live connection's (NAT: the same client address
    /// and port reaching the same real server through another virtual address): the real
    /// server could not tell the two apart, so the new one is refused. A closing holder
    /// (TIME_WAIT, CLOSE) is retired instead and the new flow goes on.
    TupleClash => "conn_tuple_clash",
    /// FullNAT: no local address/port left in the pool.
    NoLocalPort => "fullnat_no_port",
    /// Another worker was inserting the same new flow and did not finish within a bounded
    /// spin (it was preempted): the packet is dropped rather than waiting in a syscall;
    /// the client's retransmission finds the flow.
    InsertContended => "conn_insert_contended",
    /// A connection entry with a forwarding method uvs never stores (a bug, or a record that
    /// slipped past the sync installer's checks): dropped, never forwarded as NAT.
    InvalidEntry => "conn_entry_invalid",
    /// No route to the next hop.
    NoRoute => "no_route",
    /// The TTL / hop limit ran out (ICMP time exceeded sent when it may be).
    TtlExceeded => "ttl_exceeded",
    /// The packet (with TUN, once encapsulated) would exceed the egress MTU and may not
    /// be fragmented (fragmentation needed / packet too big sent when it may be).
    TooBig => "too_big",
    /// The neighbour could not be resolved or its queue was full.
    NeighbourUnresolved => "neighbour_unresolved",
    /// The egress port had no free transmit buffer.
    TxFull => "tx_full",
    /// Frames the kernel dropped before the worker saw them because it was not taking them
    /// fast enough: its AF_XDP socket's receive ring was full, or its fill ring had no free
    /// buffer (the socket's `rx_ring_full` and `rx_dropped`, read once a second).
    RxRingFull => "rx_ring_full",
    /// An ICMP error about a flow we do not track.
    IcmpNoFlow => "icmp_no_flow",
    /// A non-first fragment whose first fragment was not seen.
    FragmentNoFlow => "fragment_no_flow",
    /// A packet the slow path does not answer.
    SlowPathIgnored => "slow_path_ignored",
    /// The L4 checksum was wrong: TCP/UDP, verified before an incremental update would
    /// hide it (a partial checksum from a virtual interface is completed, not counted),
    /// and ICMPv6 for the slow path.
    BadChecksum => "bad_l4_checksum",
    /// SCTP: the CRC32c does not match the packet (RFC 9260 §6.8); never forwarded.
    SctpBadCrc => "sctp_bad_crc32c",
    /// SCTP: the verification tag is not the association's (RFC 9260 §8.5).
    SctpBadVtag => "sctp_bad_vtag",
    /// SCTP: no association and not an INIT (IPVS schedules only on INIT).
    SctpNotInit => "sctp_not_init",
    /// SCTP: an INIT/INIT-ACK without its fixed part, with initiate tag 0, or bundled with
    /// other chunks (RFC 9260 §3.3.2, §6.10).
    SctpMalformed => "sctp_malformed",
    /// SCTP: a fragment (the CRC32c covers the whole packet; no reassembly here).
    SctpFragment => "sctp_fragment",
    /// TCP options that do not parse (a length byte out of range), where uvs must read them
    /// (SYN proxy).
    TcpBadOptions => "tcp_bad_options",
    /// SYN proxy: an ACK whose cookie does not match its tuple and ISN (forged, or not
    /// ours).
    SynProxyCookieInvalid => "synproxy_cookie_invalid",
    /// SYN proxy: an ACK whose cookie is older than its validity (two 64 s periods).
    SynProxyCookieExpired => "synproxy_cookie_expired",
    /// SYN proxy: a client segment before the real server answered the SYN (the client
    /// retransmits it), or a segment that fits no step of the proxied handshake.
    SynProxyNotReady => "synproxy_not_ready",
    /// NAT64: a packet of a NAT64 flow that is not translated (a fragment, a malformed
    /// header, an ICMP error RFC 7915 says to drop, or no room to grow the frame).
    Nat64Untranslatable => "nat64_untranslatable",
    /// Layer 7: a client's bare ACK returning a valid cookie; nothing is created until its
    /// first data segment (the request) arrives with the same cookie. Also a bare ACK
    /// (a window update) of a client whose head uvs is receiving.
    Layer7AwaitRequest => "layer7_await_request",
    /// Layer 7: a request head `httparse` refuses; the client was answered 400 and FIN
    /// (the frame became that answer: counted here as a refused request).
    Layer7BadHttp => "layer7_bad_http",
    /// Layer 7: a TLS record that is not a sound ClientHello; the client was reset.
    Layer7BadTls => "layer7_bad_tls",
    /// Layer 7: a request head (or ClientHello) longer than the service's `head_limit`;
    /// the client was answered `431 Request Header Fields Too Large` and FIN (a RST for
    /// TLS), its pending state freed.
    Layer7HeadTooLarge => "layer7_head_too_large",
    /// Layer 7: a head not complete within the service's `head_timeout` (a slow or stalled
    /// client, slowloris); the client was answered `408 Request Timeout` and FIN (a RST
    /// for TLS), its pending state freed.
    Layer7HeadTimeout => "layer7_head_timeout",
    /// Layer 7: a client's head did not end in its first segment and the worker's pending
    /// heads are at their bound (count or bytes); the client was answered `503 Service
    /// Unavailable` and FIN (a RST for TLS).
    Layer7PendingFull => "layer7_pending_full",
    /// Layer 7: a segment of a pending head past the next expected byte (out of order);
    /// dropped (the client was sent a duplicate ACK) and left to its retransmission.
    Layer7OutOfOrder => "layer7_out_of_order",
    /// Layer 7: a client reset (or sent a SYN on) its connection while its head was
    /// pending; the state is freed.
    Layer7HeadAborted => "layer7_head_aborted",
    /// Layer 7: the pool the request chose has no usable real server and the service no
    /// sorry server; the client was answered `503 Service Unavailable` and FIN (a RST for
    /// TLS).
    Layer7NoServer => "layer7_no_server",
    /// Layer 7: a head uvs received and replayed that the real server never acknowledged
    /// (three retransmissions over 7 s) or whose connection went away first; freed.
    Layer7ReplayLost => "layer7_replay_lost",
    /// Layer 7: a client's FIN that returns no valid cookie and finds no state — after
    /// uvs's own answer and FIN (400, 408, 431, 503) the client closing its side. Answered
    /// as a TCP in TIME-WAIT answers a FIN after its own: an ACK (a RST when the FIN
    /// carries data), one reply per segment, so the client's close completes. Also a FIN
    /// that returns a valid cookie without a request (connected and closed, as a TCP
    /// health check does): answered FIN and ACK.
    Layer7ClosedFin => "layer7_closed_fin",
    /// A frame longer than a frame buffer holds (`uvs_port::FRAME_CAPACITY`: an interface
    /// MTU above `uvs_port::MAX_MTU`) arrived: the port dropped it unread.
    FrameTooLarge => "frame_too_large",
    /// An ICMP message in IP fragments (a ping larger than the MTU): uvs does not
    /// reassemble, so it neither answers nor relays it.
    IcmpFragment => "icmp_fragment",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_and_named() {
        let mut seen = [false; DropReason::COUNT];
        for e in ParseError::ALL {
            seen[DropReason::Parse(*e).index()] = true;
        }
        for r in [
            DropReason::UnsupportedEtherType,
            DropReason::NoService,
            DropReason::BadChecksum,
        ] {
            assert!(!seen[r.index()]);
            seen[r.index()] = true;
        }
        assert_eq!(
            DropReason::name_of(DropReason::NoService.index()),
            "no_service"
        );
        assert_eq!(
            DropReason::name_of(DropReason::BadChecksum.index()),
            "bad_l4_checksum"
        );
    }
}

/// How many packets a worker answers with an error of its own making (ICMP time exceeded,
/// fragmentation needed / packet too big, a RST to a segment of an untracked connection) in
/// one second: Linux's `icmp_msgs_per_sec` default. Beyond it the packet is only dropped
/// (and counted under its reason as before), so a flood of expiring TTLs or of stray ACKs
/// is not answered one for one, doubling the worker's transmit work and reflecting it at
/// the flood's spoofed sources.
pub const ERRORS_PER_SEC: u32 = 1000;

/// A worker's budget of error answers ([`ERRORS_PER_SEC`]), renewed each second of the
/// dataplane clock. Cells: the answering paths take the pipeline's context shared.
#[derive(Debug, Default)]
pub struct ErrorBudget {
    second: std::cell::Cell<u32>,
    used: std::cell::Cell<u32>,
}

impl ErrorBudget {
    /// Takes one answer at second `now_s`; false once this second's are spent.
    pub fn take(&self, now_s: u32) -> bool {
        if self.second.get() != now_s {
            self.second.set(now_s);
            self.used.set(0);
        }
        let used = self.used.get();
        if used >= ERRORS_PER_SEC {
            return false;
        }
        self.used.set(used + 1);
        true
    }
}
