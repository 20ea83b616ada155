//! Source positions of every node, by field path, and the limits that keep hostile documents
//! cheap.
//!
//! yaml_serde reports locations only for syntax and type errors. Semantic checks (families,
//! duplicates, scheduler names) run on the deserialised structs, which have no positions, so
//! the document is also run through saphyr-parser's spanned event stream and each node's start
//! is recorded, found again by the same path syntax yaml_serde uses in its messages:
//! `services[1].real_servers[0].address`.
//!
//! This pass runs before yaml_serde sees the text and stops at the first event past a limit:
//! nesting deeper than [`MAX_DEPTH`] (libyaml's flow scanning is quadratic in depth, and deep
//! trees overflow recursive consumers) or aliases expanding past [`MAX_NODES`] (a "billion
//! laughs" document). Saphyr's own event loop is iterative, so its cost is linear up to there.
//! Nodes are stored as a tree of (parent, key or index), never as full path strings, so memory
//! stays linear in the document whatever its keys' lengths.

use saphyr_parser::{Event, Marker, Parser, ScanError, Span};
use std::collections::HashMap;

/// Deepest nesting of collections accepted. The schema needs 6 (document → services → service
/// → sites → site → clients); anything deeper is a mistake, and far deeper an attack.
pub(crate) const MAX_DEPTH: usize = 32;
/// Collections the schema nests at most, for the hint.
pub(crate) const SCHEMA_DEPTH: usize = 6;
/// Most nodes a document may have once its aliases are expanded: about one per byte of the
/// largest file accepted, so only aliases can reach it.
pub(crate) const MAX_NODES: u64 = crate::MAX_BYTES as u64;

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn from_marker(m: Marker) -> Pos {
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

/// Why the document could not be mapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TreeError {
    /// A limit was crossed at `pos`: the document is refused, unread past that point.
    Limit {
        pos: Pos,
        message: String,
        hint: String,
    },
    /// Saphyr (YAML 1.2) found a syntax error.
    Syntax { pos: Pos, message: String },
}

impl TreeError {
    fn too_deep(pos: Pos) -> TreeError {
        TreeError::Limit {
            pos,
            message: format!("nesting deeper than {MAX_DEPTH} levels"),
            hint: format!("a uvs configuration nests {SCHEMA_DEPTH} levels at most"),
        }
    }
}

impl From<ScanError> for TreeError {
    fn from(e: ScanError) -> TreeError {
        let pos = Pos::from_marker(*e.marker());
        // Saphyr's scanner reads ahead through flow collections while a simple key may
        // still start there, and stops at 255 levels: that can come before the parser hands
        // over the collection that crosses our limit. It is the same mistake, found deeper.
        if e.info() == "recursion limit exceeded" {
            return TreeError::too_deep(pos);
        }
        TreeError::Syntax {
            pos,
            message: e.info().to_string(),
        }
    }
}

/// One step of a path: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Seg {
    Key(Box<str>),
    Index(u32),
}

#[derive(Debug)]
struct Node {
    parent: u32,
    seg: Seg,
    /// Where the node's value starts; `None` while only its key has been seen.
    value: Option<Pos>,
    /// Where the key naming it starts, for mapping values.
    key: Option<Pos>,
}

/// Positions of the nodes of one YAML document.
#[derive(Debug, Default)]
pub(crate) struct MarkTree {
    /// Node 0 is the document's root; the others are reached through `children`.
    nodes: Vec<Node>,
    children: HashMap<(u32, Seg), u32>,
    /// The first duplicate key found, in document order.
    pub duplicate: Option<DuplicateKey>,
}

enum Frame {
    Seq {
        id: u32,
        next: u32,
    },
    Map {
        id: u32,
        /// `None` while waiting for a key, else the node whose value comes next.
        value: Option<u32>,
    },
}

struct Builder {
    tree: MarkTree,
    stack: Vec<Frame>,
    /// Depth of a complex (non-scalar) key being skipped: its inner nodes get no path.
    in_complex_key: usize,
    /// Only the first document is mapped (yaml_serde refuses more than one).
    first_done: bool,
    /// Limits, counted over every document: open collections (their anchor and the node
    /// count when they opened), nodes so far with aliases expanded, each anchor's size.
    open: Vec<(usize, u64)>,
    nodes: u64,
    anchor_size: HashMap<usize, u64>,
}

pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl MarkTree {
    fn child(&mut self, parent: u32, seg: Seg) -> u32 {
        let next = self.nodes.len() as u32;
        let nodes = &mut self.nodes;
        *self
            .children
            .entry((parent, seg.clone()))
            .or_insert_with(|| {
                nodes.push(Node {
                    parent,
                    seg,
                    value: None,
                    key: None,
                });
                next
            })
    }

    /// The path of node `id`, built only when an error needs it.
    fn path_of(&self, mut id: u32) -> String {
        let mut segs = Vec::new();
        while id != 0 {
            let n = &self.nodes[id as usize];
            segs.push(&n.seg);
            id = n.parent;
        }
        let mut out = String::new();
        for seg in segs.into_iter().rev() {
            match seg {
                Seg::Key(k) => out = join(&out, k),
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

impl Builder {
    /// The node starting now, or `None` if it is a mapping key.
    fn child_node(&mut self) -> Option<u32> {
        match self.stack.last_mut() {
            None => Some(0),
            Some(Frame::Seq { id, next }) => {
                let (id, i) = (*id, *next);
                Some(self.tree.child(id, Seg::Index(i)))
            }
            Some(Frame::Map { value, .. }) => *value,
        }
    }

    /// A node (scalar, alias or finished collection) is complete: advance the parent.
    fn complete(&mut self) {
        let complex_key_done = match self.stack.last_mut() {
            Some(Frame::Seq { next, .. }) => {
                *next += 1;
                None
            }
            Some(Frame::Map { value, id }) => {
                if value.is_some() {
                    *value = None;
                    None
                } else {
                    Some(*id)
                }
            }
            None => None,
        };
        if let Some(map) = complex_key_done {
            // A complex key finished: its value has no addressable path.
            let child = self.tree.child(map, Seg::Key("?".into()));
            if let Some(Frame::Map { value, .. }) = self.stack.last_mut() {
                *value = Some(child);
            }
        }
    }

    fn start_node(&mut self, span: Span) -> Option<u32> {
        let id = self.child_node()?;
        let node = &mut self.tree.nodes[id as usize];
        node.value.get_or_insert(Pos::from_marker(span.start));
        Some(id)
    }

    /// Counts a node for the limits; `Err` as soon as one is crossed.
    fn count(&mut self, ev: &Event<'_>, span: Span) -> Result<(), TreeError> {
        let pos = Pos::from_marker(span.start);
        match ev {
            Event::Scalar(_, _, anchor, _) => {
                self.nodes += 1;
                if *anchor > 0 {
                    self.anchor_size.insert(*anchor, 1);
                }
            }
            Event::Alias(anchor) => {
                self.nodes += self.anchor_size.get(anchor).copied().unwrap_or(1);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.open.push((*anchor, self.nodes));
                self.nodes += 1;
                if self.open.len() > MAX_DEPTH {
                    return Err(TreeError::too_deep(pos));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, start)) = self.open.pop() {
                    if anchor > 0 {
                        self.anchor_size.insert(anchor, self.nodes - start);
                    }
                }
            }
            _ => {}
        }
        if self.nodes > MAX_NODES {
            return Err(TreeError::Limit {
                pos,
                message: format!("aliases expand the document to more than {MAX_NODES} nodes"),
                hint: "each alias copies its anchor's whole value".into(),
            });
        }
        Ok(())
    }

    fn on_event(&mut self, ev: Event<'_>, span: Span) {
        if self.first_done {
            return;
        }
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
                if let Some(&Frame::Map { id, value: None }) = self.stack.last() {
                    let pos = Pos::from_marker(span.start);
                    let seg = Seg::Key(value.as_ref().into());
                    let child = match self.tree.children.get(&(id, seg.clone())) {
                        Some(&first) => {
                            if self.tree.duplicate.is_none() {
                                self.tree.duplicate = Some(DuplicateKey {
                                    path: self.tree.path_of(first),
                                    first: self.tree.nodes[first as usize].key.unwrap_or(pos),
                                    second: pos,
                                });
                            }
                            first
                        }
                        None => {
                            let child = self.tree.child(id, seg);
                            self.tree.nodes[child as usize].key = Some(pos);
                            child
                        }
                    };
                    if let Some(Frame::Map { value, .. }) = self.stack.last_mut() {
                        *value = Some(child);
                    }
                    return;
                }
                self.start_node(span);
                self.complete();
            }
            Event::Alias(_) => {
                if matches!(self.stack.last(), Some(Frame::Map { value: None, .. })) {
                    // An aliased key: we cannot name it, nor its value.
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
                    Some(id) => self.stack.push(if is_seq {
                        Frame::Seq { id, next: 0 }
                    } else {
                        Frame::Map { id, value: None }
                    }),
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.stack.pop();
                self.complete();
            }
            Event::DocumentEnd => self.first_done = true,
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::Nothing => {}
        }
    }
}

impl MarkTree {
    /// Records the positions of the first document in `src`, checking the limits over all of
    /// it as it goes.
    pub(crate) fn parse(src: &str) -> Result<MarkTree, TreeError> {
        let mut b = Builder {
            tree: MarkTree::default(),
            stack: Vec::new(),
            in_complex_key: 0,
            first_done: false,
            open: Vec::new(),
            nodes: 0,
            anchor_size: HashMap::new(),
        };
        b.tree.nodes.push(Node {
            parent: 0,
            seg: Seg::Index(0),
            value: None,
            key: None,
        });
        for item in Parser::new_from_str(src) {
            let (ev, span) = item?;
            b.count(&ev, span)?;
            b.on_event(ev, span);
        }
        Ok(b.tree)
    }

    /// The node at exactly `path`, and the deepest node along it that has a position.
    fn find(&self, path: &str) -> (Option<u32>, Option<u32>) {
        if self.nodes.is_empty() {
            return (None, None);
        }
        let mut cur = 0u32;
        let mut best = self.nodes[0].value.map(|_| 0);
        let mut rest = path;
        while !rest.is_empty() {
            let seg = if let Some(r) = rest.strip_prefix('[') {
                let Some((i, after)) = r.split_once(']') else {
                    return (None, best);
                };
                let Ok(i) = i.parse::<u32>() else {
                    return (None, best);
                };
                rest = after;
                Seg::Index(i)
            } else {
                let r = rest.strip_prefix('.').unwrap_or(rest);
                let end = r.find(['.', '[']).unwrap_or(r.len());
                rest = &r[end..];
                Seg::Key(r[..end].into())
            };
            match self.children.get(&(cur, seg)) {
                Some(&c) => cur = c,
                None => return (None, best),
            }
            if self.nodes[cur as usize].value.is_some() {
                best = Some(cur);
            }
        }
        (Some(cur), best)
    }

    /// Where the value at `path` starts; if there is no such node (a missing field, a node
    /// reached through a merge key), where its nearest present ancestor starts.
    pub(crate) fn value(&self, path: &str) -> Pos {
        self.find(path)
            .1
            .and_then(|id| self.nodes[id as usize].value)
            .unwrap_or(Pos { line: 1, column: 1 })
    }

    /// Where the key of the field at `path` starts, falling back like [`MarkTree::value`].
    pub(crate) fn key(&self, path: &str) -> Pos {
        match self.find(path).0.and_then(|id| self.nodes[id as usize].key) {
            Some(pos) => pos,
            None => self.value(path),
        }
    }

    /// Whether a node exists at exactly this path.
    pub(crate) fn has(&self, path: &str) -> bool {
        self.find(path)
            .0
            .is_some_and(|id| self.nodes[id as usize].value.is_some())
    }
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

    #[test]
    fn nesting_past_the_limit_stops_the_pass_at_that_collection() {
        let ok = format!(
            "a: {}{}\n",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(MarkTree::parse(&ok).is_ok());
        let deep = format!("a: {}{}\n", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        match MarkTree::parse(&deep) {
            Err(TreeError::Limit { pos, message, .. }) => {
                assert_eq!(pos, p(1, 3 + MAX_DEPTH));
                assert!(message.contains("nesting deeper"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn aliases_count_what_they_expand_to() {
        let mut doc = String::from("a: &a0 [x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..5 {
            doc.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*a{}", i - 1); 16].join(", ")
            ));
        }
        // 16^4 copies of the first list: about 1.2 million nodes, under the limit.
        assert!(MarkTree::parse(&doc).is_ok());
        doc.push_str("b: [*a4, *a4, *a4, *a4]\n");
        match MarkTree::parse(&doc) {
            Err(TreeError::Limit { pos, message, .. }) => {
                assert_eq!(pos, p(6, 15), "the third alias crosses the limit");
                assert!(message.contains("aliases expand"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn long_keys_are_stored_once() {
        // Every node under a long key used to carry a copy of it in its path.
        let key = "k".repeat(100_000);
        // (An explicit key: implicit ones are limited to 1024 characters.)
        let doc = format!("? {key}\n:\n  - x\n{}", "  - x\n".repeat(9_999));
        let t = MarkTree::parse(&doc).unwrap();
        assert_eq!(t.value(&format!("{key}[9999]")), p(10_002, 5));
    }

    #[test]
    fn only_the_first_document_is_mapped() {
        let t = MarkTree::parse("a: 1\n---\na: [2]\nb: 3\n").unwrap();
        assert_eq!(t.value("a"), p(1, 4));
        assert!(!t.has("b"));
        assert!(t.duplicate.is_none());
    }
}
