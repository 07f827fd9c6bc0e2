//! Behaviour profiles of a simulated orchestrator: how late, how smooth and how reliable it is.
//!
//! A [`Profile`] is plain data read from TOML (a profile file, or a table inside a fleet file)
//! or taken from one of the built-in profiles (`good`, `slow`, `flaky`, `busy`). The pipeline
//! core ([`super::pipeline`]) and the job start handler read it; nothing here does IO except
//! [`Profile::from_file`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Names of the built-in profiles, in the order they are listed to users.
pub const BUILTIN_PROFILES: [&str; 4] = ["good", "slow", "flaky", "busy"];

/// Idle seconds after which a model counts as unloaded, unless a profile says otherwise. The
/// tester uses the same window to label sessions `cold` or `warm`.
pub const DEFAULT_COLD_AFTER_IDLE_S: u64 = 60;

/// How a simulated orchestrator behaves. Every key is optional; an empty table is an instant,
/// perfect, single-session orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// Processing latency added to every output frame, in milliseconds, counted from the moment
    /// the input frame has been fully received.
    pub latency_ms: u64,
    /// Random variation of the latency, in milliseconds: each frame gets an extra delay drawn
    /// uniformly from `-latency_jitter_ms ..= +latency_jitter_ms` (never below zero in total).
    /// The draws come from `seed`, so a run can be repeated exactly.
    pub latency_jitter_ms: u64,
    /// Output frame rate target. Input frames are dropped evenly to reach it (keyframes are kept
    /// when possible so output segments start on an IDR frame). Omit it to pass every frame.
    pub fps: Option<u32>,
    /// Model load time in milliseconds before the first output of a warm start (the model is
    /// already in memory). While it loads, status events say `LOADING` and each input frame
    /// comes back as a loading overlay frame (`loading_overlay`), or produces nothing.
    pub startup_ms: u64,
    /// Model load time in milliseconds of a cold start: the very first session, and the first
    /// after the orchestrator ran no session for at least `cold_after_idle_s`. Omit it to load
    /// cold starts as long as warm ones (`startup_ms`).
    pub cold_startup_ms: Option<u64>,
    /// Seconds without any running session after which the model counts as unloaded, so the
    /// next session is a cold start.
    pub cold_after_idle_s: u64,
    /// How many sessions may run at once. `0` means the orchestrator is always busy: every job
    /// start is refused with 503 `insufficient capacity`.
    pub capacity: u32,
    /// Refuse every job start with this HTTP status: `503` answers `insufficient capacity`, any
    /// other status (normally `500`) answers with a runner start failure message.
    pub start_status: Option<u16>,
    /// Crash every session this many seconds after it started: an `error` event is emitted, then
    /// the session's four trickle channels disappear, so the publisher gets 404.
    pub crash_after_s: Option<f64>,
    /// Stall every session this many seconds after it started: no output for `stall_s` seconds,
    /// then processing resumes (at the next keyframe) and a `restart` event is emitted.
    pub stall_at_s: Option<f64>,
    /// Length of the stall started at `stall_at_s`, in seconds.
    pub stall_s: f64,
    /// Accept input but process each frame at about 0.6x real time, so the output falls further
    /// behind with every frame and latency grows without bound.
    pub slow: bool,
    /// Seed of every random choice (latency jitter, manifest ids). The same seed gives the same
    /// jitter sequence and the same faults.
    pub seed: u64,
    /// Delay before answering every `GetOrchestrator` call, in milliseconds: a slow or distant
    /// orchestrator as discovery sees it (it times out, or ranks behind faster ones).
    pub get_orchestrator_delay_ms: u64,
    /// Refuse job starts whose `Livepeer-Payment` carries no ticket with 402, as an on-chain
    /// orchestrator refuses a gateway that does not pay. Off by default (offchain).
    pub require_payment: bool,
    /// Answer every `POST /payment` with this HTTP error status (for example `402` or `400`)
    /// instead of accepting the payment.
    pub payment_status: Option<u16>,
    /// What a prompt's complexity costs in latency: milliseconds added for every denoising step
    /// beyond the first. StreamDiffusion runs one step per entry of the params' `t_index_list`,
    /// so a richer schedule takes longer per frame; the steps are read from the job's params and
    /// from every params update.
    pub step_latency_ms: u64,
    /// What it costs in frame rate: the output rate (`fps`, or the input rate when `fps` is
    /// omitted) is divided by `1 + step_fps_cost × (steps − 1)`. 0 (the default) costs nothing.
    pub step_fps_cost: f64,
    /// A dishonest orchestrator: every output frame's PTS is moved this many milliseconds
    /// forward, so that an output matched to its input by PTS looks that much faster. The
    /// picture is the input's, unchanged. 0 (the default) stamps honestly.
    pub pts_shift_ms: u64,
    /// While the pipeline loads (at start and on a reload), answer each input frame at once
    /// with a loading overlay frame of the same PTS, as ai-runner does by default
    /// (`show_reloading_frame`): a flat mid-gray picture, ai-runner's overlay when it has no
    /// earlier output. The job's params can turn it off (`"show_reloading_frame": false`) as
    /// they can on ai-runner. `false`: input while loading produces nothing.
    pub loading_overlay: bool,
    /// Reload time in milliseconds of every params update: a pipeline that cannot apply
    /// updates in place (ai-runner reloads for those, for example a model change on
    /// StreamDiffusion). 0 (the default): updates apply in place.
    pub reload_ms: u64,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            latency_jitter_ms: 0,
            fps: None,
            startup_ms: 0,
            cold_startup_ms: None,
            cold_after_idle_s: DEFAULT_COLD_AFTER_IDLE_S,
            capacity: 1,
            start_status: None,
            crash_after_s: None,
            stall_at_s: None,
            stall_s: 0.0,
            slow: false,
            seed: 0,
            get_orchestrator_delay_ms: 0,
            require_payment: false,
            payment_status: None,
            step_latency_ms: 0,
            step_fps_cost: 0.0,
            pts_shift_ms: 0,
            loading_overlay: true,
            reload_ms: 0,
        }
    }
}

/// Why a profile could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown key or a value of the wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// The values parse but make no sense together.
    #[error("{origin}: invalid profile: {message}")]
    Invalid { origin: String, message: String },
    /// `builtin(name)` was asked for a profile that does not exist.
    #[error("unknown built-in profile `{0}` (known: good, slow, flaky, busy)")]
    UnknownBuiltin(String),
}

/// A profile file may be a bare profile table or have the profile under `[profile]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wrapped {
    profile: Profile,
}

impl Profile {
    /// One of the built-in profiles by name (`good`, `slow`, `flaky`, `busy`).
    pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
        let base = Profile::default();
        let profile = match name {
            "good" => Profile {
                latency_ms: 40,
                latency_jitter_ms: 5,
                fps: None,
                step_latency_ms: 15,
                step_fps_cost: 0.05,
                startup_ms: 500,
                cold_startup_ms: Some(2_500),
                capacity: 4,
                seed: 1,
                ..base
            },
            "slow" => Profile {
                latency_ms: 700,
                latency_jitter_ms: 100,
                fps: Some(12),
                step_latency_ms: 100,
                startup_ms: 3000,
                cold_startup_ms: Some(6_000),
                capacity: 2,
                seed: 2,
                ..base
            },
            "flaky" => Profile {
                latency_ms: 150,
                latency_jitter_ms: 20,
                fps: Some(24),
                step_latency_ms: 30,
                step_fps_cost: 0.05,
                startup_ms: 1000,
                capacity: 2,
                stall_at_s: Some(5.0),
                stall_s: 2.0,
                crash_after_s: Some(12.0),
                seed: 3,
                ..base
            },
            "busy" => Profile {
                latency_ms: 40,
                capacity: 0,
                seed: 4,
                ..base
            },
            other => return Err(ProfileError::UnknownBuiltin(other.to_string())),
        };
        Ok(profile)
    }

    /// Reads a profile from a TOML file: either a bare profile table or one under `[profile]`.
    /// Errors carry `file:line:column`.
    pub fn from_file(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Profile::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses profile TOML text; `origin` names the text in error messages (a file path).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        // A first untyped parse finds out which of the two layouts the file uses; the typed parse
        // then runs on the original text so that its errors keep their line and column.
        let table: toml::Table = toml::from_str(text).map_err(|e| parse_error(origin, text, &e))?;
        let wrapped = matches!(table.get("profile"), Some(toml::Value::Table(_)));
        let profile = if wrapped {
            toml::from_str::<Wrapped>(text)
                .map_err(|e| parse_error(origin, text, &e))?
                .profile
        } else {
            toml::from_str::<Profile>(text).map_err(|e| parse_error(origin, text, &e))?
        };
        profile.validate(origin)?;
        Ok(profile)
    }

    /// Checks the values that types alone cannot: rates above zero, sane statuses, finite times.
    pub fn validate(&self, origin: &str) -> Result<(), ProfileError> {
        let invalid = |message: String| ProfileError::Invalid {
            origin: origin.to_string(),
            message,
        };
        if self.fps == Some(0) {
            return Err(invalid(
                "`fps` must be at least 1 (omit it to pass every frame)".into(),
            ));
        }
        if let Some(status) = self.start_status
            && !(400..=599).contains(&status)
        {
            return Err(invalid(format!(
                "`start_status` must be an HTTP error status (400-599), not {status}"
            )));
        }
        if let Some(status) = self.payment_status
            && !(400..=599).contains(&status)
        {
            return Err(invalid(format!(
                "`payment_status` must be an HTTP error status (400-599), not {status}"
            )));
        }
        if !(self.step_fps_cost.is_finite() && (0.0..=10.0).contains(&self.step_fps_cost)) {
            return Err(invalid(format!(
                "`step_fps_cost` must be a number from 0 to 10, not {}",
                self.step_fps_cost
            )));
        }
        if self.pts_shift_ms > 60_000 {
            return Err(invalid(format!(
                "`pts_shift_ms` must be at most 60000, not {}",
                self.pts_shift_ms
            )));
        }
        for (key, value) in [
            ("crash_after_s", self.crash_after_s),
            ("stall_at_s", self.stall_at_s),
            ("stall_s", Some(self.stall_s)),
        ] {
            if let Some(v) = value
                && !(v.is_finite() && (0.0..1.0e9).contains(&v))
            {
                return Err(invalid(format!(
                    "`{key}` must be a non-negative number of seconds, not {v}"
                )));
            }
        }
        if let Some(cold) = self.cold_startup_ms
            && cold < self.startup_ms
        {
            return Err(invalid(format!(
                "`cold_startup_ms` ({cold}) must be at least `startup_ms` ({}): a cold start \
                 loads the model from scratch, a warm one finds it in memory",
                self.startup_ms
            )));
        }
        if self.stall_at_s.is_some() && self.stall_s <= 0.0 {
            return Err(invalid(
                "`stall_at_s` needs `stall_s`, the stall length in seconds".into(),
            ));
        }
        Ok(())
    }

    /// A one-line human summary, for the table `lvt sim` prints at start.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!(
            "latency {}±{} ms",
            self.latency_ms, self.latency_jitter_ms
        )];
        match self.fps {
            Some(fps) => parts.push(format!("{fps} fps")),
            None => parts.push("pass-through fps".into()),
        }
        match self.cold_startup_ms {
            Some(cold) if cold != self.startup_ms => parts.push(format!(
                "startup {} ms (cold {cold} ms after {} s idle)",
                self.startup_ms, self.cold_after_idle_s
            )),
            _ => parts.push(format!("startup {} ms", self.startup_ms)),
        }
        parts.push(format!("capacity {}", self.capacity));
        if let Some(status) = self.start_status {
            parts.push(format!("refuses with {status}"));
        }
        if let Some(at) = self.stall_at_s {
            parts.push(format!("stall {}s at {}s", self.stall_s, at));
        }
        if let Some(at) = self.crash_after_s {
            parts.push(format!("crash after {at}s"));
        }
        if self.slow {
            parts.push("slow".into());
        }
        if self.get_orchestrator_delay_ms > 0 {
            parts.push(format!(
                "GetOrchestrator after {} ms",
                self.get_orchestrator_delay_ms
            ));
        }
        if self.require_payment {
            parts.push("requires payment".into());
        }
        if let Some(status) = self.payment_status {
            parts.push(format!("refuses payments with {status}"));
        }
        parts.join(", ")
    }
}

/// Turns a toml error into `origin:line:column: message`.
pub(crate) fn parse_error(origin: &str, text: &str, error: &toml::de::Error) -> ProfileError {
    let (line, column) = error
        .span()
        .map(|span| line_column(text, span.start))
        .unwrap_or((1, 1));
    ProfileError::Parse {
        path: origin.to_string(),
        line,
        column,
        message: error.message().trim().to_string(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_exist_and_validate() {
        for name in BUILTIN_PROFILES {
            let profile = Profile::builtin(name).unwrap();
            profile.validate(name).unwrap();
        }
        assert_eq!(Profile::builtin("good").unwrap().capacity, 4);
        assert_eq!(Profile::builtin("slow").unwrap().fps, Some(12));
        assert_eq!(Profile::builtin("flaky").unwrap().crash_after_s, Some(12.0));
        assert_eq!(Profile::builtin("busy").unwrap().capacity, 0);
        for name in ["good", "slow"] {
            let p = Profile::builtin(name).unwrap();
            assert!(
                p.cold_startup_ms.is_some_and(|cold| cold > p.startup_ms),
                "{name} loads longer when cold"
            );
        }
        assert!(matches!(
            Profile::builtin("nope"),
            Err(ProfileError::UnknownBuiltin(_))
        ));
    }

    #[test]
    fn bare_and_wrapped_tables_parse_the_same() {
        let bare = "latency_ms = 25\nfps = 15\nseed = 9\ncrash_after_s = 3\n";
        let wrapped = "[profile]\nlatency_ms = 25\nfps = 15\nseed = 9\ncrash_after_s = 3\n";
        let a = Profile::from_toml_str(bare, "a.toml").unwrap();
        let b = Profile::from_toml_str(wrapped, "b.toml").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.latency_ms, 25);
        assert_eq!(a.fps, Some(15));
        assert_eq!(a.crash_after_s, Some(3.0));
        assert_eq!(a.capacity, 1, "capacity defaults to one session");
    }

    #[test]
    fn cold_start_keys_parse_and_default() {
        let p = Profile::from_toml_str(
            "startup_ms = 400\ncold_startup_ms = 5000\ncold_after_idle_s = 120\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(
            (p.startup_ms, p.cold_startup_ms, p.cold_after_idle_s),
            (400, Some(5000), 120)
        );
        let p = Profile::from_toml_str("startup_ms = 400\n", "p.toml").unwrap();
        assert_eq!(p.cold_startup_ms, None, "cold loads as long as warm");
        assert_eq!(p.cold_after_idle_s, DEFAULT_COLD_AFTER_IDLE_S);
        assert!(
            Profile::builtin("good")
                .unwrap()
                .summary()
                .contains("cold 2500 ms after 60 s idle")
        );
    }

    #[test]
    fn unknown_key_reports_line_and_column() {
        let text = "latency_ms = 10\n  latncy_jitter_ms = 3\n";
        let err = Profile::from_toml_str(text, "p.toml").unwrap_err();
        match &err {
            ProfileError::Parse { line, column, .. } => {
                assert_eq!((*line, *column), (2, 3), "{err}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
        let shown = err.to_string();
        assert!(shown.starts_with("p.toml:2:3: "), "{shown}");
        assert!(shown.contains("latncy_jitter_ms"), "{shown}");
    }

    #[test]
    fn wrong_type_and_bad_values_are_rejected() {
        let err = Profile::from_toml_str("fps = \"fast\"\n", "p.toml").unwrap_err();
        assert!(matches!(err, ProfileError::Parse { line: 1, .. }), "{err}");
        let err = Profile::from_toml_str("fps = 0\n", "p.toml").unwrap_err();
        assert!(matches!(err, ProfileError::Invalid { .. }), "{err}");
        let err = Profile::from_toml_str("start_status = 200\n", "p.toml").unwrap_err();
        assert!(matches!(err, ProfileError::Invalid { .. }), "{err}");
        let err = Profile::from_toml_str("startup_ms = 900\ncold_startup_ms = 100\n", "p.toml")
            .unwrap_err();
        assert!(matches!(err, ProfileError::Invalid { .. }), "{err}");
        let err = Profile::from_toml_str("stall_at_s = 2\n", "p.toml").unwrap_err();
        assert!(matches!(err, ProfileError::Invalid { .. }), "{err}");
        let err = Profile::from_toml_str("payment_status = 200\n", "p.toml").unwrap_err();
        assert!(matches!(err, ProfileError::Invalid { .. }), "{err}");
        let p = Profile::from_toml_str("require_payment = true\npayment_status = 402\n", "p.toml")
            .unwrap();
        assert!(p.require_payment);
        assert_eq!(p.payment_status, Some(402));
        assert!(p.summary().contains("requires payment"), "{}", p.summary());
        let err = Profile::from_toml_str("[profile]\nlatency = 3\n", "p.toml").unwrap_err();
        assert!(matches!(err, ProfileError::Parse { line: 2, .. }), "{err}");
    }

    /// Seeded mutations of a valid profile never panic the parser; they parse or fail cleanly.
    #[test]
    fn mutated_profiles_never_panic() {
        use rand::{Rng, SeedableRng};
        let valid = "[profile]\nlatency_ms = 40\nlatency_jitter_ms = 5\nfps = 24\n\
                     stall_at_s = 1.5\nstall_s = 2\ncrash_after_s = 9\nseed = 3\n";
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..2000 {
            let mut bytes = valid.as_bytes().to_vec();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..bytes.len());
                match rng.random_range(0..3) {
                    0 => bytes[i] = rng.random(),
                    1 => {
                        bytes.remove(i);
                    }
                    _ => bytes.insert(i, rng.random_range(b' '..=b'~')),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Err(e) = Profile::from_toml_str(&text, "fuzz.toml") {
                assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é\nx", 3), (2, 1));
    }
}
