//! Arbitrary bytes as a configuration file, through the loader uvsd uses for the file, a
//! reload and `--check-config`. Besides never panicking:
//! - a rejected file gets one error that points into the file (line and column ≥ 1, the
//!   line at most one past the last) and prints as `file:line:column: …`;
//! - an accepted file saves (`uvsadm save`) to YAML that loads back to the same
//!   configuration, with an empty diff, and saves to the same text again.
#![no_main]

use libfuzzer_sys::fuzz_target;

const FILE: &str = "fuzz.yaml";

/// Line breaks as the YAML parsers count them (YAML 1.1 also breaks lines at NEL, LS, PS).
fn line_breaks(src: &str) -> usize {
    src.replace("\r\n", "\n")
        .chars()
        .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
        .count()
}

fuzz_target!(|data: &[u8]| {
    // `load_file` rejects what is not UTF-8 before parsing; the parser sees text.
    let src = String::from_utf8_lossy(data);
    match uvs_config::load_str(&src, FILE) {
        Err(e) => {
            // The end of the input may be reported on the line after the last one.
            let lines = line_breaks(&src) + 1;
            assert!(
                e.line >= 1 && e.column >= 1 && e.line <= lines + 1,
                "error outside the file ({lines} lines): {e}"
            );
            assert_eq!(e.file, FILE);
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("{FILE}:{}:{}: ", e.line, e.column)),
                "{text}"
            );
        }
        Ok(config) => {
            let saved = uvs_config::to_yaml(&config);
            let again = uvs_config::load_str(&saved, "saved.yaml")
                .unwrap_or_else(|e| panic!("saved configuration does not load: {e}\n{saved}"));
            assert_eq!(
                again, config,
                "save → load changed the configuration\n{saved}"
            );
            assert!(uvs_config::diff(&config, &again).is_empty());
            assert_eq!(uvs_config::to_yaml(&again), saved, "saving is not stable");
        }
    }
});
