//! The `bgp:` section: defaults, round trip through `to_yaml`, and mistakes at their line.

const BASE: &str = "interfaces:
  - name: uvs-f0
    networks: [198.18.61.0/24]
";

fn load(bgp: &str) -> Result<uvs_config::Config, String> {
    uvs_config::load_str(&format!("{BASE}{bgp}"), "uvs.yaml").map_err(|e| e.to_string())
}

#[test]
fn defaults_and_round_trip() {
    let c = load("bgp:\n  include: /etc/bird/uvs-vips.conf\n").unwrap();
    let b = c.bgp.clone().unwrap();
    assert_eq!(b.socket, std::path::PathBuf::from("/run/bird/bird.ctl"));
    assert_eq!(b.withdraw_when, uvs_config::Withdraw::NoUsableServer);
    assert_eq!((b.drain_timeout, b.stop_delay), (60, 1));
    let again = uvs_config::load_str(&uvs_config::to_yaml(&c), "saved.yaml").unwrap();
    assert_eq!(again.bgp, c.bgp);
    assert!(load("").unwrap().bgp.is_none());
}

#[test]
fn mistakes_are_refused_at_their_line() {
    let e = load("bgp:\n  socket: /run/bird/bird.ctl\n").unwrap_err();
    assert!(
        e.contains("uvs.yaml:5") && e.contains("needs `include`"),
        "{e}"
    );
    let e = load("bgp:\n  include: uvs-vips.conf\n").unwrap_err();
    assert!(
        e.contains("uvs.yaml:5") && e.contains("not an absolute path"),
        "{e}"
    );
    let e = load("bgp:\n  include: /x\n  withdraw_when: nevr\n").unwrap_err();
    assert!(e.contains("uvs.yaml:6") && e.contains("never"), "{e}");
    let e = load("bgp:\n  include: /x\n  stop_delay: 61\n").unwrap_err();
    assert!(e.contains("uvs.yaml:6"), "{e}");
    let e = load("bgp:\n  include: /x\n  peers: []\n").unwrap_err();
    assert!(e.contains("uvs.yaml:6"), "{e}");
}
