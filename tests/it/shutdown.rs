//! Clean shutdown with a real `tidings worker` on PostgreSQL: SIGTERM under load finishes
//! the batch in flight, says `QUIT` to the SMTP server, gives its leases and claims back
//! so another worker takes over at once, and exits 0 within the bound the README states
//! (the longest channel timeout + 10 s).

use std::time::{Duration, Instant};

use crate::fleet::{Fleet, sent_deliveries, terminate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_the_batch_says_quit_releases_its_leases_and_exits_0() {
    let Some(fleet) = Fleet::new("shutdown").await else { return };
    let members = 5_000;
    fleet.members_join(members).await;
    let mut worker = fleet.worker();
    let start = Instant::now();
    while fleet.smtp.mails().len() < 500 {
        assert!(start.elapsed() < Duration::from_secs(120), "the worker sent {} mails", fleet.smtp.mails().len());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    terminate(&worker);
    let asked = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(40), worker.wait()).await.expect("exits within the bound");
    let elapsed = asked.elapsed();
    let status = status.unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    eprintln!("FIGURE shutdown: SIGTERM under load -> exit 0 in {:.2} s", elapsed.as_secs_f64());
    // Email's timeout is 30 s by default: the bound is 40 s.
    assert!(elapsed < Duration::from_secs(40), "{elapsed:?}");
    assert!(fleet.smtp.quits.load(std::sync::atomic::Ordering::SeqCst) > 0, "the pooled connections said QUIT");

    // Nothing is left claimed: no lease, no delivery half-sent, no run held.
    assert_eq!(fleet.count("SELECT count(*) FROM leases").await, 0, "leases released");
    assert_eq!(fleet.count("SELECT count(*) FROM deliveries WHERE status = 'sending'").await, 0);
    assert_eq!(fleet.count("SELECT count(*) FROM runs WHERE claimed_until IS NOT NULL").await, 0);
    let sent_at_stop = fleet.count(sent_deliveries()).await;
    let received = fleet.received();
    assert_eq!(received.len() as i64, sent_at_stop, "what was sent is recorded as sent, and only that");

    // Another worker takes over at once (no lease to wait out) and finishes, sending none twice.
    let _next = fleet.worker();
    fleet.wait_for("the rest sent", sent_deliveries(), members as i64, Duration::from_secs(120)).await;
    let received = fleet.received();
    assert_eq!(received.len(), members);
    assert!(received.values().all(|n| *n == 1), "a clean stop re-sends nothing");
}
