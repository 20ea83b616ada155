//! IPVS's TCP connection states and transition table (`tcp_states` in
//! `net/netfilter/ipvs/ip_vs_proto_tcp.c`, mainline; not the `secure_tcp` "dos" table).
//!
//! IPVS does not track sequence numbers; it only watches flags, per direction:
//! - **Input**: client → VIP (our [`Dir::Original`](crate::Dir::Original)),
//! - **Output**: real server → client through the balancer (NAT/FullNAT replies),
//! - **InputOnly**: client → VIP on a connection that sends no output through the balancer
//!   (DR/TUN, IPVS's `IP_VS_CONN_F_NOOUTPUT`); IPVS switches a connection back to the
//!   Input/Output rows as soon as it sees an output packet.
//!
//! The flag class is chosen as `tcp_state_idx` does: RST, else SYN, else FIN, else ACK; a
//! segment with none of them moves the connection to CLOSE (IPVS's `new_state` default).

/// TCP state, numbered as IPVS's `IP_VS_TCP_S_*` so the byte matches ipvsadm's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait = 4,
    TimeWait = 5,
    Close = 6,
    CloseWait = 7,
    LastAck = 8,
    Listen = 9,
    SynAck = 10,
}

/// Number of TCP states.
pub const TCP_STATES: usize = 11;

impl TcpState {
    pub const ALL: [TcpState; TCP_STATES] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The state stored as a byte in [`Conn::state`](crate::Conn::state); None for bytes
    /// that are not TCP states.
    pub fn from_u8(b: u8) -> Option<Self> {
        Self::ALL.get(b as usize).copied()
    }

    /// The name ipvsadm prints.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }

    /// IPVS counts a TCP connection as *active* for its real server only while ESTABLISHED
    /// (`set_tcp_state` moves it between `activeconns` and `inactconns`).
    pub fn is_active(self) -> bool {
        self == TcpState::Established
    }
}

/// Which row set of the table a packet uses (see module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketDir {
    Input,
    Output,
    InputOnly,
}

impl PacketDir {
    /// The row set for a packet that matched `dir` of a connection; `no_output` is IPVS's
    /// NOOUTPUT flag (DR/TUN: replies bypass the balancer).
    pub fn for_packet(dir: crate::Dir, no_output: bool) -> Self {
        match dir {
            crate::Dir::Reply => PacketDir::Output,
            crate::Dir::Original if no_output => PacketDir::InputOnly,
            crate::Dir::Original => PacketDir::Input,
        }
    }
}

/// TCP header flag bits (byte 13 of the header).
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

// SYNACK is a column but never a target in the mainline table (only the secure_tcp one).
use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

type Row = [TcpState; TCP_STATES];

/// `[direction][syn, fin, ack, rst][current state]`, columns in `TcpState` order:
/// NO ES SS SR FW TW CL CW LA LI SA.
#[rustfmt::skip]
const TABLE: [[Row; 4]; 3] = [
    // INPUT
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        /*syn*/ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The state after a segment with TCP `flags` travelling in `dir`, as IPVS's
/// `set_tcp_state` computes it.
pub fn transition(state: TcpState, dir: PacketDir, flags: u8) -> TcpState {
    let class = if flags & flags::RST != 0 {
        3
    } else if flags & flags::SYN != 0 {
        0
    } else if flags & flags::FIN != 0 {
        1
    } else if flags & flags::ACK != 0 {
        2
    } else {
        return TcpState::Close;
    };
    let d = match dir {
        PacketDir::Input => 0,
        PacketDir::Output => 1,
        PacketDir::InputOnly => 2,
    };
    TABLE[d][class][state as usize]
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::PacketDir::*;
    use super::TcpState::*;
    use super::*;

    fn run(start: TcpState, steps: &[(PacketDir, u8)]) -> Vec<TcpState> {
        let mut s = start;
        steps
            .iter()
            .map(|&(d, f)| {
                s = transition(s, d, f);
                s
            })
            .collect()
    }

    #[test]
    fn nat_handshake_and_client_close() {
        // client SYN, server SYN+ACK, client ACK, client FIN, server FIN+ACK, client ACK
        let seq = run(
            None,
            &[
                (Input, SYN),
                (Output, SYN | ACK),
                (Input, ACK),
                (Input, FIN | ACK),
                (Output, FIN | ACK),
                (Input, ACK),
            ],
        );
        assert_eq!(
            seq,
            vec![SynRecv, SynRecv, Established, CloseWait, TimeWait, TimeWait]
        );
    }

    #[test]
    fn server_closes_first() {
        let seq = run(
            Established,
            &[(Output, FIN | ACK), (Input, ACK), (Input, FIN | ACK)],
        );
        assert_eq!(seq, vec![FinWait, FinWait, TimeWait]);
    }

    #[test]
    fn rst_closes_from_established_both_ways() {
        assert_eq!(transition(Established, Input, RST), Close);
        assert_eq!(transition(Established, Output, RST | ACK), Close);
        assert_eq!(transition(Established, InputOnly, RST), Close);
        // RST wins over SYN in the flag class
        assert_eq!(transition(Established, Input, RST | SYN), Close);
        // ... but a RST in SYN_RECV keeps it (IPVS tolerates a stray RST during handshake)
        assert_eq!(transition(SynRecv, Input, RST), SynRecv);
    }

    #[test]
    fn dr_input_only() {
        // DR: only client packets are seen
        let seq = run(
            None,
            &[
                (InputOnly, SYN),
                (InputOnly, ACK),
                (InputOnly, FIN | ACK),
                (InputOnly, ACK),
            ],
        );
        assert_eq!(seq, vec![SynRecv, Established, FinWait, FinWait]);
        assert_eq!(PacketDir::for_packet(crate::Dir::Original, true), InputOnly);
        assert_eq!(PacketDir::for_packet(crate::Dir::Reply, true), Output);
        assert_eq!(PacketDir::for_packet(crate::Dir::Original, false), Input);
    }

    #[test]
    fn no_flags_means_close_and_syn_reopens() {
        assert_eq!(transition(Established, Input, 0), Close);
        assert_eq!(transition(Close, Input, SYN), SynRecv);
        assert_eq!(transition(TimeWait, Input, SYN), SynRecv);
        assert_eq!(transition(None, Output, SYN), SynSent);
    }

    #[test]
    fn table_spot_checks_against_ipvs() {
        // a few cells read straight off ip_vs_proto_tcp.c
        assert_eq!(transition(Listen, Output, ACK), Established);
        assert_eq!(transition(LastAck, Output, ACK), LastAck);
        assert_eq!(transition(LastAck, Input, ACK), Close);
        assert_eq!(transition(SynAck, InputOnly, RST), Close);
        assert_eq!(transition(SynAck, Input, RST), SynRecv);
        assert_eq!(transition(CloseWait, Output, FIN), TimeWait);
        assert_eq!(transition(SynSent, Output, RST), SynSent);
        assert_eq!(transition(TimeWait, Output, RST), TimeWait);
    }

    #[test]
    fn names_and_bytes_roundtrip() {
        for s in TcpState::ALL {
            assert_eq!(TcpState::from_u8(s as u8), Some(s));
            assert!(!s.name().is_empty());
        }
        assert_eq!(TcpState::from_u8(11), Option::None);
        assert!(Established.is_active());
        assert!(!SynRecv.is_active());
    }
}
