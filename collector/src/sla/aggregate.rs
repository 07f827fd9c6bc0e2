//! Aggregation for the SLA endpoints: cells merged into the requested groups ([`aggregate`]),
//! the cohort each group is benchmarked against ([`CohortCells`]) and the orchestrator ranking
//! ([`rank`]). Scores are computed from merged sums, never averaged. Pure: the cells come in
//! from whoever read them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::{CellKey, CellSums, Cohort, SlaScore, cohort_window_unix_s};

/// A cohort's identity: the pipeline, model and load kind whose cells form it.
pub type CohortKey = (String, String, bool);

/// One merged group: its sums and the cohorts its cells belong to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merged {
    /// The merged sums of the group's cells.
    pub sums: CellSums,
    /// The (pipeline, model, test load) of every cell merged in.
    pub cohorts: BTreeSet<CohortKey>,
}

/// Merges cells into groups: `group` maps a cell to its group key (`None` drops the cell).
pub fn aggregate<G: Ord>(
    cells: &[(CellKey, CellSums)],
    mut group: impl FnMut(&CellKey) -> Option<G>,
) -> BTreeMap<G, Merged> {
    let mut groups: BTreeMap<G, Merged> = BTreeMap::new();
    for (key, sums) in cells {
        let Some(group_key) = group(key) else {
            continue;
        };
        let merged = groups.entry(group_key).or_default();
        merged.sums.merge(sums);
        // Most cells of a group share its cohort; looking before inserting spares two string
        // copies per cell.
        let known = merged
            .cohorts
            .iter()
            .any(|(pipeline, model_id, test_load)| {
                *pipeline == key.pipeline
                    && *model_id == key.model_id
                    && *test_load == key.test_load
            });
        if !known {
            merged
                .cohorts
                .insert((key.pipeline.clone(), key.model_id.clone(), key.test_load));
        }
    }
    groups
}

/// The cohort cells of every (pipeline, model) a request touches, from which the cohort of any
/// bucket is merged.
#[derive(Debug, Default)]
pub struct CohortCells {
    cells: BTreeMap<(String, String), Vec<(CellKey, CellSums)>>,
    cache: HashMap<(i64, BTreeSet<CohortKey>), Cohort>,
}

impl CohortCells {
    /// Adds the cells of one (pipeline, model) read from the store.
    pub fn insert(&mut self, pipeline: String, model_id: String, cells: Vec<(CellKey, CellSums)>) {
        self.cells.insert((pipeline, model_id), cells);
    }

    /// The cohort of a group whose bucket starts at `bucket_start_unix_s`: the merged cells of
    /// its cohorts over the seven days before the bucket (a group spanning several pipelines or
    /// models is benchmarked against all of them together).
    pub fn cohort(&mut self, bucket_start_unix_s: i64, cohorts: &BTreeSet<CohortKey>) -> Cohort {
        let cache_key = (bucket_start_unix_s, cohorts.clone());
        if let Some(cohort) = self.cache.get(&cache_key) {
            return *cohort;
        }
        let window = cohort_window_unix_s(bucket_start_unix_s);
        let mut sums = CellSums::default();
        for (pipeline, model_id, test_load) in cohorts {
            let Some(cells) = self.cells.get(&(pipeline.clone(), model_id.clone())) else {
                continue;
            };
            for (key, cell) in cells {
                if key.test_load == *test_load && window.contains(&key.hour_unix_s) {
                    sums.merge(cell);
                }
            }
        }
        let cohort = Cohort::from_sums(&sums);
        self.cache.insert(cache_key, cohort);
        cohort
    }
}

/// One orchestrator of the ranking.
#[derive(Debug, Clone, Serialize)]
pub struct RankedOrchestrator {
    /// 1 for the best score; `None` for an orchestrator without a score.
    pub rank: Option<usize>,
    /// The orchestrator (lowercase address, else URI); `None` for sessions naming none.
    pub orchestrator: Option<String>,
    /// The regions its sessions were measured from.
    pub regions: Vec<String>,
    /// The SLA over the window.
    pub score: SlaScore,
}

/// Ranks merged per-orchestrator groups: by score, best first; ties by orchestrator; unscored
/// orchestrators (only busy or excused sessions) last with rank `None`.
pub fn rank(mut rows: Vec<(String, Vec<String>, SlaScore)>) -> Vec<RankedOrchestrator> {
    rows.sort_by(|a, b| match (a.2.sla_score, b.2.sla_score) {
        (Some(x), Some(y)) => y.total_cmp(&x).then_with(|| a.0.cmp(&b.0)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.0.cmp(&b.0),
    });
    rows.into_iter()
        .enumerate()
        .map(
            |(index, (orchestrator, regions, score))| RankedOrchestrator {
                rank: score.sla_score.map(|_| index + 1),
                orchestrator: (!orchestrator.is_empty()).then_some(orchestrator),
                regions,
                score,
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::score;

    const DAY_S: i64 = 86_400;

    fn scored(value: Option<f64>) -> SlaScore {
        let mut sums = CellSums::default();
        if value.is_some() {
            sums.startup_attempts = 1;
        }
        let mut result = score(&sums, &Cohort::from_sums(&CellSums::default()));
        result.sla_score = value;
        result
    }

    #[test]
    fn ranking_puts_unscored_orchestrators_last() {
        let ranked = rank(vec![
            ("0xb".into(), vec![], scored(Some(50.0))),
            ("0xc".into(), vec![], scored(None)),
            ("0xa".into(), vec![], scored(Some(90.0))),
            ("0xd".into(), vec![], scored(Some(50.0))),
        ]);
        let order: Vec<_> = ranked
            .iter()
            .map(|row| (row.orchestrator.clone().unwrap_or_default(), row.rank))
            .collect();
        assert_eq!(
            order,
            [
                ("0xa".to_owned(), Some(1)),
                ("0xb".to_owned(), Some(2)),
                ("0xd".to_owned(), Some(3)),
                ("0xc".to_owned(), None),
            ]
        );
    }

    fn key(hour_unix_s: i64, orchestrator: &str, test_load: bool) -> CellKey {
        CellKey {
            hour_unix_s,
            orchestrator: orchestrator.to_owned(),
            pipeline: "p".to_owned(),
            model_id: "m".to_owned(),
            gpu: String::new(),
            region: String::new(),
            complexity: String::new(),
            test_load,
        }
    }

    fn sums(sessions: u64) -> CellSums {
        CellSums {
            sessions,
            startup_attempts: sessions,
            ..CellSums::default()
        }
    }

    #[test]
    fn groups_merge_sums_and_cohorts_cover_the_week_before() {
        let cells = vec![
            (key(0, "a", true), sums(1)),
            (key(3600, "a", true), sums(2)),
            (key(3600, "b", true), sums(4)),
        ];
        let groups = aggregate(&cells, |key| Some(key.orchestrator.clone()));
        assert_eq!(groups["a"].sums.sessions, 3);
        assert_eq!(groups["b"].sums.sessions, 4);

        let mut cohorts = CohortCells::default();
        let mut history = cells.clone();
        history.push((key(-3600, "c", true), sums(8)));
        history.push((key(-3600, "c", false), sums(16)));
        history.push((key(-8 * DAY_S, "c", true), sums(32)));
        cohorts.insert("p".into(), "m".into(), history);
        let test_load: BTreeSet<CohortKey> = [("p".into(), "m".into(), true)].into();
        // The cohort of hour 7200 is the week before it: hours -3600, 0 and 3600 of test load;
        // organic load and the cell eight days back are out.
        assert_eq!(cohorts.cohort(7200, &test_load).rows, 8 + 1 + 2 + 4);
        assert_eq!(cohorts.cohort(0, &test_load).rows, 8);
    }
}
