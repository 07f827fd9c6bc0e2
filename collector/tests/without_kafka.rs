//! A collector built without the `kafka` feature (`cargo test --no-default-features`): a
//! settings file with `[kafka]` still parses, and serving refuses to start with the reason
//! instead of ignoring the table.

#![cfg(not(feature = "kafka"))]

use std::path::Path;

use lvt_collector::app::{open_store, system_clock};
use lvt_collector::config::{Settings, StoreSpec};
use lvt_collector::server::serve;

#[tokio::test]
async fn a_kafka_table_without_kafka_feature_stops_the_start_with_the_reason() {
    let settings = Settings::parse(
        "[kafka]\nbrokers = \"127.0.0.1:9092\"\nresults_topic = \"lvt-results\"\n",
        Path::new("collector.toml"),
    )
    .expect("the [kafka] table parses without the feature");
    let dir = tempfile::tempdir().expect("tempdir");
    let spec: StoreSpec = format!("sqlite:{}", dir.path().join("lvt.db").display())
        .parse()
        .expect("store spec");
    let store = open_store(&spec).await.expect("open store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let outcome = serve(listener, settings, store, system_clock(), async {}).await;
    let Err(error) = outcome else {
        panic!("serving with [kafka] must not start without the kafka feature");
    };
    let text = error.to_string();
    assert!(
        text.contains("built without the `kafka` cargo feature"),
        "{text}"
    );
}
