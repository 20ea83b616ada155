//! uvs control plane: the `uvsd` daemon (configuration, tables publication, health checks,
//! metrics, admin socket) and the `uvsadm` client.
#![deny(unsafe_code)]

pub mod admin;
pub mod announce;
pub mod clientof;
pub mod cluster;
pub mod completions;
pub mod daemon;
pub mod filewatch;
pub mod fwmark;
mod gate;
pub mod health;
pub mod host;
pub mod http;
pub mod man;
pub mod member;
pub mod metrics;
pub mod notify;
pub mod poolhealth;
pub mod privileges;
pub mod services;
pub mod snapshot;
pub mod spec;
pub mod status;
pub mod statuspage;
pub mod sync;
mod webcheck;

use std::path::Path;

/// `uvsd --bgp-withdraw FILE`: BIRD announces nothing of this node any more (the include
/// with no route, then `configure`), as when uvsd stops; nothing to do without `bgp:`.
pub fn bgp_withdraw(path: &Path) -> Result<String, String> {
    let cfg = uvs_config::load_file(path).map_err(|e| e.to_string())?;
    let Some(bgp) = &cfg.bgp else {
        return Ok(format!(
            "{}: no bgp section: nothing to withdraw",
            path.display()
        ));
    };
    let answer = announce::withdraw_all(bgp)?;
    Ok(format!(
        "{}: withdrew every VIP ({} has no route; BIRD: {answer})",
        path.display(),
        bgp.include.display()
    ))
}

/// `uvsd --check-config`: parses and validates the file, builds the dataplane tables from
/// it (without reading interfaces) and reads what loading it reads (CA files, accounts),
/// so a file that passes will load.
pub fn check_config(path: &Path) -> Result<String, String> {
    let cfg = uvs_config::load_file(path).map_err(|e| e.to_string())?;
    if let Some(m) = &cfg.member {
        return Ok(format!(
            "{}: configuration OK: member mode, VIP {} on {}, member {} of {}",
            path.display(),
            m.vip,
            m.interface,
            m.me + 1,
            m.members.len()
        ));
    }
    let spec = spec::tables_spec(&cfg, None);
    uvs_dataplane::TablesBuilder::build(&spec, None)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // What uvsd reads when it loads the file, as it starts or reloads: the CA files of
    // verified https checks, the accounts command checks run as.
    webcheck::check_ca_files(&cfg)
        .and_then(|()| privileges::check_accounts(&cfg))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let reals: usize = cfg.services.iter().map(|s| s.real_servers.len()).sum();
    Ok(format!(
        "{}: configuration OK: {} interface(s), {} worker(s), {} service(s), {} real server(s)",
        path.display(),
        cfg.interfaces.len(),
        cfg.workers.count.max(1),
        cfg.services.len(),
        reals
    ))
}
