//! The group-commit ingest writer: every route that stores events (webhooks, the API,
//! tracking links) hands checked events to one bounded queue; one writer task takes every
//! request waiting (up to a limit), stores them all in ONE transaction through
//! [`Store::ingest_events_reporting`], and answers each request with its own counts.
//!
//! Why: a commit costs an fsync (~300/s on the disks we run on), so a commit per request
//! caps the service near 300 requests/s; a commit per batch of waiting requests does not.
//! A request is answered only after the transaction that holds its events committed, so a
//! 2xx still means stored.
//!
//! Overload: the queue is bounded; a full queue answers [`IngestError::Overloaded`] at
//! once (the routes turn it into `503` with `Retry-After`), nothing is dropped silently.
//! Isolation: requests are checked before they are queued; if a batch's transaction
//! fails anyway, the writer stores its requests one by one, so one request cannot fail
//! the others.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::member::Event;
use crate::state::Settings;
use crate::store::{EventsWritten, Store, StoreError};

/// The sizes of the queue and of a batch.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// Requests that may wait for the writer; one more is answered `Overloaded`.
    pub capacity: usize,
    /// Most requests stored in one transaction.
    pub max_requests: usize,
    /// A batch stops growing once it holds this many events.
    pub max_events: usize,
}

impl Default for IngestOptions {
    fn default() -> IngestOptions {
        IngestOptions { capacity: 8_192, max_requests: 1_024, max_events: 10_000 }
    }
}

/// Why events were not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the ingest queue is full; retry shortly")]
    Overloaded,
    #[error("the ingest writer has stopped")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Job {
    events: Vec<Event>,
    now: DateTime<Utc>,
    reply: oneshot::Sender<Result<EventsWritten, IngestError>>,
}

/// The sending side of the queue (cheap to clone). The writer stops when every clone is
/// dropped, after storing what was queued.
#[derive(Clone)]
pub struct IngestQueue {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for IngestQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestQueue").field("waiting", &self.waiting()).finish()
    }
}

impl IngestQueue {
    /// Starts the writer task (on the current tokio runtime).
    pub fn spawn(store: Store, settings: Arc<Settings>, options: IngestOptions) -> IngestQueue {
        let (tx, rx) = mpsc::channel(options.capacity.max(1));
        tokio::spawn(write_loop(store, settings, options, rx));
        IngestQueue { tx }
    }

    /// Stores `events` (checked by the caller) and answers once they are committed.
    pub async fn submit(&self, events: Vec<Event>, now: DateTime<Utc>) -> Result<EventsWritten, IngestError> {
        if events.is_empty() {
            return Ok(EventsWritten::default());
        }
        let (reply, answer) = oneshot::channel();
        self.tx.try_send(Job { events, now, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                metrics::counter!(crate::telemetry::INGEST_REJECTED).increment(1);
                IngestError::Overloaded
            }
            mpsc::error::TrySendError::Closed(_) => IngestError::Closed,
        })?;
        answer.await.map_err(|_| IngestError::Closed)?
    }

    /// Requests waiting for the writer.
    pub fn waiting(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

async fn write_loop(store: Store, settings: Arc<Settings>, options: IngestOptions, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut events = first.events.len();
        let mut jobs = vec![first];
        while jobs.len() < options.max_requests && events < options.max_events {
            match rx.try_recv() {
                Ok(job) => {
                    events += job.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        metrics::histogram!(crate::telemetry::INGEST_BATCH_REQUESTS).record(jobs.len() as f64);
        write_batch(&store, &settings, jobs).await;
    }
}

/// Stores the jobs in one transaction and answers each; if that fails, one by one.
async fn write_batch(store: &Store, settings: &Settings, jobs: Vec<Job>) {
    let now = jobs.iter().map(|j| j.now).max().expect("a batch has a job");
    let all: Vec<Event> = jobs.iter().flat_map(|j| j.events.iter().cloned()).collect();
    match store.ingest_events_reporting(&all, now, settings).await {
        Ok((_, mut inserted)) => {
            for job in jobs {
                let _ = job.reply.send(Ok(share(&job.events, &mut inserted)));
            }
        }
        Err(error) if jobs.len() == 1 => {
            let job = jobs.into_iter().next().expect("one job");
            let _ = job.reply.send(Err(error.into()));
        }
        Err(error) => {
            tracing::warn!(%error, requests = jobs.len(), "a group commit failed; storing its requests one by one");
            for job in jobs {
                let result = store.ingest_events(&job.events, job.now, settings).await.map_err(IngestError::from);
                let _ = job.reply.send(result);
            }
        }
    }
}

/// A job's own counts: each new id counts as inserted for the first event that carries
/// it (in queue order), every other one is a duplicate.
fn share(events: &[Event], inserted: &mut HashSet<String>) -> EventsWritten {
    let mut written = EventsWritten::default();
    for event in events {
        if inserted.remove(&event.id) {
            written.inserted += 1;
        } else {
            written.duplicates += 1;
        }
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> Event {
        Event {
            id: id.into(),
            member_id: "m".into(),
            name: "x.y".into(),
            occurred_at: DateTime::UNIX_EPOCH,
            properties: serde_json::json!({}),
        }
    }

    #[test]
    fn a_new_id_counts_once_for_the_first_request_that_carries_it() {
        let mut inserted: HashSet<String> = ["a", "b"].into_iter().map(String::from).collect();
        let first = share(&[event("a"), event("a"), event("c")], &mut inserted);
        assert_eq!((first.inserted, first.duplicates), (1, 2));
        let second = share(&[event("a"), event("b")], &mut inserted);
        assert_eq!((second.inserted, second.duplicates), (1, 1));
    }
}
