//! `lvt ship-spool`: re-sends the batches a failed shipment spooled, removing each one the
//! collector accepts.

use std::path::PathBuf;

use clap::Args;

use super::common::{CliError, EXIT_FAILED, EXIT_OK};
use super::shipping::shipper;

/// The long help of `lvt ship-spool` (`--help`): what it does, its inputs and its exit codes.
pub const HELP: &str = "Send result batches that a probe or run could not deliver \
(written to its --spool directory, one batch-*.json file per batch) to a collector, oldest \
first, signing each afresh. A file is removed only after the collector acknowledged it; the \
collector deduplicates by session id, so sending a batch twice stores nothing twice.\n\n\
Exit codes: 0 every file delivered (or none there); 1 some file not delivered (it is kept); \
2 usage error (a missing directory or key).";

#[derive(Debug, Args)]
pub struct ShipSpoolArgs {
    /// The spool directory (a probe's or run's --spool, default lvt-spool).
    pub dir: PathBuf,
    /// The collector to send to.
    #[arg(long, value_name = "URL")]
    pub collector: String,
    /// The secret key file that signs the batches.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
}

/// `lvt ship-spool DIR`: re-sends spooled batches, deleting each after the collector took it.
pub async fn run(args: ShipSpoolArgs) -> Result<u8, CliError> {
    if !args.dir.is_dir() {
        return Err(CliError::Usage(format!(
            "spool directory {} does not exist",
            args.dir.display()
        )));
    }
    let shipper = shipper(
        &args.collector,
        &args.key,
        crate::ship::ShipOptions::default(),
    )?;
    let delivery = shipper
        .ship_spool(&args.dir)
        .await
        .map_err(|e| CliError::Failed(anyhow::anyhow!("{e}")))?;
    for (path, error) in &delivery.failed {
        eprintln!("lvt: {} not delivered (kept): {error}", path.display());
    }
    for error in &delivery.unreadable {
        eprintln!("lvt: {error} (kept)");
    }
    if !delivery.skipped.is_empty() {
        eprintln!(
            "lvt: {} more file(s) not tried after that failure (kept)",
            delivery.skipped.len()
        );
    }
    eprintln!(
        "lvt: shipped {} record(s) from {} file(s) to {} (inserted {}, duplicates {})",
        delivery.records,
        delivery.delivered.len(),
        shipper.url(),
        delivery.inserted(),
        delivery.duplicates()
    );
    Ok(if delivery.is_complete() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}
