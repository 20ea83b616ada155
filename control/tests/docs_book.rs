//! The operator's guide in docs/ (an mdBook) stays whole without mdbook installed: every
//! chapter is in SUMMARY.md, every link is relative and resolves (anchors included, with
//! mdBook's heading ids), every `{{#include}}` names a file, and every drop counter of the
//! dataplane is explained in the troubleshooting chapter.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use uvs_dataplane::DropReason;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn src() -> PathBuf {
    docs().join("src")
}

fn chapters() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    v.sort();
    v
}

/// The text outside fenced code blocks and inline code spans.
fn prose(md: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if fenced {
            out.push('\n');
            continue;
        }
        // Drop `code spans` (a link target never contains a backtick).
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// `(line, target)` of every inline link `[text](target)` outside code.
fn links(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose(md).lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((n + 1, after[..end].to_string()));
            rest = &after[end..];
        }
    }
    out
}

/// mdBook's heading id: lowercase; letters, digits, `_` and `-` kept; whitespace → `-`.
fn heading_id(text: &str) -> String {
    text.chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_ascii_lowercase())
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

fn anchors(md: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced {
            continue;
        }
        if let Some(h) = line.strip_prefix('#') {
            let text = h.trim_start_matches('#').trim();
            // The rendered text: code spans and link syntax gone.
            let plain: String = text.chars().filter(|&c| c != '`').collect();
            out.insert(heading_id(&plain));
        }
    }
    out
}

#[test]
fn the_book_is_configured() {
    let toml = fs::read_to_string(docs().join("book.toml")).unwrap();
    assert!(toml.contains("[book]"));
    assert!(toml.contains("src = \"src\""));
    assert!(src().join("SUMMARY.md").is_file());
}

#[test]
fn every_chapter_is_in_the_summary_and_every_summary_entry_exists() {
    let summary = fs::read_to_string(src().join("SUMMARY.md")).unwrap();
    let listed: BTreeSet<String> = links(&summary).into_iter().map(|(_, t)| t).collect();
    for t in &listed {
        assert!(
            src().join(t).is_file(),
            "SUMMARY.md lists {t}, which does not exist"
        );
    }
    let chapters = chapters();
    assert!(chapters.len() >= 9, "chapters: {chapters:?}");
    for c in chapters {
        let name = c.file_name().unwrap().to_string_lossy().into_owned();
        if name == "SUMMARY.md" {
            continue;
        }
        assert!(listed.contains(&name), "{name} is not in SUMMARY.md");
    }
}

#[test]
fn every_link_is_relative_and_resolves() {
    let mut checked = 0;
    for c in chapters() {
        let md = fs::read_to_string(&c).unwrap();
        let name = c.file_name().unwrap().to_string_lossy().into_owned();
        for (line, target) in links(&md) {
            let at = format!("{name}:{line}: link '{target}'");
            assert!(
                !target.contains("://")
                    && !target.starts_with("mailto:")
                    && !target.starts_with('/'),
                "{at}: the guide links only within the repository, by relative paths"
            );
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                c.clone()
            } else {
                c.parent().unwrap().join(path)
            };
            assert!(file.exists(), "{at}: {} does not exist", file.display());
            if let Some(a) = anchor {
                assert!(
                    file.extension().is_some_and(|e| e == "md"),
                    "{at}: an anchor into a file that is not a chapter"
                );
                let ids = anchors(&fs::read_to_string(&file).unwrap());
                assert!(
                    ids.contains(a),
                    "{at}: no heading with id '{a}' (ids: {ids:?})"
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked > 10,
        "only {checked} links found: is the link parser broken?"
    );
}

#[test]
fn every_include_names_a_file() {
    let mut checked = 0;
    for c in chapters() {
        let md = fs::read_to_string(&c).unwrap();
        let mut rest = md.as_str();
        while let Some(i) = rest.find("{{#include ") {
            let after = &rest[i + "{{#include ".len()..];
            let end = after.find("}}").expect("an unclosed {{#include");
            let target = after[..end].trim();
            // `path:anchor` and `path:lines` select a part of the file.
            let path = target.split(':').next().unwrap();
            let file = c.parent().unwrap().join(path);
            assert!(
                file.is_file(),
                "{}: {{{{#include {target}}}}}: {} does not exist",
                c.display(),
                file.display()
            );
            checked += 1;
            rest = &after[end..];
        }
    }
    assert!(checked >= 4, "only {checked} includes found");
}

#[test]
fn every_drop_counter_is_explained() {
    let chapter = fs::read_to_string(src().join("troubleshooting.md")).unwrap();
    for i in 0..DropReason::COUNT {
        let name = DropReason::name_of(i);
        // A table row of its own: `| `name` | what it means | ...`.
        let row = format!("| `{name}` |");
        assert!(
            chapter.lines().any(|l| l.starts_with(&row)),
            "troubleshooting.md does not explain the drop counter {name}"
        );
    }
    // Both kinds of counters are there: the dataplane's own and the parser's.
    assert!(DropReason::name_of(0) != DropReason::name_of(DropReason::COUNT - 1));
}

/// `uvsadm -Z` zeroes the service and real-server statistics only (as ipvsadm's `-Z`); the
/// drop counters are Prometheus counters (`uvs_drops_total`) and keep counting, so what grows
/// now is read from two readings, or `rate()`.
#[test]
fn the_drop_counters_are_not_said_to_be_zeroed() {
    let chapter = fs::read_to_string(src().join("troubleshooting.md")).unwrap();
    let intro = chapter.split("\n## ").next().unwrap();
    let para = intro
        .split("\n\n")
        .find(|p| p.contains("uvsadm -Z"))
        .expect("the introduction says what `uvsadm -Z` does to the drop counters");
    assert!(
        para.contains("never zeroed") && para.contains("service and\nreal-server statistics"),
        "{para}"
    );
    assert!(para.contains("rate(uvs_drops_total"), "{para}");
    for page in ["troubleshooting.md", "operating.md"] {
        let text = fs::read_to_string(src().join(page)).unwrap();
        assert!(
            !text.contains("`uvsadm -Z` zeroes them") && !text.contains("zero every counter"),
            "{page} says -Z zeroes the drop counters"
        );
    }
}

#[test]
fn heading_ids_follow_mdbook() {
    assert_eq!(heading_id("Forwarding methods"), "forwarding-methods");
    assert_eq!(
        heading_id("NAT (forwarding: nat, ipvsadm -m)"),
        "nat-forwarding-nat-ipvsadm--m"
    );
    assert_eq!(heading_id("What uvs does not do"), "what-uvs-does-not-do");
}

/// Every top-level section of the configuration (configs/reference.yaml, and member mode's
/// in configs/member.yaml) is in the Configuration chapter's table of sections, with when a
/// change of it takes effect.
#[test]
fn every_top_level_section_is_in_the_configuration_table() {
    let chapter = fs::read_to_string(src().join("configuration.md")).unwrap();
    let table: Vec<&str> = chapter.lines().filter(|l| l.starts_with("| `")).collect();
    let mut missing = Vec::new();
    for file in ["reference.yaml", "member.yaml"] {
        let text = fs::read_to_string(docs().join("../configs").join(file)).unwrap();
        let v: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
        for key in v.as_mapping().unwrap().keys() {
            let key = key.as_str().unwrap();
            let cell = format!("`{key}`");
            if !table
                .iter()
                .any(|row| row.split('|').nth(1).is_some_and(|c| c.contains(&cell)))
            {
                missing.push(format!("{file}: {key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in configuration.md's table: {missing:?}"
    );
}
