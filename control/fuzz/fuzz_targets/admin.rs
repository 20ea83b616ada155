//! Arbitrary bytes as admin commands, one per line, applied in order to the running
//! configuration (configs/demo.yaml at the start), as uvsd's admin socket would run them.
//! A line starting with `{` is a request line as uvsadm sends it (`{"argv": [...]}`);
//! any other line is split into words. Besides never panicking:
//! - a rejected command says why (a non-empty message);
//! - an accepted edit gives a configuration that `uvsadm save` writes as YAML which loads
//!   back to the same configuration (what the admin interface promises: edits are
//!   validated like a file), and `uvsadm -S` can list it.
#![no_main]

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
        match apply(&cmd, &running) {
            Ok(new) => {
                let saved = uvs_config::to_yaml(&new);
                let again = uvs_config::load_str(&saved, "saved.yaml").unwrap_or_else(|e| {
                    panic!("after {argv:?} the saved configuration does not load: {e}\n{saved}")
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
