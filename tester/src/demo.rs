//! `lvt demo`: the whole loop on one machine. Starts the built-in simulated fleet and the
//! `lvt-collector` binary as a child process (SQLite in a temporary directory), runs the shipped `sla-hourly` scenario
//! against every orchestrator (all three prompt complexities), prints the per-target x
//! complexity summary and one ranking table, ships the run's signed records into the collector,
//! prints the SLA table read back from its public API, and (on a terminal) leaves the dashboard
//! running until Ctrl-C. Beside the scenario run, one session goes through network selection
//! over the same fleet (as a go-livepeer gateway would run it) and its swap figures are printed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use lvt_sim::FleetConfig;
use lvt_wire::live::OrchestratorUri;
use std::io::IsTerminal;

use lvt_schema::{Outcome, SessionReport};

use crate::report;
use crate::run::executor::{self, RunOptions};
use crate::run::output::{self, RunReport};
use crate::run::progress::ProgressMode;
use crate::run::record::SessionRecord;
use crate::run::summary::{self, Distribution};
use crate::scenario::{Label, Targets, identity, shipped, validate};
use crate::shutdown::ctrl_c_token;

/// The scenario the demo runs.
pub const DEMO_SCENARIO: &str = "sla-hourly";

/// What `lvt demo` was asked for.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Override the scenario's session length (shorter demos; the flaky orchestrator only
    /// crashes 12 s into a session, so below that it passes).
    pub session_duration: Option<Duration>,
    /// Print the run report as JSON instead of the tables.
    pub json: bool,
    /// Also write run.json, junit.xml and report.html here.
    pub out: Option<PathBuf>,
    /// Exit after printing instead of keeping the collector and its dashboard up until Ctrl-C
    /// (they are only kept up when stdout is a terminal anyway).
    pub exit: bool,
}

/// Runs the demo: an error only when the tables could not be produced. Threshold failures are
/// part of what the demo shows (the flaky orchestrator fails on purpose), so they are no error.
pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    // Found before the run, so that a missing collector is said at once, not after the sessions.
    let collector_bin = collector::binary()?;
    let text = shipped::shipped(DEMO_SCENARIO)
        .ok_or_else(|| anyhow::anyhow!("the shipped scenario {DEMO_SCENARIO} is missing"))?;
    let label = format!("scenarios/{DEMO_SCENARIO}.toml (shipped)");
    let mut scenario = validate::load_str(&label, text).map_err(|d| {
        let lines: Vec<String> = d.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("the shipped scenario is invalid:\n{}", lines.join("\n"))
    })?;
    if let Some(d) = opts.session_duration {
        let secs = u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(1);
        scenario.session.duration_s = secs;
    }
    let identity = identity::identify(&scenario, None);

    let cancel = ctrl_c_token();
    let fleet = FleetConfig::builtin();
    let shutdown = cancel.child_token();
    let sims = lvt_sim::start_fleet(&fleet, std::net::IpAddr::from([127, 0, 0, 1]), async move {
        shutdown.cancelled().await
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the simulated fleet: {e}"))?;
    eprintln!("lvt demo: started {} simulated orchestrators:", sims.len());
    for o in &sims {
        eprintln!(
            "  {:<8} {:<24} {}  {}",
            o.name, o.gpu.name, o.eth_address, o.uri
        );
    }
    let mut targets = Vec::new();
    let mut names = BTreeMap::new();
    for o in &sims {
        let uri: OrchestratorUri = o
            .uri
            .parse()
            .map_err(|e| anyhow::anyhow!("simulator URI {}: {e}", o.uri))?;
        names.insert(uri.to_string(), (o.name.clone(), o.gpu.name.clone()));
        targets.push(uri);
    }
    scenario.targets = Targets::Explicit {
        uris: targets.iter().map(ToString::to_string).collect(),
    };
    eprintln!(
        "lvt demo: running scenario {}@{} ({} prompts: {}; {} s sessions, one target at a time \
         per orchestrator, all orchestrators at once)...",
        scenario.id,
        scenario.version,
        scenario.prompts.len(),
        scenario
            .prompts
            .iter()
            .map(|p| format!("{} ({})", p.id, summary::complexity_name(p.complexity)))
            .collect::<Vec<_>>()
            .join(", "),
        scenario.session.duration_s
    );

    let run_opts = RunOptions {
        progress: ProgressMode::Lines,
        ..Default::default()
    };
    // The network session runs beside the scenario: one more session on the orchestrator it
    // selects stays within every capacity of the fleet that discovery lets through.
    let network = (!opts.json).then(|| {
        let uris: Vec<String> = sims.iter().map(|o| o.uri.clone()).collect();
        let duration = Duration::from_secs(u64::from(scenario.session.duration_s));
        tokio::spawn(network_session(uris, duration, cancel.child_token()))
    });
    // And one session as users stream: through `lvt sim gateway` over WHIP and WHEP, relayed
    // to the `good` orchestrator, so that its e2e reads against the direct sessions on `good`
    // (one more session there stays within its capacity too).
    // It sends the scenario's first prompt, and reads against the direct sessions of that
    // prompt on `good`.
    let good = sims
        .iter()
        .find(|o| o.name == GATEWAY_ORCHESTRATOR)
        .map(|o| o.uri.clone());
    let first_prompt = scenario.prompts.first().cloned();
    let gateway = (!opts.json)
        .then(|| good.clone().zip(first_prompt.clone()))
        .flatten()
        .map(|(good, prompt)| {
            let duration = Duration::from_secs(u64::from(scenario.session.duration_s));
            tokio::spawn(gateway_session(
                duration,
                good,
                prompt,
                cancel.child_token(),
            ))
        });
    let report = executor::execute(&scenario, identity, targets, &run_opts, cancel.clone()).await?;
    let network = match network {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };
    let gateway = match gateway {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };
    cancel.cancel();
    if let Some(dir) = &opts.out {
        let paths = output::write_outputs(&report, dir)
            .map_err(|e| anyhow::anyhow!("cannot write the outputs: {e}"))?;
        for p in [&paths.run_json, &paths.junit_xml, &paths.report_html] {
            eprintln!("lvt demo: wrote {}", p.display());
        }
    }

    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!();
    // The fleet's names read better than loopback URIs with random ports.
    let mut groups = report.groups.clone();
    for g in &mut groups {
        for (label, value) in &mut g.key {
            if *label == Label::Target
                && let Some((name, _)) = names.get(value.as_str())
            {
                *value = name.clone();
            }
        }
    }
    print!("{}", summary::summary_table(&groups));
    println!();
    let ranking = rank_orchestrators(&report, &names);
    print!("{}", report::table(RANKING_HEADER, &ranking_rows(&ranking)));
    println!(
        "\nscore: mean over scored sessions of 100 x (0.4 delivered/sent fps + 0.3 startup \
         1 s..8 s + 0.3 e2e p50 100..3000 ms); failed = 0; busy = unscored, not failed \
         (docs/metrics.md)"
    );

    let records: Vec<SessionReport> = report.sessions.iter().map(|s| s.report.clone()).collect();
    let collector = collector::start(&collector_bin)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the collector: {e}"))?;
    let shipped = collector
        .ship(&records)
        .await
        .map_err(|e| anyhow::anyhow!("cannot ship the run to the collector: {e}"))?;
    eprintln!(
        "lvt demo: shipped {} signed record(s) to the collector at {} (inserted {})",
        shipped.records, collector.url, shipped.inserted
    );
    let read_back = |formula: &'static str| {
        let collector = &collector;
        async move {
            collector
                .sla_orchestrators(formula)
                .await
                .map_err(|e| anyhow::anyhow!("cannot read the {formula} SLA table back: {e}"))
        }
    };
    let lvt_sla = read_back("lvt-v1").await?;
    let naap_sla = read_back("naap-v1").await?;
    let mut by_address = BTreeMap::new();
    for o in &sims {
        by_address.insert(o.eth_address.to_lowercase(), o.name.clone());
    }
    for (uri, (name, _)) in &names {
        by_address.insert(uri.clone(), name.clone());
    }
    println!(
        "\nSLA scores read back from {}/v1/sla/orchestrators:\n",
        collector.url
    );
    print!(
        "{}",
        report::table(SLA_HEADER, &sla_rows(&lvt_sla, &naap_sla, &by_address))
    );
    println!(
        "\nSLA (docs/sla.md), ranked by lvt-v1: completion (ran to the planned end), stalls, and \
         while the cohort has fewer than 48 benchmark rows latency and FPS against the \
         scenario's declared SLO. naap-v1 is NaaP's quality-benchmark-v1, kept for comparison: \
         it scores latency and FPS 0.5 on a fresh collector and never sees stalls."
    );
    if let Some(network) = &network {
        println!(
            "\nOne session through network selection over the same fleet (go-livepeer order):\n"
        );
        print!("{}", network_figures(network, &names));
    }
    if let (Some(gateway), Some(good), Some(prompt)) = (&gateway, &good, &first_prompt) {
        println!(
            "\nOne session through a gateway as users stream (lvt sim gateway: WHIP in, WHEP out, \
             relayed over trickle to {GATEWAY_ORCHESTRATOR}; prompt {}):\n",
            prompt.id
        );
        let direct = direct_e2e_p50(&records, good, &prompt.id);
        print!("{}", gateway_figures(gateway, direct));
    }
    if !opts.exit && std::io::stdout().is_terminal() {
        println!(
            "\ndashboard: {}/  (the collector keeps running; Ctrl-C to stop)",
            collector.url
        );
        let stop = ctrl_c_token();
        stop.cancelled().await;
    }
    collector.stop().await;
    Ok(())
}

/// The default clip (encoded off the runtime) and an HTTP client, for the demo's extra sessions.
async fn clip_and_client() -> Option<(crate::encode::Clip, reqwest::Client)> {
    let clip = tokio::task::spawn_blocking(|| crate::encode::encode_clip(&Default::default()))
        .await
        .ok()?
        .ok()?;
    Some((clip, crate::probe::http_client().ok()?))
}

/// One session of `duration` through network selection over `uris` (go-livepeer's order);
/// `None` when the clip or the HTTP client could not be made.
async fn network_session(
    uris: Vec<String>,
    duration: Duration,
    cancel: tokio_util::sync::CancellationToken,
) -> Option<SessionReport> {
    use crate::probe::network::{NetworkOptions, StrategyConfig, run_network};
    let (clip, http) = clip_and_client().await?;
    let first = uris.first()?.parse().ok()?;
    let mut session = crate::probe::ProbeOptions::new(first);
    session.duration = duration;
    let sources = vec![lvt_gateway::discovery::Source::Static(
        lvt_gateway::discovery::StaticSource::from_addresses(uris),
    )];
    let opts = NetworkOptions::new(session, sources, StrategyConfig::GoLivepeer);
    let run = run_network(&opts, std::sync::Arc::new(clip), &http, cancel, None).await;
    Some(run.report)
}

/// The orchestrator of the fleet the demo's gateway relays to.
const GATEWAY_ORCHESTRATOR: &str = "good";

/// The mean e2e p50 of the direct sessions of prompt `prompt_id` on `uri` in `records`, if any
/// measured one.
pub fn direct_e2e_p50(records: &[SessionReport], uri: &str, prompt_id: &str) -> Option<f64> {
    let p50s: Vec<f64> = records
        .iter()
        .filter(|r| r.orchestrator.as_ref().is_some_and(|o| o.uri == uri))
        .filter(|r| r.prompt.as_ref().and_then(|p| p.id.as_deref()) == Some(prompt_id))
        .filter_map(|r| r.metrics.e2e_latency_ms.as_ref().map(|l| l.p50))
        .collect();
    (!p50s.is_empty()).then(|| p50s.iter().sum::<f64>() / p50s.len() as f64)
}

/// One gateway-mode session of `duration` with `prompt` through an in-process `lvt sim
/// gateway` relaying to the orchestrator at `orchestrator`; `None` when the clip, the HTTP
/// client or the gateway could not be made.
async fn gateway_session(
    duration: Duration,
    orchestrator: String,
    prompt: crate::scenario::Prompt,
    cancel: tokio_util::sync::CancellationToken,
) -> Option<SessionReport> {
    use crate::probe::gateway::{GatewayOptions, probe_gateway};
    use lvt_gateway::gateway::relay::RelayConfig;
    use lvt_sim::gateway::{GatewayConfig, start_gateway_with};
    let (clip, http) = clip_and_client().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok()?;
    let stop = cancel.child_token();
    let relay = crate::relay::RelayRunner::new(RelayConfig::new(vec![orchestrator]), http.clone());
    let gateway = start_gateway_with(
        GatewayConfig::default(),
        std::sync::Arc::new(relay),
        listener,
        async move { stop.cancelled().await },
    )
    .await
    .ok()?;
    let mut session = crate::probe::ProbeOptions::new(OrchestratorUri::new(
        lvt_wire::live::Scheme::Https,
        "gateway.invalid",
        443,
    ));
    session.duration = duration;
    session.params = serde_json::Value::Object(prompt.params);
    session.prompt_id = Some(prompt.id);
    session.complexity = Some(prompt.complexity);
    let options = GatewayOptions::new(gateway.url.parse().ok()?);
    let report = probe_gateway(
        &session,
        &options,
        std::sync::Arc::new(clip),
        &http,
        cancel.clone(),
    )
    .await;
    Some(report)
}

/// The gateway session's figures: its WebRTC legs and what came out of them, and its overhead
/// against `direct_p50`, the e2e p50 of direct sessions to the orchestrator it was relayed to.
pub fn gateway_figures(r: &SessionReport, direct_p50: Option<f64>) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.0}"));
    let m = &r.metrics;
    let g = m.gateway.clone().unwrap_or_default();
    let e2e = m.e2e_latency_ms.as_ref();
    let p50 = e2e.map(|l| l.p50);
    let rows = vec![
        vec![
            "outcome".to_string(),
            match &r.failure {
                None => report::outcome_label(r),
                Some(f) => format!("{}: {}", report::outcome_label(r), f.detail),
            },
        ],
        vec![
            "WHIP answer / ICE / DTLS ms".to_string(),
            format!(
                "{} / {} / {}",
                ms(g.whip_answer_ms),
                ms(g.ice_connected_ms),
                ms(g.dtls_connected_ms)
            ),
        ],
        vec![
            "WHEP answer / connected ms".to_string(),
            format!("{} / {}", ms(g.whep_answer_ms), ms(g.whep_connected_ms)),
        ],
        vec!["startup ms".to_string(), ms(m.startup_ms)],
        vec![
            "e2e p50 / p95 ms (from the pictures)".to_string(),
            format!("{} / {}", ms(p50), ms(e2e.map(|l| l.p95))),
        ],
        vec![
            "direct e2e p50 ms (same orchestrator)".to_string(),
            direct_p50.map_or_else(|| "-".to_string(), |d| format!("{d:.0}")),
        ],
        vec![
            "gateway overhead ms (e2e p50 minus direct)".to_string(),
            match (p50, direct_p50) {
                (Some(p), Some(d)) => format!("{:.1}", p - d),
                _ => "-".to_string(),
            },
        ],
        vec![
            "output fps p50".to_string(),
            m.output_fps
                .as_ref()
                .map_or_else(|| "-".to_string(), |f| format!("{:.1}", f.p50)),
        ],
        vec!["stalls".to_string(), m.stalls.count.to_string()],
    ];
    report::table(&["gateway session", "value"], &rows)
}

/// The network session's figures: outcome, each orchestrator's share and each swap.
pub fn network_figures(r: &SessionReport, names: &BTreeMap<String, (String, String)>) -> String {
    let name = |uri: &str| {
        names
            .get(uri)
            .map_or_else(|| uri.to_string(), |(n, _)| n.clone())
    };
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.0}"));
    let mut out = format!(
        "outcome {}{}; {} swap(s)\n\n",
        match r.outcome {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::UnscoredBusy => "unscored (busy)",
            Outcome::UnscoredIndeterminate => "unscored",
        },
        r.failure
            .as_ref()
            .map(|f| format!(" ({})", f.detail))
            .unwrap_or_default(),
        r.metrics.swaps.len()
    );
    let shares: Vec<Vec<String>> = r
        .served_by
        .iter()
        .map(|s| {
            vec![
                name(&s.orchestrator.uri),
                format!("{:.1}", (s.to_unix_ms - s.from_unix_ms) as f64 / 1000.0),
                s.frames_received.to_string(),
                ms(s.e2e_latency_ms.as_ref().map(|l| l.p50)),
                s.ended_by.clone().unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    out.push_str(&report::table(
        &[
            "served by",
            "seconds",
            "frames",
            "e2e p50 ms",
            "left because",
        ],
        &shares,
    ));
    if !r.metrics.swaps.is_empty() {
        let swaps: Vec<Vec<String>> = r
            .metrics
            .swaps
            .iter()
            .map(|s| vec![name(&s.from), name(&s.to), ms(s.freeze_ms), s.cause.clone()])
            .collect();
        out.push('\n');
        out.push_str(&report::table(
            &["swap from", "to", "freeze ms", "cause"],
            &swaps,
        ));
    }
    out
}

/// Header of [`sla_rows`].
pub const SLA_HEADER: &[&str] = &[
    "rank",
    "orchestrator",
    "lvt-v1",
    "naap-v1",
    "reliability",
    "completion",
    "stall score",
    "startup success [95% CI]",
    "sessions",
    "busy rate",
];

/// The collector's `/v1/sla/orchestrators` answers as table rows, in the order (and with the
/// rank) of the `lvt-v1` answer, with the `naap-v1` score of the same orchestrator beside it;
/// no data prints `-`.
pub fn sla_rows(
    lvt: &serde_json::Value,
    naap: &serde_json::Value,
    names: &BTreeMap<String, String>,
) -> Vec<Vec<String>> {
    let num = |v: &serde_json::Value, digits: usize| {
        v.as_f64()
            .map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
    };
    let rows = |answer: &serde_json::Value| -> Vec<serde_json::Value> {
        answer["orchestrators"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let naap_rows = rows(naap);
    rows(lvt)
        .iter()
        .map(|o| {
            let id = o["orchestrator"].as_str().unwrap_or("-");
            let name = names
                .get(&id.to_lowercase())
                .cloned()
                .unwrap_or_else(|| id.to_string());
            let score = &o["score"];
            let naap_score = naap_rows
                .iter()
                .find(|row| row["orchestrator"] == o["orchestrator"])
                .map_or(serde_json::Value::Null, |row| {
                    row["score"]["sla_score"].clone()
                });
            let rate_cell = |rate: &serde_json::Value| {
                if rate.is_object() {
                    format!(
                        "{} [{}, {}]",
                        num(&rate["rate"], 2),
                        num(&rate["ci95_low"], 2),
                        num(&rate["ci95_high"], 2)
                    )
                } else {
                    "-".to_string()
                }
            };
            vec![
                o["rank"]
                    .as_u64()
                    .map_or_else(|| "-".to_string(), |r| r.to_string()),
                name,
                num(&score["sla_score"], 1),
                num(&naap_score, 1),
                num(&score["reliability"], 3),
                num(&score["completion"]["rate"], 2),
                num(&score["stall_score"], 2),
                rate_cell(&score["startup_success"]),
                score["sessions"]
                    .as_u64()
                    .map_or_else(|| "-".to_string(), |n| n.to_string()),
                num(&score["busy_rate"], 2),
            ]
        })
        .collect()
}

/// The demo's collector: the `lvt-collector` binary as a child process, with an SQLite file in a
/// temporary directory and one agent key made for this run. A child process rather than the
/// library keeps the tester free of collector code: only the record types (`lvt-schema`) cross
/// the boundary, as they do in production.
mod collector {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use lvt_schema::SessionReport;
    use lvt_schema::sign;

    use crate::ship::{ShipOptions, ShipOutcome, Shipper};

    /// Names the collector binary to run; without it the demo looks next to the `lvt` executable.
    pub const BIN_ENV: &str = "LVT_COLLECTOR_BIN";

    /// How long the child may take to listen: it opens an empty SQLite file, so seconds at most.
    const LISTEN_TIMEOUT: Duration = Duration::from_secs(15);

    pub struct Child {
        pub url: String,
        dir: PathBuf,
        shipper: Shipper,
        child: tokio::process::Child,
    }

    /// The collector binary: `LVT_COLLECTOR_BIN` when set, else `lvt-collector` beside the
    /// running `lvt` (where cargo and the release archive put both binaries).
    pub fn binary() -> anyhow::Result<PathBuf> {
        if let Some(path) = std::env::var_os(BIN_ENV) {
            let path = PathBuf::from(path);
            if !path.is_file() {
                anyhow::bail!("{BIN_ENV} names {}, which is not a file", path.display());
            }
            return Ok(path);
        }
        let exe = std::env::current_exe()?;
        let beside = exe
            .parent()
            .map(|dir| dir.join("lvt-collector"))
            .unwrap_or_else(|| Path::new("lvt-collector").to_path_buf());
        if !beside.is_file() {
            anyhow::bail!(
                "the lvt-collector binary is not next to lvt ({}); build it (`cargo build \
                 --release -p lvt-collector`, as ci/demo does) or set {BIN_ENV} to its path",
                beside.display()
            );
        }
        Ok(beside)
    }

    pub async fn start(bin: &Path) -> anyhow::Result<Child> {
        let dir = std::env::temp_dir().join(format!(
            "lvt-demo-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        let (secret, public) = sign::generate_keypair();
        let settings_path = dir.join("collector.toml");
        std::fs::write(
            &settings_path,
            format!(
                "[[agents]]\nid = \"lvt-demo\"\nregion = \"local\"\npublic_key = \"{}\"\n",
                sign::public_key_line(&public).trim()
            ),
        )?;
        // Reserve a free port, then hand it to the child (as `lvt bench` does for `lvt sim`).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = tokio::process::Command::new(bin);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--store")
            .arg(format!("sqlite:{}", dir.join("collector.db").display()))
            .arg("--config")
            .arg(&settings_path)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        // The collector logs every request at info; in the demo only its errors matter.
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "error");
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", bin.display()))?;
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("{} exited before listening ({status})", bin.display());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "{} did not listen on 127.0.0.1:{port} within {} s",
                    bin.display(),
                    LISTEN_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let url = format!("http://127.0.0.1:{port}");
        let options = ShipOptions {
            spool_dir: dir.join("spool"),
            ..ShipOptions::default()
        };
        let shipper = Shipper::new(&url, secret, options)?;
        Ok(Child {
            url,
            dir,
            shipper,
            child,
        })
    }

    impl Child {
        pub async fn ship(&self, records: &[SessionReport]) -> anyhow::Result<ShipOutcome> {
            Ok(self.shipper.ship(records).await?)
        }

        pub async fn sla_orchestrators(&self, formula: &str) -> anyhow::Result<serde_json::Value> {
            let answer = reqwest::get(format!(
                "{}/v1/sla/orchestrators?formula={formula}",
                self.url
            ))
            .await?
            .error_for_status()?
            .json()
            .await?;
            Ok(answer)
        }

        pub async fn stop(mut self) {
            // The database only lived for the demo, so the child need not shut down gracefully.
            if let Err(e) = self.child.kill().await {
                eprintln!("lvt demo: cannot stop the collector child: {e}");
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One orchestrator's line of the ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct OrchestratorRank {
    pub name: String,
    pub gpu: String,
    pub target: String,
    pub sessions: u64,
    pub passed: u64,
    pub failed: u64,
    pub unscored: u64,
    /// Mean probe score over the scored (passed or failed) sessions; `None` when every session
    /// was unscored (busy): no data, not zero.
    pub score: Option<f64>,
    pub startup_p50_ms: Option<f64>,
    pub e2e_p50_ms: Option<f64>,
    pub fps_p50: Option<f64>,
    /// Stalls summed over the sessions that got past job start; `None` when none did.
    pub stalls: Option<u64>,
    /// The failure classes seen, for the table's outcome column.
    pub failure_classes: Vec<String>,
}

/// Groups the run's sessions by target and ranks the targets: scored ones by mean score (ties
/// by lower e2e p50), then the unscored ones.
pub fn rank_orchestrators(
    report: &RunReport,
    names: &BTreeMap<String, (String, String)>,
) -> Vec<OrchestratorRank> {
    let mut by_target: BTreeMap<&str, Vec<&SessionRecord>> = BTreeMap::new();
    for t in &report.targets {
        by_target.entry(t.as_str()).or_default();
    }
    for s in &report.sessions {
        by_target.entry(s.target.as_str()).or_default().push(s);
    }
    let mut ranks: Vec<OrchestratorRank> = by_target
        .into_iter()
        .map(|(target, sessions)| {
            let (name, gpu) = names
                .get(target)
                .cloned()
                .unwrap_or_else(|| (target.to_string(), "-".to_string()));
            let count = |o: Outcome| sessions.iter().filter(|s| s.report.outcome == o).count();
            let scores: Vec<f64> = sessions
                .iter()
                .filter_map(|s| report::score(&s.report))
                .collect();
            let median = |f: &dyn Fn(&SessionRecord) -> Option<f64>| {
                Distribution::from_values(sessions.iter().filter_map(|s| f(s)))
                    .stat(crate::scenario::threshold::Stat::P50)
            };
            let mut failure_classes: Vec<String> = sessions
                .iter()
                .filter(|s| s.report.outcome == Outcome::Failed)
                .filter_map(|s| s.report.failure.as_ref())
                .map(|f| crate::report::class_name(f.class))
                .collect();
            failure_classes.sort();
            failure_classes.dedup();
            OrchestratorRank {
                name,
                gpu,
                target: target.to_string(),
                sessions: sessions.len() as u64,
                passed: count(Outcome::Passed) as u64,
                failed: count(Outcome::Failed) as u64,
                unscored: (count(Outcome::UnscoredBusy) + count(Outcome::UnscoredIndeterminate))
                    as u64,
                score: (!scores.is_empty())
                    .then(|| scores.iter().sum::<f64>() / scores.len() as f64),
                startup_p50_ms: median(&|s| s.startup_from_schedule_ms),
                e2e_p50_ms: median(&|s| s.report.metrics.e2e_latency_ms.map(|l| l.p50)),
                fps_p50: median(&|s| s.report.metrics.output_fps.map(|f| f.mean)),
                stalls: sessions
                    .iter()
                    .any(|s| s.report.metrics.job_start_ms.is_some())
                    .then(|| {
                        sessions
                            .iter()
                            .map(|s| u64::from(s.report.metrics.stalls.count))
                            .sum()
                    }),
                failure_classes,
            }
        })
        .collect();
    ranks.sort_by(|a, b| {
        let key = |r: &OrchestratorRank| {
            (
                r.score.is_none(),
                -r.score.unwrap_or(0.0),
                r.e2e_p50_ms.unwrap_or(f64::INFINITY),
            )
        };
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0)
            .then(ka.1.total_cmp(&kb.1))
            .then(ka.2.total_cmp(&kb.2))
    });
    ranks
}

/// Header of [`ranking_rows`].
pub const RANKING_HEADER: &[&str] = &[
    "rank",
    "orchestrator",
    "gpu",
    "sessions",
    "pass/fail/unscored",
    "startup p50 ms",
    "e2e p50 ms",
    "fps p50",
    "stalls",
    "score",
    "notes",
];

/// The ranking as table rows; no data prints `-`.
pub fn ranking_rows(ranks: &[OrchestratorRank]) -> Vec<Vec<String>> {
    let opt = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
    };
    ranks
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let notes = if r.score.is_none() {
                "unscored (busy: a capacity signal, not a failure)".to_string()
            } else if !r.failure_classes.is_empty() {
                format!("failed: {}", r.failure_classes.join(", "))
            } else {
                String::new()
            };
            vec![
                (i + 1).to_string(),
                r.name.clone(),
                r.gpu.clone(),
                r.sessions.to_string(),
                format!("{}/{}/{}", r.passed, r.failed, r.unscored),
                opt(r.startup_p50_ms, 0),
                opt(r.e2e_p50_ms, 1),
                opt(r.fps_p50, 1),
                r.stalls.map_or_else(|| "-".to_string(), |n| n.to_string()),
                opt(r.score, 1),
                notes,
            ]
        })
        .collect()
}
