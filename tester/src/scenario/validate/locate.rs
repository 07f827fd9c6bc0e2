//! Where keys and values are in a scenario file: a span-preserving parse (toml_edit) walked by
//! paths of keys and indices, and offsets turned into lines and columns for diagnostics.

use std::ops::Range;

use toml_edit::{ImDocument, Item};

use super::Diagnostic;

/// One step of a path into the TOML document.
#[derive(Debug, Clone, Copy)]
pub(super) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Finds the source position of keys and values, from a span-preserving parse of the text.
pub(super) struct Locator<'t> {
    text: &'t str,
    document: Option<ImDocument<&'t str>>,
}

impl<'t> Locator<'t> {
    pub(super) fn new(text: &'t str) -> Self {
        Self {
            text,
            document: ImDocument::parse(text).ok(),
        }
    }

    /// The item at `path` (`None` when it is not in the document), and the span of the
    /// deepest item on the way that has one: implicit tables (`[a.b]` makes `a` implicit) and
    /// missing keys have none, so an error falls back to the nearest located ancestor.
    pub(super) fn walk(&self, path: &[Seg<'_>]) -> (Option<&Item>, Option<Range<usize>>) {
        let Some(document) = &self.document else {
            return (None, None);
        };
        let mut item = document.as_item();
        let mut span = None;
        for seg in path {
            let next = match *seg {
                Seg::Key(key) => item.get(key),
                Seg::Index(index) => item.get(index),
            };
            let Some(next) = next else {
                return (None, span);
            };
            span = next.span().or(span);
            item = next;
        }
        (Some(item), span)
    }

    /// The byte offset of the value at `path` (or of its nearest located ancestor; 0 when
    /// nothing is located).
    pub(super) fn value_offset(&self, path: &[Seg<'_>]) -> usize {
        self.walk(path).1.map_or(0, |span| span.start)
    }

    /// The byte offset of the key ending `path` (falling back to the value's ancestors).
    pub(super) fn key_offset(&self, path: &[Seg<'_>]) -> usize {
        if let Some((Seg::Key(key), parent)) = path.split_last()
            && let (Some(table), _) = self.walk(parent)
            && let Some(span) = table
                .as_table_like()
                .and_then(|t| t.key(key))
                .and_then(|k| k.span())
        {
            return span.start;
        }
        self.value_offset(path)
    }

    /// The raw source text of the value at `path`, when it is located exactly.
    pub(super) fn value_source(&self, path: &[Seg<'_>]) -> Option<(usize, &'t str)> {
        let span = self.walk(path).0?.span()?;
        self.text.get(span.clone()).map(|raw| (span.start, raw))
    }

    /// Every key in the document named `name`, with the byte offset of the key, in file
    /// order.
    pub(super) fn keys_named(&self, name: &str) -> Vec<usize> {
        fn visit_item(item: &Item, name: &str, out: &mut Vec<usize>) {
            match item {
                Item::Table(table) => visit_table(table, name, out),
                Item::ArrayOfTables(array) => {
                    for table in array.iter() {
                        visit_table(table, name, out);
                    }
                }
                Item::Value(value) => visit_value(value, name, out),
                Item::None => {}
            }
        }
        fn visit_table(table: &toml_edit::Table, name: &str, out: &mut Vec<usize>) {
            for (key, child) in table.iter() {
                if key == name {
                    out.extend(table.key(key).and_then(|k| k.span()).map(|s| s.start));
                }
                visit_item(child, name, out);
            }
        }
        fn visit_value(value: &toml_edit::Value, name: &str, out: &mut Vec<usize>) {
            match value {
                toml_edit::Value::InlineTable(table) => {
                    for (key, child) in table.iter() {
                        if key == name {
                            out.extend(table.key(key).and_then(|k| k.span()).map(|s| s.start));
                        }
                        visit_value(child, name, out);
                    }
                }
                toml_edit::Value::Array(array) => {
                    for child in array.iter() {
                        visit_value(child, name, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        if let Some(document) = &self.document {
            visit_item(document.as_item(), name, &mut out);
        }
        out.sort_unstable();
        out
    }

    /// 1-based line and character column of a byte offset.
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    pub(super) fn diagnostic(
        &self,
        label: &str,
        offset: usize,
        message: String,
        expected: Option<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let (line, column) = self.position(offset);
        Diagnostic {
            path: label.to_string(),
            line,
            column,
            message,
            expected,
            hint,
        }
    }
}
