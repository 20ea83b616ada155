//! The admin socket: a Unix stream socket carrying one JSON line each way,
//! `{"argv":["-L","-n"]}` → `{"ok":true,"output":"..."}` (on failure `ok` is false and `output`
//! holds the message).
//!
//! Access control is the socket file's mode, which Linux checks on `connect` (write permission
//! is needed): 0600 for root only, or 0660 with the file's group set to `admin.group`. The file
//! is bound under a temporary name, given its mode and group, then renamed into place, so
//! there is no moment when it is reachable with looser permissions.
//!
//! Clients are served through `crate::gate`: many may be connected at once, each has
//! [`REQUEST_TIME`] to send its whole line, and at most [`MAX_WAITING`] may be mid-request
//! (one more and the longest-waiting is refused), so idle or dripping clients cannot block
//! `uvsadm`. Commands still run one at a time, so two edits never interleave their
//! read-modify-write of the configuration.

use crate::gate::{self, Ending, Limits, Refusal};
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use uvs_dataplane::wake::Stop;

/// The request line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRequest {
    pub argv: Vec<String>,
}

/// The response line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminResponse {
    pub ok: bool,
    pub output: String,
}

/// What the daemon runs for each request.
pub type AdminHandler = Arc<dyn Fn(&[String]) -> Result<String, String> + Send + Sync>;

/// Longest request line accepted (an argv is a few hundred bytes; an `-R` input, sent whole,
/// about 1 000 rules).
pub const MAX_REQUEST: usize = 64 * 1024;
/// Time a client has, from connecting, to send its whole request line.
pub const REQUEST_TIME: Duration = Duration::from_secs(2);
/// Clients connected and still sending their request, at most.
pub const MAX_WAITING: usize = 64;
/// Time a client has to take its answer; also how long `request` takes to send its line.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time `request` waits for uvsd's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

const LIMITS: Limits = Limits {
    max_waiting: MAX_WAITING,
    request_time: REQUEST_TIME,
    max_request: MAX_REQUEST,
    // Commands run one at a time; the second worker writes one answer while the next
    // command runs.
    workers: 2,
    // Whole requests are cheap to hold; scripts may run dozens of uvsadm at once.
    queue: 128,
    answer_time: CLIENT_TIMEOUT,
};

/// Serves the admin socket at `path` until `stop` is set, then removes the file.
///
/// A stale socket file (nothing accepting) is replaced; a live one is an error, since another
/// uvsd is using it. The mode is 0600, or 0660 with the group `group` (a name from
/// /etc/group, or a number).
pub fn serve(
    path: &Path,
    group: Option<&str>,
    handler: AdminHandler,
    stop: Arc<Stop>,
) -> io::Result<JoinHandle<()>> {
    let gid = match group {
        None => None,
        Some(g) => Some(resolve_group(g)?),
    };
    clear_stale(path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            with_context(
                e,
                format!("cannot create {} for the admin socket", dir.display()),
            )
        })?;
    }
    let tmp = temp_name(path);
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(|e| {
        with_context(
            e,
            format!("cannot create the admin socket {}", tmp.display()),
        )
    })?;
    let prepared = (|| {
        let mode = if gid.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        if let (Some(gid), Some(name)) = (gid, group) {
            std::os::unix::fs::chown(&tmp, None, Some(gid)).map_err(|e| {
                with_context(
                    e,
                    format!(
                        "cannot give the admin socket to group '{name}' (gid {gid}): uvsd must \
                         run as root or be a member of that group"
                    ),
                )
            })?;
        }
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = prepared {
        let _ = std::fs::remove_file(&tmp);
        return Err(with_context(
            e,
            format!("cannot set up the admin socket {}", path.display()),
        ));
    }
    let inode = std::fs::metadata(path).map(|m| m.ino()).ok();
    let path = path.to_path_buf();
    let protocol = Arc::new(AdminProtocol {
        handler,
        one_at_a_time: Mutex::new(()),
    });
    std::thread::Builder::new()
        .name("uvs-admin".into())
        .spawn(move || {
            gate::run("uvs-admin", listener, LIMITS, protocol, &stop);
            // Remove the file only if it is still ours (a newer uvsd may have replaced it).
            if std::fs::metadata(&path).map(|m| m.ino()).ok() == inode {
                let _ = std::fs::remove_file(&path);
            }
        })
}

/// One JSON line in, one out.
struct AdminProtocol {
    handler: AdminHandler,
    /// Held while a command runs.
    one_at_a_time: Mutex<()>,
}

impl gate::Protocol for AdminProtocol {
    fn complete(&self, request: &[u8]) -> bool {
        request.contains(&b'\n')
    }

    fn answer(&self, request: &[u8], ending: Ending) -> Vec<u8> {
        let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
        let response = if ending == Ending::TooLong {
            AdminResponse {
                ok: false,
                output: format!("bad request: longer than {MAX_REQUEST} bytes"),
            }
        } else {
            match serde_json::from_slice::<AdminRequest>(line) {
                Err(e) => AdminResponse {
                    ok: false,
                    output: format!("bad request (expected {{\"argv\": [...]}}): {e}"),
                },
                Ok(req) => {
                    let _turn = self
                        .one_at_a_time
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        (self.handler)(&req.argv)
                    }));
                    match run {
                        Ok(Ok(output)) => AdminResponse { ok: true, output },
                        Ok(Err(output)) => AdminResponse { ok: false, output },
                        Err(_) => AdminResponse {
                            ok: false,
                            output: "internal error in uvsd while running the command (see its \
                                     log)"
                                .into(),
                        },
                    }
                }
            }
        };
        response_line(&response)
    }

    fn refusal(&self, why: Refusal) -> Vec<u8> {
        let output = match why {
            Refusal::Slow => format!(
                "uvsd closed the admin connection: no complete request within {} s",
                REQUEST_TIME.as_secs()
            ),
            Refusal::Crowded => format!(
                "uvsd is busy: too many admin clients ({MAX_WAITING}) were connected without \
                 sending a request, and this one had waited longest; try again"
            ),
            Refusal::Busy => {
                "uvsd is busy: too many admin requests are queued; try again".to_string()
            }
        };
        response_line(&AdminResponse { ok: false, output })
    }
}

fn response_line(r: &AdminResponse) -> Vec<u8> {
    let mut text = serde_json::to_vec(r).unwrap_or_else(|_| {
        br#"{"ok":false,"output":"internal error: unprintable answer"}"#.to_vec()
    });
    text.push(b'\n');
    text
}

fn with_context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn temp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Removes a socket file nobody accepts on; refuses to touch a live socket or a non-socket.
fn clear_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(with_context(
                e,
                format!("cannot inspect {}", path.display()),
            ))
        }
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket: remove it or set another admin.socket",
                path.display()
            ),
        ));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "another uvsd is already serving the admin socket {}",
                path.display()
            ),
        ));
    }
    std::fs::remove_file(path)
        .map_err(|e| with_context(e, format!("cannot remove the stale {}", path.display())))
}

/// Sends one command to uvsd and returns its output; errors say what to do.
pub fn request(path: &Path, argv: &[String]) -> Result<String, String> {
    try_request(path, argv).map_err(|e| e.to_string())
}

/// Why a request failed: uvsd was not reached (or did not answer), or it answered and
/// refused the command. uvsadm exits differently for each, as ipvsadm does when it cannot
/// reach IPVS and when the kernel refuses a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// No answer: no socket, no permission, a timeout, an unreadable answer.
    Unreachable(String),
    /// uvsd's refusal, as it worded it.
    Refused(String),
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Unreachable(m) | RequestError::Refused(m) => f.write_str(m),
        }
    }
}

/// [`request`], telling a refusal from uvsd apart from not reaching it.
pub fn try_request(path: &Path, argv: &[String]) -> Result<String, RequestError> {
    let unreachable = |why: String| {
        RequestError::Unreachable(format!("cannot reach uvsd at {}: {why}", path.display()))
    };
    let stream = UnixStream::connect(path).map_err(|e| {
        unreachable(match e.kind() {
            io::ErrorKind::NotFound => "is it running? (no socket file)".into(),
            io::ErrorKind::ConnectionRefused => {
                "is it running? (connection refused: the socket file is stale)".into()
            }
            io::ErrorKind::PermissionDenied => permission_hint(path),
            _ => format!("{e}"),
        })
    })?;
    let talk = || -> io::Result<AdminResponse> {
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        let mut line = serde_json::to_string(&AdminRequest {
            argv: argv.to_vec(),
        })
        .map_err(io::Error::other)?;
        line.push('\n');
        (&stream).write_all(line.as_bytes())?;
        let mut answer = String::new();
        BufReader::new(&stream).read_line(&mut answer)?;
        if answer.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "uvsd closed the connection without answering",
            ));
        }
        serde_json::from_str(answer.trim_end()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unreadable answer from uvsd: {e}"),
            )
        })
    };
    match talk() {
        Ok(r) if r.ok => Ok(r.output),
        Ok(r) => Err(RequestError::Refused(r.output)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(RequestError::Unreachable(format!(
                "uvsd at {} did not answer within {} s",
                path.display(),
                ANSWER_TIMEOUT.as_secs()
            )))
        }
        Err(e) => Err(RequestError::Unreachable(format!(
            "talking to uvsd at {}: {e}",
            path.display()
        ))),
    }
}

/// Who may connect, from the socket file's mode and group.
fn permission_hint(path: &Path) -> String {
    let Ok(meta) = std::fs::metadata(path) else {
        return "permission denied: run as root".into();
    };
    if meta.mode() & 0o020 != 0 {
        let group = std::fs::read_to_string("/etc/group")
            .ok()
            .and_then(|t| group_name_in(&t, meta.gid()))
            .unwrap_or_else(|| meta.gid().to_string());
        format!("permission denied: run as root or a member of group {group}")
    } else {
        format!(
            "permission denied: the socket is for its owner only (mode {:04o}): run as root, \
             or set admin.group in the uvsd configuration",
            meta.mode() & 0o7777
        )
    }
}

/// A group name (from /etc/group) or number → gid.
pub fn resolve_group(group: &str) -> io::Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let text = std::fs::read_to_string("/etc/group")
        .map_err(|e| with_context(e, "cannot read /etc/group".into()))?;
    gid_in(&text, group).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "unknown group '{group}' for the admin socket: create it (groupadd {group}) or \
                 fix admin.group"
            ),
        )
    })
}

/// `name:x:gid:members` lines → the gid of `name`.
pub fn gid_in(etc_group: &str, name: &str) -> Option<u32> {
    etc_group.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.trim().parse().ok()
    })
}

/// `name:x:gid:members` lines → the name of `gid`.
pub fn group_name_in(etc_group: &str, gid: u32) -> Option<String> {
    etc_group.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        f.next()?;
        (f.next()?.trim().parse::<u32>().ok()? == gid).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUPS: &str = "root:x:0:\nadm:x:4:syslog\nuvs:x:998:alice,bob\n#junk\nbroken\n";

    #[test]
    fn etc_group_lookup() {
        assert_eq!(gid_in(GROUPS, "uvs"), Some(998));
        assert_eq!(gid_in(GROUPS, "root"), Some(0));
        assert_eq!(gid_in(GROUPS, "nope"), None);
        assert_eq!(gid_in(GROUPS, "broken"), None);
        assert_eq!(group_name_in(GROUPS, 4).as_deref(), Some("adm"));
        assert_eq!(group_name_in(GROUPS, 5), None);
    }

    #[test]
    fn temp_name_is_beside_the_socket() {
        let t = temp_name(Path::new("/run/uvs/uvsadm.sock"));
        assert_eq!(t.parent(), Some(Path::new("/run/uvs")));
        assert!(t
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("uvsadm.sock."));
    }
}
