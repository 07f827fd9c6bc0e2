//! Scenario loading and `validate_paths` against the corpus in tests/data/scenarios: every
//! broken file's diagnostics must match its `.expected` file exactly, every valid file must
//! load and conform to the checked-in JSON Schema, and the schema must be fresh.
//!
//! `LVT_BLESS=1 cargo test -p lvt-tester --test validate` rewrites the `.expected` files and
//! `scenarios/schema.json` from the current output; review the diff before committing.

use std::path::{Path, PathBuf};

use lvt_tester::scenario::schema::json_schema_text;
use lvt_tester::scenario::threshold::ThresholdExpr;
use lvt_tester::scenario::validate::{Diagnostic, load_file, load_str, validate_paths};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios")
}

fn bless() -> bool {
    std::env::var_os("LVT_BLESS").is_some_and(|v| v == "1")
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    out
}

/// Compares `actual` with the `.expected` file next to `source` (or rewrites it when
/// blessing); returns a description of the mismatch.
fn compare_expected(source: &Path, actual: &str) -> Result<(), String> {
    let expected_path = source.with_extension("expected");
    if bless() {
        std::fs::write(&expected_path, actual).expect("write .expected");
        return Ok(());
    }
    let expected = std::fs::read_to_string(&expected_path)
        .map_err(|e| format!("{}: {e}", expected_path.display()))?;
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{} differs\n--- expected\n{expected}--- actual\n{actual}",
            expected_path.display()
        ))
    }
}

/// The one harness for broken files: loads `file` under its corpus-relative label and
/// compares the rendered diagnostics with `file.expected`.
fn check(file: &Path) -> Result<(), String> {
    let label = file
        .strip_prefix(corpus())
        .expect("corpus file")
        .display()
        .to_string();
    let text = std::fs::read_to_string(file).expect("read corpus file");
    match load_str(&label, &text) {
        Ok(_) => Err(format!("{label} loaded but is meant to be broken")),
        Err(diagnostics) => {
            for d in &diagnostics {
                assert_eq!(d.path, label);
                assert!(d.expected.is_some(), "{d}: no `expected`");
                assert!(d.hint.is_some(), "{d}: no hint");
            }
            compare_expected(file, &render(&diagnostics))
        }
    }
}

#[test]
fn broken_corpus_matches_expected_diagnostics() {
    let files = toml_files(&corpus().join("broken"));
    assert!(files.len() >= 15, "only {} broken files", files.len());
    let failures: Vec<String> = files.iter().filter_map(|f| check(f).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn duplicate_ids_across_files_point_at_the_second_id() {
    // A relative directory, as a user would type it: labels keep the path as given.
    let dir = PathBuf::from("tests/data/scenarios/broken/duplicate_ids");
    let report = validate_paths(std::slice::from_ref(&dir));
    assert_eq!(report.files.len(), 2);
    assert_eq!(
        report.scenarios.len(),
        2,
        "both files are valid on their own"
    );
    assert_eq!(report.files_with_errors(), 1);
    let expected = corpus().join("broken/duplicate_ids.toml");
    compare_expected(&expected, &render(&report.diagnostics)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn valid_corpus_loads_and_validates_as_a_directory() {
    let dir = corpus().join("valid");
    let files = toml_files(&dir);
    assert!(files.len() >= 2);
    for file in &files {
        if let Err(diagnostics) = load_file(file) {
            panic!("{}", render(&diagnostics));
        }
    }
    let report = validate_paths(&[dir]);
    assert!(report.is_ok(), "{}", render(&report.diagnostics));
    assert_eq!(report.files, files);
    let ids: Vec<&str> = report
        .scenarios
        .iter()
        .map(|(_, s)| s.id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "full-0",
            "gateway-pinned",
            "minimal",
            "network-score-weighted",
            "webhook-closed"
        ]
    );
}

#[test]
fn validate_paths_checks_every_file_of_a_directory_and_reports_missing_ones() {
    let broken = corpus().join("broken");
    let missing = corpus().join("no-such-scenario.toml");
    let report = validate_paths(&[broken.clone(), missing.clone()]);
    let files = toml_files(&broken);
    // Directories are not walked recursively: duplicate_ids/ is not part of broken/.
    assert_eq!(report.files.len(), files.len() + 1);
    assert!(report.scenarios.is_empty());
    assert_eq!(report.files_with_errors(), files.len() + 1);
    let last = report
        .diagnostics
        .last()
        .expect("a diagnostic for the missing file");
    assert_eq!(last.path, missing.display().to_string());
    assert_eq!((last.line, last.column), (1, 1));
    assert!(last.message.starts_with("cannot read the file"), "{last}");

    let empty = tempfile::tempdir().expect("tempdir");
    let report = validate_paths(&[empty.path().to_path_buf()]);
    assert_eq!(report.diagnostics.len(), 1);
    assert_eq!(
        report.diagnostics[0].message,
        "no scenario files in this directory"
    );
    assert!(validate_paths(&[]).is_ok());
}

#[test]
fn diagnostics_collect_every_semantic_error_in_file_order() {
    let text = std::fs::read_to_string(corpus().join("broken/many_errors.toml")).unwrap();
    let diagnostics = load_str("many.toml", &text).unwrap_err();
    assert!(diagnostics.len() >= 8, "{}", render(&diagnostics));
    let positions: Vec<(usize, usize)> = diagnostics.iter().map(|d| (d.line, d.column)).collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted);
}

#[test]
fn schema_json_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/schema.json");
    let generated = json_schema_text();
    if bless() {
        std::fs::write(&path, &generated).expect("write scenarios/schema.json");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "scenarios/schema.json is stale: run `LVT_BLESS=1 cargo test -p lvt-tester schema`"
    );
}

fn checked_in_schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read schema.json"))
        .expect("schema.json is JSON")
}

/// The TOML file as the JSON document an editor validates against the schema.
fn toml_as_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read scenario");
    let value: toml::Value = toml::from_str(&text).expect("valid TOML");
    serde_json::to_value(value).expect("TOML converts to JSON")
}

#[test]
fn schema_rejects_unknown_keys_and_accepts_the_valid_corpus() {
    let schema = checked_in_schema();
    assert_eq!(schema["additionalProperties"], Value::Bool(false));
    for file in toml_files(&corpus().join("valid")) {
        let document = toml_as_json(&file);
        conforms(&schema, &schema, &document, "$")
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // What the tester writes back (defaults filled in) conforms too.
        let scenario = load_file(&file).expect("valid scenario");
        let written = serde_json::to_value(&scenario).expect("scenario to JSON");
        conforms(&schema, &schema, &written, "$")
            .unwrap_or_else(|e| panic!("{} as written: {e}", file.display()));
    }
    for name in [
        "unknown_key_top",
        "unknown_key_nested",
        "unknown_key_tagged",
        "missing_key",
    ] {
        let document = toml_as_json(&corpus().join(format!("broken/{name}.toml")));
        assert!(
            conforms(&schema, &schema, &document, "$").is_err(),
            "{name} conforms to the schema"
        );
    }
}

/// A small JSON Schema checker covering the keywords schemars emits for the scenario types:
/// `$ref`, `oneOf`/`anyOf`/`allOf`, `type`, `enum`, `const`, `minimum`/`maximum`,
/// `properties`, `required`, `additionalProperties` and `items`.
fn conforms(root: &Value, schema: &Value, instance: &Value, at: &str) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        return match schema {
            Value::Bool(false) => Err(format!("{at}: not allowed")),
            _ => Ok(()),
        };
    };
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.strip_prefix("#/$defs/").expect("local $ref");
        conforms(root, &root["$defs"][name], instance, at)?;
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            conforms(root, s, instance, at)?;
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(|s| conforms(root, s, instance, at).is_ok())
    {
        return Err(format!("{at}: matches none of anyOf"));
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = one
            .iter()
            .filter(|s| conforms(root, s, instance, at).is_ok())
            .count();
        if matching != 1 {
            return Err(format!("{at}: matches {matching} of oneOf"));
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => instance.is_object(),
            "array" => instance.is_array(),
            "string" => instance.is_string(),
            "boolean" => instance.is_boolean(),
            "null" => instance.is_null(),
            "number" => instance.is_number(),
            "integer" => {
                instance.is_i64()
                    || instance.is_u64()
                    || instance.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        });
        if !ok {
            return Err(format!("{at}: {instance} is not of type {types:?}"));
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(instance)
    {
        return Err(format!("{at}: {instance} not in {values:?}"));
    }
    if let Some(value) = schema.get("const")
        && value != instance
    {
        return Err(format!("{at}: {instance} is not {value}"));
    }
    let number = instance.as_f64();
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), number)
        && n < min
    {
        return Err(format!("{at}: {n} < minimum {min}"));
    }
    if let (Some(max), Some(n)) = (schema.get("maximum").and_then(Value::as_f64), number)
        && n > max
    {
        return Err(format!("{at}: {n} > maximum {max}"));
    }
    if let Some(object) = instance.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = required.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                return Err(format!("{at}: missing required `{key}`"));
            }
        }
        for (key, value) in object {
            let child = format!("{at}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(s) => conforms(root, s, value, &child)?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => return Err(format!("{child}: unknown key")),
                    Some(s) => conforms(root, s, value, &child)?,
                    None => {}
                },
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), instance.as_array()) {
        for (i, value) in array.iter().enumerate() {
            conforms(root, items, value, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Characters that tend to break TOML and the checks when inserted at random.
const NOISE: &[char] = &[
    '"', '\'', '[', ']', '{', '}', '=', '.', ',', '#', '\n', ' ', '0', '9', '-', '_', 'a', 'é',
    '<', '>',
];

#[test]
fn mutated_scenarios_never_panic_and_stay_located() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5ce_a210);
    for file in toml_files(&corpus().join("valid")) {
        let original: Vec<char> = std::fs::read_to_string(&file).unwrap().chars().collect();
        for _ in 0..300 {
            let mut chars = original.clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..chars.len());
                match rng.random_range(0..3) {
                    0 => {
                        chars.remove(at);
                    }
                    1 => chars.insert(at, NOISE[rng.random_range(0..NOISE.len())]),
                    _ => chars[at] = NOISE[rng.random_range(0..NOISE.len())],
                }
            }
            let text: String = chars.iter().collect();
            let lines = text.lines().count().max(1) + 1;
            if let Err(diagnostics) = load_str("fuzz.toml", &text) {
                assert!(!diagnostics.is_empty());
                for d in diagnostics {
                    assert!(d.line >= 1 && d.line <= lines, "{d}\n{text}");
                    assert!(d.column >= 1, "{d}");
                }
            }
        }
    }
}

#[test]
fn random_threshold_expressions_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let pieces = [
        "startup_ms",
        "failure_rate",
        ".",
        "p95",
        "mean",
        " ",
        "<",
        "<=",
        "=",
        "!",
        "8000",
        "0.5",
        "e",
        "-",
        "é",
        "swaps",
        "count",
        "\t",
    ];
    for _ in 0..5_000 {
        let expr: String = (0..rng.random_range(0..7))
            .map(|_| pieces[rng.random_range(0..pieces.len())])
            .collect();
        if let Err(error) = ThresholdExpr::parse(&expr) {
            assert!(error.offset <= expr.len(), "{expr:?}: {error}");
            assert!(expr.is_char_boundary(error.offset), "{expr:?}: {error}");
        }
    }
}

#[test]
fn shipped_scenarios_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let report = validate_paths(&[dir]);
    assert!(report.is_ok(), "{}", render(&report.diagnostics));
    assert_eq!(report.scenarios.len(), report.files.len());
}

#[test]
fn docs_example_validates() {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scenarios.md"))
            .expect("read docs/scenarios.md");
    let example = docs
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/scenarios.md has a toml example");
    if let Err(diagnostics) = load_str("docs/scenarios.md", example) {
        panic!("{}", render(&diagnostics));
    }
}
