//! Every store backend against the shared behavioural suites (`lvt_testkit::store_suite`): SQLite
//! (the embedded default) and ClickHouse (PyPI's chdb behind `ci/clickhouse-adapter`), so each
//! behaves exactly as the others do; and the suites themselves, which must fail a backend that
//! leaves out what they check.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lvt_collector::store::clickhouse::{ClickHouseConfig, ClickHouseStore};
use lvt_collector::store::sqlite::{SqliteConfig, SqliteStore};
use lvt_collector::store::{EventFilter, Store as _};
use lvt_testkit::store_double::StoreDouble;
use lvt_testkit::store_suite::{sla_suite, suite};

fn sqlite(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&SqliteConfig::new(dir.path().join("lvt.db"))).expect("open store")
}

/// A ClickHouse store in a database no other test of this binary uses.
async fn clickhouse() -> ClickHouseStore {
    static NEXT_DATABASE: AtomicUsize = AtomicUsize::new(0);
    let mut config = ClickHouseConfig::new(lvt_testkit::clickhouse::url());
    config.database = format!("s{}", NEXT_DATABASE.fetch_add(1, Ordering::Relaxed));
    ClickHouseStore::open(config)
        .await
        .expect("open a fresh ClickHouse database")
}

#[tokio::test]
async fn sqlite_passes_the_store_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = sqlite(&dir);
    suite(&store).await;
    // The suite's event section really ran: SQLite stores events.
    let page = store
        .events_page(EventFilter::default(), None, 10)
        .await
        .expect("page");
    assert_eq!(page.rows.len(), 3);
}

#[tokio::test]
async fn sqlite_passes_the_sla_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    sla_suite(&sqlite(&dir)).await;
}

#[tokio::test]
async fn clickhouse_passes_the_store_suite() {
    suite(&clickhouse().await).await;
}

#[tokio::test]
async fn clickhouse_passes_the_sla_suite() {
    sla_suite(&clickhouse().await).await;
}

#[tokio::test]
#[should_panic(expected = "answered Unsupported for insert_events")]
async fn a_backend_without_events_fails_the_suite_instead_of_passing_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite(&StoreDouble::required_only(Arc::new(sqlite(&dir)))).await;
}
