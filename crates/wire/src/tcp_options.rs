//! TCP options (RFC 9293 §3.2, RFC 7323 window scale and timestamps, RFC 2018 SACK): the
//! ones a SYN proxy reads, writes and translates.
//!
//! [`TcpOptions::parse`] reads an options area and remembers where the timestamp and SACK
//! blocks sit, so a spliced connection can shift them in place; [`write_syn_options`] and
//! [`write_ts_option`] lay options out as Linux does (MSS, SACK-permitted with timestamps,
//! NOP + window scale).

use crate::bytes::get8;

/// Option kinds.
pub mod kind {
    /// End of option list.
    pub const EOL: u8 = 0;
    /// No operation (padding).
    pub const NOP: u8 = 1;
    /// Maximum segment size (SYN only).
    pub const MSS: u8 = 2;
    /// Window scale (SYN only), RFC 7323 §2.
    pub const WSCALE: u8 = 3;
    /// SACK permitted (SYN only), RFC 2018.
    pub const SACK_PERM: u8 = 4;
    /// SACK blocks, RFC 2018.
    pub const SACK: u8 = 5;
    /// Timestamps, RFC 7323 §3.
    pub const TIMESTAMP: u8 = 8;
}

/// Why an options area was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// An option's length byte is missing, below 2, or runs past the area.
    #[error("tcp option length out of range")]
    BadLength,
    /// A known option with the wrong length for its kind.
    #[error("tcp option of kind {0} has the wrong length")]
    WrongSize(u8),
}

/// What an options area holds. Offsets are from the start of the options area.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// MSS.
    pub mss: Option<u16>,
    /// Window-scale shift as sent (a receiver uses at most 14, RFC 7323 §2.3).
    pub wscale: Option<u8>,
    /// SACK permitted.
    pub sack_perm: bool,
    /// TSval and TSecr.
    pub timestamp: Option<(u32, u32)>,
    /// Offset of the timestamp option's TSval.
    pub ts_at: Option<u8>,
    /// Offset of the first SACK block and the number of blocks.
    pub sack_at: Option<(u8, u8)>,
}

impl TcpOptions {
    /// Reads an options area (the bytes between the fixed header and the data offset).
    pub fn parse(opts: &[u8]) -> Result<Self, OptionsError> {
        let mut o = TcpOptions::default();
        let mut i = 0usize;
        while i < opts.len() {
            let k = opts[i];
            match k {
                kind::EOL => break,
                kind::NOP => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let len = usize::from(get8(opts, i + 1).ok_or(OptionsError::BadLength)?);
            if len < 2 || i + len > opts.len() {
                return Err(OptionsError::BadLength);
            }
            let body = &opts[i + 2..i + len];
            let exact = |n: usize| {
                if body.len() == n {
                    Ok(())
                } else {
                    Err(OptionsError::WrongSize(k))
                }
            };
            match k {
                kind::MSS => {
                    exact(2)?;
                    o.mss = Some(u16::from_be_bytes([body[0], body[1]]));
                }
                kind::WSCALE => {
                    exact(1)?;
                    o.wscale = Some(body[0]);
                }
                kind::SACK_PERM => {
                    exact(0)?;
                    o.sack_perm = true;
                }
                kind::TIMESTAMP => {
                    exact(8)?;
                    let v = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    let e = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                    o.timestamp = Some((v, e));
                    o.ts_at = Some((i + 2) as u8);
                }
                kind::SACK => {
                    if body.is_empty() || !body.len().is_multiple_of(8) {
                        return Err(OptionsError::WrongSize(k));
                    }
                    o.sack_at = Some(((i + 2) as u8, (body.len() / 8) as u8));
                }
                _ => {}
            }
            i += len;
        }
        Ok(o)
    }
}

/// Writes a SYN's (or SYN-ACK's) options into `out`, Linux's order: MSS, then SACK-permitted
/// sharing a word with the timestamp (or NOP NOP before it), then NOP + window scale.
/// Returns the length, a multiple of 4 (at most 20), or 0 if `out` is too short.
pub fn write_syn_options(
    out: &mut [u8],
    mss: u16,
    wscale: Option<u8>,
    sack_perm: bool,
    timestamp: Option<(u32, u32)>,
) -> usize {
    let mut b = [0u8; 20];
    let mut n = 0;
    let m = mss.to_be_bytes();
    b[..4].copy_from_slice(&[kind::MSS, 4, m[0], m[1]]);
    n += 4;
    match (timestamp, sack_perm) {
        (Some(ts), sack) => {
            if sack {
                b[n..n + 2].copy_from_slice(&[kind::SACK_PERM, 2]);
            } else {
                b[n..n + 2].copy_from_slice(&[kind::NOP, kind::NOP]);
            }
            n += 2;
            n += ts_bytes(&mut b[n..], ts);
        }
        (None, true) => {
            b[n..n + 4].copy_from_slice(&[kind::NOP, kind::NOP, kind::SACK_PERM, 2]);
            n += 4;
        }
        (None, false) => {}
    }
    if let Some(ws) = wscale {
        b[n..n + 4].copy_from_slice(&[kind::NOP, kind::WSCALE, 3, ws]);
        n += 4;
    }
    match out.get_mut(..n) {
        Some(o) => {
            o.copy_from_slice(&b[..n]);
            n
        }
        None => 0,
    }
}

/// Writes NOP NOP + timestamp (12 bytes, the usual non-SYN layout); 0 if `out` is short.
pub fn write_ts_option(out: &mut [u8], ts: (u32, u32)) -> usize {
    let Some(o) = out.get_mut(..12) else {
        return 0;
    };
    o[0] = kind::NOP;
    o[1] = kind::NOP;
    ts_bytes(&mut o[2..], ts) + 2
}

fn ts_bytes(out: &mut [u8], (v, e): (u32, u32)) -> usize {
    out[0] = kind::TIMESTAMP;
    out[1] = 10;
    out[2..6].copy_from_slice(&v.to_be_bytes());
    out[6..10].copy_from_slice(&e.to_be_bytes());
    10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_syn_options() {
        // A Linux 6.x client's SYN: MSS 1460, SACK_PERM, TS, NOP, WS 7.
        let opts = [
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let o = TcpOptions::parse(&opts).unwrap();
        assert_eq!(o.mss, Some(1460));
        assert!(o.sack_perm);
        assert_eq!(o.timestamp, Some((1, 0)));
        assert_eq!(o.ts_at, Some(8));
        assert_eq!(o.wscale, Some(7));
        let mut out = [0u8; 20];
        assert_eq!(
            write_syn_options(&mut out, 1460, Some(7), true, Some((1, 0))),
            20
        );
        assert_eq!(out, opts);
    }

    #[test]
    fn sack_blocks_and_padding() {
        let opts = [
            1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0,
        ];
        let o = TcpOptions::parse(&opts).unwrap();
        assert_eq!(o.sack_at, Some((4, 2)));
        assert_eq!(o.timestamp, None);
    }

    #[test]
    fn malformed_options_are_refused() {
        assert_eq!(TcpOptions::parse(&[2]), Err(OptionsError::BadLength));
        assert_eq!(TcpOptions::parse(&[2, 1]), Err(OptionsError::BadLength));
        assert_eq!(TcpOptions::parse(&[2, 5, 0]), Err(OptionsError::BadLength));
        assert_eq!(
            TcpOptions::parse(&[2, 3, 0, 0]),
            Err(OptionsError::WrongSize(2))
        );
        assert_eq!(
            TcpOptions::parse(&[5, 6, 0, 0, 0, 0]),
            Err(OptionsError::WrongSize(5))
        );
        // Unknown kinds are skipped by their length; EOL ends the list.
        assert_eq!(
            TcpOptions::parse(&[30, 3, 9, 0, 2, 4]).unwrap(),
            TcpOptions::default()
        );
    }

    #[test]
    fn option_layouts_without_timestamps() {
        let mut out = [0u8; 20];
        assert_eq!(write_syn_options(&mut out, 536, None, true, None), 8);
        assert_eq!(out[..8], [2, 4, 2, 24, 1, 1, 4, 2]);
        assert_eq!(write_syn_options(&mut out, 536, None, false, None), 4);
        assert_eq!(write_syn_options(&mut out[..3], 536, None, false, None), 0);
        assert_eq!(write_ts_option(&mut out, (5, 6)), 12);
        assert_eq!(out[..12], [1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6]);
    }
}
