//! `lvt discover` as a user runs it: simulated orchestrators in this process, the binary's
//! exit codes, its JSON and its table.

mod common;

use std::process::{Command, Output};

use common::start_sim;
use lvt_sim::Profile;
use serde_json::Value;

const LVT: &str = env!("CARGO_BIN_EXE_lvt");

async fn lvt(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    tokio::task::spawn_blocking(move || Command::new(LVT).args(&args).output().unwrap())
        .await
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A port that was just free: nothing listens there.
fn closed_port_uri() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[tokio::test]
async fn discover_static_json_lists_usable_first_and_drops_with_reasons() {
    let (good, _stop_good) = start_sim(Profile::default(), true).await;
    let (busy, _stop_busy) = start_sim(
        Profile {
            capacity: 0,
            ..Profile::default()
        },
        false,
    )
    .await;
    let closed = closed_port_uri();
    let out = lvt(&[
        "discover",
        "--static",
        &closed,
        &busy.uri,
        &good.uri,
        "--json",
        "--timeout",
        "5s",
    ])
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["model_id"], "noop");
    let entries = json["entries"].as_array().unwrap();
    let got: Vec<(&str, &str, Option<&str>)> = entries
        .iter()
        .map(|e| {
            (
                e["uri"].as_str().unwrap(),
                e["status"].as_str().unwrap(),
                e["reason"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (good.uri.as_str(), "usable", None),
            (closed.as_str(), "dropped", Some("unreachable")),
            (busy.uri.as_str(), "dropped", Some("no_capacity")),
        ]
    );
    let usable = &entries[0];
    assert_eq!(usable["source"], "static");
    assert!(usable["latency_ms"].as_u64().is_some());
    assert_eq!(
        usable["info"]["eth_address"].as_str().unwrap(),
        good.eth_address.to_lowercase()
    );
    let models: Vec<&str> = usable["info"]["live_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model_id"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["noop", "streamdiffusion"]);

    // The same list as a --discovery spec, as `lvt probe --network` takes it: the same answer.
    let spec = format!("static:{closed},{},{}", busy.uri, good.uri);
    let out = lvt(&[
        "discover",
        "--discovery",
        &spec,
        "--json",
        "--timeout",
        "5s",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let again: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    let statuses = |json: &Value| -> Vec<(String, String)> {
        json["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["uri"].as_str().unwrap().to_owned(),
                    e["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(statuses(&again), statuses(&json));
}

/// The on-chain source's usage errors and a node that refuses (a build without the `chain`
/// feature says so instead: tests/without_chain.rs).
#[cfg(feature = "chain")]
#[tokio::test]
async fn discover_chain_usage_errors_and_an_unreachable_node() {
    // A bad Controller address is a usage error, found before any RPC call.
    let out = lvt(&["discover", "--chain", "--controller", "0x1234"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--chain: controller \"0x1234\" is not an Ethereum address"),
        "{}",
        text(&out.stderr)
    );
    // An RPC node that refuses is a failed source, named with its URL.
    let rpc = closed_port_uri();
    let out = lvt(&["discover", "--chain", &rpc]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("Ethereum RPC {rpc} is unreachable")),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn discover_table_and_exit_codes() {
    let (good, _stop) = start_sim(Profile::default(), true).await;
    // A model the simulator does not offer: nothing usable, exit 1, the reason in the table.
    let out = lvt(&["discover", "--static", &good.uri, "--model", "nope"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("URI"), "{stdout}");
    assert!(
        stdout.contains(
            "dropped: incapable (model nope not offered (offers: noop, streamdiffusion))"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 of 1 candidate(s) usable for live-video-to-video/nope"),
        "{stdout}"
    );

    let out = lvt(&["discover"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no discovery source"));
    let out = lvt(&["discover", "--static", "ftp://x:1"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--static"),
        "{}",
        text(&out.stderr)
    );
    // A bad --discovery spec is a usage error listing the forms; so is --controller without an
    // on-chain source.
    let out = lvt(&["discover", "--discovery", "gossip:x"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--discovery \"gossip:x\": expected static:URI[,URI...]"),
        "{}",
        text(&out.stderr)
    );
    let out = lvt(&[
        "discover",
        "--discovery",
        "webhook:http://127.0.0.1:1",
        "--controller",
        "0x1",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("--controller and --service-registry go with an on-chain source"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn discover_reads_a_webhook_and_fails_when_it_is_down() {
    let (good, _stop) = start_sim(Profile::default(), true).await;
    let body = format!(
        r#"[{{"address": "{}", "score": 0.5, "name": "x"}}]"#,
        good.uri
    );
    let router = axum::Router::new().route(
        "/orchs",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let url = format!("http://{addr}/orchs");
    let out = lvt(&["discover", "--webhook", &url, "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["entries"][0]["source"], "webhook");
    assert_eq!(json["entries"][0]["score"], 0.5);

    let down = format!("{}/orchs", closed_port_uri());
    let out = lvt(&["discover", "--webhook", &down]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("discovery webhook {down}: request failed")),
        "{}",
        text(&out.stderr)
    );
}
