//! A full disk (F6): the outbox on a 1 MB tmpfs. Writing a message fails with a clear
//! error (`No space left on device`), the outbox provider is paused and probed like any
//! provider that is down, nothing is recorded as sent that has no file, the worker keeps
//! running, and sending resumes when space returns. Mounting needs root: without it the
//! case prints why and is skipped.

use std::time::{Duration, Instant};

use crate::harness::{Fleet, SIGNUP, sent_deliveries};
use crate::support::SmtpServer;
use crate::{enabled, secs};

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount the tmpfs");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Delivery ids with a file in the outbox (and no temporary file left over).
fn files(dir: &std::path::Path) -> (Vec<i64>, usize) {
    let mut ids = Vec::new();
    let mut temporary = 0;
    for entry in std::fs::read_dir(dir.join("email")).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            temporary += 1;
        } else if let Some(id) = name.strip_suffix(".eml").and_then(|n| n.parse().ok()) {
            ids.push(id);
        }
    }
    (ids, temporary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_a_full_outbox_disk_pauses_sending_acknowledges_nothing_unstored_and_resumes() {
    if !enabled("F6") {
        return;
    }
    let Some(mut fleet) =
        Fleet::with("f6", "outbox_dir = \"outbox\"\n", &[("signup", SIGNUP)], SmtpServer::start(None).await).await
    else {
        return;
    };
    let outbox = fleet.dir.path().join("outbox");
    let tmpfs = match Tmpfs::mount(&outbox, "1m") {
        Ok(tmpfs) => tmpfs,
        Err(reason) => {
            eprintln!("FIGURE F6: skipped, a small tmpfs cannot be mounted here: {reason}");
            return;
        }
    };
    // No SMTP: email goes to the outbox.
    fleet.env.push(("TIDINGS_SMTP_URL".into(), String::new()));
    let members = 1_000;
    fleet.members_join(members).await;
    let mut worker = fleet.worker_with(&[("RUST_LOG", "warn")]);
    fleet
        .wait_for(
            "the outbox provider paused",
            "SELECT count(*) FROM provider_limits WHERE provider = 'email' AND probing = 1",
            1,
            Duration::from_secs(120),
        )
        .await;
    let reason: Option<String> = sqlx::query_scalar("SELECT reason FROM provider_limits WHERE provider = 'email'")
        .fetch_one(&fleet.pool)
        .await
        .unwrap();
    // Let it probe a few times against the full disk.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sent_while_full = fleet.count(sent_deliveries()).await;
    let failed = fleet.count("SELECT count(*) FROM deliveries WHERE status = 'failed'").await;
    let (stored, temporary) = files(&outbox);
    let sent_ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM deliveries WHERE status = 'sent'").fetch_all(&fleet.pool).await.unwrap();
    let unstored = sent_ids.iter().filter(|id| !stored.contains(id)).count();
    let alive = worker.try_wait().unwrap().is_none();

    tmpfs.resize("64m");
    let back = Instant::now();
    fleet
        .wait_for("every delivery sent once space returned", sent_deliveries(), members as i64, Duration::from_secs(60))
        .await;
    let resumed = back.elapsed();
    let (stored_after, _) = files(&outbox);
    eprintln!(
        "FIGURE F6: outbox on a 1 MB tmpfs, {members} emails: full after {sent_while_full}; the provider paused with \
         \"{}\"; {failed} failed, {unstored} recorded sent without a file, {temporary} partial files, worker alive: \
         {alive}; all {} stored {} after space returned",
        reason.unwrap_or_default(),
        stored_after.len(),
        secs(resumed)
    );
    assert!(sent_while_full < members as i64, "the disk filled before the end");
    assert_eq!((failed, unstored, temporary), (0, 0, 0));
    assert!(alive);
    assert_eq!(stored_after.len(), members);
    worker.start_kill().unwrap();
    worker.wait().await.unwrap();
}
