//! Maps a key path such as `bridges[1].to` back to its line in the TOML text, so that every validation
//! error can name the file, the line and the key.

use toml_edit::{ImDocument, Item, Table, Value};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Renders a path as `a.b[2].c`.
pub fn render(path: &[Segment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

enum Node<'a> {
    Item(&'a Item),
    Table(&'a Table),
    Value(&'a Value),
}

/// The line where the deepest existing part of `path` is written (the key itself when it exists).
pub fn line_of_path(text: &str, path: &[Segment]) -> Option<usize> {
    let doc = ImDocument::parse(text).ok()?;
    let mut node = Node::Table(doc.as_table());
    let mut best: Option<usize> = None;
    for seg in path {
        let next = match (seg, &node) {
            (Segment::Key(k), Node::Table(t)) => t.get_key_value(k).map(|(key, item)| {
                best = key.span().map(|s| s.start).or(best);
                Node::Item(item)
            }),
            (Segment::Key(k), Node::Item(item)) => {
                item.as_table_like()
                    .and_then(|t| t.get_key_value(k))
                    .map(|(key, item)| {
                        best = key.span().map(|s| s.start).or(best);
                        Node::Item(item)
                    })
            }
            (Segment::Key(k), Node::Value(Value::InlineTable(t))) => t.get_key_value(k).map(|(key, item)| {
                best = key.span().map(|s| s.start).or(best);
                Node::Item(item)
            }),
            (Segment::Index(i), Node::Item(Item::ArrayOfTables(a))) => a.get(*i).map(|t| {
                best = t.span().map(|s| s.start).or(best);
                Node::Table(t)
            }),
            (Segment::Index(i), Node::Item(Item::Value(Value::Array(a))))
            | (Segment::Index(i), Node::Value(Value::Array(a))) => a.get(*i).map(|v| {
                best = v.span().map(|s| s.start).or(best);
                Node::Value(v)
            }),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    best.map(|offset| line_of(text, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"name = "x"

[world]
broker = "mosquitto"

[[bridges]]
name = "a"
to = "mqtt://one"

[[bridges]]
name = "b"
to = "mqtt://two"

[[faults]]
at = { published = 5 }
action = "cut"
"#;

    fn key(k: &str) -> Segment {
        Segment::Key(k.into())
    }

    #[test]
    fn finds_keys_in_tables_arrays_of_tables_and_inline_tables() {
        assert_eq!(line_of_path(TEXT, &[key("name")]), Some(1));
        assert_eq!(line_of_path(TEXT, &[key("world"), key("broker")]), Some(4));
        assert_eq!(
            line_of_path(TEXT, &[key("bridges"), Segment::Index(1), key("to")]),
            Some(12)
        );
        assert_eq!(
            line_of_path(
                TEXT,
                &[key("faults"), Segment::Index(0), key("at"), key("published")]
            ),
            Some(15)
        );
    }

    #[test]
    fn a_missing_key_points_at_its_parent() {
        assert_eq!(
            line_of_path(TEXT, &[key("bridges"), Segment::Index(0), key("from")]),
            Some(6)
        );
    }

    #[test]
    fn renders_paths() {
        assert_eq!(
            render(&[key("bridges"), Segment::Index(1), key("to")]),
            "bridges[1].to"
        );
    }
}
