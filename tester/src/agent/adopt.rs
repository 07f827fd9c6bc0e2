//! Whether the agent adopts a fetched scenario commit: a pure decision over the commit's
//! scenario files, the commit in use and whether the move is a fast-forward. A commit is
//! adopted only as a whole: every file valid (everything `lvt validate` checks), the history
//! rules of `scenario::validate::history` kept against the commit in use, every scheduled
//! scenario present, and no history rewrite unless `allow_force_push`. Otherwise the agent
//! keeps its commit and reports why.

use crate::run::record::ScenarioIdentity;
use crate::scenario::repo::RepoFile;
use crate::scenario::validate::{self, history};
use crate::scenario::{Scenario, identity};

/// The scenario commit the agent runs: where it came from and its scenario files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    /// The repository as configured (`[scenarios] git`).
    pub repository: String,
    /// The commit id (hex).
    pub commit: String,
    /// Its scenario files, by path in the repository.
    pub files: Vec<RepoFile>,
}

impl Adopted {
    fn texts(&self) -> Vec<(String, String)> {
        texts(&self.files)
    }

    /// The scenario with id `id` and its identity (the repository, the commit and the file's
    /// path in it; never dirty: it was read from the commit itself).
    pub fn find(&self, id: &str) -> Result<(Scenario, ScenarioIdentity), String> {
        for file in &self.files {
            if let Ok(scenario) = validate::load_str(&file.path, &file.text)
                && scenario.id == id
            {
                let mut identity = identity::identify(&scenario, None);
                identity.path = Some(file.path.clone());
                identity.git_commit = Some(self.commit.clone());
                identity.git_path = Some(file.path.clone());
                identity.git_dirty = Some(false);
                identity.git_repository = Some(self.repository.clone());
                return Ok((scenario, identity));
            }
        }
        Err(format!(
            "no valid scenario with id {id:?} in commit {} of {}",
            self.commit, self.repository
        ))
    }
}

fn texts(files: &[RepoFile]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|f| (f.path.clone(), f.text.clone()))
        .collect()
}

/// A fetched commit, to be judged.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The commit id (hex).
    pub commit: &'a str,
    /// Its scenario files.
    pub files: &'a [RepoFile],
    /// Whether the commit in use is in its history (`true` when there is none yet).
    pub fast_forward: bool,
}

/// What to do with a fetched commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// It is the commit in use.
    Unchanged,
    /// Adopt it: new runs use it (runs in flight finish on theirs).
    Adopt,
    /// Keep the commit in use; each entry is one reason, `file:line:col: ...` where it has a
    /// place.
    Refuse(Vec<String>),
}

/// What the agent's configuration requires of a commit.
#[derive(Debug, Clone, Default)]
pub struct Rules<'a> {
    /// The ref followed, for messages.
    pub git_ref: &'a str,
    /// The scenario folder in the repository, for messages.
    pub folder: &'a str,
    /// Adopt history rewrites.
    pub allow_force_push: bool,
    /// The ids the schedules run.
    pub scheduled: Vec<&'a str>,
}

/// Judges `candidate` against the commit in use (`current`).
pub fn judge(current: Option<&Adopted>, candidate: &Candidate<'_>, rules: &Rules<'_>) -> Judgement {
    if current.is_some_and(|c| c.commit == candidate.commit) {
        return Judgement::Unchanged;
    }
    let mut reasons = Vec::new();
    if let Some(current) = current
        && !candidate.fast_forward
        && !rules.allow_force_push
    {
        reasons.push(format!(
            "{} moved from {} to {}, which does not have it in its history (a history \
             rewrite); set allow_force_push = true in [scenarios] to adopt such a move",
            rules.git_ref, current.commit, candidate.commit
        ));
        return Judgement::Refuse(reasons);
    }
    if candidate.files.is_empty() {
        return Judgement::Refuse(vec![format!(
            "commit {} has no scenario files (*.toml) in {:?}",
            candidate.commit, rules.folder
        )]);
    }
    let new_texts = texts(candidate.files);
    let report = validate::validate_texts(&new_texts);
    reasons.extend(report.diagnostics.iter().map(ToString::to_string));
    if let Some(current) = current {
        let history = history::compare(&current.texts(), &new_texts);
        reasons.extend(history.errors.iter().map(ToString::to_string));
    }
    for id in &rules.scheduled {
        if !report.scenarios.iter().any(|(_, s)| s.id == *id) {
            reasons.push(format!(
                "scenario {id:?} is scheduled but commit {} has no valid scenario with that id \
                 in {:?}",
                candidate.commit, rules.folder
            ));
        }
    }
    if reasons.is_empty() {
        Judgement::Adopt
    } else {
        Judgement::Refuse(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOKE: &str = r#"
id = "smoke"
version = "1.0.0"
description = "t"
pipeline = "live-video-to-video"
model_id = "noop"

[[prompts]]
id = "p"
complexity = "low"
params = { prompt = "x" }

[session]
duration_s = 5

[targets]
source = "static"
orchestrators = [{ address = "https://127.0.0.1:8935" }]

[load]
executor = "closed"
sessions_per_target = 1
concurrency = 1
"#;

    fn file(path: &str, text: &str) -> RepoFile {
        RepoFile {
            path: path.into(),
            text: text.into(),
        }
    }

    fn adopted(files: Vec<RepoFile>) -> Adopted {
        Adopted {
            repository: "http://git.test/s.git".into(),
            commit: "a".repeat(40),
            files,
        }
    }

    fn rules() -> Rules<'static> {
        Rules {
            git_ref: "main",
            folder: "scenarios",
            allow_force_push: false,
            scheduled: vec!["smoke"],
        }
    }

    fn candidate<'a>(files: &'a [RepoFile], fast_forward: bool) -> Candidate<'a> {
        Candidate {
            commit: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            files,
            fast_forward,
        }
    }

    #[test]
    fn a_valid_first_commit_is_adopted_and_identifies_its_scenarios() {
        let files = [file("scenarios/smoke.toml", SMOKE)];
        assert_eq!(
            judge(None, &candidate(&files, true), &rules()),
            Judgement::Adopt
        );
        let (_, identity) = adopted(files.to_vec()).find("smoke").unwrap();
        assert_eq!(
            identity.git_commit.as_deref(),
            Some("a".repeat(40).as_str())
        );
        assert_eq!(identity.git_path.as_deref(), Some("scenarios/smoke.toml"));
        assert_eq!(
            identity.git_repository.as_deref(),
            Some("http://git.test/s.git")
        );
        assert_eq!(identity.git_dirty, Some(false));
        let record = identity.scenario_ref();
        assert_eq!(record.git_path.as_deref(), Some("scenarios/smoke.toml"));
        assert_eq!(record.version, "1.0.0");
    }

    #[test]
    fn the_commit_in_use_is_unchanged() {
        let files = vec![file("scenarios/smoke.toml", SMOKE)];
        let current = adopted(files.clone());
        let same = Candidate {
            commit: &current.commit,
            files: &files,
            fast_forward: true,
        };
        assert_eq!(judge(Some(&current), &same, &rules()), Judgement::Unchanged);
    }

    #[test]
    fn an_invalid_file_refuses_the_commit_with_its_location() {
        let broken = SMOKE.replace("duration_s = 5", "duration_s = \"five\"");
        let files = [file("scenarios/smoke.toml", &broken)];
        let Judgement::Refuse(reasons) = judge(None, &candidate(&files, true), &rules()) else {
            panic!("an invalid file must refuse the commit");
        };
        assert!(
            reasons[0].starts_with("scenarios/smoke.toml:14:"),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_change_without_a_version_bump_is_refused_and_a_bump_is_adopted() {
        let current = adopted(vec![file("scenarios/smoke.toml", SMOKE)]);
        let changed = SMOKE.replace("duration_s = 5", "duration_s = 6");
        let files = [file("scenarios/smoke.toml", &changed)];
        let Judgement::Refuse(reasons) = judge(Some(&current), &candidate(&files, true), &rules())
        else {
            panic!("a change without a bump must be refused");
        };
        assert!(
            reasons[0].starts_with("scenarios/smoke.toml:3:11:"),
            "{reasons:?}"
        );
        assert!(reasons[0].contains("did not go up"), "{reasons:?}");
        assert!(reasons[0].contains("1.0.1"), "{reasons:?}");

        let bumped = changed.replace("1.0.0", "1.1.0");
        let files = [file("scenarios/smoke.toml", &bumped)];
        assert_eq!(
            judge(Some(&current), &candidate(&files, true), &rules()),
            Judgement::Adopt
        );
        // A comment or reformatting is no change of meaning.
        let commented = format!("# tuned\n{SMOKE}");
        let files = [file("scenarios/smoke.toml", &commented)];
        assert_eq!(
            judge(Some(&current), &candidate(&files, true), &rules()),
            Judgement::Adopt
        );
    }

    #[test]
    fn a_history_rewrite_is_refused_unless_allowed() {
        let current = adopted(vec![file("scenarios/smoke.toml", SMOKE)]);
        let files = [file("scenarios/smoke.toml", SMOKE)];
        let Judgement::Refuse(reasons) = judge(Some(&current), &candidate(&files, false), &rules())
        else {
            panic!("a rewrite must be refused");
        };
        assert!(reasons[0].contains("allow_force_push"), "{reasons:?}");
        let allowed = Rules {
            allow_force_push: true,
            ..rules()
        };
        assert_eq!(
            judge(Some(&current), &candidate(&files, false), &allowed),
            Judgement::Adopt
        );
    }

    #[test]
    fn a_commit_without_a_scheduled_scenario_or_any_file_is_refused() {
        let other = SMOKE.replace("id = \"smoke\"", "id = \"other\"");
        let files = [file("scenarios/other.toml", &other)];
        let Judgement::Refuse(reasons) = judge(None, &candidate(&files, true), &rules()) else {
            panic!("a missing scheduled scenario must refuse the commit");
        };
        assert!(reasons[0].contains("\"smoke\" is scheduled"), "{reasons:?}");
        assert!(matches!(
            judge(None, &candidate(&[], true), &rules()),
            Judgement::Refuse(_)
        ));
    }

    #[test]
    fn an_id_moved_to_another_file_or_changed_in_its_file_is_refused() {
        let current = adopted(vec![file("scenarios/smoke.toml", SMOKE)]);
        let files = [file("scenarios/renamed.toml", SMOKE)];
        let Judgement::Refuse(reasons) = judge(Some(&current), &candidate(&files, true), &rules())
        else {
            panic!("an id taken over by another file must be refused");
        };
        assert!(
            reasons[0].contains("belonged to scenarios/smoke.toml"),
            "{reasons:?}"
        );

        let other = SMOKE.replace("id = \"smoke\"", "id = \"other\"");
        let files = [
            file("scenarios/smoke.toml", &other),
            file("scenarios/z.toml", SMOKE),
        ];
        let Judgement::Refuse(reasons) = judge(
            Some(&current),
            &candidate(&files, true),
            &Rules {
                scheduled: vec![],
                ..rules()
            },
        ) else {
            panic!("a changed id must be refused");
        };
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("changed from `smoke` to `other`")),
            "{reasons:?}"
        );
    }
}
