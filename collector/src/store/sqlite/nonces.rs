//! The nonces signed requests have used, held in memory and written along with the next commit.
//!
//! Every signed request checks its nonce before anything else is stored. Checking it with a
//! write of its own made every request wait for the writer connection, behind whatever group
//! commit it was syncing, which serialised ingest on that one lock. The log answers from memory
//! instead, and the writer saves the nonces that arrived since its last commit inside its next
//! transaction (a result group, an event batch, a prune) or when the store is dropped.
//!
//! What that costs: a nonce reaches the disk with the first commit after it, so the nonce of every
//! stored batch is durable together with that batch. A nonce of a request that stored nothing
//! (refused later, or cut off by a crash) can be lost by a crash; replaying that request after a
//! restart then gets the answer the original would have got, and stores at most what the original
//! did not, idempotently by session id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};

use crate::store::StoreError;

/// One nonce: (key id, nonce, signed timestamp in milliseconds).
pub(super) type Nonce = (String, String, i64);

/// The nonces of the window, in memory, and those not yet on disk.
pub(super) struct NonceLog {
    /// The writer connection, for the save when the store is dropped.
    writer: Arc<Mutex<Connection>>,
    memory: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    /// Every remembered nonce (key id, nonce) and its timestamp.
    seen: HashMap<(String, String), i64>,
    /// Nonces remembered since the writer last saved.
    unsaved: Vec<Nonce>,
}

impl NonceLog {
    /// Loads the stored nonces through `connection` (the writer, which `writer` also holds).
    pub(super) fn load(
        writer: Arc<Mutex<Connection>>,
        connection: &Connection,
    ) -> Result<NonceLog, StoreError> {
        let mut statement = connection.prepare("SELECT key_id, nonce, timestamp_ms FROM nonces")?;
        let seen = statement
            .query_map([], |row| Ok(((row.get(0)?, row.get(1)?), row.get(2)?)))?
            .collect::<Result<HashMap<_, _>, _>>()?;
        Ok(NonceLog {
            writer,
            memory: Mutex::new(Memory {
                seen,
                unsaved: Vec::new(),
            }),
        })
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        // The memory is only ever changed by whole statements, so a poisoned lock still guards
        // consistent data.
        self.memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remembers a nonce: `true` when it is new, `false` when the key already used it.
    pub(super) fn remember(&self, key_id: String, nonce: String, timestamp_ms: i64) -> bool {
        let mut memory = self.memory();
        let key = (key_id, nonce);
        if memory.seen.contains_key(&key) {
            return false;
        }
        memory
            .unsaved
            .push((key.0.clone(), key.1.clone(), timestamp_ms));
        memory.seen.insert(key, timestamp_ms);
        true
    }

    /// Writes the unsaved nonces inside the caller's transaction and returns them, to be given
    /// back with [`NonceLog::unsaved_again`] if that transaction does not commit.
    pub(super) fn save(&self, transaction: &Connection) -> Result<Vec<Nonce>, StoreError> {
        let nonces = std::mem::take(&mut self.memory().unsaved);
        if let Err(error) = write(transaction, &nonces) {
            self.unsaved_again(nonces);
            return Err(error);
        }
        Ok(nonces)
    }

    /// Puts back nonces whose save was rolled back.
    pub(super) fn unsaved_again(&self, mut nonces: Vec<Nonce>) {
        if !nonces.is_empty() {
            self.memory().unsaved.append(&mut nonces);
        }
    }

    /// Forgets the nonces signed before `before_unix_ms` (the caller deletes them from disk).
    pub(super) fn forget_before(&self, before_unix_ms: i64) {
        let mut memory = self.memory();
        memory
            .seen
            .retain(|_, timestamp_ms| *timestamp_ms >= before_unix_ms);
        memory
            .unsaved
            .retain(|(_, _, timestamp_ms)| *timestamp_ms >= before_unix_ms);
    }
}

fn write(transaction: &Connection, nonces: &[Nonce]) -> Result<(), StoreError> {
    if nonces.is_empty() {
        return Ok(());
    }
    let mut statement = transaction.prepare_cached(
        "INSERT OR IGNORE INTO nonces (key_id, nonce, timestamp_ms) VALUES (?1, ?2, ?3)",
    )?;
    for (key_id, nonce, timestamp_ms) in nonces {
        statement.execute(params![key_id, nonce, timestamp_ms])?;
    }
    Ok(())
}

impl Drop for NonceLog {
    fn drop(&mut self) {
        self.save_on_close();
    }
}

impl NonceLog {
    /// Saves what no commit has saved yet, so that a store closed in an orderly way remembers
    /// every nonce it accepted. Waits for the writer: whoever holds it finishes its commits first.
    pub(super) fn save_on_close(&self) {
        let nonces = std::mem::take(&mut self.memory().unsaved);
        if nonces.is_empty() {
            return;
        }
        let mut connection = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let saved = connection
            .transaction()
            .map_err(StoreError::from)
            .and_then(|transaction| {
                write(&transaction, &nonces)?;
                transaction.commit()?;
                Ok(())
            });
        if let Err(error) = saved {
            tracing::warn!(
                message = "Could not save the last nonces when closing the store.",
                count = nonces.len(),
                error = %error
            );
        }
    }
}
