//! Shell completions (bash, zsh, fish), generated as the manual pages are (`crate::man`), from
//! what the programs say: uvsd's clap command line, and for uvsadm, whose command line is
//! ipvsadm's and parsed by hand, a clap command read from its usage text, so a flag added
//! to `uvsadm -h` is completed too. `uvsd --completions DIR` writes them.

use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};
use clap_complete::Shell;

/// Where each shell's completions go under the directory given (the package installs these
/// folders as /usr/share/bash-completion/completions, /usr/share/zsh/vendor-completions and
/// /usr/share/fish/vendor_completions.d).
const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "bash"),
    (Shell::Zsh, "zsh"),
    (Shell::Fish, "fish"),
];

/// Writes the completions of `cmd` for every shell under `dir`; returns the files written.
pub fn write_for(dir: &Path, mut cmd: Command) -> std::io::Result<Vec<PathBuf>> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    for (shell, sub) in SHELLS {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d)?;
        let path = clap_complete::generate_to(shell, &mut cmd, &name, &d)?;
        out.push(path);
    }
    Ok(out)
}

/// uvsd's and uvsadm's completions under `dir`.
pub fn write_all(dir: &Path, uvsd: Command) -> std::io::Result<Vec<PathBuf>> {
    let mut out = write_for(dir, uvsd)?;
    out.extend(write_for(dir, uvsadm_command(&crate::admin::usage()))?);
    Ok(out)
}

/// A clap command with uvsadm's flags and command words, read from its usage text: under
/// `Commands:` and `Options:` each line that starts with two spaces and `--` names a flag,
/// then maybe its short form (`-L|-l`), then the placeholders of the values it takes,
/// up to the column where the description starts; a line that starts with a word names a
/// command (`save`, `top`, `import-keepalived`).
pub fn uvsadm_command(usage: &str) -> Command {
    let mut cmd = Command::new("uvsadm")
        .about("uvs's administration tool, with ipvsadm's command line")
        .disable_help_flag(true)
        .disable_version_flag(true);
    let mut words: Vec<String> = Vec::new();
    let mut column = None;
    for line in usage.lines() {
        match line.trim_end() {
            "Commands:" => {
                column = Some(30);
                continue;
            }
            "Options:" => {
                column = Some(38);
                continue;
            }
            _ => {}
        }
        let Some(col) = column else { continue };
        let Some(rest) = line.strip_prefix("  ") else {
            continue;
        };
        if rest.starts_with(' ') {
            continue; // a description's next line
        }
        let head = line.get(..col.min(line.len())).unwrap_or(line);
        let mut tokens = head.split_whitespace();
        let Some(first) = tokens.next() else { continue };
        let Some(long) = first.strip_prefix("--") else {
            if first.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                && !words.iter().any(|w| w == first)
            {
                words.push(first.to_string());
            }
            continue;
        };
        if cmd.get_arguments().any(|a| a.get_long() == Some(long)) {
            continue;
        }
        let mut arg = Arg::new(long.to_string()).long(long.to_string());
        let mut values = 0;
        for t in tokens {
            if let Some(shorts) = t.strip_prefix('-').filter(|s| !s.starts_with('-')) {
                let mut letters = shorts.split("|-").filter_map(|s| {
                    let mut c = s.chars();
                    let first = c.next();
                    first.filter(|_| c.next().is_none())
                });
                if let Some(s) = letters.next() {
                    arg = arg.short(s);
                }
                for alias in letters {
                    arg = arg.short_alias(alias);
                }
            } else {
                values += 1;
            }
        }
        arg = if values == 0 {
            arg.action(ArgAction::SetTrue)
        } else {
            arg.action(ArgAction::Append).num_args(values)
        };
        cmd = cmd.arg(arg);
    }
    cmd.arg(
        Arg::new("command")
            .value_parser(clap::builder::PossibleValuesParser::new(words))
            .num_args(0..=1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvsadm_flags_and_words_come_from_its_usage() {
        let cmd = uvsadm_command(&crate::admin::usage());
        let arg = |long: &str| {
            cmd.get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap_or_else(|| panic!("--{long} not read from the usage text"))
        };
        assert_eq!(arg("list").get_short(), Some('L'));
        assert_eq!(arg("add-service").get_short(), Some('A'));
        assert_eq!(arg("tcp-service").get_short(), Some('t'));
        assert_eq!(
            arg("tcp-service").get_num_args().map(|n| n.min_values()),
            Some(1)
        );
        assert!(!arg("stats").get_action().takes_values());
        assert_eq!(arg("set").get_num_args().map(|n| n.min_values()), Some(3));
        assert_eq!(arg("sctp-service").get_short(), None);
        let words: Vec<String> = cmd
            .get_arguments()
            .find(|a| a.get_id() == "command")
            .unwrap()
            .get_possible_values()
            .iter()
            .map(|v| v.get_name().to_string())
            .collect();
        for w in ["save", "top", "cluster", "node", "import-keepalived"] {
            assert!(words.iter().any(|x| x == w), "{w} missing from {words:?}");
        }
        cmd.debug_assert();
    }

    #[test]
    fn every_shell_gets_a_file_naming_the_flags() {
        let dir = std::env::temp_dir().join(format!("uvs-completions-{}", std::process::id()));
        let files = write_for(&dir, uvsadm_command(&crate::admin::usage())).unwrap();
        assert_eq!(files.len(), 3);
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(text.contains("tcp-service"), "{}", f.display());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
