//! What the XDP program's maps hold bounds the configuration: more owned addresses of one
//! family (VIPs, local and FullNAT pool addresses) than its map holds are refused at the
//! service that overflows it, with the limit named, by `uvsd --check-config` and on reload,
//! instead of uvsd failing at start with the kernel's `Argument list too long`.

use std::fmt::Write;

const BASE: &str = "interfaces:
  - name: uvs-lb0
    local: [198.18.0.3]
    networks: [198.18.0.0/24]
  - name: uvs-lb1
    local: [198.18.1.3]
    networks: [198.18.1.0/24]
services:
";

#[test]
fn more_vips_than_the_xdp_map_holds_are_refused_at_the_first_too_many() {
    // Two local addresses and 16 383 VIPs fill the IPv4 map (16 384); the next VIP is one
    // too many.
    let limit = uvs_config::MAX_OWNED_PER_FAMILY;
    let mut src = String::from(BASE);
    for i in 0..=limit - 2 {
        let vip = format!("198.{}.{}.{}", 19 + i / 62_500, i / 250 % 250, i % 250 + 1);
        writeln!(
            src,
            "  - {{ vip: {vip}, protocol: tcp, port: 80, real_servers: [{{ address: 198.18.1.11 }}] }}"
        )
        .unwrap();
    }
    let e = match uvs_config::load_str(&src, "uvs.yaml") {
        Ok(_) => panic!("{} IPv4 addresses accepted", limit + 1),
        Err(e) => e.to_string(),
    };
    let line = BASE.lines().count() + limit - 1;
    assert!(e.starts_with(&format!("uvs.yaml:{line}:")), "{e}");
    assert!(
        e.contains(&format!("services[{}].vip", limit - 2)) && e.contains("16384"),
        "{e}"
    );
}

/// The limits are the XDP program's: `crates/xsk/bpf/uvs_xdp.c`'s `max_entries`.
#[test]
fn the_limits_are_the_xdp_maps_sizes() {
    let c = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../xsk/bpf/uvs_xdp.c"),
    )
    .unwrap();
    let size = |map: &str| -> usize {
        let end = c
            .find(&format!("}} {map} SEC("))
            .unwrap_or_else(|| panic!("{map}"));
        let at = c[..end].rfind("max_entries, ").unwrap() + "max_entries, ".len();
        c[at..].split(')').next().unwrap().trim().parse().unwrap()
    };
    for map in ["owned4", "owned6"] {
        assert_eq!(size(map), uvs_config::MAX_OWNED_PER_FAMILY, "{map}");
    }
    for map in ["reals4", "reals6"] {
        assert_eq!(size(map), uvs_config::MAX_REALS_PER_FAMILY, "{map}");
    }
    assert_eq!(size("real_ports"), uvs_config::MAX_REAL_PORTS);
}
