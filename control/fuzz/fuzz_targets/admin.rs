//! Arbitrary bytes as admin commands, one per line, applied in order to the running
//! configuration (configs/demo.yaml at the start), as uvsd's admin socket would run them.
//! A line starting with `{` is a request line as uvsadm sends it (`{"argv": [...]}`);
//! any other line is split into words. Besides never panicking:
//! - a rejected command says why (a non-empty message);
//! - an accepted edit gives a configuration that `uvsadm save` writes as YAML which loads
//!   back to the same configuration on the same host (what the admin interface promises:
//!   edits are validated like a file, with the host's addresses as uvsd's reload has them;
//!   here the demo's balancer kernel's), and `uvsadm -S` can list it.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use uvs_config::Config;
use uvs_control::admin::{apply, format_rules, parse, AdminCommand, AdminRequest};

fn demo() -> &'static Config {
    static DEMO: OnceLock<Config> = OnceLock::new();
    DEMO.get_or_init(|| {
        uvs_config::load_str(include_str!("../../../configs/demo.yaml"), "demo.yaml")
            .expect("configs/demo.yaml loads")
    })
}

/// The addresses the demo's balancer namespace's kernel holds (scripts/testbed.sh).
const HOST: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 1)),
];

fn is_edit(cmd: &AdminCommand) -> bool {
    matches!(
        cmd,
        AdminCommand::AddService(_)
            | AdminCommand::EditService(_)
            | AdminCommand::DeleteService(_)
            | AdminCommand::AddReal(_)
            | AdminCommand::EditReal(_)
            | AdminCommand::DeleteReal { .. }
            | AdminCommand::Clear
            | AdminCommand::Drain(_)
    )
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut running = demo().clone();
    for line in text.split('\n') {
        let argv: Vec<String> = if line.starts_with('{') {
            match serde_json::from_str::<AdminRequest>(line.trim_end()) {
                Ok(req) => req.argv,
                // The socket answers "bad request" without running anything.
                Err(_) => continue,
            }
        } else {
            line.split_whitespace().map(String::from).collect()
        };
        let cmd = match parse(&argv) {
            Ok(cmd) => cmd,
            Err(why) => {
                assert!(!why.trim().is_empty(), "rejected {argv:?} without a reason");
                continue;
            }
        };
        if !is_edit(&cmd) {
            continue;
        }
        match apply(&cmd, &running, &HOST) {
            Ok(new) => {
                let saved = uvs_config::to_yaml(&new);
                let again = uvs_config::load_str_for_host(&saved, "saved.yaml", &HOST)
                    .unwrap_or_else(|e| {
                        panic!(
                            "after {argv:?} the saved configuration does not load: {e}\n{saved}"
                        )
                    });
                assert_eq!(
                    again, new,
                    "after {argv:?}: save → load changed it\n{saved}"
                );
                let _ = format_rules(&new);
                running = new;
            }
            Err(why) => assert!(!why.trim().is_empty(), "rejected {argv:?} without a reason"),
        }
    }
});
