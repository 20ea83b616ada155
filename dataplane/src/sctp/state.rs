//! The SCTP association state machine IPVS uses (`net/netfilter/ipvs/ip_vs_proto_sctp.c`,
//! Julian Anastasov's 2013 rewrite): 14 states "as seen in the real server", one event per
//! packet derived from its chunk types, and three transition tables — INPUT (client →
//! real server), OUTPUT (real server → client) and INPUT_ONLY (DR/TUN, where the replies
//! bypass the balancer). The state lives in the connection's `state` byte.
//!
//! Each state's timeout is the service's (`uvs_conntrack::Timeouts::sctp`, indexed by this
//! numbering): IPVS's `sctp_timeouts[]` unless the YAML's `timeouts:` (global or per
//! service) sets `sctp` (ESTABLISHED) or an `sctp_<state>` field.

use uvs_wire::sctp::chunk_type;

/// An association state; the discriminant is what the connection's `state` byte holds
/// (IPVS's `IP_VS_SCTP_S_*` numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SctpState {
    /// Nothing seen (never stored: the first INIT moves a new entry to `Init1`).
    None = 0,
    /// First client INIT sent, waiting for the server's INIT-ACK.
    Init1,
    /// A further client INIT (retransmission), still waiting for INIT-ACK.
    Init,
    /// Server's INIT-ACK sent, waiting for the client's COOKIE-ECHO.
    CookieSent,
    /// Client's COOKIE-ECHO sent, waiting for the server's COOKIE-ACK.
    CookieReplied,
    /// Server-initiated setup: server's INIT sent, waiting for the client's INIT-ACK.
    CookieWait,
    /// Server-initiated setup: client's INIT-ACK sent, waiting for the server's COOKIE-ECHO.
    Cookie,
    /// Server-initiated setup: server's COOKIE-ECHO sent, waiting for the client's COOKIE-ACK.
    CookieEchoed,
    Established,
    ShutdownSent,
    ShutdownReceived,
    ShutdownAckSent,
    /// The INIT was answered with an ABORT.
    Rejected,
    Closed,
}

/// Number of states (the width of a transition-table row); the connection table's timeout
/// array has one entry per state in the same numbering.
pub const SCTP_STATES: usize = 14;
const _: () = assert!(SCTP_STATES == uvs_conntrack::timeouts::SCTP_STATES);

const ALL: [SctpState; SCTP_STATES] = [
    SctpState::None,
    SctpState::Init1,
    SctpState::Init,
    SctpState::CookieSent,
    SctpState::CookieReplied,
    SctpState::CookieWait,
    SctpState::Cookie,
    SctpState::CookieEchoed,
    SctpState::Established,
    SctpState::ShutdownSent,
    SctpState::ShutdownReceived,
    SctpState::ShutdownAckSent,
    SctpState::Rejected,
    SctpState::Closed,
];

impl SctpState {
    /// The state a stored byte names; unknown bytes are `None` (IPVS indexes its tables
    /// only with states it wrote).
    #[inline]
    pub fn from_u8(v: u8) -> SctpState {
        ALL.get(usize::from(v)).copied().unwrap_or(SctpState::None)
    }

    /// IPVS's name for the state (`sctp_state_name_table`), as `ipvsadm -Lnc` prints it.
    pub fn name(self) -> &'static str {
        match self {
            SctpState::None => "NONE",
            SctpState::Init1 => "INIT1",
            SctpState::Init => "INIT",
            SctpState::CookieSent => "C-SENT",
            SctpState::CookieReplied => "C-REPLIED",
            SctpState::CookieWait => "C-WAIT",
            SctpState::Cookie => "COOKIE",
            SctpState::CookieEchoed => "C-ECHOED",
            SctpState::Established => "ESTABLISHED",
            SctpState::ShutdownSent => "S-SENT",
            SctpState::ShutdownReceived => "S-RECEIVED",
            SctpState::ShutdownAckSent => "S-ACK-SENT",
            SctpState::Rejected => "REJECTED",
            SctpState::Closed => "CLOSED",
        }
    }

    /// Before the association is up: the handshake may still learn verification tags
    /// (RFC 9260 §5.1).
    #[inline]
    pub fn is_handshake(self) -> bool {
        matches!(
            self,
            SctpState::None
                | SctpState::Init1
                | SctpState::Init
                | SctpState::CookieSent
                | SctpState::CookieReplied
                | SctpState::CookieWait
                | SctpState::Cookie
                | SctpState::CookieEchoed
        )
    }
}

/// What a packet means to the state machine (IPVS `ipvs_sctp_event_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SctpEvent {
    /// DATA, SACK, HEARTBEAT(-ACK), ECNE, CWR and every chunk type IPVS does not map.
    Data = 0,
    Init,
    InitAck,
    CookieEcho,
    CookieAck,
    Shutdown,
    ShutdownAck,
    ShutdownComplete,
    Error,
    Abort,
}

impl SctpEvent {
    /// IPVS `sctp_events[]`: the event for a chunk type.
    #[inline]
    pub fn of_chunk(kind: u8) -> SctpEvent {
        match kind {
            chunk_type::INIT => SctpEvent::Init,
            chunk_type::INIT_ACK => SctpEvent::InitAck,
            chunk_type::COOKIE_ECHO => SctpEvent::CookieEcho,
            chunk_type::COOKIE_ACK => SctpEvent::CookieAck,
            chunk_type::SHUTDOWN => SctpEvent::Shutdown,
            chunk_type::SHUTDOWN_ACK => SctpEvent::ShutdownAck,
            chunk_type::SHUTDOWN_COMPLETE => SctpEvent::ShutdownComplete,
            chunk_type::ERROR => SctpEvent::Error,
            chunk_type::ABORT => SctpEvent::Abort,
            _ => SctpEvent::Data,
        }
    }
}

/// Which transition table applies (IPVS `IP_VS_DIR_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SctpDir {
    /// Client → real server, when the balancer also sees the replies (NAT, FullNAT).
    Input,
    /// Real server → client.
    Output,
    /// Client → real server when replies bypass the balancer (DR, TUN: IPVS's
    /// `IP_VS_CONN_F_NOOUTPUT`).
    InputOnly,
}

use SctpState as S;
const I1: S = S::Init1;
const IN: S = S::Init;
const CS: S = S::CookieSent;
const CR: S = S::CookieReplied;
const CW: S = S::CookieWait;
const CO: S = S::Cookie;
const CE: S = S::CookieEchoed;
const ES: S = S::Established;
const SS: S = S::ShutdownSent;
const SR: S = S::ShutdownReceived;
const SA: S = S::ShutdownAckSent;
const RJ: S = S::Rejected;
const CL: S = S::Closed;

type Table = [[SctpState; SCTP_STATES]; 10];

/// IPVS `sctp_states[IP_VS_DIR_INPUT]`: rows are events, columns the current state.
#[rustfmt::skip]
const INPUT: Table = [
    /*           NO  I1  IN  CS  CR  CW  CO  CE  ES  SS  SR  SA  RJ  CL */
    /* data  */ [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* init  */ [I1, IN, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, IN, IN],
    /* i_ack */ [CW, CW, CW, CS, CR, CO, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* c_echo*/ [CR, IN, IN, CR, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* c_ack */ [ES, I1, IN, CS, CR, CW, CO, ES, ES, SS, SR, SA, RJ, CL],
    /* shut  */ [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
    /* s_ack */ [CL, IN, IN, CS, CR, CW, CO, CE, ES, CL, SR, CL, RJ, CL],
    /* s_cmpl*/ [CL, CL, CL, CS, CR, CW, CO, CE, ES, SS, SR, CL, RJ, CL],
    /* error */ [CL, I1, IN, CS, CR, CW, CO, CL, ES, SS, SR, SA, RJ, CL],
    /* abort */ [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
];

/// IPVS `sctp_states[IP_VS_DIR_OUTPUT]`.
#[rustfmt::skip]
const OUTPUT: Table = [
    /*           NO  I1  IN  CS  CR  CW  CO  CE  ES  SS  SR  SA  RJ  CL */
    /* data  */ [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* init  */ [CW, CW, CW, CW, CW, CW, CW, CW, ES, CW, CW, CW, CW, CW],
    /* i_ack */ [CS, CS, CS, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* c_echo*/ [CE, CE, CE, CE, CE, CE, CE, CE, ES, SS, SR, SA, RJ, CL],
    /* c_ack */ [ES, ES, ES, ES, ES, ES, ES, ES, ES, SS, SR, SA, RJ, CL],
    /* shut  */ [SS, SS, SS, SS, SS, SS, SS, SS, SS, SS, SR, SA, RJ, CL],
    /* s_ack */ [SA, SA, SA, SA, SA, CW, CO, CE, ES, SA, SA, SA, RJ, CL],
    /* s_cmpl*/ [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* error */ [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* abort */ [CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL],
];

/// IPVS `sctp_states[IP_VS_DIR_INPUT_ONLY]`.
#[rustfmt::skip]
const INPUT_ONLY: Table = [
    /*           NO  I1  IN  CS  CR  CW  CO  CE  ES  SS  SR  SA  RJ  CL */
    /* data  */ [ES, I1, IN, CS, CR, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* init  */ [I1, IN, IN, IN, IN, IN, CO, CE, ES, SS, SR, SA, IN, IN],
    /* i_ack */ [CE, CE, CE, CE, CE, CE, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* c_echo*/ [ES, ES, ES, ES, ES, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* c_ack */ [ES, I1, IN, ES, ES, CW, ES, ES, ES, SS, SR, SA, RJ, CL],
    /* shut  */ [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
    /* s_ack */ [CL, IN, IN, CS, CR, CW, CO, CE, CL, CL, SR, CL, RJ, CL],
    /* s_cmpl*/ [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, CL, CL, RJ, CL],
    /* error */ [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* abort */ [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
];

/// The next state after `event` travelling in `dir` (IPVS `set_sctp_state`).
#[inline]
pub fn transition(state: SctpState, dir: SctpDir, event: SctpEvent) -> SctpState {
    let table = match dir {
        SctpDir::Input => &INPUT,
        SctpDir::Output => &OUTPUT,
        SctpDir::InputOnly => &INPUT_ONLY,
    };
    table[event as usize][state as usize]
}

/// Timeout (ms) of a state under the service's timeouts.
#[inline]
pub fn timeout_ms(state: SctpState, t: &uvs_conntrack::Timeouts) -> u32 {
    t.sctp[state as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discriminants_index_the_tables() {
        for (i, s) in ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
            assert_eq!(SctpState::from_u8(i as u8), *s);
        }
        assert_eq!(SctpState::from_u8(200), SctpState::None);
        assert_eq!(SctpEvent::Abort as usize, 9);
    }

    /// A client-initiated association through NAT, step by step (IPVS's comment block).
    #[test]
    fn client_handshake_data_and_shutdown() {
        let steps = [
            (SctpDir::Input, SctpEvent::Init, S::Init1),
            (SctpDir::Input, SctpEvent::Init, S::Init),
            (SctpDir::Output, SctpEvent::InitAck, S::CookieSent),
            (SctpDir::Input, SctpEvent::CookieEcho, S::CookieReplied),
            (SctpDir::Output, SctpEvent::CookieAck, S::Established),
            (SctpDir::Input, SctpEvent::Data, S::Established),
            (SctpDir::Output, SctpEvent::Data, S::Established),
            (SctpDir::Input, SctpEvent::Shutdown, S::ShutdownReceived),
            (SctpDir::Output, SctpEvent::ShutdownAck, S::ShutdownAckSent),
            (SctpDir::Input, SctpEvent::ShutdownComplete, S::Closed),
        ];
        let mut s = S::None;
        for (dir, ev, want) in steps {
            s = transition(s, dir, ev);
            assert_eq!(s, want, "{dir:?} {ev:?}");
        }
    }

    #[test]
    fn aborts_and_rejections() {
        assert_eq!(
            transition(S::Init1, SctpDir::Output, SctpEvent::Abort),
            S::Rejected
        );
        assert_eq!(
            transition(S::Established, SctpDir::Input, SctpEvent::Abort),
            S::Closed
        );
        assert_eq!(
            transition(S::Established, SctpDir::Output, SctpEvent::Abort),
            S::Closed
        );
        // A new INIT after a rejection starts over.
        assert_eq!(
            transition(S::Rejected, SctpDir::Input, SctpEvent::Init),
            S::Init
        );
    }

    /// DR/TUN see only the client: its COOKIE-ECHO after INIT already means ESTABLISHED.
    #[test]
    fn input_only_reaches_established_without_replies() {
        let mut s = S::None;
        for ev in [SctpEvent::Init, SctpEvent::CookieEcho, SctpEvent::Data] {
            s = transition(s, SctpDir::InputOnly, ev);
        }
        assert_eq!(s, S::Established);
        assert_eq!(
            transition(s, SctpDir::InputOnly, SctpEvent::ShutdownAck),
            S::Closed
        );
    }

    #[test]
    fn ipvs_default_timeouts() {
        let mut t = uvs_conntrack::Timeouts::default();
        assert_eq!(timeout_ms(S::None, &t), 2_000);
        assert_eq!(timeout_ms(S::Init1, &t), 4_000);
        assert_eq!(timeout_ms(S::CookieSent, &t), 61_000);
        assert_eq!(timeout_ms(S::Established, &t), 900_000);
        assert_eq!(timeout_ms(S::Rejected, &t), 4_000);
        assert_eq!(timeout_ms(S::Closed, &t), 61_000);
        t.sctp[S::ShutdownSent as usize] = 5_000;
        assert_eq!(timeout_ms(S::ShutdownSent, &t), 5_000);
    }

    #[test]
    fn names() {
        assert_eq!(S::Established.name(), "ESTABLISHED");
        assert_eq!(S::ShutdownAckSent.name(), "S-ACK-SENT");
        assert!(S::CookieEchoed.is_handshake());
        assert!(!S::Established.is_handshake());
    }
}
