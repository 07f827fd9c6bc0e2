//! Scenario files read from git with gix (no `git` binary is run).
//!
//! - [`ScenarioRepo`]: `lvt agent`'s copy of its scenario repository, a bare repository in
//!   `state_dir/scenarios.git`, fetched over smart HTTP, `file://` or a local path and read
//!   straight from its objects. Nothing is checked out: a commit's scenario files are read from
//!   its tree, so a run's files can never be half-updated by a fetch.
//! - [`base_files`]: the scenario files of a base revision of the repository holding the
//!   working files, for `lvt validate --base REF`.
//!
//! Every function here blocks (gix's network client is blocking); async callers use
//! `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::ObjectId;

/// The folder inside `state_dir` that holds the bare repository.
pub const REPO_DIR: &str = "scenarios.git";

/// The refspecs fetched: every branch under `refs/remotes/origin/`, every tag as itself; `+`
/// so that a rewritten branch is still fetched (whether to adopt it is decided afterwards).
const REFSPECS: [&str; 2] = [
    "+refs/heads/*:refs/remotes/origin/*",
    "+refs/tags/*:refs/tags/*",
];

/// gix's HTTP client (reqwest 0.13 built without its own crypto provider, so that it does
/// not compile aws-lc) takes TLS from the process-wide rustls provider: ring, which the rest of
/// lvt already uses. Installing it twice is harmless (the first one stays).
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A git operation that failed, with what it was doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GitError(pub String);

/// `what` and the error with its causes (gix's top-level messages alone are vague: "Transport
/// handshake failed" hides "connection refused").
fn fail(what: impl std::fmt::Display, error: impl std::error::Error) -> GitError {
    let mut message = format!("{what}: {error}");
    let mut cause = error.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = inner.source();
    }
    GitError(message)
}

/// One scenario file read from a commit: its path inside the repository and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    /// For example `scenarios/sla-hourly.toml`.
    pub path: String,
    pub text: String,
}

/// The bare repository of one agent.
#[derive(Debug, Clone)]
pub struct ScenarioRepo {
    git_dir: PathBuf,
    url: String,
}

impl ScenarioRepo {
    /// The repository kept in `state_dir` for the remote `url` (created at the first fetch).
    pub fn new(state_dir: &Path, url: &str) -> Self {
        Self {
            git_dir: state_dir.join(REPO_DIR),
            url: url.to_owned(),
        }
    }

    /// The remote, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn open(&self) -> Result<gix::Repository, GitError> {
        if self.git_dir.join("HEAD").is_file() {
            gix::open(&self.git_dir).map_err(|e| fail(self.git_dir.display(), e))
        } else {
            std::fs::create_dir_all(&self.git_dir).map_err(|e| fail(self.git_dir.display(), e))?;
            gix::init_bare(&self.git_dir).map_err(|e| fail(self.git_dir.display(), e))
        }
    }

    /// Fetches the remote's branches and tags and returns the commit `git_ref` names: a branch
    /// (`main` or `refs/heads/main`), a tag (`v1` or `refs/tags/v1`) or a full commit id.
    pub fn fetch(&self, git_ref: &str) -> Result<String, GitError> {
        install_crypto_provider();
        let repo = self.open()?;
        let remote = repo
            .remote_at(self.url.as_str())
            .map_err(|e| fail(format!("remote {}", self.url), e))?
            .with_refspecs(REFSPECS, gix::remote::Direction::Fetch)
            .map_err(|e| fail("refspecs", e))?;
        let interrupt = AtomicBool::new(false);
        remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(|e| fail(format!("cannot connect to {}", self.url), e))?
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| fail(format!("cannot list the refs of {}", self.url), e))?
            .receive(gix::progress::Discard, &interrupt)
            .map_err(|e| fail(format!("cannot fetch from {}", self.url), e))?;
        self.resolve(&repo, git_ref)
    }

    /// The commit `git_ref` names in the local copy (see [`Self::fetch`]).
    fn resolve(&self, repo: &gix::Repository, git_ref: &str) -> Result<String, GitError> {
        let short = git_ref
            .strip_prefix("refs/heads/")
            .or_else(|| git_ref.strip_prefix("refs/tags/"))
            .unwrap_or(git_ref);
        for name in [
            format!("refs/remotes/origin/{short}"),
            format!("refs/tags/{short}"),
        ] {
            if let Ok(Some(mut reference)) = repo.try_find_reference(name.as_str()) {
                let commit = reference
                    .peel_to_commit()
                    .map_err(|e| fail(format!("{git_ref} ({name})"), e))?;
                return Ok(commit.id.to_hex().to_string());
            }
        }
        if git_ref.len() == 40
            && let Ok(id) = ObjectId::from_hex(git_ref.as_bytes())
            && repo.find_commit(id).is_ok()
        {
            return Ok(git_ref.to_owned());
        }
        Err(GitError(format!(
            "ref {git_ref:?} is not a branch, a tag or a fetched commit of {}",
            self.url
        )))
    }

    /// True when `ancestor` is `descendant` or in its history (the move from one to the other
    /// is a fast-forward).
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
        if ancestor == descendant {
            return Ok(true);
        }
        let repo = self.open()?;
        let (Ok(ancestor), Ok(descendant)) = (
            ObjectId::from_hex(ancestor.as_bytes()),
            ObjectId::from_hex(descendant.as_bytes()),
        ) else {
            return Ok(false);
        };
        let walk = repo
            .rev_walk([descendant])
            .all()
            .map_err(|e| fail("history walk", e))?;
        for info in walk {
            let info = info.map_err(|e| fail("history walk", e))?;
            if info.id == ancestor {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The `*.toml` files directly inside `folder` at `commit` (not in subfolders, as `lvt
    /// validate DIR` reads them), sorted by name. A missing folder is an error.
    pub fn scenario_files(&self, commit: &str, folder: &str) -> Result<Vec<RepoFile>, GitError> {
        let repo = self.open()?;
        let id = ObjectId::from_hex(commit.as_bytes()).map_err(|e| fail(commit, e))?;
        let folder = folder.trim_matches('/');
        let prefix = if folder.is_empty() || folder == "." {
            String::new()
        } else {
            format!("{folder}/")
        };
        match files_at(&repo, id, Path::new(folder), &prefix)? {
            Some(files) => Ok(files),
            None => Err(GitError(format!(
                "commit {commit} has no folder {folder:?}"
            ))),
        }
    }
}

/// The `*.toml` files directly inside the folder `folder` (relative to the repository root;
/// empty for the root) of commit `id`, each labelled `prefix` + its name, sorted; `None` when
/// the commit has no such folder.
fn files_at(
    repo: &gix::Repository,
    id: ObjectId,
    folder: &Path,
    prefix: &str,
) -> Result<Option<Vec<RepoFile>>, GitError> {
    let commit = repo.find_commit(id).map_err(|e| fail(id, e))?;
    let root = commit.tree().map_err(|e| fail(id, e))?;
    let tree = if folder.as_os_str().is_empty() || folder == Path::new(".") {
        root
    } else {
        let Some(entry) = root
            .lookup_entry_by_path(folder)
            .map_err(|e| fail(format!("{id}:{}", folder.display()), e))?
        else {
            return Ok(None);
        };
        if !entry.mode().is_tree() {
            return Ok(None);
        }
        repo.find_tree(entry.object_id())
            .map_err(|e| fail(format!("{id}:{}", folder.display()), e))?
    };
    let mut files = Vec::new();
    let decoded = tree
        .decode()
        .map_err(|e| fail(format!("{id}:{}", folder.display()), e))?;
    for entry in &decoded.entries {
        let name = entry.filename.to_string();
        if !entry.mode.is_blob() || !name.ends_with(".toml") {
            continue;
        }
        let path = format!("{prefix}{name}");
        let blob = repo
            .find_object(entry.oid.to_owned())
            .map_err(|e| fail(&path, e))?;
        let text = String::from_utf8(blob.data.clone())
            .map_err(|_| GitError(format!("{path} at {id} is not UTF-8 text")))?;
        files.push(RepoFile { path, text });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Some(files))
}

/// The scenario files at revision `base` (a branch, tag, `origin/main`, a commit id, `HEAD~1`:
/// anything `git rev-parse` takes) of the repository holding `paths`, labelled as
/// `lvt validate` labels the working files: a folder's `*.toml` files as `FOLDER/NAME`, a file
/// as given. Paths absent at the base contribute nothing (a new folder or file). Returns the
/// base commit id and the files.
pub fn base_files(base: &str, paths: &[PathBuf]) -> Result<(String, Vec<RepoFile>), GitError> {
    let first = paths.first().map_or(Path::new("."), PathBuf::as_path);
    let start = if first.is_dir() {
        first
    } else {
        first
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    };
    let repo = gix::discover(start).map_err(|e| {
        fail(
            format!("--base needs a git repository holding {}", start.display()),
            e,
        )
    })?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| GitError("--base needs a repository with a working tree".to_owned()))?
        .canonicalize()
        .map_err(|e| fail("the repository's working tree", e))?;
    let id = repo
        .rev_parse_single(base)
        .map_err(|e| fail(format!("--base {base}"), e))?
        .object()
        .map_err(|e| fail(format!("--base {base}"), e))?
        .peel_to_commit()
        .map_err(|e| fail(format!("--base {base} is not a commit"), e))?
        .id;
    let mut files = Vec::new();
    for path in paths {
        // Where the path is inside the working tree (a file that no longer exists is placed
        // by its folder).
        let (folder_on_disk, file_name) = if path.is_dir() {
            (path.as_path(), None)
        } else {
            (
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new(".")),
                path.file_name(),
            )
        };
        let absolute = folder_on_disk
            .canonicalize()
            .map_err(|e| fail(path.display(), e))?;
        let relative = absolute.strip_prefix(&workdir).map_err(|_| {
            GitError(format!(
                "{} is not inside the repository at {}",
                path.display(),
                workdir.display()
            ))
        })?;
        let Some(found) = files_at(&repo, id, relative, "")? else {
            continue;
        };
        // Labels as `lvt validate` gives the working files: `path.join(name)` for a folder,
        // the path as given for a file.
        files.extend(found.into_iter().filter_map(|f| match file_name {
            None => Some(RepoFile {
                path: path.join(&f.path).display().to_string(),
                text: f.text,
            }),
            Some(name) => (f.path == *name.to_string_lossy()).then(|| RepoFile {
                path: path.display().to_string(),
                text: f.text,
            }),
        }));
    }
    Ok((id.to_hex().to_string(), files))
}
