//! HAProxy's agent-check protocol, both ways.
//!
//! The balancer connects to the agent's TCP port (optionally sends a string, HAProxy's
//! `agent-send`), and reads one line ended by the first `\r` or `\n`. The line is words
//! separated by spaces, tabs or commas, in any order, case-insensitive:
//!
//! - `75%` — a weight, as a percentage of the weight configured for the server (HAProxy
//!   clamps it at 25600 %); `0%` takes the server out of rotation like a drain;
//! - `maxconn:30` — the server's connection limit;
//! - `ready`, `drain`, `maint` — the administrative state (`ready` cancels drain and
//!   maint; `drain` admits no new connections except persistent clients'; `maint` none);
//! - `up`, `down`, `stopped`, `fail` — the operational state (the last three all mean
//!   down, and say why);
//! - `#` at the start of a word begins a free-text description (the rest of the line).
//!
//! Of several words of one kind the last wins; what a reply does not mention does not
//! change ([`AgentState::apply`]). Words outside the grammar are ignored and reported
//! ([`Reply::unknown`]), as HAProxy does, so agents written for HAProxy that add words of
//! their own (`ready 100`) keep working. A known word with a bad value (`75`, `75%x`,
//! `maxconn:lots`), a line with control characters or that is not UTF-8, a line longer
//! than [`MAX_LINE`] bytes and a reply without an end of line are malformed: the whole
//! reply is refused with a [`ReplyError`] that says why, and nothing of it applies.

use std::fmt;

use thiserror::Error;

/// Longest reply line accepted, end of line excluded. Real replies are a few words; this
/// bounds what a broken or hostile agent can make the balancer buffer.
pub const MAX_LINE: usize = 1024;
/// Largest weight percentage; larger ones are clamped to it (HAProxy's limit).
pub const MAX_WEIGHT_PCT: u32 = 25_600;
/// Longest description kept (characters); the rest is cut off.
const MAX_DESCRIPTION: usize = 200;

/// The operational state words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Health {
    Up,
    /// `down`: the service is not there (process missing, port closed).
    Down,
    /// `stopped`: taken down on purpose.
    Stopped,
    /// `fail`: running but failing its own validity tests.
    Fail,
}

impl Health {
    pub fn word(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Stopped => "stopped",
            Health::Fail => "fail",
        }
    }

    pub fn is_up(self) -> bool {
        self == Health::Up
    }
}

/// The administrative state words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Admin {
    Ready,
    /// No new connections except from persistent clients; existing ones finish.
    Drain,
    /// No new connections at all.
    Maint,
}

impl Admin {
    pub fn word(self) -> &'static str {
        match self {
            Admin::Ready => "ready",
            Admin::Drain => "drain",
            Admin::Maint => "maint",
        }
    }
}

/// One parsed agent reply: what it said, and only that.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub health: Option<Health>,
    pub admin: Option<Admin>,
    /// Percentage of the configured weight, clamped to [`MAX_WEIGHT_PCT`].
    pub weight_pct: Option<u32>,
    /// Connection limit; 0 = none.
    pub maxconn: Option<u32>,
    /// Text after `#`, trimmed; `None` when absent or empty.
    pub description: Option<String>,
    /// Words outside the grammar, ignored (at most the first 8 are kept, for the log).
    pub unknown: Vec<String>,
}

/// Why a reply was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ReplyError {
    #[error("the agent sent nothing before closing the connection")]
    Empty,
    #[error(
        "the agent's reply has no end of line (\\n or \\r) before the connection closed: {0:?}"
    )]
    Incomplete(String),
    #[error("the agent's reply line is longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("the agent's reply is not UTF-8 text")]
    NotText,
    #[error("the agent's reply contains a control character (byte {0:#04x})")]
    ControlCharacter(u8),
    #[error("bad weight {0:?} in the agent's reply: a weight is a whole percentage like 75%")]
    BadWeight(String),
    #[error(
        "bad maxconn {0:?} in the agent's reply: maxconn:N with N a whole number of connections"
    )]
    BadMaxconn(String),
}

/// Parses what an agent sent: `bytes` is everything read, up to the connection's close
/// or beyond the end of the line (anything after the first `\r`/`\n` is ignored).
pub fn parse_reply(bytes: &[u8]) -> Result<Reply, ReplyError> {
    let end = bytes.iter().position(|&b| b == b'\n' || b == b'\r');
    let line = match end {
        Some(n) if n > MAX_LINE => return Err(ReplyError::TooLong),
        Some(n) => &bytes[..n],
        None if bytes.is_empty() => return Err(ReplyError::Empty),
        None if bytes.len() > MAX_LINE => return Err(ReplyError::TooLong),
        None => {
            return Err(ReplyError::Incomplete(
                String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned(),
            ))
        }
    };
    if let Some(&c) = line
        .iter()
        .find(|&&c| c != b'\t' && (c < 0x20 || c == 0x7f))
    {
        return Err(ReplyError::ControlCharacter(c));
    }
    let line = std::str::from_utf8(line).map_err(|_| ReplyError::NotText)?;
    parse_line(line)
}

/// Parses one reply line (without its end of line).
pub fn parse_line(line: &str) -> Result<Reply, ReplyError> {
    let mut reply = Reply::default();
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        if let Some(desc) = rest.strip_prefix('#') {
            let desc = desc.trim();
            if !desc.is_empty() {
                reply.description = Some(desc.chars().take(MAX_DESCRIPTION).collect());
            }
            break;
        }
        let len = rest.find([' ', '\t', ',']).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(len);
        rest = tail;
        let lower = word.to_ascii_lowercase();
        match lower.as_str() {
            "up" => reply.health = Some(Health::Up),
            "down" => reply.health = Some(Health::Down),
            "stopped" => reply.health = Some(Health::Stopped),
            "fail" => reply.health = Some(Health::Fail),
            "ready" => reply.admin = Some(Admin::Ready),
            "drain" => reply.admin = Some(Admin::Drain),
            "maint" => reply.admin = Some(Admin::Maint),
            // HAProxy's test for a weight word: it starts with a digit and has a '%'.
            w if w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('%') => {
                reply.weight_pct = Some(parse_pct(word)?);
            }
            w if w.starts_with("maxconn:") => {
                let v = &word["maxconn:".len()..];
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ReplyError::BadMaxconn(word.to_string()));
                }
                reply.maxconn = Some(
                    v.parse::<u32>()
                        .map_err(|_| ReplyError::BadMaxconn(word.to_string()))?,
                );
            }
            _ => {
                if reply.unknown.len() < 8 {
                    reply.unknown.push(word.to_string());
                }
            }
        }
    }
    Ok(reply)
}

/// `75%` → 75; digits then exactly one `%`; huge values clamp to [`MAX_WEIGHT_PCT`].
fn parse_pct(word: &str) -> Result<u32, ReplyError> {
    let bad = || ReplyError::BadWeight(word.to_string());
    let digits = word.strip_suffix('%').ok_or_else(bad)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // Any run of digits: past u32 it is clamped like any value over the limit.
    Ok(digits
        .parse::<u64>()
        .unwrap_or(u64::MAX)
        .min(u64::from(MAX_WEIGHT_PCT)) as u32)
}

impl fmt::Display for Reply {
    /// The reply as an agent sends it (without the end of line): health, admin state,
    /// weight, maxconn, then `#description`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words: Vec<String> = Vec::new();
        if let Some(h) = self.health {
            words.push(h.word().into());
        }
        if let Some(a) = self.admin {
            words.push(a.word().into());
        }
        if let Some(w) = self.weight_pct {
            words.push(format!("{w}%"));
        }
        if let Some(m) = self.maxconn {
            words.push(format!("maxconn:{m}"));
        }
        if let Some(d) = &self.description {
            // A description cannot carry a line end: it would end the reply early.
            let d: String = d
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            words.push(format!("#{d}"));
        }
        f.write_str(&words.join(" "))
    }
}

/// What the agent has said so far about one server: every reply changes only what it
/// mentions (HAProxy: "parameters which are not advertised by the agent are not
/// changed"), so a `drain` stays until a `ready`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentState {
    pub health: Health,
    pub admin: Admin,
    pub weight_pct: u32,
    /// 0 = no limit from the agent.
    pub maxconn: u32,
    /// The description of the last reply that changed the health or gave one.
    pub description: Option<String>,
}

impl Default for AgentState {
    /// Before any reply: up, ready, the configured weight, no limit.
    fn default() -> Self {
        AgentState {
            health: Health::Up,
            admin: Admin::Ready,
            weight_pct: 100,
            maxconn: 0,
            description: None,
        }
    }
}

impl AgentState {
    /// Applies a reply.
    pub fn apply(&mut self, r: &Reply) {
        if let Some(h) = r.health {
            self.health = h;
            self.description = r.description.clone();
        } else if r.description.is_some() {
            self.description = r.description.clone();
        }
        if let Some(a) = r.admin {
            self.admin = a;
        }
        if let Some(w) = r.weight_pct {
            self.weight_pct = w;
        }
        if let Some(m) = r.maxconn {
            self.maxconn = m;
        }
    }

    /// Whether the server is out of rotation: down (or stopped, failed) or in
    /// maintenance.
    pub fn is_out(&self) -> bool {
        !self.health.is_up() || self.admin == Admin::Maint
    }

    /// The weight percentage in force: 0 while draining.
    pub fn effective_weight_pct(&self) -> u32 {
        if self.admin == Admin::Drain {
            0
        } else {
            self.weight_pct
        }
    }

    /// A short account for logs: `up, drain, 75 %, maxconn 30 (deploying)`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}, {}, {} %",
            self.health.word(),
            self.admin.word(),
            self.weight_pct
        );
        if self.maxconn != 0 {
            s.push_str(&format!(", maxconn {}", self.maxconn));
        }
        if let Some(d) = &self.description {
            s.push_str(&format!(" ({d})"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Reply {
        parse_reply(format!("{line}\n").as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    /// Every reply form HAProxy's configuration manual lists for `agent-check`, literally.
    #[test]
    fn haproxy_manual_examples() {
        assert_eq!(ok("75%").weight_pct, Some(75));
        assert_eq!(ok("maxconn:30").maxconn, Some(30));
        assert_eq!(ok("ready").admin, Some(Admin::Ready));
        assert_eq!(ok("drain").admin, Some(Admin::Drain));
        assert_eq!(ok("maint").admin, Some(Admin::Maint));
        assert_eq!(ok("up").health, Some(Health::Up));
        assert_eq!(ok("down").health, Some(Health::Down));
        assert_eq!(ok("fail").health, Some(Health::Fail));
        assert_eq!(ok("stopped").health, Some(Health::Stopped));
        let r = ok("down#missing process");
        // '#' only starts a description at the start of a word: "down#missing" is one
        // unknown word, as in HAProxy.
        assert_eq!(r.health, None);
        let r = ok("down #missing process");
        assert_eq!(r.health, Some(Health::Down));
        assert_eq!(r.description.as_deref(), Some("missing process"));
        let r = ok("stopped # deploying v2 ");
        assert_eq!(
            (r.health, r.description.as_deref()),
            (Some(Health::Stopped), Some("deploying v2"))
        );
    }

    #[test]
    fn combinations_separators_case_and_last_wins() {
        let r = ok("up 75%");
        assert_eq!((r.health, r.weight_pct), (Some(Health::Up), Some(75)));
        let r = ok("75%,up,drain\tmaxconn:30");
        assert_eq!(
            (r.health, r.admin, r.weight_pct, r.maxconn),
            (Some(Health::Up), Some(Admin::Drain), Some(75), Some(30))
        );
        let r = ok("UP Drain 10% 20%, ready");
        assert_eq!(
            (r.health, r.admin, r.weight_pct),
            (Some(Health::Up), Some(Admin::Ready), Some(20))
        );
        assert_eq!(ok("MAXCONN:7").maxconn, Some(7));
        assert_eq!(ok(""), Reply::default(), "an empty line says nothing");
        assert_eq!(ok("  ,\t "), Reply::default());
        assert_eq!(parse_reply(b"50%\r\n").unwrap().weight_pct, Some(50));
        assert_eq!(parse_reply(b"50%\rdown\n").unwrap().health, None);
        assert_eq!(ok("0%").weight_pct, Some(0));
        assert_eq!(ok("100%").weight_pct, Some(100));
        assert_eq!(ok("25601%").weight_pct, Some(MAX_WEIGHT_PCT));
        assert_eq!(
            ok("99999999999999999999999%").weight_pct,
            Some(MAX_WEIGHT_PCT)
        );
    }

    #[test]
    fn unknown_words_are_reported_and_the_rest_applies() {
        // An agent written for HAProxy that says "ready 100" (a bare number).
        let r = ok("ready 100");
        assert_eq!(r.admin, Some(Admin::Ready));
        assert_eq!(r.unknown, ["100"]);
        let r = ok("up load:42 hello 80%");
        assert_eq!((r.health, r.weight_pct), (Some(Health::Up), Some(80)));
        assert_eq!(r.unknown, ["load:42", "hello"]);
        assert_eq!(
            ok("-5%").unknown,
            ["-5%"],
            "not a weight word for HAProxy either"
        );
    }

    #[test]
    fn malformed_replies_are_refused_whole() {
        let bad = |b: &[u8]| parse_reply(b).unwrap_err();
        assert_eq!(bad(b""), ReplyError::Empty);
        assert!(matches!(bad(b"up 75%"), ReplyError::Incomplete(s) if s == "up 75%"));
        assert_eq!(bad(b"75\x25x up\n"), ReplyError::BadWeight("75%x".into()));
        assert_eq!(bad(b"7%5%\n"), ReplyError::BadWeight("7%5%".into()));
        assert_eq!(
            bad(b"up maxconn:\n"),
            ReplyError::BadMaxconn("maxconn:".into())
        );
        assert_eq!(
            bad(b"maxconn:-1\n"),
            ReplyError::BadMaxconn("maxconn:-1".into())
        );
        assert_eq!(
            bad(b"maxconn:99999999999\n"),
            ReplyError::BadMaxconn("maxconn:99999999999".into())
        );
        assert_eq!(bad(b"up\x00 75%\n"), ReplyError::ControlCharacter(0));
        assert_eq!(bad(b"up \xff\n"), ReplyError::NotText);
        let long = vec![b'a'; MAX_LINE + 1];
        assert_eq!(bad(&long), ReplyError::TooLong);
        let mut long_line = vec![b' '; MAX_LINE + 1];
        long_line.push(b'\n');
        assert_eq!(bad(&long_line), ReplyError::TooLong);
        let mut just_fits = vec![b' '; MAX_LINE];
        just_fits.push(b'\n');
        assert_eq!(parse_reply(&just_fits), Ok(Reply::default()));
        // The messages say what is wrong.
        assert_eq!(
            bad(b"75%x\n").to_string(),
            "bad weight \"75%x\" in the agent's reply: a weight is a whole percentage like 75%"
        );
    }

    #[test]
    fn display_round_trips() {
        let r = Reply {
            health: Some(Health::Up),
            admin: Some(Admin::Drain),
            weight_pct: Some(63),
            maxconn: Some(12),
            description: Some("new\nrelease".into()),
            unknown: vec![],
        };
        let line = r.to_string();
        assert_eq!(line, "up drain 63% maxconn:12 #new release");
        let back = parse_line(&line).unwrap();
        assert_eq!(back.description.as_deref(), Some("new release"));
        assert_eq!(
            (back.health, back.admin, back.weight_pct),
            (r.health, r.admin, r.weight_pct)
        );
    }

    #[test]
    fn state_is_sticky() {
        let mut s = AgentState::default();
        assert!(!s.is_out());
        assert_eq!(s.effective_weight_pct(), 100);
        s.apply(&ok("drain 50%"));
        assert_eq!((s.admin, s.effective_weight_pct()), (Admin::Drain, 0));
        s.apply(&ok("80%"));
        assert_eq!(
            s.effective_weight_pct(),
            0,
            "still draining: only ready ends it"
        );
        s.apply(&ok("ready"));
        assert_eq!(s.effective_weight_pct(), 80);
        s.apply(&ok("stopped #deploy"));
        assert!(s.is_out());
        assert_eq!(s.summary(), "stopped, ready, 80 % (deploy)");
        s.apply(&ok("75%"));
        assert!(s.is_out(), "down until the agent says up");
        s.apply(&ok("up maint"));
        assert!(s.is_out());
        s.apply(&ok("ready maxconn:5"));
        assert!(!s.is_out());
        assert_eq!(s.summary(), "up, ready, 75 %, maxconn 5");
    }
}
