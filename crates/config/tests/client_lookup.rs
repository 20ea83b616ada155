//! The `client_lookup:` section: round trip through `to_yaml`, and mistakes at their line.

const BASE: &str = "interfaces:
  - name: uvs-f0
    local: [198.18.61.3]
    networks: [198.18.61.0/24]
services:
  - vip: 198.18.100.1
    protocol: tcp
    port: 80
    forwarding: fullnat
    fullnat_pool: [198.18.61.100]
    real_servers: [{ address: 198.18.61.11 }]
";

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn load(section: &str) -> Result<uvs_config::Config, String> {
    uvs_config::load_str(&format!("{BASE}{section}"), "uvs.yaml").map_err(|e| e.to_string())
}

#[test]
fn round_trip_and_diff() {
    let c = load(&format!(
        "client_lookup:\n  listen: 198.18.61.1:7946\n  auth_key: \"{KEY}\"\n"
    ))
    .unwrap();
    let l = c.client_lookup.clone().unwrap();
    assert_eq!(l.listen, "198.18.61.1:7946".parse().unwrap());
    assert_eq!(l.auth_key, KEY);
    let again = uvs_config::load_str(&uvs_config::to_yaml(&c), "saved.yaml").unwrap();
    assert_eq!(again, c);
    let none = load("").unwrap();
    assert!(none.client_lookup.is_none());
    let d = uvs_config::diff(&none, &c);
    assert!(d.client_lookup_changed && !d.is_empty());
    assert!(d.to_string().contains("~ client_lookup"), "{d}");
}

#[test]
fn mistakes_are_refused_at_their_line() {
    for (section, line, why) in [
        (
            format!("client_lookup:\n  auth_key: \"{KEY}\"\n"),
            13,
            "needs `listen`",
        ),
        (
            "client_lookup:\n  listen: 198.18.61.1:7946\n".to_string(),
            13,
            "needs `auth_key`",
        ),
        (
            format!("client_lookup:\n  listen: 198.18.61.1\n  auth_key: \"{KEY}\"\n"),
            13,
            "not an address:port",
        ),
        (
            format!("client_lookup:\n  listen: 198.18.61.3:7946\n  auth_key: \"{KEY}\"\n"),
            13,
            "an address uvs serves",
        ),
        (
            format!("client_lookup:\n  listen: 198.18.61.100:7946\n  auth_key: \"{KEY}\"\n"),
            13,
            "an address uvs serves",
        ),
        (
            format!("client_lookup:\n  listen: 198.18.61.1:0\n  auth_key: \"{KEY}\"\n"),
            13,
            "port 0",
        ),
        (
            "client_lookup:\n  listen: 198.18.61.1:7946\n  auth_key: short\n".to_string(),
            14,
            "the key has 5 bytes, fewer than 16",
        ),
        (
            format!(
                "client_lookup:\n  listen: 198.18.61.1:7946\n  auth_key: \"{KEY}\"\n  port: 1\n"
            ),
            15,
            "port",
        ),
    ] {
        let e = load(&section).unwrap_err();
        assert!(
            e.contains(&format!("uvs.yaml:{line}:")) && e.contains(why),
            "{section}: {e}"
        );
    }
}
