//! The spool: batches that could not be delivered, one JSON file each, written whole or not at
//! all and read back oldest first (`lvt ship-spool`).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Ack, SendError};

/// Where failed batches are written when no spool directory is given.
pub const DEFAULT_SPOOL_DIR: &str = "lvt-spool";

/// Why a batch could not be written to, or read from, the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file system operation failed.
    #[error("spool {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A spool file does not hold a JSON array of records.
    #[error("spool file {}: not a JSON array of records: {detail}", path.display())]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
}

/// What [`Shipper::ship_spool`](super::Shipper::ship_spool) did with a spool directory.
#[derive(Debug, Default)]
pub struct SpoolDelivery {
    /// Files delivered and removed, with what the collector said.
    pub delivered: Vec<(PathBuf, Ack)>,
    /// Files not delivered (kept), with why.
    pub failed: Vec<(PathBuf, SendError)>,
    /// Files that could not be read or parsed, or not removed after delivery (kept).
    pub unreadable: Vec<SpoolError>,
    /// Files not tried because the collector was unreachable or refused this agent.
    pub skipped: Vec<PathBuf>,
    /// Records delivered.
    pub records: usize,
}

impl SpoolDelivery {
    /// Whether every spool file was delivered and removed.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.unreadable.is_empty() && self.skipped.is_empty()
    }

    /// Records the collector newly stored.
    pub fn inserted(&self) -> u64 {
        self.delivered.iter().map(|(_, ack)| ack.inserted).sum()
    }

    /// Records the collector already had.
    pub fn duplicates(&self) -> u64 {
        self.delivered.iter().map(|(_, ack)| ack.duplicates).sum()
    }
}

/// Sends every spool file (`batch-*.json`) in `dir` with `send`, oldest first, and removes each
/// one only after `send` succeeded. Files that fail stay for a later attempt; after a failure
/// that is not specific to one batch the remaining files are skipped. The HTTP and Kafka
/// shippers drain through here.
pub async fn drain_spool<F, Fut>(dir: &Path, mut send: F) -> Result<SpoolDelivery, SpoolError>
where
    F: FnMut(Value) -> Fut,
    Fut: std::future::Future<Output = Result<Ack, SendError>>,
{
    let mut delivery = SpoolDelivery::default();
    let files = spool_files(dir)?;
    let mut give_up = false;
    for path in files {
        if give_up {
            delivery.skipped.push(path);
            continue;
        }
        let batch = match read_spool_file(&path) {
            Ok(batch) => batch,
            Err(error) => {
                delivery.unreadable.push(error);
                continue;
            }
        };
        let count = batch.as_array().map_or(0, Vec::len);
        match send(batch).await {
            Ok(ack) => {
                delivery.records += count;
                match std::fs::remove_file(&path) {
                    Ok(()) => delivery.delivered.push((path, ack)),
                    Err(source) => delivery.unreadable.push(SpoolError::Io { path, source }),
                }
            }
            Err(error) => {
                give_up = !error.is_batch_specific();
                delivery.failed.push((path, error));
            }
        }
    }
    Ok(delivery)
}

/// Writes `batch` to a new file `batch-{uuid v7}.json` in `dir` (created if missing) and returns
/// its path. The file appears whole or not at all: it is written under a temporary name, synced
/// and renamed.
pub fn spool_batch(dir: &Path, batch: &Value) -> Result<PathBuf, SpoolError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SpoolError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // UUIDv7 names sort by creation time, so `ship_spool` sends the oldest batch first.
    let name = format!("batch-{}.json", uuid::Uuid::now_v7());
    let path = dir.join(&name);
    let temporary = dir.join(format!(".{name}.tmp"));
    // Serializing a `Value` cannot fail: it has string keys only.
    let bytes = serde_json::to_vec(batch).unwrap_or_default();
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&temporary).map_err(io(&temporary))?;
        file.write_all(&bytes).map_err(io(&temporary))?;
        file.sync_all().map_err(io(&temporary))?;
    }
    std::fs::rename(&temporary, &path).map_err(io(&path))?;
    // Syncing the directory makes the rename itself durable; not every platform allows opening
    // a directory, and the file's data is already synced, so a failure here is not fatal.
    if let Ok(directory) = std::fs::File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(path)
}

/// The spool files in `dir`, oldest first.
pub fn spool_files(dir: &Path) -> Result<Vec<PathBuf>, SpoolError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SpoolError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SpoolError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("batch-") && name.ends_with(".json") {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a spool file: a JSON array of records, kept as JSON so that fields this version of lvt
/// does not know survive the round trip.
pub(super) fn read_spool_file(path: &Path) -> Result<Value, SpoolError> {
    let bytes = std::fs::read(path).map_err(|source| SpoolError::Io {
        path: path.to_owned(),
        source,
    })?;
    let format = |detail: String| SpoolError::Format {
        path: path.to_owned(),
        detail,
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| format(e.to_string()))?;
    match &value {
        Value::Array(items) if items.iter().all(Value::is_object) => Ok(value),
        _ => Err(format("expected an array of objects".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spooled_batches_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let first = spool_batch(&spool, &serde_json::json!([{"session_id": "a"}])).unwrap();
        let second = spool_batch(&spool, &serde_json::json!([{"session_id": "b"}])).unwrap();
        // A leftover temporary file from an interrupted write is not a spool file.
        std::fs::write(spool.join(".batch-x.json.tmp"), b"[").unwrap();
        assert_eq!(spool_files(&spool).unwrap(), vec![first.clone(), second]);
        assert_eq!(
            read_spool_file(&first).unwrap(),
            serde_json::json!([{"session_id": "a"}])
        );
        std::fs::write(&first, b"{\"not\": \"an array\"}").unwrap();
        assert!(matches!(
            read_spool_file(&first),
            Err(SpoolError::Format { .. })
        ));
    }
}
