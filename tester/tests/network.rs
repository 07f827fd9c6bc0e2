//! Network-selection sessions against simulated fleets over real sockets: discovery, the start
//! loop, swaps with their freeze and attribution, the swap limit, and an all-busy network.
//!
//! Sessions run in real time, because what is measured is real time; each fleet is a few
//! simulated orchestrators on 127.0.0.1 ports chosen by the OS.

mod common;

use std::time::Duration;

use common::{clip, start_sim};
use lvt_gateway::discovery::{Source, StaticEntry, StaticSource};
use lvt_gateway::gateway::observe::Observation;
use lvt_schema::{FailureClass, Outcome, SessionReport, TargetMode};
use lvt_sim::{Profile, RunningOrchestrator};
use lvt_tester::probe::network::{NetworkOptions, StrategyConfig, run_network};
use lvt_tester::probe::{self, ProbeOptions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the gateway may see first when a simulated orchestrator crashes: the crash deletes
/// all four channels at once, so the output subscription usually reads the end of stream
/// before the next input segment gets 404 (or the output segment being read breaks off). Each
/// with the failure class it maps to.
const CRASH_CAUSES: [(&str, FailureClass); 4] = [
    (
        "trickle subscribe stopping, stream not found, err=End of stream",
        FailureClass::OutputTimeout,
    ),
    (
        "trickle subscribe error, swapping",
        FailureClass::OutputTimeout,
    ),
    (
        "stream no longer exists on orchestrator; terminating",
        FailureClass::PublishLost,
    ),
    ("control channel does not exist", FailureClass::PublishLost),
];

fn crash_class(cause: &str) -> FailureClass {
    CRASH_CAUSES
        .iter()
        .find(|(c, _)| *c == cause)
        .map(|(_, class)| *class)
        .unwrap_or_else(|| panic!("{cause:?} is not a cause a crash produces"))
}

fn profile(f: impl FnOnce(&mut Profile)) -> Profile {
    let mut p = Profile {
        capacity: 2,
        seed: 11,
        ..Profile::default()
    };
    f(&mut p);
    p
}

fn static_sources(orchs: &[&RunningOrchestrator]) -> Vec<Source> {
    vec![Source::Static(StaticSource {
        orchestrators: orchs
            .iter()
            .map(|o| StaticEntry {
                address: o.uri.clone(),
                score: None,
            })
            .collect(),
    })]
}

/// Runs one network session of `duration` over `orchs`, collecting its observations.
async fn run(
    orchs: &[&RunningOrchestrator],
    duration: Duration,
    tune: impl FnOnce(&mut NetworkOptions),
) -> (SessionReport, Vec<Observation>) {
    // The target of the session options is replaced by each try's candidate.
    let mut session = ProbeOptions::new(orchs[0].uri.parse().unwrap());
    session.duration = duration;
    session.params_update_offsets = vec![Duration::from_secs(1)];
    session.params = serde_json::json!({"prompt": "watercolor"});
    session.timeouts.drain = Duration::from_secs(2);
    let mut opts = NetworkOptions::new(session, static_sources(orchs), StrategyConfig::GoLivepeer);
    opts.discovery_timeout = Duration::from_millis(800);
    tune(&mut opts);
    let http = probe::http_client().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let run = run_network(&opts, clip(), &http, CancellationToken::new(), Some(tx)).await;
    let mut seen = Vec::new();
    while let Ok(o) = rx.try_recv() {
        seen.push(o);
    }
    (run.report, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_10_s_swaps_once_and_attributes_each_frame() {
    // The crashing orchestrator answers discovery first, so go-livepeer's order starts there;
    // the healthy ones answer 150 ms later.
    let (crasher, s1) = start_sim(profile(|p| p.crash_after_s = Some(10.0)), true).await;
    let (good_a, s2) = start_sim(
        profile(|p| {
            p.get_orchestrator_delay_ms = 150;
            p.latency_ms = 40;
        }),
        true,
    )
    .await;
    let (good_b, s3) = start_sim(profile(|p| p.get_orchestrator_delay_ms = 300), true).await;
    let (r, seen) = run(
        &[&crasher, &good_a, &good_b],
        Duration::from_secs(14),
        |_| {},
    )
    .await;
    for s in [s1, s2, s3] {
        s.cancel();
    }

    assert_eq!(r.mode, TargetMode::Network);
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
    assert_eq!(r.metrics.swaps.len(), 1, "{:?}", r.metrics.swaps);
    let swap = &r.metrics.swaps[0];
    assert_eq!(swap.from, crasher.uri);
    assert_eq!(swap.to, good_a.uri);
    let crash_class = crash_class(&swap.cause);
    let freeze = swap.freeze_ms.expect("freeze measured");
    // The crash stops output at 10 s; the swap follows at the next input segment (1 s
    // segments), then the new orchestrator starts within its 40 ms latency.
    assert!((50.0..3_000.0).contains(&freeze), "freeze {freeze} ms");

    assert_eq!(r.served_by.len(), 2, "{:?}", r.served_by);
    let (first, second) = (&r.served_by[0], &r.served_by[1]);
    assert_eq!(first.orchestrator.uri, crasher.uri);
    assert_eq!(second.orchestrator.uri, good_a.uri);
    assert_eq!(first.ended_by.as_deref(), Some(swap.cause.as_str()));
    assert_eq!(first.failure, Some(crash_class));
    assert_eq!(second.ended_by, None);
    assert_eq!(second.failure, None);
    assert!(first.to_unix_ms <= second.from_unix_ms + 5);
    // About 10 s of 30 fps from the first, about 4 s from the second; every frame is counted
    // once, for the orchestrator whose channel carried it.
    assert!(
        (250..=320).contains(&first.frames_received),
        "first share {} frames",
        first.frames_received
    );
    assert!(
        (60..=130).contains(&second.frames_received),
        "second share {} frames",
        second.frames_received
    );
    assert_eq!(
        first.frames_received + second.frames_received,
        r.metrics.frames_received
    );
    // The second orchestrator adds 40 ms: its share's latency shows it, the first's does not.
    let e2e_first = first.e2e_latency_ms.as_ref().expect("first share e2e");
    let e2e_second = second.e2e_latency_ms.as_ref().expect("second share e2e");
    assert!(e2e_first.p50 < 30.0, "first p50 {}", e2e_first.p50);
    assert!(
        (35.0..80.0).contains(&e2e_second.p50),
        "second p50 {}",
        e2e_second.p50
    );
    // PTS continued across the swap: the new orchestrator's frames still match their input.
    assert_eq!(r.metrics.frames_unmatched, 0);
    assert_eq!(
        r.orchestrator.as_ref().map(|o| o.uri.as_str()),
        Some(good_a.uri.as_str()),
        "the record names the orchestrator that served last"
    );

    let swaps: Vec<_> = seen
        .iter()
        .filter_map(|o| match o {
            Observation::Swap {
                from, to, cause, ..
            } => Some((from.url.clone(), to.url.clone(), cause.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        swaps,
        vec![(crasher.uri.clone(), good_a.uri.clone(), swap.cause.clone())]
    );
    assert!(
        seen.iter()
            .any(|o| matches!(o, Observation::RunnerEvent { orchestrator, .. } if orchestrator.url == good_a.uri)),
        "runner events of the new orchestrator are relayed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_busy_network_is_unscored_and_blames_nobody() {
    // Two refuse every start with 503; one advertises no idle runner at all, so discovery
    // drops it before selection.
    let (a, s1) = start_sim(profile(|p| p.start_status = Some(503)), true).await;
    let (b, s2) = start_sim(profile(|p| p.start_status = Some(503)), true).await;
    let (c, s3) = start_sim(profile(|p| p.capacity = 0), true).await;
    let (r, seen) = run(&[&a, &b, &c], Duration::from_secs(3), |_| {}).await;
    for s in [s1, s2, s3] {
        s.cancel();
    }
    assert_eq!(r.outcome, Outcome::UnscoredBusy);
    let failure = r.failure.expect("a failure");
    assert_eq!(failure.class, FailureClass::Capacity);
    assert_eq!(failure.detail, "no orchestrators available");
    assert!(r.served_by.is_empty());
    assert!(r.orchestrator.is_none(), "no single orchestrator is named");
    assert!(r.metrics.swaps.is_empty());
    let none = seen
        .iter()
        .find_map(|o| match o {
            Observation::NoOrchestratorsAvailable { tries, message, .. } => {
                Some((*tries, message.clone()))
            }
            _ => None,
        })
        .expect("gateway_no_orchestrators_available");
    assert_eq!(none, (2, "no orchestrators available".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_drops_unreachable_incapable_and_slow_candidates_before_selection() {
    let (good, s1) = start_sim(profile(|p| p.get_orchestrator_delay_ms = 100), true).await;
    let (fast, s2) = start_sim(profile(|_| {}), true).await;
    let (slow, s3) = start_sim(profile(|p| p.get_orchestrator_delay_ms = 3_000), true).await;
    // Nothing listens on a port that was just free.
    let unreachable = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("https://{}", l.local_addr().unwrap())
    };
    let mut session = ProbeOptions::new(good.uri.parse().unwrap());
    session.duration = Duration::from_secs(2);
    session.params_update_offsets = Vec::new();
    // The simulator does not offer this model, so every reachable candidate is incapable
    // for it; with `noop` the fast one would be selected first.
    let sources = vec![Source::Static(StaticSource {
        orchestrators: [&slow.uri, &unreachable, &fast.uri, &good.uri]
            .iter()
            .map(|u| StaticEntry {
                address: (*u).clone(),
                score: None,
            })
            .collect(),
    })];
    let mut opts = NetworkOptions::new(session, sources, StrategyConfig::GoLivepeer);
    opts.discovery_timeout = Duration::from_millis(800);
    let http = probe::http_client().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let run = run_network(&opts, clip(), &http, CancellationToken::new(), Some(tx)).await;
    let mut seen = Vec::new();
    while let Ok(o) = rx.try_recv() {
        seen.push(o);
    }
    let discovered = seen
        .iter()
        .find_map(|o| match o {
            Observation::DiscoveryResults { candidates, .. } => Some(candidates.clone()),
            _ => None,
        })
        .expect("discovery_results");
    // Only the two that answered in time are candidates, the faster one first.
    let urls: Vec<_> = discovered.iter().map(|c| c.url.clone()).collect();
    assert_eq!(urls, vec![fast.uri.clone(), good.uri.clone()]);
    assert_eq!(
        run.report.outcome,
        Outcome::Passed,
        "{:?}",
        run.report.failure
    );
    assert_eq!(run.report.served_by.len(), 1);
    assert_eq!(run.report.served_by[0].orchestrator.uri, fast.uri);

    let mut incapable = opts.clone();
    incapable.session.model_id = "no-such-model".into();
    let run = run_network(&incapable, clip(), &http, CancellationToken::new(), None).await;
    for s in [s1, s2, s3] {
        s.cancel();
    }
    assert_eq!(run.report.outcome, Outcome::UnscoredBusy);
    assert_eq!(
        run.report.failure.map(|f| f.detail).as_deref(),
        Some("no orchestrators available")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lvt_probe_network_runs_a_session_and_rejects_bad_flags() {
    const LVT: &str = env!("CARGO_BIN_EXE_lvt");
    let (slow, s1) = start_sim(profile(|p| p.get_orchestrator_delay_ms = 150), true).await;
    let (fast, s2) = start_sim(profile(|_| {}), true).await;
    let run = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(LVT)
                .args(&args)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = ["probe", "--network", "--duration", "2s", "--json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let discovery = format!("static:{},{}", slow.uri, fast.uri);
    let out = run(args(&["--discovery", &discovery])).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: SessionReport = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report.mode, TargetMode::Network);
    assert_eq!(report.outcome, Outcome::Passed);
    // go-livepeer's order: the faster discovery answer first.
    assert_eq!(report.served_by.len(), 1);
    assert_eq!(report.served_by[0].orchestrator.uri, fast.uri);
    assert!(report.served_by[0].frames_received > 0);

    let out = run(args(&[
        "--discovery",
        &discovery,
        "--strategy",
        "score-weighted:x",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the seed must be a whole number"));
    let out = run(args(&["--discovery", "gossip:foo"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected static:URI"));
    for s in [s1, s2] {
        s.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_weighted_selection_follows_the_collectors_sla_scores() {
    use axum::Router;
    use axum::routing::get;
    // The first candidate answers discovery first and would win go-livepeer's order; the
    // collector scores it 0 and the second 100, so score-weighted selection starts on the
    // second whatever the seed. Without a chain to verify their addresses, both are looked up
    // by URI, as the collector keys them: the 100 the collector holds for the first one's
    // claimed address (as if verified elsewhere) is not borrowed by the claim.
    let (low, s1) = start_sim(profile(|_| {}), true).await;
    // A different seed gives the simulator a different ETH address.
    let (high, s2) = start_sim(
        profile(|p| {
            p.get_orchestrator_delay_ms = 150;
            p.seed = 12;
        }),
        true,
    )
    .await;
    assert_ne!(low.eth_address, high.eth_address);
    let ranking = serde_json::json!({
        "start": "x", "end": "y", "test_load": true,
        "orchestrators": [
            {"rank": 1, "orchestrator": low.eth_address.to_ascii_lowercase(), "regions": [],
             "score": {"sla_score": 100.0}},
            {"rank": 2, "orchestrator": high.uri, "regions": [],
             "score": {"sla_score": 100.0}},
            {"rank": 3, "orchestrator": low.uri, "regions": [],
             "score": {"sla_score": 0.0}},
            {"rank": null, "orchestrator": "0xbusy", "regions": [],
             "score": {"sla_score": null}}
        ]
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/v1/sla/orchestrators",
        get(move || {
            let body = ranking.to_string();
            async move { body }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let scores =
        lvt_tester::probe::network::sla_scores(&probe::http_client().unwrap(), &collector, "noop")
            .await
            .unwrap();
    assert_eq!(
        scores.len(),
        3,
        "unscored orchestrators are left out: {scores:?}"
    );
    for seed in [1, 2, 3, 4] {
        let sla_url = Some(collector.clone());
        let (r, _) = run(&[&low, &high], Duration::from_secs(2), |o| {
            o.strategy = StrategyConfig::ScoreWeighted { seed, sla_url };
        })
        .await;
        assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
        assert_eq!(r.served_by[0].orchestrator.uri, high.uri, "seed {seed}");
    }
    for s in [s1, s2] {
        s.cancel();
    }
}
