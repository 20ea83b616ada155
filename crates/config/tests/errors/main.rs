//! Each validation error: its message, hint, field path and the exact line:column it points at.
//!
//! The expected position is found by searching the case's YAML for a marker substring (the
//! offending node), so every case checks that the error lands on that node.

mod cluster;
mod global;
mod service;
mod structure;

use uvs_config::{load_str, ConfigError};

/// Interfaces shared by the service cases: both families, two /24s and two /64s.
const IFACES: &str = "\
interfaces:
  - name: uvs-lb0
    local: [198.18.0.3, \"2001:2::3\"]
    networks: [198.18.0.0/24, \"2001:2::/64\", 198.18.1.0/24, \"2001:2:0:1::/64\"]
";

/// 1-based (line, column) of the `nth` (0-based) occurrence of `needle` in `src[from..]`.
/// A `|` in `needle` marks the exact spot within it (`"rise: |0"` is the `0`).
fn pos_of(src: &str, from: usize, needle: &str, nth: usize) -> (usize, usize) {
    let shift = needle.find('|').unwrap_or(0);
    let needle = needle.replace('|', "");
    let at = shift
        + from
        + src[from..]
            .match_indices(&needle)
            .nth(nth)
            .unwrap_or_else(|| panic!("marker {needle:?} #{nth} not in:\n{src}"))
            .0;
    let before = &src[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

struct Case {
    /// The YAML after IFACES (or the whole document when `whole` is set).
    yaml: &'static str,
    whole: bool,
    /// Marker of the node the error must point at, and which occurrence.
    at: &'static str,
    nth: usize,
    path: &'static str,
    message: &'static str,
    hint: Option<&'static str>,
}

const fn case(
    yaml: &'static str,
    at: &'static str,
    path: &'static str,
    message: &'static str,
    hint: Option<&'static str>,
) -> Case {
    Case {
        yaml,
        whole: false,
        at,
        nth: 0,
        path,
        message,
        hint,
    }
}

fn check(c: &Case) -> ConfigError {
    let src = if c.whole {
        c.yaml.to_string()
    } else {
        format!("{IFACES}{}", c.yaml)
    };
    let err = match load_str(&src, "uvs.yaml") {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e,
    };
    let from = if c.whole { 0 } else { IFACES.len() };
    let (line, column) = pos_of(&src, from, c.at, c.nth);
    assert_eq!(
        (err.line, err.column, err.path.as_str()),
        (line, column, c.path),
        "position/path of `{err}` for:\n{src}"
    );
    assert!(
        err.message.contains(c.message),
        "message {:?} lacks {:?}",
        err.message,
        c.message
    );
    match (c.hint, &err.hint) {
        (None, _) => {}
        (Some(want), Some(got)) => assert!(got.contains(want), "hint {got:?} lacks {want:?}"),
        (Some(want), None) => panic!("no hint, wanted {want:?} in `{err}`"),
    }
    assert_eq!(err.file, "uvs.yaml");
    err
}

impl Case {
    const fn nth(self, nth: usize) -> Case {
        Case { nth, ..self }
    }
    const fn whole(self) -> Case {
        Case {
            whole: true,
            ..self
        }
    }
}

#[test]
fn the_brief_example_formats_exactly() {
    let src = format!(
        "{IFACES}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         scheduler: rr\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 81\n    \
         scheduler: rrr\n"
    );
    let err = load_str(&src, "uvs.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "uvs.yaml:13:16: services[1].scheduler: unknown scheduler 'rrr' — did you mean 'rr'?"
    );
}
