//! The scenarios shipped with lvt, embedded in the binary so `lvt run smoke` works from any
//! directory. The files under `scenarios/` are the source; these are copies taken at build
//! time, and a test checks the two lists agree.

/// Every shipped scenario as `(id, TOML text)`.
pub const SHIPPED: &[(&str, &str)] = &[
    ("smoke", include_str!("../../../scenarios/smoke.toml")),
    (
        "sla-hourly",
        include_str!("../../../scenarios/sla-hourly.toml"),
    ),
    ("soak", include_str!("../../../scenarios/soak.toml")),
    ("capacity", include_str!("../../../scenarios/capacity.toml")),
    ("startup", include_str!("../../../scenarios/startup.toml")),
];

/// The TOML text of the shipped scenario `id`.
pub fn shipped(id: &str) -> Option<&'static str> {
    SHIPPED
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::scenario::validate::load_str;

    #[test]
    fn every_shipped_scenario_is_valid_and_named_by_its_id() {
        for (id, text) in SHIPPED {
            let s = load_str(&format!("scenarios/{id}.toml"), text)
                .unwrap_or_else(|d| panic!("{id}: {}", d[0]));
            assert_eq!(&s.id, id);
        }
        assert!(shipped("smoke").is_some());
        assert!(shipped("nope").is_none());
    }

    #[test]
    fn every_scenario_file_is_shipped() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("the scenarios directory")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        files.sort();
        let mut ids: Vec<String> = SHIPPED.iter().map(|(id, _)| id.to_string()).collect();
        ids.sort();
        assert_eq!(files, ids, "add new scenario files to SHIPPED");
    }
}
