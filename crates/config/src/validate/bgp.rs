//! The `bgp:` section: announcing the VIPs through BIRD 2 (active/active behind ECMP).

use std::path::PathBuf;

use super::{Ctx, Result};
use crate::model::{BgpConfig, Withdraw, DEFAULT_BIRD_SOCKET};
use crate::raw::RawBgp;

fn absolute(cx: &Ctx<'_>, path: &str, text: &str, example: &str) -> Result<PathBuf> {
    if !text.starts_with('/') || text.contains('\0') {
        return Err(cx
            .err(path, format!("'{text}' is not an absolute path"))
            .with_hint(Some(format!("for example {example}"))));
    }
    Ok(PathBuf::from(text))
}

pub(super) fn bgp(cx: &Ctx<'_>, raw: RawBgp) -> Result<BgpConfig> {
    let Some(include) = &raw.include else {
        return Err(cx
            .err("bgp", "the bgp section needs `include`")
            .with_hint(Some(
                "name the file uvsd writes and bird.conf includes, e.g. include: /etc/bird/uvs-vips.conf"
                    .into(),
            )));
    };
    // The file is written into BIRD's configuration: a quote or newline in its name
    // would not survive `include "…";` in the operator's bird.conf either.
    if include.contains(['"', '\n']) {
        return Err(cx.err("bgp.include", "the path may not contain quotes or newlines"));
    }
    let include = absolute(cx, "bgp.include", include, "/etc/bird/uvs-vips.conf")?;
    let socket = absolute(
        cx,
        "bgp.socket",
        raw.socket.as_deref().unwrap_or(DEFAULT_BIRD_SOCKET),
        DEFAULT_BIRD_SOCKET,
    )?;
    let withdraw_when = match &raw.withdraw_when {
        None => Withdraw::NoUsableServer,
        Some(w) => cx.name(
            "bgp.withdraw_when",
            w,
            "withdraw condition",
            Withdraw::NAMES,
            Withdraw::from_name,
        )?,
    };
    let drain_timeout = cx.range(
        "bgp.drain_timeout",
        raw.drain_timeout.unwrap_or(60),
        0,
        86400,
        "drain timeout",
    )? as u32;
    let stop_delay = cx.range(
        "bgp.stop_delay",
        raw.stop_delay.unwrap_or(1),
        0,
        60,
        "stop delay",
    )? as u32;
    Ok(BgpConfig {
        include,
        socket,
        withdraw_when,
        drain_timeout,
        stop_delay,
    })
}
