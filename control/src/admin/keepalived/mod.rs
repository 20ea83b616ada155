//! `uvsadm import-keepalived FILE`: keepalived's LVS configuration as uvs YAML.
//!
//! ```text
//! keepalived.conf ──lex──► statements ──translate──► services ──emit──► YAML
//!                                                                        │
//!        file:line:column errors ◄── positions ◄── uvs_config::load_str ─┘ (must load)
//! ```
//!
//! Everything keepalived means that uvs cannot do the same way is refused with
//! `file:line:column: message` at the keyword asking for it, and nothing is printed; settings
//! that only change timing or logging are translated as closely as they can be and reported
//! as notes. The result is loaded with uvs's own loader and built into dataplane tables before
//! it is printed, so what comes out is a configuration uvsd accepts. keepalived has no
//! notion of the interfaces uvs serves on: they come from the command line (`--interface`,
//! `--network`, `--local`), or the interface from the file's `vrrp_instance`.

mod check;
mod command;
mod emit;
mod lex;
mod params;
mod real;
mod translate;
mod values;

pub use lex::Pos;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use uvs_config::{Forwarding, IpPrefix};

/// A message about the input: `file:line:column: message`, or about the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diag {
    /// Empty for command-line problems.
    pub file: String,
    pub pos: Option<Pos>,
    pub message: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.pos, self.file.is_empty()) {
            (Some(p), _) => write!(f, "{}:{}:{}: {}", self.file, p.line, p.column, self.message),
            (None, false) => write!(f, "{}: {}", self.file, self.message),
            (None, true) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Diag {}

/// What keepalived.conf does not say: where uvs serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// The interface's name; default: the one every `vrrp_instance` names.
    pub interface: Option<String>,
    /// Its on-link prefixes (`networks:`); DR real servers must be inside one.
    pub networks: Vec<String>,
    /// Addresses uvs owns on it (`local:`).
    pub local: Vec<String>,
    /// `(prefix, next hop)` routes beyond its networks (`routes:`).
    pub routes: Vec<(String, String)>,
    /// keepalived's config id (`-i`), choosing the `@ID` lines; default: keepalived's, the
    /// host name without its domain.
    pub config_id: Option<String>,
}

/// A successful translation.
#[derive(Clone, Debug)]
pub struct Imported {
    /// A uvs configuration that `uvs_config::load_str` accepts.
    pub yaml: String,
    /// What was left out or approximated, each once, where it first appears.
    pub notes: Vec<Diag>,
}

/// The command's synopsis, for `-h` and its errors.
pub const IMPORT_USAGE: &str = "uvsadm import-keepalived [--interface NAME] [--network PREFIX]... \
                                [--local ADDRESS]... [--route PREFIX,VIA]... [--config-id ID] \
                                FILE";

/// Parses `import-keepalived`'s arguments (after the command word).
pub fn import_args(args: &[String]) -> Result<(ImportOptions, PathBuf), String> {
    let mut opts = ImportOptions::default();
    let mut file = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || -> Result<String, String> {
            if let Some(v) = &inline {
                return Ok(v.clone());
            }
            i += 1;
            args.get(i)
                .cloned()
                .ok_or_else(|| format!("{name} needs a value: {IMPORT_USAGE}"))
        };
        match name {
            "--interface" => {
                if opts.interface.is_some() {
                    return Err("--interface is given twice: uvs's YAML gets one interface \
                                from the importer; add others to the file by hand"
                        .into());
                }
                opts.interface = Some(value()?);
            }
            "--network" => opts.networks.push(value()?),
            "--config-id" => opts.config_id = Some(value()?),
            "--local" => opts.local.push(value()?),
            "--route" => {
                let v = value()?;
                let Some((prefix, via)) = v.split_once(',') else {
                    return Err(format!(
                        "--route {v}: write PREFIX,VIA, e.g. --route 0.0.0.0/0,198.18.1.254"
                    ));
                };
                opts.routes
                    .push((prefix.trim().to_string(), via.trim().to_string()));
            }
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unknown option '{s}': {IMPORT_USAGE}"))
            }
            _ => {
                if file.is_some() {
                    return Err(format!("one file at a time: {IMPORT_USAGE}"));
                }
                file = Some(PathBuf::from(a));
            }
        }
        i += 1;
    }
    let file = file.ok_or_else(|| format!("which keepalived.conf? {IMPORT_USAGE}"))?;
    Ok((opts, file))
}

/// Translates the text of a keepalived.conf; `file` names it in messages, and the files it
/// includes are found relative to its directory.
pub fn import(src: &str, file: &str, opts: &ImportOptions) -> Result<Imported, Diag> {
    import_in(Path::new(""), src, file, opts)
}

/// [`import`], with relative file names (`file` and the ones it includes) taken in `dir`
/// instead of the working directory; messages give them as written.
pub fn import_in(
    dir: &Path,
    src: &str,
    file: &str,
    opts: &ImportOptions,
) -> Result<Imported, Diag> {
    let mut files = lex::Files {
        names: vec![file.to_string()],
        root: dir.to_path_buf(),
    };
    let (config_id, from) = match &opts.config_id {
        Some(id) => (id.clone(), "--config-id"),
        None => (
            host_name(),
            "the host name, keepalived's default; choose with --config-id",
        ),
    };
    let parsed = lex::parse_files(src, &mut files, &config_id);
    let files = files;
    let at = |pos: Pos, message: String| Diag {
        file: files.name(pos).to_string(),
        pos: Some(pos),
        message,
    };
    let cmdline = |message: String| Diag {
        file: String::new(),
        pos: None,
        message,
    };
    let (top, conditional) = parsed.map_err(|e| at(e.pos, e.message))?;
    let mut cx = values::Cx {
        files: &files,
        notes: Vec::new(),
    };
    if let Some(pos) = conditional {
        cx.note(
            pos,
            format!("conditional lines (@ID) are read for config id '{config_id}' ({from})"),
        );
    }
    let t = translate::translate(&mut cx, &top)?;
    if t.services.is_empty() {
        return Err(Diag {
            file: file.to_string(),
            pos: None,
            message: "no virtual_server with real servers to translate".into(),
        });
    }
    let interface = match &opts.interface {
        Some(name) => name.clone(),
        None => {
            let mut names: Vec<&str> = t.vrrp_interfaces.iter().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            match names.as_slice() {
                [one] => {
                    let pos = t.vrrp_interfaces[0].1;
                    cx.note(
                        pos,
                        format!(
                            "uvs serves on interface {one}, the vrrp_instance's (choose another \
                             with --interface)"
                        ),
                    );
                    one.to_string()
                }
                [] => {
                    return Err(cmdline(format!(
                        "give --interface NAME: {file} names no interface for uvs to serve on \
                         ({IMPORT_USAGE})"
                    )))
                }
                many => {
                    return Err(cmdline(format!(
                        "the vrrp_instances use several interfaces ({}): choose uvs's with \
                         --interface NAME",
                        many.join(", ")
                    )))
                }
            }
        }
    };
    let prefix = |flag: &str, n: &str| -> Result<IpPrefix, Diag> {
        n.parse()
            .map_err(|e| cmdline(format!("{flag} {n}: {e} (write e.g. 198.18.1.0/24)")))
    };
    let mut networks: Vec<IpPrefix> = Vec::new();
    for n in &opts.networks {
        networks.push(prefix("--network", n)?);
    }
    let mut routed = networks.clone();
    for (p, _) in &opts.routes {
        routed.push(prefix("--route", p)?);
    }
    let locals: Vec<IpAddr> = opts.local.iter().filter_map(|l| l.parse().ok()).collect();
    reachable(&t, &networks, &routed, &locals, &files)?;
    let (yaml, positions) = emit::yaml(
        &files,
        &t,
        &emit::Interface {
            name: &interface,
            networks: &opts.networks,
            local: &opts.local,
            routes: &opts.routes,
        },
    );
    let cfg = uvs_config::load_str(&yaml, file).map_err(|e| {
        let what = match &e.hint {
            Some(h) => format!("{}: {} — {h}", e.path, e.message),
            None => format!("{}: {}", e.path, e.message),
        };
        if e.path.starts_with("interfaces") {
            return cmdline(format!("the interface from the command line: {what}"));
        }
        match position_of(&positions, &e.path) {
            Some(pos) => at(pos, format!("uvs would reject the translation: {what}")),
            None => Diag {
                file: file.to_string(),
                pos: None,
                message: format!("uvs would reject the translation: {what}"),
            },
        }
    })?;
    let spec = crate::spec::tables_spec(&cfg, None);
    uvs_dataplane::TablesBuilder::build(&spec, None).map_err(|e| Diag {
        file: file.to_string(),
        pos: None,
        message: format!("uvsd could not build tables from the translation: {e}"),
    })?;
    let mut notes = cx.notes;
    notes.sort_by_key(|n| n.pos.map(|p| (p.file, p.line, p.column)));
    Ok(Imported { yaml, notes })
}

/// keepalived's default config id: the node name up to its first dot.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    name.trim().split('.').next().unwrap_or("").to_string()
}

/// Whether uvs can reach every real and sorry server with what the command line gave: DR
/// servers on a network of the interface (DR rewrites only the MAC address), others on one
/// or behind a route. keepalived.conf cannot say this; uvsd would refuse the tables.
fn reachable(
    t: &translate::Translation,
    networks: &[IpPrefix],
    routed: &[IpPrefix],
    locals: &[IpAddr],
    files: &lex::Files,
) -> Result<(), Diag> {
    let example = |a: IpAddr| match a {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    };
    let fail = |pos: Pos, message: String| {
        Err(Diag {
            file: files.name(pos).to_string(),
            pos: Some(pos),
            message,
        })
    };
    // On the interface's own networks uvs asks for a server's MAC address (ARP, NDP) from
    // an address of its own there: keepalived's kernel had the host's.
    let unsourced = |a: IpAddr| {
        let net = networks.iter().find(|n| n.contains(a))?;
        (!locals.iter().any(|l| l.is_ipv4() == a.is_ipv4())).then_some(*net)
    };
    let no_local = |pos: Pos, what: String, a: IpAddr, net: IpPrefix| {
        fail(
            pos,
            format!(
                "{what} {a} is on {net}, where uvs asks for its MAC address ({}) from an \
                 address of its own, which keepalived.conf cannot say: give one with --local \
                 (an address of {net} the host does not use)",
                if a.is_ipv4() { "ARP" } else { "NDP" }
            ),
        )
    };
    for s in &t.services {
        for r in &s.reals {
            if let Some(net) = unsourced(r.address) {
                return no_local(r.pos, "real_server".into(), r.address, net);
            }
            let fwd = r.forwarding.map_or(s.forwarding, |(f, _)| f);
            if fwd == Forwarding::Dr {
                if !networks.iter().any(|n| n.contains(r.address)) {
                    return fail(
                        r.pos,
                        format!(
                            "real_server {} uses DR, which rewrites only the MAC address, so \
                             uvs must reach it on a directly attached network: give that \
                             network with --network (e.g. --network {})",
                            r.address,
                            example(r.address)
                        ),
                    );
                }
            } else if !routed.iter().any(|n| n.contains(r.address)) {
                return fail(
                    r.pos,
                    format!(
                        "uvs has no way to real_server {}: give its network with --network \
                         (e.g. --network {}) or a route with --route PREFIX,VIA",
                        r.address,
                        example(r.address)
                    ),
                );
            }
        }
        if let Some((a, _, pos)) = s.sorry {
            if let Some(net) = unsourced(a) {
                return no_local(pos, "sorry_server".into(), a, net);
            }
            if !routed.iter().any(|n| n.contains(a)) {
                return fail(
                    pos,
                    format!(
                        "uvs has no way to the sorry_server {a}: give its network with \
                         --network (e.g. --network {}) or a route with --route PREFIX,VIA",
                        example(a)
                    ),
                );
            }
        }
    }
    Ok(())
}

/// The keepalived position of the most specific translated field that `path` is in.
fn position_of(positions: &[(String, Pos)], path: &str) -> Option<Pos> {
    positions
        .iter()
        .filter(|(p, _)| {
            path == p
                || path
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
        .max_by_key(|(p, _)| p.len())
        .map(|(_, pos)| *pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn arguments() {
        let (o, f) = import_args(&argv(
            "--interface eth1 --network 198.18.1.0/24 --network=2001:2::/64 --local 198.18.1.3 \
             --route 0.0.0.0/0,198.18.1.254 --config-id lb2 k.conf",
        ))
        .unwrap();
        assert_eq!(o.interface.as_deref(), Some("eth1"));
        assert_eq!(o.networks, ["198.18.1.0/24", "2001:2::/64"]);
        assert_eq!(o.local, ["198.18.1.3"]);
        assert_eq!(
            o.routes,
            [("0.0.0.0/0".to_string(), "198.18.1.254".to_string())]
        );
        assert!(import_args(&argv("--route 0.0.0.0/0 k.conf"))
            .unwrap_err()
            .contains("PREFIX,VIA"));
        assert_eq!(o.config_id.as_deref(), Some("lb2"));
        assert_eq!(f, PathBuf::from("k.conf"));
        assert!(import_args(&argv("--interface"))
            .unwrap_err()
            .contains("needs a value"));
        assert!(import_args(&argv("--bogus k.conf"))
            .unwrap_err()
            .contains("unknown option"));
        assert!(import_args(&argv("a.conf b.conf"))
            .unwrap_err()
            .contains("one file"));
        assert!(import_args(&[])
            .unwrap_err()
            .contains("which keepalived.conf"));
    }

    #[test]
    fn positions_pick_the_most_specific_field() {
        let p = |line| Pos {
            line,
            column: 1,
            file: 0,
        };
        let map = vec![
            ("services[0]".to_string(), p(1)),
            ("services[0].real_servers[1]".to_string(), p(5)),
            ("services[0].real_servers[1].weight".to_string(), p(6)),
            ("services[10]".to_string(), p(9)),
        ];
        assert_eq!(
            position_of(&map, "services[0].real_servers[1].weight"),
            Some(p(6))
        );
        assert_eq!(
            position_of(&map, "services[0].real_servers[1].port"),
            Some(p(5))
        );
        assert_eq!(position_of(&map, "services[0].port"), Some(p(1)));
        assert_eq!(position_of(&map, "services[1].port"), None);
        assert_eq!(position_of(&map, "services[10].vip"), Some(p(9)));
    }
}
