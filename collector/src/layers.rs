//! The crate's layering, checked: each top-level module may import only modules of a lower
//! layer (or itself), so that the pure core never grows a dependency on the store, the store
//! none on the application, and the two edges (HTTP and Kafka) none on each other
//! (docs/architecture.md, "lvt-collector").

use std::path::{Path, PathBuf};

/// Each top-level module and its layer; a module may import modules of strictly lower layers.
/// The fractions order modules within a layer that build on each other.
const LAYERS: &[(&str, f32)] = &[
    ("sla", 1.0),
    ("stored", 1.1),
    ("verify", 1.2),
    ("kafka_health", 2.0),
    ("store", 2.0),
    ("organic", 2.1),
    ("metrics", 2.1),
    ("config", 2.2),
    ("app", 3.0),
    ("http", 4.0),
    ("kafka", 4.0),
    ("server", 5.0),
];

fn layer(module: &str) -> Option<f32> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, layer)| *layer)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules `text` names as `crate::NAME`, outside comments.
fn imports(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.push(name);
        }
    }
    names
}

#[test]
fn layers_import_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let first = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or("");
        let module = first.trim_end_matches(".rs");
        if matches!(module, "lib" | "main" | "layers") {
            continue;
        }
        let own = layer(module).unwrap_or_else(|| panic!("{module} has no layer in LAYERS"));
        let text = std::fs::read_to_string(&file).expect("readable source");
        for name in imports(&text) {
            if name == module {
                continue;
            }
            let theirs = layer(&name).unwrap_or_else(|| panic!("{name} has no layer in LAYERS"));
            if theirs >= own {
                wrong.push(format!("{} imports crate::{name}", relative.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    assert_eq!(
        imports("use crate::app::AppState; // crate::http in a comment"),
        vec!["app".to_owned()]
    );
}
