//! TOML syntax and type errors: serde's messages rewritten as located diagnostics with what
//! was expected and a hint.

use super::Diagnostic;
use super::locate::Locator;
use super::locate::Seg::Key as K;
use crate::scenario::threshold::nearest;

/// Turns serde's first error (syntax, type, unknown or missing key) into a diagnostic with an
/// expectation and a hint.
pub(super) fn serde_diagnostic(
    label: &str,
    locator: &Locator<'_>,
    error: &toml::de::Error,
) -> Diagnostic {
    let raw = error.message().trim();
    let span_start = error.span().map(|s| s.start);
    let span = error.span();
    let mut offset = span_start.unwrap_or(0);

    // Syntax errors come as "what\nexpected ..." lines.
    let mut lines = raw.lines();
    let first = lines.next().unwrap_or_default().trim().to_string();
    let expected_line = lines
        .map(str::trim)
        .find_map(|l| l.strip_prefix("expected "))
        .map(str::to_string);

    let (message, expected, hint) = if let Some(rest) = first.strip_prefix("unknown field ") {
        let (name, valid) = split_expected(rest);
        let name = unquote(&name);
        // Inside internally tagged sections serde only knows the section's span: point at the
        // key itself, the first key of that name inside the span.
        if let Some(found) = locator
            .keys_named(&name)
            .into_iter()
            .find(|&k| span.as_ref().is_none_or(|s| s.contains(&k)))
        {
            offset = found;
        }
        let candidates = quoted_words(valid.as_deref().unwrap_or_default());
        let hint = match nearest(&name, candidates.iter().map(String::as_str)) {
            Some(best) => format!("did you mean `{best}`?"),
            None => "remove it; docs/scenarios.md lists every key".to_string(),
        };
        let expected = match valid.as_deref() {
            Some(v) if candidates.is_empty() => v.to_string(),
            Some(_) => format!("one of the keys {}", candidates.join(", ")),
            None => "no other keys here".to_string(),
        };
        (format!("unknown key `{name}`"), Some(expected), Some(hint))
    } else if let Some(rest) = first.strip_prefix("unknown variant ") {
        let (name, valid) = split_expected(rest);
        let name = unquote(&name);
        let candidates = quoted_words(valid.as_deref().unwrap_or_default());
        let hint = match nearest(&name, candidates.iter().map(String::as_str)) {
            Some(best) => format!("did you mean `{best}`?"),
            None => "docs/scenarios.md lists the allowed values".to_string(),
        };
        (
            format!("unknown value `{name}`"),
            Some(format!("one of {}", candidates.join(", "))),
            Some(hint),
        )
    } else if let Some(rest) = first.strip_prefix("missing field ") {
        let name = unquote(rest);
        let hint = match name.as_str() {
            "source" => {
                "add `source = \"explicit\"` (or \"static\", \"webhook\", \"network\")".to_string()
            }
            "executor" => "add `executor = \"closed\"` or `executor = \"open\"`".to_string(),
            _ => format!("add `{name} = ...`; docs/scenarios.md describes it"),
        };
        (
            format!("missing required key `{name}`"),
            Some(if offset == 0 {
                format!("the top-level key `{name}`")
            } else {
                format!("the key `{name}` in this table")
            }),
            Some(hint),
        )
    } else if let Some(rest) = first.strip_prefix("invalid type: ") {
        let (found, expected) = split_expected(rest);
        let expected = expected.map(|e| plain_type(&e));
        (
            format!("wrong type: found {found}"),
            expected,
            Some("docs/scenarios.md gives every key's type".to_string()),
        )
    } else if span.is_some() && span_start == locator.value_source(&[K("version")]).map(|v| v.0) {
        (
            format!("invalid version: {first}"),
            Some("a semantic version MAJOR.MINOR.PATCH, for example \"1.0.0\"".to_string()),
            Some("bump MAJOR when results stop being comparable with earlier ones".to_string()),
        )
    } else if let Some(rest) = first.strip_prefix("invalid value: ") {
        let (found, expected) = split_expected(rest);
        (
            format!("invalid value: {found}"),
            expected.map(|e| plain_type(&e)),
            Some("docs/scenarios.md gives every key's range".to_string()),
        )
    } else if first.starts_with("duplicate key") {
        (
            first.clone(),
            Some("each key at most once per table".to_string()),
            Some("remove one of the two; TOML tables cannot repeat a key".to_string()),
        )
    } else {
        let (expected, hint) = match first.as_str() {
            "invalid basic string" | "invalid literal string" => (
                "the string's closing quote on the same line".to_string(),
                "use `\"\"\"` quotes for text spanning several lines",
            ),
            "invalid array" => (
                expected_line.unwrap_or_else(|| "`]`".to_string()),
                "close the array with `]` before the next key",
            ),
            "invalid string" => (
                expected_line.unwrap_or_else(|| "a value".to_string()),
                "text values need quotes; booleans are `true` or `false`",
            ),
            _ => (
                expected_line.unwrap_or_else(|| "valid TOML (see https://toml.io)".to_string()),
                "check quoting, brackets and `=` around this position",
            ),
        };
        (
            format!("invalid TOML: {first}"),
            Some(expected),
            Some(hint.to_string()),
        )
    };
    locator.diagnostic(label, offset, message, expected, hint)
}

/// Splits "X, expected Y" into X and Y.
fn split_expected(text: &str) -> (String, Option<String>) {
    match text.split_once(", expected ") {
        Some((found, expected)) => (found.to_string(), Some(expected.to_string())),
        None => match text.split_once(", there are no fields") {
            Some((found, _)) => (found.to_string(), None),
            None => (text.to_string(), None),
        },
    }
}

/// `` `name` `` to `name`.
fn unquote(text: &str) -> String {
    text.trim().trim_matches('`').to_string()
}

/// The back-quoted words of serde's "one of `a`, `b`" lists.
fn quoted_words(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Serde's Rust-flavoured type names in words a scenario author knows.
fn plain_type(expected: &str) -> String {
    match expected {
        "u32" | "u64" | "u16" | "u8" => "a non-negative integer".to_string(),
        "f64" | "f32" => "a number".to_string(),
        "a sequence" => "a list, `[...]`".to_string(),
        "a boolean" => "true or false".to_string(),
        other => other.to_string(),
    }
}
