//! uvs configuration: the YAML schema, its validation, diff and save.
//!
//! ```text
//! YAML ──yaml_serde──► raw structs ──validate──► Config ──to_yaml──► YAML
//!   └──saphyr-parser──► MarkTree (path → line:column) ──┘     diff(old, new) → ConfigDiff
//! ```
//!
//! Every mistake comes back as one [`ConfigError`] naming `file:line:column`, the field path and
//! usually the fix: `uvs.yaml:12:16: services[1].scheduler: unknown scheduler 'rrr' — did you
//! mean 'rr'?`. Semantics follow IPVS and ipvsadm where they have an answer (defaults,
//! thresholds, persistence netmasks, port-0 services, mixed families only for tunnels).

mod diff;
mod error;
mod marks;
mod model;
mod net;
mod raw;
mod save;
mod validate;

pub use diff::{diff, ConfigDiff, RealServerChange, ServiceChange};
pub use error::ConfigError;
pub use model::{
    Admin, Announce, BgpConfig, ClientLookup, Cluster, ClusterGroup, ClusterRole, Config,
    ConnTable, Forwarding, HealthCheck, HealthCheckKind, HttpUrl, Interface, Layer7, Mark, Match,
    MemberConfig, MemberHash, Metrics, Persistence, Pool, PortRange, Protocol, RealServer, Route,
    Rule, Scheduler, SchedulerFlag, Service, ServiceKey, Site, SorryServer, StatusCodes,
    SyncConfig, SyncMode, Timeouts, TunCsum, Tunnel, Withdraw, Workers, XdpMode, ZeroCopy,
};
pub use net::{IpPrefix, PrefixError};
pub use save::to_yaml;
pub use validate::{
    DEFAULT_PERSISTENCE, MAX_MARK_PORT_RANGES, MAX_OWNED_PER_FAMILY, MAX_REALS_PER_FAMILY,
    MAX_REAL_PORTS, MAX_TIMEOUT,
};

use marks::{MarkTree, TreeError};
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use validate::Ctx;

/// Largest configuration accepted, in bytes. A configuration with a thousand services is a few
/// hundred KiB; past this, parsing time and memory (linear, but large) are all that is left.
pub const MAX_BYTES: usize = 4 << 20;

/// Most `[` and `{` a text saphyr could not parse may hold for libyaml to get it: libyaml's
/// flow scanning is quadratic in nesting depth, and only saphyr's pass enforces the limit.
const FALLBACK_MAX_FLOW: usize = 256;

/// Reads and validates a configuration file. Errors name the file as given.
///
/// The file must be a regular file (checked before it is opened, so a FIFO cannot block the
/// reader) of at most [`MAX_BYTES`], read no further than that, in UTF-8 (a byte-order mark is
/// skipped).
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    load_file_for_host(path, &[])
}

/// As [`load_file`], and refuses addresses that the host itself holds (`host`, as `ip addr`
/// lists them) where uvs would own them (VIPs, local and FullNAT pool addresses) or forward to
/// them (real and sorry servers). uvsd passes its host's addresses at start and reload.
pub fn load_file_for_host(path: &Path, host: &[IpAddr]) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let bytes = read_bounded(path, &file)?;
    let src = decode(&bytes, &file)?;
    load_str_for_host(src, &file, host)
}

/// Validates a configuration held in memory; `file_name` is used in error messages.
pub fn load_str(src: &str, file_name: &str) -> Result<Config, ConfigError> {
    load_str_for_host(src, file_name, &[])
}

/// As [`load_str`], with the host's addresses as in [`load_file_for_host`].
pub fn load_str_for_host(
    src: &str,
    file_name: &str,
    host: &[IpAddr],
) -> Result<Config, ConfigError> {
    let at = |line: usize, column: usize, path: &str, message: String| ConfigError {
        file: file_name.to_string(),
        line,
        column,
        path: path.to_string(),
        message,
        hint: None,
    };
    if src.len() > MAX_BYTES {
        return Err(too_big(file_name));
    }
    // Editors hide a byte-order mark; columns on line 1 are counted without it.
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    if src.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        return Err(
            at(1, 1, "", "the configuration is empty".into()).with_hint(Some(
                "it needs at least `interfaces:`; see configs/demo.yaml".into(),
            )),
        );
    }
    // The positions pass runs first: it enforces the nesting and alias limits before libyaml
    // (through yaml_serde) sees the text, and finds duplicate keys, which yaml_serde reports
    // at the mapping rather than at the key.
    let tree = match MarkTree::parse(src) {
        Ok(tree) => {
            if let Some(d) = &tree.duplicate {
                return Err(at(
                    d.second.line,
                    d.second.column,
                    &d.path,
                    format!("duplicate key, first at line {}", d.first.line),
                )
                .with_hint(Some(
                    "YAML keys are unique within a mapping: remove one".into(),
                )));
            }
            tree
        }
        Err(TreeError::Limit { pos, message, hint }) => {
            return Err(at(pos.line, pos.column, "", message).with_hint(Some(hint)))
        }
        Err(TreeError::Syntax { pos, message }) => {
            // Saphyr reads YAML 1.2, libyaml 1.1: libyaml may accept the file or word the
            // mistake better, but the limits were checked only up to saphyr's error, so libyaml
            // gets the text only if it can hold no deep flow nesting and no alias.
            let flow = src.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
            if flow > FALLBACK_MAX_FLOW || src.contains('*') {
                return Err(at(
                    pos.line,
                    pos.column,
                    "",
                    format!("YAML syntax error: {message}"),
                ));
            }
            // If libyaml accepts it, the file is still a valid configuration; only the
            // positions of semantic errors degrade to the top of the file.
            MarkTree::default()
        }
    };
    let raw: raw::RawConfig = yaml_serde::from_str(src).map_err(|e| serde_error(&e, file_name))?;
    validate::validate(
        &Ctx {
            file: file_name,
            tree: &tree,
            host,
        },
        raw,
    )
}

/// An error about the file as a whole: no line or column.
fn whole_file(file: &str, message: String, hint: Option<String>) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        line: 0,
        column: 0,
        path: String::new(),
        message,
        hint,
    }
}

fn too_big(file: &str) -> ConfigError {
    whole_file(
        file,
        format!(
            "the configuration is larger than the {} MiB limit",
            MAX_BYTES >> 20
        ),
        Some("is this the right file?".into()),
    )
}

/// The file's bytes, refusing anything but a regular file and stopping past [`MAX_BYTES`]
/// (a regular file can grow while it is read, and /proc files report size 0).
fn read_bounded(path: &Path, file: &str) -> Result<Vec<u8>, ConfigError> {
    let cannot = |e: std::io::Error| whole_file(file, format!("cannot read the file: {e}"), None);
    let regular = |meta: std::fs::Metadata| {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        let kind = if t.is_file() {
            return Ok(());
        } else if t.is_dir() {
            "a directory"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_socket() {
            "a socket"
        } else {
            "a special file"
        };
        Err(whole_file(
            file,
            format!("not a regular file but {kind}"),
            Some("the configuration must be a regular file (or a symbolic link to one)".into()),
        ))
    };
    // Before opening: opening a FIFO waits for a writer. Again after, on what was opened.
    regular(std::fs::metadata(path).map_err(cannot)?)?;
    let f = std::fs::File::open(path).map_err(cannot)?;
    regular(f.metadata().map_err(cannot)?)?;
    let mut bytes = Vec::new();
    f.take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > MAX_BYTES {
        return Err(too_big(file));
    }
    Ok(bytes)
}

/// The text of a file: UTF-8, without its byte-order mark. Other bytes are refused at their
/// line and column (in characters, as every position).
fn decode<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str, ConfigError> {
    let at = |line: usize, column: usize, message: String| ConfigError {
        file: file.to_string(),
        line,
        column,
        path: String::new(),
        message,
        hint: Some("save it as UTF-8".into()),
    };
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        return Err(at(
            1,
            1,
            "the file is UTF-16 (it starts with a UTF-16 byte-order mark)".into(),
        ));
    }
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        // The prefix is valid UTF-8, so it splits into characters.
        let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        at(
            line,
            column,
            format!(
                "the file is not UTF-8 (byte {:#04x})",
                bytes[e.valid_up_to()]
            ),
        )
    })
}

/// A yaml_serde error (syntax, type, unknown or duplicate field) as a [`ConfigError`].
///
/// yaml_serde's message reads `path: message at line L column C`; the path and position are
/// split out, and unknown fields and duplicate keys point at the key itself.
fn serde_error(e: &yaml_serde::Error, file_name: &str) -> ConfigError {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    let mut text = e
        .to_string()
        .replace(&format!(" at line {line} column {column}"), "");
    // Serde names Rust types; say what the YAML should hold instead.
    for (rust, yaml) in [
        ("expected u64", "expected a whole number ≥ 0"),
        ("expected f64", "expected a number"),
        ("expected a string", "expected a single value"),
    ] {
        text = text.replace(rust, yaml);
    }
    if let Some(i) = text.find("expected struct Raw") {
        text.truncate(i);
        text.push_str("expected a mapping of settings");
    }
    // libyaml's own messages ("did not find expected ',' or ']', while parsing a flow
    // sequence at line 3 column 12") have no field path.
    if text.contains(", while ") {
        text = format!("YAML syntax error: {text}");
    }
    let (mut path, mut message) = match text.split_once(": ") {
        Some((p, m)) if !p.contains(char::is_whitespace) && !p.is_empty() => {
            (p.to_string(), m.to_string())
        }
        _ => (String::new(), text.clone()),
    };
    let mut hint = None;
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once('`') {
            let candidates: Vec<&str> = expected
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|s| !s.is_empty())
                .collect();
            hint = Some(if field == "<<" {
                // yaml_serde applies merge keys only to untyped values, not to structs.
                "merge keys are not supported: anchor a whole value instead \
                 (`real_servers: &pool [...]`, then `real_servers: *pool`)"
                    .to_string()
            } else {
                error::suggest(field, &candidates)
            });
            path = marks::join(&path, field);
            message = format!("unknown field '{field}'");
        }
    }
    ConfigError {
        file: file_name.to_string(),
        line,
        column,
        path,
        message,
        hint,
    }
}
