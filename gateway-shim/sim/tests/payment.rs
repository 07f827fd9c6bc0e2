//! Payments through a remote signer against the simulator over real sockets (127.0.0.1:0): the
//! stand-in signer signs the GetOrchestrator request and generates live payments, the simulator
//! requires payment at job start and counts `POST /payment`.

use std::time::Duration;

use lvt_sim::{MISSING_PAYMENT, OrchestratorConfig, Profile, RunningOrchestrator};
use lvt_wire::grpc::{OrchestratorClient, live_request, proto};
use lvt_wire::live::{
    self, LiveVideoToVideoRequest, OrchestratorUri, StartJobError, start_job_with_headers,
};
use lvt_wire::payment::stand_in::{STAND_IN_ADDRESS, StandInSigner};
use lvt_wire::payment::{
    Payer, PaymentConfig, PaymentError, SignerClient, grpc_refresher, sign_orchestrator_request,
    spawn_loop,
};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// Bound for things that should happen within a second; a test that hits it fails.
const WAIT: Duration = Duration::from_secs(10);

struct Sim {
    orch: RunningOrchestrator,
    stop: CancellationToken,
}

impl Sim {
    async fn start(profile: Profile) -> Sim {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut cfg = OrchestratorConfig::new("paid-orch", profile);
        cfg.plaintext = true;
        let stop = CancellationToken::new();
        let orch = lvt_sim::start(cfg, listener, stop.clone().cancelled_owned())
            .await
            .expect("sim starts");
        Sim { orch, stop }
    }

    async fn shutdown(self) {
        self.stop.cancel();
        timeout(WAIT, self.orch.join())
            .await
            .expect("sim stops in time")
            .expect("sim stops cleanly");
    }
}

fn requiring_payment() -> Profile {
    Profile {
        require_payment: true,
        // Refreshing the info is a new GetOrchestrator, which a full orchestrator refuses.
        capacity: 4,
        ..Profile::default()
    }
}

async fn signer() -> StandInSigner {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    StandInSigner::start(listener).expect("stand-in starts")
}

fn config(signer: &StandInSigner) -> PaymentConfig {
    PaymentConfig {
        signer_url: Some(signer.url().parse().expect("signer url")),
    }
}

fn job_request() -> LiveVideoToVideoRequest {
    LiveVideoToVideoRequest {
        model_id: "noop".into(),
        params: json!({"prompt": "a"}),
        gateway_request_id: "gw-1".into(),
        stream_id: "stream-1".into(),
    }
}

/// GetOrchestrator signed by the signer: the client, the request and the answer.
async fn discover(
    sim: &Sim,
    signer: &StandInSigner,
) -> (
    OrchestratorClient,
    proto::OrchestratorRequest,
    proto::OrchestratorInfo,
) {
    let signer_client = SignerClient::new(
        signer.url().parse().expect("signer url"),
        reqwest::Client::new(),
    );
    let material = signer_client
        .sign_orchestrator_info()
        .await
        .expect("signer signs orchestrator info");
    assert_eq!(material.address, STAND_IN_ADDRESS.to_vec());
    assert_eq!(material.signature.len(), 65, "an EIP-191 signature");
    let mut request = live_request([0; 20], Some("noop"));
    material.apply(&mut request);
    assert_eq!(request.address, STAND_IN_ADDRESS.to_vec());
    let mut helper_signed = live_request([0; 20], Some("noop"));
    sign_orchestrator_request(&config(signer), &reqwest::Client::new(), &mut helper_signed)
        .await
        .expect("helper signs");
    assert_eq!(
        helper_signed, request,
        "the helper applies the same material"
    );
    let mut offchain = live_request([0; 20], Some("noop"));
    sign_orchestrator_request(
        &PaymentConfig::default(),
        &reqwest::Client::new(),
        &mut offchain,
    )
    .await
    .expect("offchain is a no-op");
    assert_eq!(offchain, live_request([0; 20], Some("noop")));
    let uri: OrchestratorUri = sim.orch.uri.parse().expect("uri");
    let mut client = OrchestratorClient::connect(&uri, WAIT)
        .await
        .expect("connect");
    let info = client
        .get_orchestrator(request.clone())
        .await
        .expect("GetOrchestrator");
    (client, request, info)
}

fn http() -> reqwest::Client {
    live::insecure_http_client().expect("client").0
}

#[tokio::test]
async fn job_start_succeeds_with_a_signer_payment_and_fails_402_without() {
    let sim = Sim::start(requiring_payment()).await;
    let signer = signer().await;
    let (client, request, info) = discover(&sim, &signer).await;
    let token = info.auth_token.clone().expect("auth token");

    // Offchain headers: an empty payment, which this orchestrator refuses.
    let unpaid = live::start_job(
        &http(),
        &info.transcoder,
        &token,
        &job_request(),
        live::START_JOB_TIMEOUT,
    )
    .await;
    match unpaid {
        Err(StartJobError::Status { status, body }) => {
            assert_eq!(status, 402);
            assert_eq!(body, MISSING_PAYMENT);
        }
        other => panic!("expected 402, got {other:?}"),
    }
    assert_eq!(sim.orch.sessions_started(), 0);

    let mut payer = Payer::new(&config(&signer), http(), info.clone())
        .with_refresher(grpc_refresher(client, request));
    assert!(payer.is_onchain());
    let headers = payer.job_headers().await.expect("signer pays the start");
    assert!(!headers.payment.is_empty());
    let job = start_job_with_headers(
        &http(),
        &info.transcoder,
        &headers.segment,
        &headers.payment,
        &job_request(),
        live::START_JOB_TIMEOUT,
    )
    .await
    .expect("a paid job starts");
    assert_eq!(sim.orch.sessions_started(), 1);
    assert!(!job.manifest_id.is_empty());

    let calls = signer.calls();
    let paths: Vec<&str> = calls.iter().map(|c| c.path).collect();
    // `discover` signed twice: once by hand, once through the helper.
    assert_eq!(
        paths,
        [
            "/sign-orchestrator-info",
            "/sign-orchestrator-info",
            "/generate-live-payment"
        ]
    );
    let generate = &calls[2];
    assert_eq!(generate.body["type"], "lv2v");
    assert!(
        generate.body.get("state").is_none(),
        "the first request has no state"
    );
    assert_eq!(
        generate.orchestrator.as_ref().map(|i| &i.transcoder),
        Some(&info.transcoder),
        "the signer got the orchestrator info as protobuf"
    );
    signer.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn payment_loop_posts_payments_and_round_trips_the_signer_state() {
    let sim = Sim::start(requiring_payment()).await;
    let signer = signer().await;
    let (client, request, info) = discover(&sim, &signer).await;
    let mut payer = Payer::new(&config(&signer), http(), info.clone())
        .with_refresher(grpc_refresher(client, request));
    let headers = payer.job_headers().await.expect("start payment");
    let job = start_job_with_headers(
        &http(),
        &info.transcoder,
        &headers.segment,
        &headers.payment,
        &job_request(),
        live::START_JOB_TIMEOUT,
    )
    .await
    .expect("job starts");
    payer.set_manifest_id(job.manifest_id.clone());

    // Real sockets cannot run on paused time, so the loop runs on a short real interval here;
    // the 5 s schedule itself is tested on paused time in the unit tests.
    let cancel = CancellationToken::new();
    let task = spawn_loop(
        payer,
        info.transcoder.clone(),
        Duration::from_millis(50),
        cancel.clone(),
    );
    timeout(WAIT, sim.orch.wait_payments(3))
        .await
        .expect("three payments arrive");
    cancel.cancel();
    let report = task.await.expect("loop task");
    // The cancel may abandon a payment the orchestrator already counted but whose answer had
    // not arrived yet.
    let received = sim.orch.payments_received();
    assert!(received >= 3);
    assert!(
        report.payments >= 2 && report.payments <= received,
        "{report:?}, received {received}"
    );
    assert_eq!(report.failures, 0, "{report:?}");

    let generates: Vec<_> = signer
        .calls()
        .into_iter()
        .filter(|c| c.path == "/generate-live-payment")
        .collect();
    assert!(generates.len() >= 4, "one for the start, one per payment");
    assert!(
        generates.iter().all(|c| c.status == 200),
        "state verified every time"
    );
    for call in &generates[1..] {
        assert!(call.body.get("state").is_some(), "state is sent back");
        assert_eq!(call.body["manifestID"], job.manifest_id.as_str());
    }
    signer.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn signer_480_refreshes_the_orchestrator_info_and_retries() {
    let sim = Sim::start(requiring_payment()).await;
    let signer = signer().await;
    let (client, request, info) = discover(&sim, &signer).await;
    let first_session = info.auth_token.clone().expect("token").session_id;

    signer.refresh_next(1);
    let mut payer = Payer::new(&config(&signer), http(), info.clone())
        .with_refresher(grpc_refresher(client.clone(), request.clone()));
    let headers = payer.job_headers().await.expect("paid after one refresh");
    assert_eq!(payer.refreshes(), 1);
    let generates: Vec<_> = signer
        .calls()
        .into_iter()
        .filter(|c| c.path == "/generate-live-payment")
        .collect();
    assert_eq!(
        generates.iter().map(|c| c.status).collect::<Vec<_>>(),
        [480, 200]
    );
    let session_of = |i: usize| {
        generates[i]
            .orchestrator
            .as_ref()
            .and_then(|o| o.auth_token.as_ref())
            .map(|t| t.session_id.clone())
    };
    assert_eq!(session_of(0).as_deref(), Some(first_session.as_str()));
    assert_ne!(session_of(1), session_of(0), "the retry carries fresh info");
    start_job_with_headers(
        &http(),
        &info.transcoder,
        &headers.segment,
        &headers.payment,
        &job_request(),
        live::START_JOB_TIMEOUT,
    )
    .await
    .expect("job starts with the refreshed payment");

    // A signer that keeps asking gives up after the limit.
    signer.refresh_next(100);
    let mut stubborn = Payer::new(&config(&signer), http(), info.clone())
        .with_refresher(grpc_refresher(client, request));
    match stubborn.job_headers().await {
        Err(PaymentError::RefreshExhausted { attempts }) => assert_eq!(attempts, 3),
        other => panic!("expected the refresh limit, got {other:?}"),
    }
    // Without a way to refresh, a 480 is an error at once.
    signer.refresh_next(1);
    let mut no_refresher = Payer::new(&config(&signer), http(), info);
    assert!(matches!(
        no_refresher.job_headers().await,
        Err(PaymentError::NoRefresher)
    ));
    signer.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn refused_payments_are_reported_with_the_orchestrators_status() {
    let sim = Sim::start(Profile {
        payment_status: Some(402),
        ..requiring_payment()
    })
    .await;
    let signer = signer().await;
    let (_client, _request, info) = discover(&sim, &signer).await;
    let mut payer = Payer::new(&config(&signer), http(), info.clone());
    match payer.pay(&info.transcoder).await {
        Err(PaymentError::Orchestrator { status, .. }) => assert_eq!(status, 402),
        other => panic!("expected a refused payment, got {other:?}"),
    }
    assert_eq!(sim.orch.payments_received(), 0);

    // A payment whose credentials are not the orchestrator's own is refused with 403.
    let forged = proto::OrchestratorInfo {
        auth_token: Some(proto::AuthToken {
            token: vec![0; 32],
            session_id: "forged".into(),
            expiration: i64::MAX,
        }),
        ..info.clone()
    };
    let sim_ok = Sim::start(requiring_payment()).await;
    let mut forger = Payer::new(&config(&signer), http(), forged);
    match forger.pay(&sim_ok.orch.uri).await {
        Err(PaymentError::Orchestrator { status, body }) => {
            assert_eq!(status, 403);
            assert_eq!(body, "invalid auth token");
        }
        other => panic!("expected 403, got {other:?}"),
    }
    signer.stop().await;
    sim.shutdown().await;
    sim_ok.shutdown().await;
}
