//! The metrics the process exports (Prometheus text at `GET /metrics`): their names, and
//! the one recorder of the process.
//!
//! Code anywhere records through the `metrics` facade (`record_*` below keep the names and
//! labels in one place); `GET /metrics` renders [`prometheus`]'s handle. The recorder is
//! installed once per process, the first time it is asked for, so any number of servers
//! (tests start many in one binary) share it and none panics.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Events stored by the HTTP edge (webhooks, the API, tracking links), by `source`.
pub const EVENTS_INGESTED: &str = "tidings_events_ingested_total";
/// Events that arrived again with an id already stored, by `source`.
pub const EVENTS_DUPLICATE: &str = "tidings_events_duplicate_total";
/// Requests answered 503 because the ingest queue was full.
pub const INGEST_REJECTED: &str = "tidings_ingest_overloaded_total";
/// Requests per group commit of the ingest writer.
pub const INGEST_BATCH_REQUESTS: &str = "tidings_ingest_batch_requests";
/// Requests waiting in the ingest queue (set at each scrape).
pub const INGEST_QUEUE_DEPTH: &str = "tidings_ingest_queue_depth";
/// Deliveries due and not yet sent, runs due to advance, events the engine has not read
/// (set at each scrape, from the store).
pub const DUE_DELIVERIES: &str = "tidings_due_deliveries";
pub const DUE_RUNS: &str = "tidings_due_runs";
pub const INBOX_DEPTH: &str = "tidings_inbox_depth";
/// Seconds the oldest due work (run, delivery, lost send, inbox event) has waited (set at
/// each scrape): what `queue_lag` alerts on.
pub const OLDEST_DUE_SECONDS: &str = "tidings_oldest_due_seconds";
/// 1 while an alert is firing, else 0, by `rule` and `kind` (set at each scrape).
pub const ALERT_FIRING: &str = "tidings_alert_firing";
/// Each alert's last value (a fraction for rates and drops, seconds, sends), by `rule` and
/// `kind`; absent while a window holds too little to judge.
pub const ALERT_VALUE: &str = "tidings_alert_value";
/// Sends answered by a provider, by `channel` and `outcome` (sent, transient, permanent,
/// unregistered).
pub const DELIVERIES: &str = "tidings_deliveries_total";
/// How long a provider took to answer a send, by `channel`.
pub const SEND_SECONDS: &str = "tidings_send_duration_seconds";

/// The process's recorder (installed at the first call). If another recorder was
/// installed first (an embedding program's), this handle renders nothing, and nothing
/// panics.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("the buckets are not empty")
            .set_buckets_for_metric(
                Matcher::Full(INGEST_BATCH_REQUESTS.into()),
                &[1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0],
            )
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics shows only what tidings sets itself");
        }
        handle
    })
}

/// One provider's answer to a send.
pub fn record_send(channel: &'static str, outcome: &'static str, took: Duration) {
    metrics::counter!(DELIVERIES, "channel" => channel, "outcome" => outcome).increment(1);
    metrics::histogram!(SEND_SECONDS, "channel" => channel).record(took.as_secs_f64());
}

/// A send's result, as [`DELIVERIES`] and [`SEND_SECONDS`] count it.
pub fn record_send_result(
    channel: crate::channel::Channel,
    result: &Result<crate::channels::Receipt, crate::channels::SendError>,
    took: Duration,
) {
    use crate::channels::SendError;
    let outcome = match result {
        Ok(_) => "sent",
        Err(SendError::Transient { .. }) => "transient",
        Err(SendError::Permanent { .. }) => "permanent",
        Err(SendError::Unregistered { .. }) => "unregistered",
    };
    record_send(channel.as_str(), outcome, took);
}

/// Events stored (and repeats ignored) from one source.
pub fn record_ingested(source: &'static str, inserted: u64, duplicates: u64) {
    metrics::counter!(EVENTS_INGESTED, "source" => source).increment(inserted);
    if duplicates > 0 {
        metrics::counter!(EVENTS_DUPLICATE, "source" => source).increment(duplicates);
    }
}

/// The alerts' gauges, from their stored states.
pub fn record_alerts(alerts: &[crate::store::alerts::AlertRow]) {
    for a in alerts {
        let labels = [("rule", a.rule.clone()), ("kind", a.kind.as_str().to_string())];
        let firing = if a.status == crate::alert::Status::Firing { 1.0 } else { 0.0 };
        metrics::gauge!(ALERT_FIRING, &labels).set(firing);
        if let Some(value) = a.value {
            metrics::gauge!(ALERT_VALUE, &labels).set(value);
        }
    }
}
