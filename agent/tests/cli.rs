//! uvs-agent's command line against the operator's documentation: every subcommand the
//! README and the book tell an operator to run is one `uvs-agent --help` lists.

use std::process::Command;

/// The code of a Markdown text: fenced blocks and `inline spans`.
fn code(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            out.push(line.to_string());
            continue;
        }
        out.extend(line.split('`').skip(1).step_by(2).map(String::from));
    }
    out
}

#[test]
fn help_lists_every_subcommand_the_docs_use() {
    let out = Command::new(env!("CARGO_BIN_EXE_uvs-agent"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(listed.contains(&"run"), "{help}");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut files = vec![format!("{root}/README.md")];
    for e in std::fs::read_dir(format!("{root}/docs/src")).unwrap() {
        files.push(e.unwrap().path().to_string_lossy().into_owned());
    }
    let mut missing = Vec::new();
    for f in &files {
        for snippet in code(&std::fs::read_to_string(f).unwrap()) {
            let mut words = snippet.split_whitespace();
            while let Some(w) = words.next() {
                if w != "uvs-agent" {
                    continue;
                }
                if let Some(sub) = words.next() {
                    if sub.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                        && !sub.starts_with('-')
                        && !listed.contains(&sub)
                    {
                        missing.push(format!("{f}: uvs-agent {sub}"));
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "not in uvs-agent --help: {missing:#?}");
}
