//! The host's own addresses, as its kernel holds them in uvsd's network namespace.
//!
//! A VIP, local or pool address the kernel holds, or a real server that is this host, is
//! refused (`uvs_config::load_file_for_host`): at start, at each reload, and for each uvsadm
//! edit, so an edit cannot take the host's own traffic and `uvsadm save` never writes a file
//! the next reload refuses.

use anyhow::{bail, Context, Result};
use std::net::IpAddr;

/// The kernel's own addresses in this namespace (`ip -j addr show`; the XDP program leaves
/// traffic to them alone even when it comes from a real server: health checks, ssh, ping).
pub fn host_addresses() -> Result<Vec<IpAddr>> {
    let out = std::process::Command::new("ip")
        .args(["-j", "addr", "show"])
        .output()
        .context("running `ip -j addr show` (iproute2) to learn the host's addresses")?;
    if !out.status.success() {
        bail!(
            "`ip -j addr show` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_ip_addr_json(&out.stdout)
}

/// The `local` addresses of `ip -j addr show`'s output.
pub fn parse_ip_addr_json(json: &[u8]) -> Result<Vec<IpAddr>> {
    let v: serde_json::Value = serde_json::from_slice(json).context("parsing `ip -j addr show`")?;
    let mut addrs = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(ip) = a["local"].as_str().and_then(|s| s.parse().ok()) {
                addrs.push(ip);
            }
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_j_addr_show() {
        let json = br#"[{"ifindex":1,"ifname":"lo","addr_info":[
            {"family":"inet","local":"127.0.0.1","prefixlen":8},
            {"family":"inet6","local":"::1","prefixlen":128}]},
          {"ifindex":2,"ifname":"uvs-lb0","addr_info":[
            {"family":"inet","local":"198.18.0.1","prefixlen":24},
            {"family":"inet6","local":"fe80::1%x","prefixlen":64}]},
          {"ifindex":3,"ifname":"down0","addr_info":[]}]"#;
        let got = parse_ip_addr_json(json).unwrap();
        let want: Vec<IpAddr> = ["127.0.0.1", "::1", "198.18.0.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
        assert!(parse_ip_addr_json(b"not json").is_err());
    }

    /// Without iproute2 the error says what it ran.
    #[test]
    fn reads_this_hosts_addresses_or_says_why_not() {
        if let Err(e) = host_addresses() {
            assert!(format!("{e:#}").contains("ip -j addr show"), "{e:#}");
        }
    }
}
