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
    Admin, Config, ConnTable, Forwarding, HealthCheck, HealthCheckKind, Interface, Metrics,
    Persistence, Protocol, RealServer, Route, Scheduler, SchedulerFlag, Service, ServiceKey, Site,
    SorryServer, Timeouts, Tunnel, Workers, XdpMode, ZeroCopy,
};
pub use net::{IpPrefix, PrefixError};
pub use save::to_yaml;
pub use validate::{DEFAULT_PERSISTENCE, MAX_TIMEOUT};

use marks::MarkTree;
use std::path::Path;
use validate::Ctx;

/// Reads and validates a configuration file. Errors name the file as given.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        column: 0,
        path: String::new(),
        message: format!("cannot read the file: {e}"),
        hint: None,
    })?;
    load_str(&src, &file)
}

/// Validates a configuration held in memory; `file_name` is used in error messages.
pub fn load_str(src: &str, file_name: &str) -> Result<Config, ConfigError> {
    let at = |line: usize, column: usize, path: &str, message: String| ConfigError {
        file: file_name.to_string(),
        line,
        column,
        path: path.to_string(),
        message,
        hint: None,
    };
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
    // Duplicate keys first: yaml_serde reports them at the mapping, the tree at the key.
    let tree = MarkTree::parse(src);
    if let Ok(MarkTree {
        duplicate: Some(d), ..
    }) = &tree
    {
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
    let raw: raw::RawConfig = yaml_serde::from_str(src).map_err(|e| serde_error(&e, file_name))?;
    // If saphyr (YAML 1.2) rejects what libyaml (YAML 1.1) accepted, the file is still a valid
    // configuration; only the positions of semantic errors degrade to the top of the file.
    let tree = tree.unwrap_or_default();
    validate::validate(
        &Ctx {
            file: file_name,
            tree: &tree,
        },
        raw,
    )
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
