//! Telling a running `uvs-agent` what the application on this server wants: take it out
//! of rotation before a deploy, put it back, report its own load.
//!
//! The agent listens on a Unix socket (`uvs-agent run --socket PATH`, default
//! [`DEFAULT_SOCKET`]). A request is one line, a [`Command`]; the answer is one line,
//! `ok <the reply the agent now gives balancers>` or `error <why>`.
//!
//! ```no_run
//! use std::path::Path;
//! use uvs_agent::client::{self, Command};
//!
//! let sock = Path::new(uvs_agent::client::DEFAULT_SOCKET);
//! // Before a deploy: no new connections, existing ones finish.
//! let now = client::send(sock, &Command::Drain)?;
//! assert!(now.contains("drain"));
//! // The application's own figure (0 idle ..= 100 saturated) joins CPU and run queue.
//! client::send(sock, &Command::Load(Some(40)))?;
//! client::send(sock, &Command::Ready)?;
//! # Ok::<(), uvs_agent::client::ClientError>(())
//! ```
//!
//! Behind FullNAT the application's peer is the balancer's pool address; [`client_of`] asks
//! the agent (which asks uvsd, see [`crate::lookup`]) for the client's own address:
//!
//! ```no_run
//! use uvs_agent::client::{self, DEFAULT_SOCKET};
//! use uvs_agent::lookup::Protocol;
//!
//! // `stream.local_addr()` and `stream.peer_addr()` of an accepted TCP connection:
//! let (local, peer) = ("198.18.1.11:80".parse()?, "198.18.1.100:40001".parse()?);
//! match client::client_of(DEFAULT_SOCKET.as_ref(), Protocol::Tcp, local, peer)? {
//!     Some(c) => println!("client {} (via {})", c.client, c.virtual_service),
//!     None => println!("uvsd knows no such connection"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

/// Where `uvs-agent run` listens for commands unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/uvs-agent.sock";
/// Longest command line the agent reads.
pub const MAX_COMMAND: usize = 512;
/// How long a client waits for the agent's answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);

/// A request to the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Administrative state `drain`: no new connections except persistent clients'.
    Drain,
    /// Administrative state `ready`: cancels drain and maint.
    Ready,
    /// Administrative state `maint`: no new connections at all.
    Maint,
    /// Operational state down (`stopped`), with an optional reason for the balancer's log.
    Down(Option<String>),
    /// Operational state up again.
    Up,
    /// The application's load, 0 (idle) ..= 100 (saturated), or `None` to withdraw it.
    /// The agent forgets it if it is not repeated within its `--app-load-ttl`.
    Load(Option<u8>),
    /// Changes nothing; the answer is the current reply.
    Status,
}

/// Why a command line or a request failed.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("unknown command {0:?}: expected drain, ready, maint, down [reason], up, load N|none or status")]
    Unknown(String),
    #[error("bad load {0:?}: a whole number 0..=100, or none")]
    BadLoad(String),
    #[error("command longer than {MAX_COMMAND} bytes")]
    TooLong,
    #[error("cannot reach uvs-agent at {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("talking to uvs-agent: {0}")]
    Io(#[from] std::io::Error),
    #[error("uvs-agent refused the command: {0}")]
    Refused(String),
    #[error("uvs-agent answered something unexpected: {0:?}")]
    BadAnswer(String),
}

impl FromStr for Command {
    type Err = ClientError;

    fn from_str(line: &str) -> Result<Command, ClientError> {
        if line.len() > MAX_COMMAND {
            return Err(ClientError::TooLong);
        }
        let line = line.trim();
        let (verb, arg) = match line.split_once(char::is_whitespace) {
            Some((v, a)) => (v, a.trim()),
            None => (line, ""),
        };
        let no_arg = |c: Command| {
            if arg.is_empty() {
                Ok(c)
            } else {
                Err(ClientError::Unknown(line.to_string()))
            }
        };
        match verb.to_ascii_lowercase().as_str() {
            "drain" => no_arg(Command::Drain),
            "ready" => no_arg(Command::Ready),
            "maint" => no_arg(Command::Maint),
            "up" => no_arg(Command::Up),
            "status" => no_arg(Command::Status),
            "down" | "stopped" => {
                Ok(Command::Down((!arg.is_empty()).then(|| {
                    arg.chars().filter(|c| !c.is_control()).collect()
                })))
            }
            "load" => match arg {
                "none" => Ok(Command::Load(None)),
                a => match a.parse::<u8>() {
                    Ok(v) if v <= 100 => Ok(Command::Load(Some(v))),
                    _ => Err(ClientError::BadLoad(a.to_string())),
                },
            },
            _ => Err(ClientError::Unknown(line.to_string())),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Drain => f.write_str("drain"),
            Command::Ready => f.write_str("ready"),
            Command::Maint => f.write_str("maint"),
            Command::Up => f.write_str("up"),
            Command::Status => f.write_str("status"),
            Command::Down(None) => f.write_str("down"),
            Command::Down(Some(r)) => write!(f, "down {r}"),
            Command::Load(None) => f.write_str("load none"),
            Command::Load(Some(v)) => write!(f, "load {v}"),
        }
    }
}

/// Sends `cmd` to the agent at `socket`; returns the reply balancers now get
/// (`up drain 63%`).
pub fn send(socket: &Path, cmd: &Command) -> Result<String, ClientError> {
    exchange(socket, &cmd.to_string())
}

/// One line to the agent, its `ok` answer's text back.
fn exchange(socket: &Path, line: &str) -> Result<String, ClientError> {
    let mut s = UnixStream::connect(socket).map_err(|e| ClientError::Connect {
        path: socket.display().to_string(),
        source: e,
    })?;
    s.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    s.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    s.write_all(format!("{line}\n").as_bytes())?;
    let mut line = String::new();
    // A few KiB at most: a wrong peer on the socket cannot make us buffer forever.
    BufReader::new(std::io::Read::take(s, 4096)).read_line(&mut line)?;
    let line = line.trim_end();
    if let Some(rest) = line.strip_prefix("ok ") {
        Ok(rest.to_string())
    } else if line == "ok" {
        Ok(String::new())
    } else if let Some(why) = line.strip_prefix("error ") {
        Err(ClientError::Refused(why.to_string()))
    } else {
        Err(ClientError::BadAnswer(line.to_string()))
    }
}

/// The command word of a client lookup on the agent's socket:
/// `client-of PROTOCOL SERVER PEER`, answered `ok client ADDR:PORT virtual ADDR:PORT` or
/// `ok unknown`.
pub const CLIENT_OF: &str = "client-of";

/// The client of a connection, as uvsd knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOf {
    /// The client's own address and port.
    pub client: SocketAddr,
    /// The virtual service it connected to.
    pub virtual_service: SocketAddr,
}

/// Who is the client of the connection whose ends are `local` (this server's address and
/// port) and `peer` (the address and port it sees, the balancer's pool address behind
/// FullNAT)? Asks the agent at `socket`, which asks uvsd; `None` when uvsd tracks no such
/// connection.
pub fn client_of(
    socket: &Path,
    protocol: crate::lookup::Protocol,
    local: SocketAddr,
    peer: SocketAddr,
) -> Result<Option<ClientOf>, ClientError> {
    let line = format!("{CLIENT_OF} {} {local} {peer}", protocol.name());
    parse_client_of_answer(&exchange(socket, &line)?)
}

/// The agent's side: the arguments of a `client-of` line (after the word).
pub fn parse_client_of(
    args: &str,
) -> Result<(crate::lookup::Protocol, SocketAddr, SocketAddr), ClientError> {
    let bad = || ClientError::Unknown(format!("{CLIENT_OF} {args}"));
    let w: Vec<&str> = args.split_whitespace().collect();
    let [p, local, peer] = w[..] else {
        return Err(bad());
    };
    let protocol = p.parse().map_err(|_| bad())?;
    let local: SocketAddr = local.parse().map_err(|_| bad())?;
    let peer: SocketAddr = peer.parse().map_err(|_| bad())?;
    Ok((protocol, local, peer))
}

/// `client ADDR:PORT virtual ADDR:PORT` or `unknown`.
pub fn parse_client_of_answer(text: &str) -> Result<Option<ClientOf>, ClientError> {
    let w: Vec<&str> = text.split_whitespace().collect();
    match w[..] {
        ["unknown"] => Ok(None),
        ["client", c, "virtual", v] => match (c.parse(), v.parse()) {
            (Ok(client), Ok(virtual_service)) => Ok(Some(ClientOf {
                client,
                virtual_service,
            })),
            _ => Err(ClientError::BadAnswer(text.to_string())),
        },
        _ => Err(ClientError::BadAnswer(text.to_string())),
    }
}

/// The answer text for `found` ([`parse_client_of_answer`]'s inverse).
pub fn client_of_answer(found: Option<ClientOf>) -> String {
    match found {
        None => "unknown".to_string(),
        Some(c) => format!("client {} virtual {}", c.client, c.virtual_service),
    }
}

/// `drain`; see [`send`].
pub fn drain(socket: &Path) -> Result<String, ClientError> {
    send(socket, &Command::Drain)
}

/// `ready`; see [`send`].
pub fn ready(socket: &Path) -> Result<String, ClientError> {
    send(socket, &Command::Ready)
}

/// The current reply, changing nothing; see [`send`].
pub fn status(socket: &Path) -> Result<String, ClientError> {
    send(socket, &Command::Status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_print() {
        for (text, cmd) in [
            ("drain", Command::Drain),
            ("READY\n", Command::Ready),
            (" maint ", Command::Maint),
            ("up", Command::Up),
            ("status", Command::Status),
            ("down", Command::Down(None)),
            (
                "down deploying v2",
                Command::Down(Some("deploying v2".into())),
            ),
            ("load 0", Command::Load(Some(0))),
            ("load 100", Command::Load(Some(100))),
            ("load none", Command::Load(None)),
        ] {
            let got: Command = text.parse().unwrap();
            assert_eq!(got, cmd, "{text:?}");
            assert_eq!(got.to_string().parse::<Command>().unwrap(), cmd);
        }
    }

    #[test]
    fn client_of_lines() {
        let (p, l, r) = parse_client_of("tcp 198.18.1.11:80 198.18.1.100:40001").unwrap();
        assert_eq!(p, crate::lookup::Protocol::Tcp);
        assert_eq!(l, "198.18.1.11:80".parse().unwrap());
        assert_eq!(r, "198.18.1.100:40001".parse().unwrap());
        let (p, _, r) = parse_client_of("SCTP [2001:2::11]:80 [2001:2::100]:9").unwrap();
        assert_eq!(p, crate::lookup::Protocol::Sctp);
        assert_eq!(r.port(), 9);
        for bad in [
            "",
            "tcp 198.18.1.11:80",
            "icmp 198.18.1.11:80 198.18.1.100:1",
            "tcp 198.18.1.11 198.18.1.100:1",
            "tcp 198.18.1.11:80 198.18.1.100:1 x",
        ] {
            assert!(parse_client_of(bad).is_err(), "{bad:?}");
        }
        let c = ClientOf {
            client: "198.18.0.2:51234".parse().unwrap(),
            virtual_service: "198.18.100.1:80".parse().unwrap(),
        };
        for found in [Some(c), None] {
            assert_eq!(
                parse_client_of_answer(&client_of_answer(found)).unwrap(),
                found
            );
        }
        assert!(parse_client_of_answer("client x virtual y").is_err());
        assert!(parse_client_of_answer("up ready 100%").is_err());
    }

    #[test]
    fn bad_commands_say_why() {
        let err = |t: &str| t.parse::<Command>().unwrap_err().to_string();
        assert!(err("dran").starts_with("unknown command \"dran\""));
        assert!(err("drain now").starts_with("unknown command"));
        assert_eq!(
            err("load 101"),
            "bad load \"101\": a whole number 0..=100, or none"
        );
        assert_eq!(
            err("load -1"),
            "bad load \"-1\": a whole number 0..=100, or none"
        );
        assert_eq!(
            err(&"x".repeat(MAX_COMMAND + 1)),
            format!("command longer than {MAX_COMMAND} bytes")
        );
    }
}
