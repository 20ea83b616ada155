//! The one error type a user sees: where (file:line:column and the field path), what, and how to
//! fix it (house style 11: one clear sentence naming the file/line or the fix).

use std::fmt;

/// A configuration mistake, located in the source file.
///
/// `line` and `column` are 1-based, in characters (0 when the file could not be read), and point at the offending YAML node (the value
/// for a bad value, the key for an unknown field, the enclosing mapping for a missing field).
/// `path` is the field path in the document, like `services[1].scheduler`; it is empty for
/// problems with the document as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    /// `uvs.yaml:12:16: services[1].scheduler: unknown scheduler 'rrr' — did you mean 'rr'?`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            // Not about a position in the file (it could not be read at all).
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " — {hint}")?;
        }
        Ok(())
    }
}

/// Levenshtein edit distance (insert, delete, substitute each cost 1), on characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate to a misspelt `word`, if it is close enough to be a plausible typo:
/// at most 2 edits, and fewer edits than the word has characters (so "x" does not suggest "rr").
/// Case is ignored, since `RR` for `rr` is the most common slip of all.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, c), *c))
        .filter(|&(d, c)| d <= 2 && d < lower.chars().count().max(1) && d < c.len())
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// `did you mean 'rr'?` when a close candidate exists, else the list of valid values.
pub(crate) fn suggest(word: &str, candidates: &[&str]) -> String {
    match closest(word, candidates) {
        Some(c) => format!("did you mean '{c}'?"),
        None => format!("expected one of: {}", candidates.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("rr", "rr"), 0);
        assert_eq!(edit_distance("rrr", "rr"), 1);
        assert_eq!(edit_distance("wlc", "lc"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn closest_prefers_smallest_distance() {
        let names = ["rr", "wrr", "lc", "wlc", "sh", "mh"];
        assert_eq!(closest("rrr", &names), Some("rr"));
        assert_eq!(closest("WLC", &names), Some("wlc"));
        assert_eq!(closest("wlcc", &names), Some("wlc"));
        assert_eq!(closest("maglev", &names), None);
    }

    #[test]
    fn suggest_lists_candidates_when_nothing_is_close() {
        assert_eq!(suggest("natt", &["nat", "dr"]), "did you mean 'nat'?");
        assert_eq!(suggest("zzzzz", &["nat", "dr"]), "expected one of: nat, dr");
    }

    #[test]
    fn display_has_file_line_column_path_and_hint() {
        let e = ConfigError {
            file: "uvs.yaml".into(),
            line: 12,
            column: 16,
            path: "services[1].scheduler".into(),
            message: "unknown scheduler 'rrr'".into(),
            hint: Some("did you mean 'rr'?".into()),
        };
        assert_eq!(
            e.to_string(),
            "uvs.yaml:12:16: services[1].scheduler: unknown scheduler 'rrr' — did you mean 'rr'?"
        );
        let e = ConfigError {
            path: String::new(),
            hint: None,
            ..e
        };
        assert_eq!(e.to_string(), "uvs.yaml:12:16: unknown scheduler 'rrr'");
    }
}
