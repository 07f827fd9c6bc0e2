//! The ClickHouse table layout and the quoting of values into SQL text.
//!
//! Values are inlined as quoted literals (ClickHouse's HTTP query parameters would need
//! server-side support the test adapter lacks); every string goes through [`string`], and the
//! database name is checked by [`valid_database`] before it is used as an identifier.

/// Whether `name` can be used as a database name without quoting: letters, digits and `_`,
/// not starting with a digit.
pub(super) fn valid_database(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `text` as a ClickHouse string literal: single quotes, with `\` and `'` escaped.
pub(super) fn string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('\'');
    for c in text.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '\'' => quoted.push_str("\\'"),
            _ => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

/// The statements that create the collector's tables in `db` (already validated), in order.
///
/// - `results` is a `ReplacingMergeTree` ordered by the pagination key. The backend inserts only
///   session ids it has not stored yet; when two collectors race on the same session, merges (and
///   `FINAL` in every read) keep one row per (end time, session id): the one with the highest
///   `keep_rank`, which is `u64::MAX - received_at`, i.e. the first copy received. A bloom filter
///   on `session_id` makes the duplicate check before each insert cheap.
/// - `batches` is keyed by `batch_id`, derived from (key id, nonce), so a replayed insert of the
///   same batch collapses to one row too.
/// - `agent_heartbeats` keeps each agent's latest heartbeat: a `ReplacingMergeTree` keyed by
///   agent whose version is the receive time, read with `FINAL`.
/// - `nonces` is keyed by (key id, nonce) and pruned by `Store::prune_nonces` rather than by a
///   TTL: a TTL would drop rows at insert or merge time on its own schedule,
///   and the ingest path must decide exactly when a nonce is forgotten.
/// - `results_hourly` counts sessions by the SLA grain (the UTC hour the session started in x
///   orchestrator x pipeline x model x GPU x region x complexity x outcome), fed by a
///   materialized view on every insert into `results`; missing labels are stored as `''`.
///
/// - `sla_partials` holds the SLA rollup ([`crate::sla::CellSums`] as JSON) as partial sums:
///   one row per (batch, cell) the batch's new records fall in. The sums are merged in Rust when
///   read, since ClickHouse cannot add up the nested sums itself; a cell read costs one row per
///   batch that touched it, not one per record.
///
/// - `event_batches` is the provenance of each accepted event batch, keyed like `batches`.
/// - `events` holds every stored go-livepeer envelope, usable and kept aside alike (a kept-aside
///   one has an `aside_reason`), ordered by `seq`, the arrival sequence number that pages walk.
///   One table rather than two makes a batch's events one `INSERT`, hence one part written
///   wholly or not at all, and makes "an id is stored once across both places" one lookup.
///   Idempotency is an existence check under the backend's write lock (a bloom filter on `id`
///   keeps it cheap) rather than `ReplacingMergeTree` + `FINAL`: deduplication by merge needs
///   the sort key to be the id, which would make every arrival-order page a full scan.
///   `received_at_unix_ms` is the fallback retention time of an envelope whose `timestamp` is
///   not a number.
///
/// Every MergeTree fsyncs its parts and directories on insert, so an acknowledged insert
/// survives power loss, not only a process kill.
pub(super) fn schema(db: &str) -> Vec<String> {
    const DURABLE: &str = "fsync_after_insert = 1, fsync_part_directory = 1";
    vec![
        format!("CREATE DATABASE IF NOT EXISTS {db}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.batches (
                batch_id            Int64,
                agent_id            String,
                key_id              String,
                timestamp_ms        Int64,
                nonce               String,
                signature           String,
                canonical_sha256    String,
                session_ids         Array(String),
                received_at_unix_ms Int64
            ) ENGINE = ReplacingMergeTree
            ORDER BY batch_id
            SETTINGS {DURABLE}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.results (
                session_id           String,
                batch_id             Int64,
                agent_id             String,
                orchestrator_address Nullable(String),
                orchestrator_uri     Nullable(String),
                gpu                  Nullable(String),
                region               Nullable(String),
                pipeline             String,
                model_id             String,
                complexity           Nullable(String),
                outcome              String,
                started_at_unix_ms   Int64,
                ended_at_unix_ms     Int64,
                record_json          String,
                keep_rank            UInt64,
                INDEX session_bloom session_id TYPE bloom_filter GRANULARITY 1
            ) ENGINE = ReplacingMergeTree(keep_rank)
            ORDER BY (ended_at_unix_ms, session_id)
            SETTINGS {DURABLE}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.agent_heartbeats (
                agent_id            String,
                received_at_unix_ms Int64,
                heartbeat_json      String
            ) ENGINE = ReplacingMergeTree(received_at_unix_ms)
            ORDER BY agent_id
            SETTINGS {DURABLE}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.nonces (
                key_id       String,
                nonce        String,
                timestamp_ms Int64
            ) ENGINE = ReplacingMergeTree
            ORDER BY (key_id, nonce)
            SETTINGS {DURABLE}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.results_hourly (
                hour                 DateTime('UTC'),
                orchestrator_address String,
                orchestrator_uri     String,
                pipeline             String,
                model_id             String,
                gpu                  String,
                region               String,
                complexity           String,
                outcome              String,
                sessions             UInt64
            ) ENGINE = SummingMergeTree(sessions)
            ORDER BY (hour, orchestrator_address, orchestrator_uri, pipeline, model_id, gpu,
                      region, complexity, outcome)
            SETTINGS {DURABLE}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.sla_partials (
                hour_unix_s  Int64,
                orchestrator String,
                pipeline     String,
                model_id     String,
                gpu          String,
                region       String,
                complexity   String,
                test_load    Bool,
                batch_id     Int64,
                sums         String
            ) ENGINE = MergeTree
            ORDER BY (hour_unix_s, orchestrator, pipeline, model_id, gpu, region, complexity,
                      test_load)
            SETTINGS {DURABLE}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.event_batches (
                batch_id            Int64,
                agent_id            String,
                key_id              String,
                timestamp_ms        Int64,
                nonce               String,
                signature           String,
                canonical_sha256    String,
                received_at_unix_ms Int64
            ) ENGINE = ReplacingMergeTree
            ORDER BY batch_id
            SETTINGS {DURABLE}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.events (
                seq                 Int64,
                id                  String,
                family              String,
                timestamp_ms        Nullable(Int64),
                gateway             String,
                envelope_json       String,
                aside_reason        Nullable(String),
                batch_id            Int64,
                received_at_unix_ms Int64,
                INDEX id_bloom id TYPE bloom_filter GRANULARITY 1
            ) ENGINE = MergeTree
            ORDER BY seq
            SETTINGS {DURABLE}"
        ),
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.results_hourly_mv TO {db}.results_hourly
            AS SELECT
                toStartOfHour(toDateTime(intDiv(started_at_unix_ms, 1000), 'UTC')) AS hour,
                ifNull(orchestrator_address, '') AS orchestrator_address,
                ifNull(orchestrator_uri, '') AS orchestrator_uri,
                pipeline,
                model_id,
                ifNull(gpu, '') AS gpu,
                ifNull(region, '') AS region,
                ifNull(complexity, '') AS complexity,
                outcome,
                count() AS sessions
            FROM {db}.results
            GROUP BY hour, orchestrator_address, orchestrator_uri, pipeline, model_id, gpu,
                     region, complexity, outcome"
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::{string, valid_database};

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("plain"), "'plain'");
        assert_eq!(string("it's"), "'it\\'s'");
        assert_eq!(string("a\\'b"), "'a\\\\\\'b'");
    }

    #[test]
    fn database_names_are_checked() {
        assert!(valid_database("lvt"));
        assert!(valid_database("_t_1"));
        assert!(!valid_database(""));
        assert!(!valid_database("1db"));
        assert!(!valid_database("lvt; DROP"));
        assert!(!valid_database("a.b"));
    }
}
