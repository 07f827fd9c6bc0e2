//! The scenario format's JSON Schema, generated from the Rust types in `model` (their doc
//! comments become descriptions). It is checked in as `scenarios/schema.json` for editors and
//! other tools; a test fails when the checked-in copy is stale.

use super::Scenario;

/// The JSON Schema of a scenario file.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(Scenario).to_value()
}

/// The schema as it is checked in: pretty JSON with a trailing newline.
pub fn json_schema_text() -> String {
    // A schema is a JSON value already; pretty-printing a value cannot fail.
    let mut text =
        serde_json::to_string_pretty(&json_schema()).expect("a JSON value always serializes");
    text.push('\n');
    text
}
