//! Search audit entries, written in batches off the search path.
//!
//! Every search is audited, but a search must not wait for a durable write under the catalog's
//! single writer lock (a run holds it for whole write transactions). Searches hand their entry
//! to a bounded queue; one writer thread appends whatever is queued in one transaction (one
//! fsync per batch) and rotates the log when it has grown. Nothing is dropped: when the queue
//! is full for a second (the catalog cannot take writes), the search is refused (`Busy`)
//! rather than served unaudited. What a crash can lose is what was queued but not yet written,
//! at most the queue's capacity and in practice a few milliseconds of searches.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_store::{AuditEvent, Catalog};
use tracing::{info, warn};

use crate::PipelineError;

/// Entries waiting to be written.
const QUEUE_CAPACITY: usize = 10_000;
/// Entries written per transaction at most.
const BATCH_ENTRIES: usize = 1_000;
/// How long a search waits for room in a full queue before it is refused.
const ROOM_WAIT: Duration = Duration::from_secs(1);

pub(crate) struct AuditQueue {
    sender: Option<SyncSender<AuditEvent>>,
    writer: Option<JoinHandle<()>>,
}

/// When the writer rotates the log (`[audit]` settings).
#[derive(Clone, Copy)]
pub(crate) struct Rotation {
    pub after_entries: u64,
    pub keep_segment_days: u64,
}

impl AuditQueue {
    pub(crate) fn start(catalog: Arc<dyn Catalog>, rotation: Rotation) -> Result<Self, PipelineError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE_CAPACITY);
        let writer = std::thread::Builder::new()
            .name("sluice-audit".into())
            .spawn(move || write_batches(catalog.as_ref(), &receiver, rotation))
            .map_err(|err| PipelineError::Invalid(format!("cannot start the audit writer: {err}")))?;
        Ok(Self { sender: Some(sender), writer: Some(writer) })
    }

    /// Queues an entry; `Busy` when the queue stayed full for [`ROOM_WAIT`].
    pub(crate) fn record(&self, event: AuditEvent) -> Result<(), PipelineError> {
        let sender = self.sender.as_ref().ok_or(PipelineError::Busy("the audit log is closed".into()))?;
        let deadline = Instant::now() + ROOM_WAIT;
        let mut event = event;
        loop {
            match sender.try_send(event) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(_)) => {
                    return Err(PipelineError::Busy("the audit writer stopped".into()));
                }
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    event = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TrySendError::Full(_)) => {
                    return Err(PipelineError::Busy("the audit log cannot keep up; try again".into()));
                }
            }
        }
    }
}

impl Drop for AuditQueue {
    /// Writes what is queued before the engine goes.
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn write_batches(catalog: &dyn Catalog, receiver: &Receiver<AuditEvent>, rotation: Rotation) {
    let mut since_rotation = 0usize;
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH_ENTRIES {
            match receiver.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        let mut backoff = Duration::from_millis(50);
        while let Err(err) = catalog.audit(&batch) {
            warn!(error = %err, entries = batch.len(), "cannot write search audit entries; retrying");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        since_rotation += batch.len();
        if since_rotation >= BATCH_ENTRIES {
            since_rotation = 0;
            match catalog.rotate_audit(rotation.after_entries, rotation.keep_segment_days) {
                Ok(Some((first, last))) => info!(first, last, "audit entries rotated to a segment file"),
                Ok(None) => {}
                Err(err) => warn!(error = %err, "audit rotation failed; tried again later"),
            }
        }
    }
}
