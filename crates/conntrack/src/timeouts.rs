//! Protocols the table knows and their per-state timeouts.
//!
//! Units: the table's tick, which this crate fixes as **milliseconds** of a monotonic clock
//! truncated to u32 (it wraps after ~49.7 days; deadlines compare in wrapping arithmetic, so
//! any timeout below 2^31 ms ≈ 24.8 days works across the wrap).

use crate::tcp::{TcpState, TCP_STATES};

/// Milliseconds per second, for readability of the defaults.
const S: u32 = 1000;

/// SCTP association states IPVS tracks (`IP_VS_SCTP_S_*`, NONE = 0 … CLOSED = 13): the
/// width of [`Timeouts::sctp`]. The dataplane's state machine uses the same numbering.
pub const SCTP_STATES: usize = 14;

/// The protocol classes that have their own state machine and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
    /// ICMP and ICMPv6 (echo flows keyed by identifier).
    Icmp,
    Other,
}

impl Proto {
    pub fn from_ip_proto(p: u8) -> Self {
        use uvs_ip::proto;
        match p {
            proto::TCP => Proto::Tcp,
            proto::UDP => Proto::Udp,
            proto::SCTP => Proto::Sctp,
            proto::ICMP | proto::ICMPV6 => Proto::Icmp,
            _ => Proto::Other,
        }
    }

    /// Does a connection in `state` count towards its real server's *active* connections?
    /// IPVS: TCP only while ESTABLISHED; UDP/ICMP/other always (they have a single state).
    pub fn counts_active(self, state: u8) -> bool {
        match self {
            Proto::Tcp => state == TcpState::Established as u8,
            _ => true,
        }
    }
}

/// Per-state timeouts in ticks (ms). One per virtual service: the caller picks the service's
/// `Timeouts`, computes `now + for_state(..)` and passes that deadline to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Indexed by [`TcpState`] as u8.
    pub tcp: [u32; TCP_STATES],
    pub udp: u32,
    /// Indexed by SCTP state (`IP_VS_SCTP_S_*` numbering, see [`SCTP_STATES`]).
    pub sctp: [u32; SCTP_STATES],
    pub icmp: u32,
    /// Any other protocol (uvs choice; IPVS only balances TCP/UDP/SCTP/AH/ESP).
    pub other: u32,
}

impl Default for Timeouts {
    /// IPVS's defaults: `tcp_timeouts[]` in `ip_vs_proto_tcp.c`, `udp_timeouts[]` (5 min) in
    /// `ip_vs_proto_udp.c`, `sctp_timeouts[]` in `ip_vs_proto_sctp.c` (NONE 2 s, INIT1 and
    /// REJECTED 4 s, ESTABLISHED 15 min, every other state `IP_VS_SCTP_MAX_RTO` = 61 s). ICMP 60 s is uvs's value for echo flows
    /// (mainline IPVS keeps no ICMP connections of its own).
    fn default() -> Self {
        let mut tcp = [0u32; TCP_STATES];
        tcp[TcpState::None as usize] = 2 * S;
        tcp[TcpState::Established as usize] = 15 * 60 * S;
        tcp[TcpState::SynSent as usize] = 2 * 60 * S;
        tcp[TcpState::SynRecv as usize] = 60 * S;
        tcp[TcpState::FinWait as usize] = 2 * 60 * S;
        tcp[TcpState::TimeWait as usize] = 2 * 60 * S;
        tcp[TcpState::Close as usize] = 10 * S;
        tcp[TcpState::CloseWait as usize] = 60 * S;
        tcp[TcpState::LastAck as usize] = 30 * S;
        tcp[TcpState::Listen as usize] = 2 * 60 * S;
        tcp[TcpState::SynAck as usize] = 2 * 60 * S;
        // NONE, INIT1, INIT, COOKIE_SENT, COOKIE_REPLIED, COOKIE_WAIT, COOKIE,
        // COOKIE_ECHOED, ESTABLISHED, SHUTDOWN_SENT, SHUTDOWN_RECEIVED, SHUTDOWN_ACK_SENT,
        // REJECTED, CLOSED.
        let rto = 61 * S;
        let sctp = [
            2 * S,
            4 * S,
            rto,
            rto,
            rto,
            rto,
            rto,
            rto,
            15 * 60 * S,
            rto,
            rto,
            rto,
            4 * S,
            rto,
        ];
        Timeouts {
            tcp,
            udp: 5 * 60 * S,
            sctp,
            icmp: 60 * S,
            other: 5 * 60 * S,
        }
    }
}

impl Timeouts {
    /// Timeout for a connection of IP protocol `proto` in `state`. An unknown TCP state
    /// byte gets the NONE timeout (2 s), as IPVS's `tcp_timeouts[IP_VS_TCP_S_LAST]`.
    pub fn for_state(&self, proto: u8, state: u8) -> u32 {
        match Proto::from_ip_proto(proto) {
            Proto::Tcp => self
                .tcp
                .get(state as usize)
                .copied()
                .unwrap_or(self.tcp[TcpState::None as usize]),
            Proto::Udp => self.udp,
            Proto::Sctp => self
                .sctp
                .get(state as usize)
                .copied()
                .unwrap_or(self.sctp[0]),
            Proto::Icmp => self.icmp,
            Proto::Other => self.other,
        }
    }

    /// The deadline for a connection touched at `now`.
    pub fn deadline(&self, proto: u8, state: u8, now: u32) -> u32 {
        now.wrapping_add(self.for_state(proto, state))
    }

    /// ipvsadm `--set tcp tcpfin udp` (seconds), which sets ESTABLISHED, FIN_WAIT and UDP.
    pub fn set_ipvsadm(&mut self, tcp_s: u32, tcpfin_s: u32, udp_s: u32) {
        self.tcp[TcpState::Established as usize] = tcp_s.saturating_mul(S);
        self.tcp[TcpState::FinWait as usize] = tcpfin_s.saturating_mul(S);
        self.udp = udp_s.saturating_mul(S);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvs_defaults() {
        let t = Timeouts::default();
        assert_eq!(t.for_state(6, TcpState::Established as u8), 900_000);
        assert_eq!(t.for_state(6, TcpState::SynSent as u8), 120_000);
        assert_eq!(t.for_state(6, TcpState::SynRecv as u8), 60_000);
        assert_eq!(t.for_state(6, TcpState::FinWait as u8), 120_000);
        assert_eq!(t.for_state(6, TcpState::TimeWait as u8), 120_000);
        assert_eq!(t.for_state(6, TcpState::Close as u8), 10_000);
        assert_eq!(t.for_state(6, TcpState::CloseWait as u8), 60_000);
        assert_eq!(t.for_state(6, TcpState::LastAck as u8), 30_000);
        assert_eq!(t.for_state(6, TcpState::Listen as u8), 120_000);
        assert_eq!(t.for_state(6, TcpState::SynAck as u8), 120_000);
        assert_eq!(t.for_state(6, 200), 2_000);
        assert_eq!(t.for_state(17, 0), 300_000);
        assert_eq!(t.for_state(1, 0), 60_000);
        assert_eq!(t.for_state(132, 8), 900_000, "SCTP ESTABLISHED");
        assert_eq!(t.for_state(132, 1), 4_000, "SCTP INIT1");
        assert_eq!(t.for_state(132, 3), 61_000, "SCTP COOKIE_SENT");
        assert_eq!(t.for_state(132, 200), 2_000, "unknown: NONE");
        assert_eq!(t.for_state(58, 0), 60_000);
        assert_eq!(t.deadline(17, 0, u32::MAX), 300_000 - 1);
    }

    #[test]
    fn overrides_per_service() {
        let mut t = Timeouts::default();
        t.set_ipvsadm(60, 30, 10);
        assert_eq!(t.for_state(6, TcpState::Established as u8), 60_000);
        assert_eq!(t.for_state(6, TcpState::FinWait as u8), 30_000);
        assert_eq!(t.for_state(17, 0), 10_000);
        assert_eq!(t.for_state(6, TcpState::Close as u8), 10_000);
    }

    #[test]
    fn active_accounting() {
        assert!(Proto::Tcp.counts_active(TcpState::Established as u8));
        assert!(!Proto::Tcp.counts_active(TcpState::TimeWait as u8));
        assert!(Proto::from_ip_proto(17).counts_active(0));
    }
}
