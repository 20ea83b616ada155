//! Source positions of every node, by field path.
//!
//! yaml_serde reports locations only for syntax and type errors. Semantic checks (families,
//! duplicates, scheduler names) run on the deserialised structs, which have no positions, so
//! the document is also run through saphyr-parser's spanned event stream and each node's start
//! is recorded under the same path syntax yaml_serde uses in its messages:
//! `services[1].real_servers[0].address`.

use saphyr_parser::{Event, Parser, ScanError, Span, SpannedEventReceiver};
use std::collections::HashMap;

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn from_marker(m: saphyr_parser::Marker) -> Pos {
        // saphyr lines are 1-based, columns 0-based.
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// A key seen twice in one mapping; YAML 1.2 §3.2.1.1 requires keys to be unique.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DuplicateKey {
    pub path: String,
    pub first: Pos,
    pub second: Pos,
}

/// Positions of the nodes of one YAML document.
#[derive(Debug, Default)]
pub(crate) struct MarkTree {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
    /// The first duplicate key found, in document order.
    pub duplicate: Option<DuplicateKey>,
}

enum Frame {
    Seq {
        path: String,
        next: usize,
    },
    Map {
        path: String,
        /// `None` while waiting for a key, else the key whose value comes next.
        key: Option<String>,
        seen: HashMap<String, Pos>,
    },
}

struct Builder {
    tree: MarkTree,
    stack: Vec<Frame>,
    /// Depth of a complex (non-scalar) key being skipped: its inner nodes get no path.
    in_complex_key: usize,
}

pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    /// The path of a node starting now, or `None` if it is a mapping key.
    fn child_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => Some(format!("{path}[{next}]")),
            Some(Frame::Map { path, key, .. }) => key.as_ref().map(|k| join(path, k)),
        }
    }

    /// A node (scalar, alias or finished collection) is complete: advance the parent.
    fn complete(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Seq { next, .. }) => *next += 1,
            Some(Frame::Map { key, .. }) => {
                if key.is_some() {
                    *key = None;
                } else {
                    // A complex key finished: its value has no addressable path.
                    *key = Some("?".to_string());
                }
            }
            None => {}
        }
    }

    fn start_node(&mut self, span: Span) -> Option<String> {
        let path = self.child_path()?;
        self.tree
            .values
            .entry(path.clone())
            .or_insert(Pos::from_marker(span.start));
        Some(path)
    }
}

impl<'input> SpannedEventReceiver<'input> for Builder {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        if self.in_complex_key > 0 {
            match ev {
                Event::SequenceStart(..) | Event::MappingStart(..) => self.in_complex_key += 1,
                Event::SequenceEnd | Event::MappingEnd => {
                    self.in_complex_key -= 1;
                    if self.in_complex_key == 0 {
                        self.complete();
                    }
                }
                _ => {}
            }
            return;
        }
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map {
                    path,
                    key: key @ None,
                    seen,
                }) = self.stack.last_mut()
                {
                    let pos = Pos::from_marker(span.start);
                    let key_path = join(path, &value);
                    if let Some(&first) = seen.get(value.as_ref()) {
                        if self.tree.duplicate.is_none() {
                            self.tree.duplicate = Some(DuplicateKey {
                                path: key_path.clone(),
                                first,
                                second: pos,
                            });
                        }
                    } else {
                        seen.insert(value.to_string(), pos);
                    }
                    self.tree.keys.entry(key_path).or_insert(pos);
                    *key = Some(value.into_owned());
                    return;
                }
                self.start_node(span);
                self.complete();
            }
            Event::Alias(_) => {
                if matches!(self.stack.last(), Some(Frame::Map { key: None, .. })) {
                    // An aliased key: we cannot name it.
                    self.complete();
                    return;
                }
                self.start_node(span);
                self.complete();
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let is_seq = matches!(ev, Event::SequenceStart(..));
                match self.start_node(span) {
                    None => self.in_complex_key = 1,
                    Some(path) => self.stack.push(if is_seq {
                        Frame::Seq { path, next: 0 }
                    } else {
                        Frame::Map {
                            path,
                            key: None,
                            seen: HashMap::new(),
                        }
                    }),
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.stack.pop();
                self.complete();
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
    }
}

impl MarkTree {
    /// Records the positions of the first document in `src`.
    pub(crate) fn parse(src: &str) -> Result<MarkTree, ScanError> {
        let mut builder = Builder {
            tree: MarkTree::default(),
            stack: Vec::new(),
            in_complex_key: 0,
        };
        Parser::new_from_str(src).load(&mut builder, false)?;
        Ok(builder.tree)
    }

    /// Where the value at `path` starts; if there is no such node (a missing field, a node
    /// reached through a merge key), where its nearest present ancestor starts.
    pub(crate) fn value(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(&pos) = self.values.get(p) {
                return pos;
            }
            match parent(p) {
                Some(up) => p = up,
                None => return Pos { line: 1, column: 1 },
            }
        }
    }

    /// Where the key of the field at `path` starts, falling back like [`MarkTree::value`].
    pub(crate) fn key(&self, path: &str) -> Pos {
        match self.keys.get(path) {
            Some(&pos) => pos,
            None => self.value(path),
        }
    }

    /// Whether a node exists at exactly this path.
    pub(crate) fn has(&self, path: &str) -> bool {
        self.values.contains_key(path)
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → `` → none.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
interfaces:
  - name: uvs-lb0
    local: [198.18.0.3, \"2001:2::3\"]
services:
  - vip: 198.18.100.1
    real_servers:
      - address: 198.18.1.11
      - { address: 198.18.1.12, port: 8080 }
";

    fn p(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn values_have_their_start_positions() {
        let t = MarkTree::parse(DOC).unwrap();
        assert_eq!(t.value("interfaces[0].name"), p(2, 11));
        assert_eq!(t.value("interfaces[0].local[1]"), p(3, 25));
        assert_eq!(t.value("services[0].vip"), p(5, 10));
        assert_eq!(t.value("services[0].real_servers[0].address"), p(7, 18));
        assert_eq!(t.value("services[0].real_servers[1].port"), p(8, 39));
        assert!(t.has("services[0].real_servers"));
        assert!(!t.has("services[0].scheduler"));
    }

    #[test]
    fn keys_have_their_own_positions() {
        let t = MarkTree::parse(DOC).unwrap();
        assert_eq!(t.key("services[0].real_servers"), p(6, 5));
        assert_eq!(t.key("interfaces"), p(1, 1));
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor() {
        let t = MarkTree::parse(DOC).unwrap();
        // real_servers[1] is the flow mapping starting at `{`.
        assert_eq!(t.value("services[0].real_servers[1].weight"), p(8, 9));
        assert_eq!(t.value("services[0].scheduler"), p(5, 5));
        assert_eq!(t.value("nothing.here"), p(1, 1));
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent("a.b[2].c"), Some("a.b[2]"));
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(parent(""), None);
    }

    #[test]
    fn duplicate_keys_are_found_with_both_positions() {
        let t = MarkTree::parse("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap();
        assert_eq!(
            t.duplicate,
            Some(DuplicateKey {
                path: "b.c".into(),
                first: p(3, 3),
                second: p(4, 3),
            })
        );
    }

    #[test]
    fn complex_keys_do_not_confuse_paths() {
        let t = MarkTree::parse("? [a, b]\n: x\nz: 5\n").unwrap();
        assert_eq!(t.value("z"), p(3, 4));
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(MarkTree::parse("a: [1, 2\n").is_err());
    }
}
