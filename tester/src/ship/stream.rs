//! Shipping records as their sessions end: a task that owns the transport and ships whatever
//! finished while the previous batch was in flight, so a run's finished sessions are durable
//! (delivered, or spooled by the transport) long before the run ends.

use lvt_schema::SessionReport;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;

use super::{ShipError, ShipOutcome, Transport};

/// What a [`SessionShipper`] did over its whole life.
#[derive(Debug, Default)]
pub struct Shipped {
    /// Records handed to it.
    pub offered: usize,
    /// What the transport delivered, summed over the batches (including the delivered part of
    /// batches that failed).
    pub delivered: ShipOutcome,
    /// Every batch that was not delivered whole, in order; each says where its records were
    /// spooled.
    pub failures: Vec<ShipError>,
}

/// Ships session records as they arrive on [`SessionShipper::sender`].
pub struct SessionShipper {
    sender: UnboundedSender<SessionReport>,
    task: JoinHandle<(Transport, Shipped)>,
}

impl SessionShipper {
    /// Starts the shipping task over `transport`.
    pub fn start(transport: Transport) -> Self {
        let (sender, receiver) = unbounded_channel();
        let task = tokio::spawn(ship_as_they_come(transport, receiver));
        Self { sender, task }
    }

    /// Where finished sessions are sent (see `RunOptions::finished`).
    pub fn sender(&self) -> UnboundedSender<SessionReport> {
        self.sender.clone()
    }

    /// Ships what is still queued once every sender is gone, and returns the transport with
    /// the summary. A shipping task that died (a bug) loses nothing the run's own outputs do
    /// not hold; it is reported as a panic.
    ///
    /// # Panics
    /// When the shipping task panicked.
    pub async fn finish(self) -> (Transport, Shipped) {
        drop(self.sender);
        match self.task.await {
            Ok(done) => done,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
}

async fn ship_as_they_come(
    transport: Transport,
    mut receiver: UnboundedReceiver<SessionReport>,
) -> (Transport, Shipped) {
    let mut shipped = Shipped::default();
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = receiver.try_recv() {
            batch.push(more);
        }
        shipped.offered += batch.len();
        match transport.ship(&batch).await {
            Ok(outcome) => shipped.delivered.merge(outcome),
            Err(error) => {
                shipped.delivered.merge(error.delivered());
                tracing::warn!(
                    message = "Shipping finished sessions failed.",
                    destination = %transport.destination(),
                    error = %error
                );
                shipped.failures.push(error);
            }
        }
    }
    (transport, shipped)
}
