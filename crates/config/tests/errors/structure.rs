//! Syntax, types, unknown fields, duplicates, anchors, empty and missing files.

use super::{case, check, pos_of, IFACES};
use uvs_config::load_str;

#[test]
fn structural_errors_from_yaml_serde() {
    let cases = [
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    schedular: rr\n",
            "schedular",
            "services[0].schedular",
            "unknown field 'schedular'",
            Some("did you mean 'scheduler'?"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: eighty\n",
            "eighty",
            "services[0].port",
            "invalid type: string \"eighty\", expected a whole number ≥ 0",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    one_packet: maybe\n",
            "maybe",
            "services[0].one_packet",
            "expected a boolean",
            None,
        ),
        case(
            "servises: []\n",
            "servises",
            "servises",
            "unknown field 'servises'",
            Some("did you mean 'services'?"),
        ),
        case(
            "interfaces:\n  - name: uvs-lb0\n    name: uvs-lb1\n",
            "name",
            "interfaces[0].name",
            "duplicate key, first at line 2",
            None,
        )
        .whole()
        .nth(1),
    ];
    for c in &cases {
        check(c);
    }
}

#[test]
fn anchors_work_and_errors_inside_an_alias_point_at_the_alias() {
    let src = format!(
        "{IFACES}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         forwarding: nat\n    real_servers: &pool\n      - address: 198.18.1.11\n  \
         - vip: 198.18.100.2\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    \
         real_servers: *pool\n"
    );
    let c = load_str(&src, "uvs.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.services[1].real_servers, c.services[0].real_servers);

    // The second service is IPv6: the shared IPv4 pool is wrong there, and the only place in
    // the file for that node is the alias.
    let bad = src.replacen("vip: 198.18.100.2", "vip: \"2001:2::100\"", 1);
    let err = load_str(&bad, "uvs.yaml").unwrap_err();
    assert_eq!(err.path, "services[1].real_servers[0].address");
    assert_eq!((err.line, err.column), pos_of(&bad, 0, "*pool", 0), "{err}");
}

#[test]
fn merge_keys_get_a_clear_hint() {
    let src = format!(
        "{IFACES}services:\n  - &web\n    vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n  \
         - <<: *web\n    vip: 198.18.100.3\n"
    );
    let err = load_str(&src, "uvs.yaml").unwrap_err();
    assert_eq!(err.path, "services[1].<<");
    assert_eq!((err.line, err.column), pos_of(&src, 0, "<<", 0));
    assert!(err.hint.unwrap().contains("merge keys are not supported"));
}

#[test]
fn syntax_error_points_into_the_file() {
    let src = "interfaces:\n  - name: uvs-lb0\n    local: [198.18.0.3\nservices: []\n";
    let err = load_str(src, "bad.yaml").unwrap_err();
    assert_eq!(err.file, "bad.yaml");
    assert!(
        (3..=5).contains(&err.line),
        "syntax error at line {}: {err}",
        err.line
    );
    assert!(err.to_string().starts_with("bad.yaml:"), "{err}");
}

#[test]
fn empty_file_says_so() {
    for src in ["", "\n# only a comment\n", "---\n"] {
        let err = load_str(src, "empty.yaml").unwrap_err();
        assert_eq!((err.line, err.column), (1, 1));
        assert_eq!(err.message, "the configuration is empty");
    }
}

#[test]
fn missing_file_names_it() {
    let err = uvs_config::load_file(std::path::Path::new("/nonexistent/uvs.yaml")).unwrap_err();
    assert_eq!(err.file, "/nonexistent/uvs.yaml");
    assert!(err.message.starts_with("cannot read the file"), "{err}");
    assert!(
        err.to_string()
            .starts_with("/nonexistent/uvs.yaml: cannot read the file"),
        "{err}"
    );
}
