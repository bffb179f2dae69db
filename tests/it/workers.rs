//! Scale-out and crashes with real `tidings worker` processes on one PostgreSQL, sending
//! real mail into an SMTP server in this test: many workers send each delivery once and
//! enroll a schedule's members once; a worker killed with SIGKILL loses nothing and re-sends
//! at most the group of sends it had in flight.
//!
//! PostgreSQL only (scale-out is what it is for): skipped, with the reason printed, when
//! `TIDINGS_TEST_POSTGRES_URL` is unset.

use std::time::{Duration, Instant};

use crate::fleet::{Fleet, SEND_CONCURRENCY, sent_deliveries};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_send_each_of_20000_deliveries_once_and_enroll_a_schedule_once() {
    let Some(fleet) = Fleet::new("three_workers").await else { return };
    let members = 20_000;
    fleet.members_join(members).await;
    let _workers: Vec<_> = (0..3).map(|_| fleet.worker()).collect();

    fleet.wait_for("deliveries sent", sent_deliveries(), members as i64, Duration::from_secs(240)).await;
    let received = fleet.received();
    let twice: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(received.len(), members, "every delivery reached the SMTP server");
    assert!(twice.is_empty(), "{} sent more than once, e.g. {:?}", twice.len(), &twice[..twice.len().min(5)]);
    assert_eq!(fleet.count("SELECT count(*) FROM deliveries").await, members as i64, "one delivery per member");
    // Each worker keeps at most 8 SMTP connections (the default): more means they shared the work.
    let connections = fleet.smtp.connections.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("three workers sent {members} emails over {connections} SMTP connections");
    assert!(connections > 8, "more than one worker sent ({connections} connections)");

    // The hourly firing: claimed by one worker, each gold member enrolled once.
    fleet
        .wait_for(
            "schedule firing done",
            "SELECT count(*) FROM firings WHERE journey_id = 'hourly' AND status = 'done'",
            1,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(fleet.count("SELECT count(*) FROM firings WHERE journey_id = 'hourly'").await, 1);
    let gold = (members / 10) as i64;
    assert_eq!(fleet.count("SELECT count(*) FROM runs WHERE journey_id = 'hourly'").await, gold);
    assert_eq!(fleet.count("SELECT count(DISTINCT member_id) FROM runs WHERE journey_id = 'hourly'").await, gold);
    assert_eq!(fleet.count("SELECT sum(enrolled)::bigint FROM firings WHERE journey_id = 'hourly'").await, gold);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_no_delivery_and_resends_at_most_what_was_in_flight() {
    let Some(fleet) = Fleet::new("sigkill").await else { return };
    let members = 5_000;
    fleet.members_join(members).await;
    let mut worker = fleet.worker();
    let start = Instant::now();
    while fleet.smtp.mails().len() < 1_000 {
        assert!(start.elapsed() < Duration::from_secs(120), "the worker sent {} mails", fleet.smtp.mails().len());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.start_kill().unwrap(); // SIGKILL: no shutdown, no cleanup
    worker.wait().await.unwrap();
    let at_kill = fleet.smtp.mails().len();
    let recorded_at_kill = fleet.count(sent_deliveries()).await;

    let _restarted = fleet.worker();
    fleet
        .wait_for("deliveries sent after the restart", sent_deliveries(), members as i64, Duration::from_secs(180))
        .await;
    let received = fleet.received();
    let duplicates: usize = received.values().map(|n| n - 1).sum();
    eprintln!(
        "SIGKILL after {at_kill} mails ({recorded_at_kill} recorded as sent): {} delivered, {duplicates} sent twice",
        received.len()
    );
    assert_eq!(received.len(), members, "no delivery lost");
    assert!(
        duplicates <= 2 * SEND_CONCURRENCY,
        "re-sends ({duplicates}) are bounded by the sends in flight and the group awaiting its commit"
    );
}
