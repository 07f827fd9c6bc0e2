//! One pull of the scenario repository: fetch the ref, read the commit's scenario files, judge
//! the commit ([`super::adopt::judge`]) against the one in use. Blocking (git over the network);
//! the driver runs it with `spawn_blocking` at start and every `[scenarios] poll_s`.

use std::path::Path;
use std::sync::Arc;

use super::adopt::{Adopted, Candidate, Judgement, Rules, judge};
use super::config::AgentConfig;
use crate::scenario::repo::{GitError, ScenarioRepo};

/// Everything a pull needs, cloned from the configuration.
#[derive(Debug, Clone)]
pub struct Puller {
    repo: ScenarioRepo,
    git_ref: String,
    folder: String,
    allow_force_push: bool,
    scheduled: Vec<String>,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub enum Pulled {
    /// The fetch (or reading the commit) failed; the commit in use stays.
    Failed(String),
    /// The ref still names the commit in use.
    Unchanged,
    /// A new commit, adopted.
    Adopted(Arc<Adopted>),
    /// A new commit, refused for these reasons; the commit in use stays.
    Refused {
        commit: String,
        reasons: Vec<String>,
    },
}

/// True when `[scenarios] git` names a repository (a URL, or a path holding a git repository)
/// rather than a plain folder read as it is.
pub fn is_git(config: &AgentConfig) -> bool {
    let git = config.scenarios.git.get_ref();
    if git.contains("://") {
        return true;
    }
    let path = Path::new(git);
    path.join(".git").exists() || (path.join("HEAD").is_file() && path.join("objects").is_dir())
}

impl Puller {
    /// The puller of `config`, keeping its repository in `state_dir`.
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            repo: ScenarioRepo::new(&config.state_dir, config.scenarios.git.get_ref()),
            git_ref: config.scenarios.git_ref.clone(),
            folder: config.scenarios.path.clone(),
            allow_force_push: config.scenarios.allow_force_push,
            scheduled: config
                .schedules
                .iter()
                .map(|s| s.scenario.get_ref().clone())
                .collect(),
        }
    }

    /// The repository, as configured.
    pub fn repository(&self) -> &str {
        self.repo.url()
    }

    /// Reads `commit` (the one `state.json` says was adopted) from the local copy, so that an
    /// agent restarted without a network goes on with it.
    pub fn restore(&self, commit: &str) -> Result<Adopted, GitError> {
        Ok(Adopted {
            repository: self.repo.url().to_owned(),
            commit: commit.to_owned(),
            files: self.repo.scenario_files(commit, &self.folder)?,
        })
    }

    /// Fetches and judges the ref's commit against `current`.
    pub fn pull(&self, current: Option<&Adopted>) -> Pulled {
        let commit = match self.repo.fetch(&self.git_ref) {
            Ok(commit) => commit,
            Err(error) => return Pulled::Failed(error.to_string()),
        };
        if current.is_some_and(|c| c.commit == commit) {
            return Pulled::Unchanged;
        }
        let files = match self.repo.scenario_files(&commit, &self.folder) {
            Ok(files) => files,
            Err(error) => {
                return Pulled::Refused {
                    commit,
                    reasons: vec![error.to_string()],
                };
            }
        };
        let fast_forward = match current {
            None => true,
            Some(current) => match self.repo.is_ancestor(&current.commit, &commit) {
                Ok(yes) => yes,
                Err(error) => return Pulled::Failed(error.to_string()),
            },
        };
        let rules = Rules {
            git_ref: &self.git_ref,
            folder: &self.folder,
            allow_force_push: self.allow_force_push,
            scheduled: self.scheduled.iter().map(String::as_str).collect(),
        };
        let candidate = Candidate {
            commit: &commit,
            files: &files,
            fast_forward,
        };
        match judge(current, &candidate, &rules) {
            Judgement::Unchanged => Pulled::Unchanged,
            Judgement::Adopt => Pulled::Adopted(Arc::new(Adopted {
                repository: self.repo.url().to_owned(),
                commit,
                files,
            })),
            Judgement::Refuse(reasons) => Pulled::Refused { commit, reasons },
        }
    }
}
