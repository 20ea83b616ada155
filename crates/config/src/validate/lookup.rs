//! The `client_lookup:` section: where uvsd answers real servers asking who the client of a
//! FullNAT connection is (the protocol is uvs-agent's `lookup` module).

use super::{Ctx, Result};
use crate::model::{ClientLookup, Interface, Service};
use crate::raw::RawClientLookup;

/// Shortest shared key: 16 bytes (128 bits) of an HMAC-SHA256 key, as `sync.auth_key`.
const MIN_KEY_LEN: usize = 16;

pub(super) fn client_lookup(
    cx: &Ctx<'_>,
    raw: RawClientLookup,
    interfaces: &[Interface],
    services: &[Service],
) -> Result<ClientLookup> {
    let Some(text) = &raw.listen else {
        return Err(cx
            .err("client_lookup", "the client_lookup section needs `listen`")
            .with_hint(Some(
                "an address:port of this node's kernel that the real servers reach, e.g. \
                 198.18.1.1:7946"
                    .into(),
            )));
    };
    let listen: std::net::SocketAddr = text.parse().map_err(|_| {
        cx.err(
            "client_lookup.listen",
            format!("'{text}' is not an address:port"),
        )
        .with_hint(Some("write 198.18.1.1:7946 or [2001:2:0:1::1]:7946".into()))
    })?;
    // uvs's own addresses never reach the kernel's sockets: the XDP program takes them.
    let ip = listen.ip();
    let owned = interfaces.iter().any(|i| i.local.contains(&ip))
        || services
            .iter()
            .any(|s| s.vip == ip || s.fullnat_pool.contains(&ip));
    if owned || listen.port() == 0 {
        return Err(cx
            .err(
                "client_lookup.listen",
                if owned {
                    format!("{ip} is an address uvs serves (local, VIP or FullNAT pool)")
                } else {
                    "port 0 is not a port to listen on".to_string()
                },
            )
            .with_hint(Some(
                "use an address the host's kernel keeps (its own address on the real \
                 servers' network) and a fixed port"
                    .into(),
            )));
    }
    let Some(key) = raw.auth_key else {
        return Err(cx
            .err(
                "client_lookup",
                "the client_lookup section needs `auth_key`",
            )
            .with_hint(Some(
                "the key shared with the real servers' uvs-agent --lookup-key-file, e.g. \
                 from `openssl rand -hex 32`"
                    .into(),
            )));
    };
    if key.len() < MIN_KEY_LEN {
        return Err(cx
            .err(
                "client_lookup.auth_key",
                format!("the key has {} bytes, fewer than {MIN_KEY_LEN}", key.len()),
            )
            .with_hint(Some("use e.g. `openssl rand -hex 32`".into())));
    }
    Ok(ClientLookup {
        listen,
        auth_key: key,
    })
}
