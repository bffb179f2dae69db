//! Faults of the mail server: gone for a minute (F3), refusing some recipients for good
//! and others for now (F4).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Fleet, SIGNUP, sent_deliveries};
use crate::support::SmtpServer;
use crate::{enabled, secs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_smtp_down_for_a_minute_resumes_within_30_s_of_its_return_and_fails_nothing() {
    if !enabled("F3") {
        return;
    }
    let Some(fleet) = Fleet::with("f3", "", &[("signup", SIGNUP)], SmtpServer::start(None).await).await else {
        return;
    };
    let members = 2_000;
    fleet.members_join(members).await;
    let _workers: Vec<_> = (0..2).map(|_| fleet.worker()).collect();
    let start = Instant::now();
    while fleet.smtp.mails().len() < 300 {
        assert!(start.elapsed() < Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    fleet.smtp.set_down(true);
    let down_for = Duration::from_secs(60);
    tokio::time::sleep(down_for).await;
    let failed_while_down = fleet.count("SELECT count(*) FROM deliveries WHERE status = 'failed'").await;
    let paused = fleet.count("SELECT count(*) FROM provider_limits WHERE provider = 'email' AND probing = 1").await;
    // Counted at the return: a message whose DATA was under way when the server went
    // away may still have landed.
    let at_down = fleet.smtp.mails().len();
    fleet.smtp.set_down(false);
    let back = Instant::now();
    let mut first = None;
    while fleet.smtp.mails().len() < members {
        if first.is_none() && fleet.smtp.mails().len() > at_down {
            first = Some(back.elapsed());
        }
        assert!(
            back.elapsed() < Duration::from_secs(120),
            "{} of {members} after the return",
            fleet.smtp.mails().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = back.elapsed();
    let first = first.unwrap_or(last);
    fleet.wait_for("every delivery recorded sent", sent_deliveries(), members as i64, Duration::from_secs(30)).await;
    let failed = fleet.count("SELECT count(*) FROM deliveries WHERE status = 'failed'").await;
    let suppressed = fleet.count("SELECT count(*) FROM suppressions").await;
    let received = fleet.received();
    let duplicates: usize = received.values().map(|n| n - 1).sum();
    let lost = members - received.len();
    eprintln!(
        "FIGURE F3: SMTP down {} after {at_down} of {members} emails (2 workers): the provider was paused (breaker open: \
         {paused}), {failed_while_down} failed while down; sending resumed {} and the last message arrived {} after the \
         server's return; {failed} failed, {suppressed} suppressed, {lost} lost, {duplicates} duplicates",
        secs(down_for),
        secs(first),
        secs(last)
    );
    assert_eq!((failed, suppressed, lost), (0, 0, 0));
    assert!(last < Duration::from_secs(30), "resumed {last:?} after the return");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_smtp_5xx_suppresses_that_address_on_email_only_and_4xx_is_retried() {
    if !enabled("F4") {
        return;
    }
    // m…1@ addresses do not exist (550); m…2@ are greylisted once (451), then accepted.
    let greylisted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let seen = greylisted.clone();
    let smtp = SmtpServer::answering(Arc::new(move |to: &str| {
        let to = to.trim().trim_start_matches('<').trim_end_matches('>').to_string();
        let number = to.trim_start_matches('m').split('@').next().unwrap_or("").to_string();
        if number.ends_with('1') {
            Some("550 5.1.1 no such user".to_string())
        } else if number.ends_with('2') && seen.lock().unwrap().insert(to) {
            Some("451 4.7.1 greylisted, try again later".to_string())
        } else {
            None
        }
    }))
    .await;
    let config = "[channels.retry]\nbase_delay = \"1s\"\nmax_delay = \"2s\"\n";
    let Some(fleet) = Fleet::with("f4", config, &[("signup", SIGNUP)], smtp).await else { return };
    let members = 500;
    fleet.members_join(members).await;
    let _worker = fleet.worker();
    let start = Instant::now();
    let settled = "SELECT count(*) FROM deliveries WHERE status IN ('sent', 'failed')";
    fleet.wait_for("every delivery settled", settled, members as i64, Duration::from_secs(120)).await;
    let took = start.elapsed();
    let refused = (0..members).filter(|i| i % 10 == 1).count() as i64;
    let retried = (0..members).filter(|i| i % 10 == 2).count() as i64;
    let failed =
        fleet.count("SELECT count(*) FROM deliveries WHERE status = 'failed' AND reason = 'permanent_failure'").await;
    let suppressed_email = fleet.count("SELECT count(*) FROM suppressions WHERE channel = 'email'").await;
    let suppressed_other = fleet.count("SELECT count(*) FROM suppressions WHERE channel <> 'email'").await;
    let sent_on_retry = fleet.count("SELECT count(*) FROM deliveries WHERE status = 'sent' AND attempts = 2").await;
    let sent = fleet.count(sent_deliveries()).await;
    let paused = fleet.count("SELECT count(*) FROM provider_limits WHERE probing = 1").await;
    eprintln!(
        "FIGURE F4: {members} emails, {refused} answered 550 and {retried} answered 451 once: {failed} failed and \
         {suppressed_email} suppressed on email ({suppressed_other} on other channels), {sent_on_retry} sent on their \
         second attempt, {sent} sent in all, in {}; the provider was never paused ({paused})",
        secs(took)
    );
    assert_eq!((failed, suppressed_email, suppressed_other), (refused, refused, 0));
    assert_eq!(sent_on_retry, retried);
    assert_eq!(sent, members as i64 - refused);
    assert_eq!(paused, 0);
}
