//! Where every field of a lab file is: an index from field path
//! (`nodes[2].ip`) to line and column, built from the YAML parser's marked
//! events, independent of the schema.
//!
//! serde only reports the first decoding error and knows nothing about
//! positions once a value is decoded, so semantic checks look their field up
//! here. Building the index also catches what serde cannot report well:
//! YAML syntax errors (with the scanner's own message) and every duplicate
//! key, each with both places.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Marker, Parser};

/// A 1-based line and column (characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn from_marker(marker: &Marker) -> Pos {
        // The parser's columns are 0-based; editors and serde-saphyr count from 1.
        Pos {
            line: marker.line(),
            column: marker.col() + 1,
        }
    }
}

/// One field or list item of the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where the key is (`None` for list items and the document root).
    pub key: Option<Pos>,
    /// Where the value starts.
    pub value: Pos,
    /// The value's text when it is a scalar.
    pub scalar: Option<String>,
    /// What the value is, for messages: `a mapping`, `a list`, `a value`, `an alias`.
    pub shape: &'static str,
}

/// A problem found while indexing: bad YAML syntax or a duplicate key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxProblem {
    pub path: String,
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

/// Field path → where it is.
#[derive(Clone, Debug, Default)]
pub struct PositionIndex {
    entries: HashMap<String, Entry>,
}

impl PositionIndex {
    /// Where the value of `path` is, or of its nearest ancestor present in
    /// the file (a missing field is reported at the block that lacks it).
    pub fn locate(&self, path: &str) -> Option<Pos> {
        let mut current = path;
        loop {
            if let Some(entry) = self.entries.get(current) {
                return Some(entry.value);
            }
            if current.is_empty() {
                return None;
            }
            current = parent_path(current);
        }
    }

    /// True when the file itself spells out `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    /// The entry for exactly `path`.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// The path whose key sits at `pos` (errors about keys point there).
    pub fn path_of_key_at(&self, pos: Pos) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(_, e)| e.key == Some(pos))
            .map(|(p, _)| p.as_str())
            .min_by_key(|p| p.len())
    }

    /// The path whose value starts at `pos`. A block mapping starts where its
    /// first key does, so the outermost (shortest) path wins.
    pub fn path_of_value_at(&self, pos: Pos) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(_, e)| e.value == pos)
            .map(|(p, _)| p.as_str())
            .min_by_key(|p| p.len())
    }

    /// True when the document has no content at all (empty or comments only).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `nodes[2].ip` → `nodes[2]` → `nodes` → ``.
pub fn parent_path(path: &str) -> &str {
    if let Some(stripped) = path.strip_suffix(']') {
        if let Some(open) = stripped.rfind('[') {
            return &path[..open];
        }
    }
    match path.rfind('.') {
        Some(dot) => &path[..dot],
        None => "",
    }
}

enum Frame {
    Mapping {
        path: String,
        /// The key just read, waiting for its value.
        pending_key: Option<(String, Pos)>,
        seen: HashMap<String, Pos>,
    },
    Sequence {
        path: String,
        next: usize,
    },
    /// Inside a complex (non-scalar) mapping key: skipped, serde rejects it.
    ComplexKey {
        depth: usize,
        start: Pos,
    },
}

/// Indexes the first YAML document of `text`. Returns the index and every
/// duplicate key, or the syntax error that stopped the parser.
pub fn index(text: &str) -> Result<(PositionIndex, Vec<SyntaxProblem>), SyntaxProblem> {
    let mut parser = Parser::new_from_str(text);
    let mut idx = PositionIndex::default();
    let mut duplicates = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root_seen = false;

    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| SyntaxProblem {
            path: String::new(),
            pos: Pos::from_marker(e.marker()),
            message: format!("invalid YAML: {}", e.info()),
            hint: None,
        })?;
        let pos = Pos::from_marker(&span.start);
        let opens = match &event {
            Event::MappingStart(..) => Some(true),
            Event::SequenceStart(..) => Some(false),
            _ => None,
        };
        let is_node = matches!(event, Event::Scalar(..) | Event::Alias(..)) || opens.is_some();
        let is_end = matches!(event, Event::MappingEnd | Event::SequenceEnd);

        if let Some(Frame::ComplexKey { depth, start }) = stack.last_mut() {
            if opens.is_some() {
                *depth += 1;
            } else if is_end {
                *depth -= 1;
                if *depth == 0 {
                    let start = *start;
                    stack.pop();
                    if let Some(Frame::Mapping { pending_key, .. }) = stack.last_mut() {
                        *pending_key = Some(("<complex key>".to_string(), start));
                    }
                }
            }
            continue;
        }
        if is_end {
            stack.pop();
            continue;
        }
        if matches!(event, Event::DocumentEnd) {
            // Only the first document is a lab; serde reports any others.
            break;
        }
        if !is_node {
            continue;
        }
        let scalar = match &event {
            Event::Scalar(text, ..) => Some(text.to_string()),
            _ => None,
        };

        // Is this node a mapping key? Then remember it and wait for its value.
        if let Some(Frame::Mapping {
            path,
            pending_key,
            seen,
        }) = stack.last_mut()
        {
            if pending_key.is_none() {
                match scalar {
                    Some(key) => {
                        if let Some(first) = seen.get(&key) {
                            duplicates.push(SyntaxProblem {
                                path: join_key(path, &key),
                                pos,
                                message: format!(
                                    "duplicate key `{key}` (first given at line {}, column {})",
                                    first.line, first.column
                                ),
                                hint: Some("keep only one of them".to_string()),
                            });
                        } else {
                            seen.insert(key.clone(), pos);
                        }
                        *pending_key = Some((key, pos));
                    }
                    None if opens.is_some() => stack.push(Frame::ComplexKey {
                        depth: 1,
                        start: pos,
                    }),
                    None => *pending_key = Some(("<alias key>".to_string(), pos)),
                }
                continue;
            }
        }

        // A value: work out its path.
        let (path, key) = match stack.last_mut() {
            Some(Frame::Mapping {
                path, pending_key, ..
            }) => {
                let (key, key_pos) = pending_key.take().unwrap_or_default();
                (join_key(path, &key), Some(key_pos))
            }
            Some(Frame::Sequence { path, next }) => {
                let item = format!("{path}[{next}]");
                *next += 1;
                (item, None)
            }
            Some(Frame::ComplexKey { .. }) => continue,
            None => {
                if root_seen {
                    continue;
                }
                root_seen = true;
                (String::new(), None)
            }
        };
        // A repeated key keeps its first position: that is the value serde
        // would have used had duplicates been allowed.
        let shape = match (&event, opens) {
            (_, Some(true)) => "a mapping",
            (_, Some(false)) => "a list",
            (Event::Alias(..), _) => "an alias",
            _ => "a value",
        };
        idx.entries.entry(path.clone()).or_insert(Entry {
            key,
            value: pos,
            scalar,
            shape,
        });
        match opens {
            Some(true) => stack.push(Frame::Mapping {
                path,
                pending_key: None,
                seen: HashMap::new(),
            }),
            Some(false) => stack.push(Frame::Sequence { path, next: 0 }),
            None => {}
        }
    }
    Ok((idx, duplicates))
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment
name: x
network:
  underlay: 10.0.0.0/24
nodes:
  - name: a
    ip: 10.0.0.10
  - {name: b, ssh: {host: h}}
";

    fn at(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn indexes_block_and_flow_paths() {
        let (idx, dups) = index(DOC).unwrap();
        assert!(dups.is_empty());
        assert_eq!(idx.locate("name"), Some(at(2, 7)));
        assert_eq!(idx.locate("network.underlay"), Some(at(4, 13)));
        assert_eq!(idx.locate("nodes[0]"), Some(at(6, 5)));
        assert_eq!(idx.locate("nodes[0].ip"), Some(at(7, 9)));
        assert_eq!(idx.locate("nodes[1].ssh.host"), Some(at(8, 27)));
        assert_eq!(
            idx.get("nodes[1].name").unwrap().scalar.as_deref(),
            Some("b")
        );
        assert_eq!(idx.get("nodes[0].ip").unwrap().key, Some(at(7, 5)));
    }

    #[test]
    fn missing_fields_fall_back_to_the_nearest_ancestor() {
        let (idx, _) = index(DOC).unwrap();
        assert_eq!(idx.locate("nodes[1].ssh.user"), idx.locate("nodes[1].ssh"));
        assert_eq!(idx.locate("nodes[0].ssh.user"), Some(at(6, 5)));
        assert_eq!(idx.locate("verify.image"), Some(at(2, 1)));
    }

    #[test]
    fn reverse_lookup_prefers_the_outermost_path() {
        let (idx, _) = index(DOC).unwrap();
        assert_eq!(idx.path_of_value_at(at(4, 3)), Some("network"));
        assert_eq!(idx.path_of_key_at(at(4, 3)), Some("network.underlay"));
    }

    #[test]
    fn reports_every_duplicate_key() {
        let (_, dups) = index("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n").unwrap();
        let got: Vec<_> = dups.iter().map(|d| (d.path.as_str(), d.pos)).collect();
        assert_eq!(got, vec![("b.c", at(4, 3)), ("a", at(5, 1))]);
        assert!(dups[0].message.contains("first given at line 3, column 3"));
    }

    #[test]
    fn syntax_errors_carry_the_scanner_position() {
        let err = index("name: [x\n").unwrap_err();
        assert!(err.message.starts_with("invalid YAML: "), "{}", err.message);
        assert_eq!(err.pos.line, 1);
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path("nodes[2].ip"), "nodes[2]");
        assert_eq!(parent_path("nodes[2]"), "nodes");
        assert_eq!(parent_path("nodes"), "");
    }
}
