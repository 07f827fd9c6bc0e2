//! WAL checkpoints on a thread of their own.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold, so every so
//! often one ingest commit also copied a thousand pages into the database file and synced it,
//! while holding the writer and every batch queued behind it. Here the writer connection's
//! automatic checkpoint is raised to a backstop ([`BACKSTOP_PAGES`]), and a thread with its own
//! connection runs a `PASSIVE` checkpoint every [`INTERVAL`]. A passive checkpoint never blocks
//! the writer: SQLite lets the writer append to the WAL while it copies earlier frames.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use super::SqliteConfig;
use crate::store::StoreError;

/// How often the checkpoint thread runs.
const INTERVAL: Duration = Duration::from_millis(250);

/// The writer's own automatic checkpoint threshold, in pages (about 64 MB of WAL): reached only
/// when the checkpoint thread falls far behind, so the WAL cannot grow without bound.
pub(super) const BACKSTOP_PAGES: i64 = 16_384;

/// Stops the checkpoint thread when the last handle to it is dropped.
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts the checkpoint thread on its own connection to the database of `config`.
    pub(super) fn start(config: &SqliteConfig) -> Result<Checkpointer, StoreError> {
        let connection = super::schema::open_connection(config)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let path = config.path.clone();
        std::thread::Builder::new()
            .name("lvt-sqlite-checkpoint".to_owned())
            .spawn(move || run(&connection, &stopped, &path))
            .map_err(|error| {
                StoreError::Worker(format!("cannot start the checkpointer: {error}"))
            })?;
        Ok(Checkpointer { _stop: stop })
    }
}

fn run(connection: &rusqlite::Connection, stopped: &mpsc::Receiver<()>, path: &Path) {
    let mut failing = false;
    // Nothing is ever sent: the channel only disconnects when the store is dropped.
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        // The answer is (busy, WAL frames, frames checkpointed); a checkpoint that could not
        // finish is simply taken up again next time, so only errors are reported, once per run
        // of failures.
        let checkpointed = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(0)
        });
        match checkpointed {
            Ok(_) => failing = false,
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(
                    message = "WAL checkpoint failed; it is retried.",
                    path = %path.display(),
                    error = %error
                );
            }
            Err(_) => {}
        }
    }
}
