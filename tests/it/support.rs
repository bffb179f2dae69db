//! Helpers the integration tests share: migrated databases for both engines, and fast
//! bulk loading of members.

use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tidings::member::Member;
use tidings::state::Field;
use tidings::store::codec::sqlite_timestamp;

/// The PostgreSQL server the tests use; unset, PostgreSQL tests are skipped.
pub const POSTGRES_URL_VAR: &str = "TIDINGS_TEST_POSTGRES_URL";

/// A migrated SQLite database in a fresh temporary directory, in WAL mode. Keep the
/// directory alive as long as the pool.
pub async fn sqlite_pool() -> (SqlitePool, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("tidings.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool =
        SqlitePoolOptions::new().max_connections(4).connect_with(options).await.expect("open the SQLite test database");
    tidings::store::SQLITE_MIGRATIONS.run(&pool).await.expect("migrate the SQLite test database");
    (pool, dir)
}

/// A pool on a fresh, migrated schema of the PostgreSQL named by
/// `TIDINGS_TEST_POSTGRES_URL`, so tests run in parallel without seeing each other.
/// None (with a note on stderr) when the variable is unset; panics when it is set but the
/// server cannot be used, so CI fails instead of skipping.
pub async fn postgres_pool(test_name: &str) -> Option<PgPool> {
    postgres_schema(test_name).await.map(|(pool, _)| pool)
}

/// Like [`postgres_pool`], with a URL that points other processes (`tidings worker`) at
/// the same fresh schema.
pub async fn postgres_schema(test_name: &str) -> Option<(PgPool, String)> {
    let Ok(url) = std::env::var(POSTGRES_URL_VAR) else {
        eprintln!("skipping PostgreSQL: {POSTGRES_URL_VAR} is not set");
        return None;
    };
    Some(postgres_schema_on(&url, test_name).await)
}

/// [`postgres_schema`] on the server at `url`.
pub async fn postgres_schema_on(url: &str, test_name: &str) -> (PgPool, String) {
    let base =
        PgConnectOptions::from_str(url).unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is not a PostgreSQL URL: {e}"));
    let schema = schema_name(test_name);

    let mut admin = PgConnection::connect_with(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL ({POSTGRES_URL_VAR}): {e}"));
    drop_stale_schemas(&mut admin).await;
    // The name is ours (`t_`, [a-z0-9_]), never input.
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));
    admin.close().await.ok();

    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(base.options([("search_path", schema.as_str())]))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL ({POSTGRES_URL_VAR}): {e}"));
    tidings::store::POSTGRES_MIGRATIONS
        .run(&pool)
        .await
        .unwrap_or_else(|e| panic!("cannot migrate schema {schema}: {e}"));
    let separator = if url.contains('?') { '&' } else { '?' };
    (pool, format!("{url}{separator}options[search_path]={schema}"))
}

/// `t_<test name>_<unix seconds>_<random>`: unique, and old ones can be recognised.
fn schema_name(test_name: &str) -> String {
    let name: String = test_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .take(30)
        .collect();
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("t_{name}_{seconds}_{:08x}", hasher.finish() as u32)
}

/// Test schemas live until a later run removes those older than an hour.
async fn drop_stale_schemas(admin: &mut PgConnection) {
    const STALE_AFTER_SECONDS: u64 = 3_600;
    let names: Vec<String> = sqlx::query_scalar(r"SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 't\_%'")
        .fetch_all(&mut *admin)
        .await
        .unwrap_or_default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for name in names {
        let mut parts = name.rsplit('_');
        let (Some(random), Some(seconds)) = (parts.next(), parts.next()) else { continue };
        let Ok(seconds) = seconds.parse::<u64>() else { continue };
        let ours = random.len() == 8 && random.bytes().all(|b| b.is_ascii_hexdigit());
        if ours && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && seconds + STALE_AFTER_SECONDS < now {
            // Another test process may be dropping it too.
            let _ =
                sqlx::query(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE"))).execute(&mut *admin).await;
        }
    }
}

/// The columns the helpers below write, in binding order: `id`, every field a shop sets
/// but `tags` (a table of its own), then the derived fields.
fn member_columns() -> Vec<&'static str> {
    let fields = Field::ALL.iter().filter(|f| **f != Field::Tags).map(|f| f.name());
    let derived = ["lifecycle", "rfm_r", "rfm_f", "rfm_m", "rfm_segment", "clv"];
    std::iter::once("id").chain(fields).chain(derived).collect()
}

/// Rows per multi-row INSERT: 14,500 parameters, within SQLite's 32,766 and PostgreSQL's
/// 65,535. SQLite gets anonymous `?` placeholders: with numbered ones (`?N`), sqlx's binding
/// looks up each parameter's name in a list, and a 500-row INSERT took 300 ms instead of 5.
const ROWS_PER_INSERT: usize = 500;

fn insert_sql(table_and_columns: &str, columns: usize, rows: usize, placeholder: fn(usize) -> String) -> String {
    let mut sql = format!("INSERT INTO {table_and_columns} VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&placeholder(row * columns + column + 1));
        }
        sql.push(')');
    }
    sql
}

fn members_table() -> String {
    format!("members ({})", member_columns().join(", "))
}

fn tag_rows(members: &[Member]) -> Vec<(&str, &str)> {
    members.iter().flat_map(|m| m.tags.iter().map(move |t| (m.id.as_str(), t.as_str()))).collect()
}

/// Inserts members and their tags into SQLite in one transaction, with multi-row INSERTs.
pub async fn insert_members_sqlite(pool: &SqlitePool, members: &[Member]) {
    let mut tx = pool.begin().await.expect("begin");
    for chunk in members.chunks(ROWS_PER_INSERT) {
        let sql = insert_sql(&members_table(), member_columns().len(), chunk.len(), |_| "?".to_string());
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for m in chunk {
            let timestamp = |at: Option<chrono::DateTime<chrono::Utc>>| at.map(sqlite_timestamp);
            query = query
                .bind(m.id.clone())
                .bind(m.email.clone())
                .bind(m.phone.clone())
                .bind(serde_json::to_string(&m.push_tokens).unwrap())
                .bind(m.first_name.clone())
                .bind(m.last_name.clone())
                .bind(m.locale.clone())
                .bind(m.timezone.clone())
                .bind(m.birthday.map(|b| b.to_string()))
                .bind(m.tier.clone())
                .bind(m.points)
                .bind(m.points_expiring)
                .bind(timestamp(m.points_expire_at))
                .bind(m.total_spend)
                .bind(m.currency.clone())
                .bind(m.order_count)
                .bind(timestamp(m.first_order_at))
                .bind(timestamp(m.last_order_at))
                .bind(timestamp(m.joined_at))
                .bind(m.email_consent)
                .bind(m.sms_consent)
                .bind(m.push_consent)
                .bind(serde_json::to_string(&m.attributes).unwrap())
                .bind(m.lifecycle.clone())
                .bind(m.rfm_r)
                .bind(m.rfm_f)
                .bind(m.rfm_m)
                .bind(m.rfm_segment.clone())
                .bind(m.clv);
        }
        query.execute(&mut *tx).await.expect("insert members into SQLite");
    }
    for chunk in tag_rows(members).chunks(ROWS_PER_INSERT) {
        let sql = insert_sql("member_tags (member_id, tag)", 2, chunk.len(), |_| "?".to_string());
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (id, tag) in chunk {
            query = query.bind(id.to_string()).bind(tag.to_string());
        }
        query.execute(&mut *tx).await.expect("insert member tags into SQLite");
    }
    tx.commit().await.expect("commit");
}

/// Inserts members and their tags into PostgreSQL in one transaction, with multi-row INSERTs.
pub async fn insert_members_postgres(pool: &PgPool, members: &[Member]) {
    let mut tx = pool.begin().await.expect("begin");
    for chunk in members.chunks(ROWS_PER_INSERT) {
        let sql = insert_sql(&members_table(), member_columns().len(), chunk.len(), |n| format!("${n}"));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for m in chunk {
            query = query
                .bind(m.id.clone())
                .bind(m.email.clone())
                .bind(m.phone.clone())
                .bind(serde_json::json!(m.push_tokens))
                .bind(m.first_name.clone())
                .bind(m.last_name.clone())
                .bind(m.locale.clone())
                .bind(m.timezone.clone())
                .bind(m.birthday.map(|b| b.to_string()))
                .bind(m.tier.clone())
                .bind(m.points)
                .bind(m.points_expiring)
                .bind(m.points_expire_at)
                .bind(m.total_spend)
                .bind(m.currency.clone())
                .bind(m.order_count)
                .bind(m.first_order_at)
                .bind(m.last_order_at)
                .bind(m.joined_at)
                .bind(m.email_consent)
                .bind(m.sms_consent)
                .bind(m.push_consent)
                .bind(serde_json::Value::Object(m.attributes.clone()))
                .bind(m.lifecycle.clone())
                .bind(m.rfm_r)
                .bind(m.rfm_f)
                .bind(m.rfm_m)
                .bind(m.rfm_segment.clone())
                .bind(m.clv);
        }
        query.execute(&mut *tx).await.expect("insert members into PostgreSQL");
    }
    for chunk in tag_rows(members).chunks(ROWS_PER_INSERT) {
        let sql = insert_sql("member_tags (member_id, tag)", 2, chunk.len(), |n| format!("${n}"));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (id, tag) in chunk {
            query = query.bind(id.to_string()).bind(tag.to_string());
        }
        query.execute(&mut *tx).await.expect("insert member tags into PostgreSQL");
    }
    tx.commit().await.expect("commit");
}

/// A small SMTP server on a free port, in-process: it speaks just enough ESMTP for lettre,
/// keeps every message it accepts (dot-stuffing undone), counts connections, and answers
/// `RCPT TO` with `rcpt_reply` (e.g. `"550 5.1.1 no such user"`) when one is given. It
/// offers `PIPELINING` unless started [`SmtpServer::without_pipelining`], and counts the
/// messages whose `RCPT TO` had arrived before it answered `MAIL FROM` (pipelined), and
/// those whose `MAIL FROM` had arrived before it answered the previous message's content
/// (`behind`: one round trip a message).
///
/// [`SmtpServer::set_down`] makes it drop every connection and refuse to talk (a server
/// that went away) until it is set up again; `quits` counts the `QUIT`s it heard.
pub struct SmtpServer {
    pub url: String,
    pub received: std::sync::Arc<std::sync::Mutex<Vec<ReceivedMail>>>,
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub pipelined: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub behind: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub quits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// Which `RCPT TO` answer a recipient gets: `None` accepts it.
pub type RcptReplies = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpServer {
    pub async fn start(rcpt_reply: Option<&'static str>) -> SmtpServer {
        SmtpServer::start_offering(rcpt_reply, true).await
    }

    /// A server whose `EHLO` answer does not offer `PIPELINING`.
    pub async fn without_pipelining() -> SmtpServer {
        SmtpServer::start_offering(None, false).await
    }

    /// A server that answers `RCPT TO` with `reply` only for the recipients `refuse` picks
    /// (a share of bad addresses), and accepts the others.
    pub async fn refusing(reply: &'static str, refuse: fn(&str) -> bool) -> SmtpServer {
        SmtpServer::answering(std::sync::Arc::new(move |to: &str| refuse(to).then(|| reply.to_string()))).await
    }

    /// A server that answers each `RCPT TO` as `replies` says (`None`: accepted).
    pub async fn answering(replies: RcptReplies) -> SmtpServer {
        SmtpServer::start_with(Some(replies), true).await
    }

    async fn start_offering(rcpt_reply: Option<&'static str>, pipelining: bool) -> SmtpServer {
        let replies: Option<RcptReplies> =
            rcpt_reply.map(|reply| std::sync::Arc::new(move |_: &str| Some(reply.to_string())) as RcptReplies);
        SmtpServer::start_with(replies, pipelining).await
    }

    async fn start_with(replies: Option<RcptReplies>, pipelining: bool) -> SmtpServer {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the test SMTP server");
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let pipelined = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let behind = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let quits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (store, count, ahead, following, quit, gone) =
            (received.clone(), connections.clone(), pipelined.clone(), behind.clone(), quits.clone(), down.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                if gone.load(Ordering::SeqCst) {
                    drop(socket);
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let session = Session {
                    store: store.clone(),
                    replies: replies.clone(),
                    pipelining,
                    pipelined: ahead.clone(),
                    behind: following.clone(),
                    quits: quit.clone(),
                    down: gone.clone(),
                };
                tokio::spawn(smtp_session(socket, session));
            }
        });
        SmtpServer { url, received, connections, pipelined, behind, quits, down, task }
    }

    /// Takes the server away (`true`: every connection is dropped, new ones closed at
    /// once) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.received.lock().unwrap().clone()
    }
}

/// How one connection of the test server behaves.
struct Session {
    store: std::sync::Arc<std::sync::Mutex<Vec<ReceivedMail>>>,
    replies: Option<RcptReplies>,
    pipelining: bool,
    pipelined: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    behind: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    quits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

async fn smtp_session(socket: tokio::net::TcpStream, session: Session) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let Session { store, replies, pipelining, pipelined, behind, quits, down } = session;
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    let mut current = ReceivedMail { mail_from: String::new(), rcpt_to: Vec::new(), data: Vec::new() };
    // Whether the command after this message's MAIL FROM was already here when it was read.
    let mut ahead = false;
    let _ = write.write_all(b"220 test.local ESMTP\r\n").await;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        if down.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            if pipelining {
                "250-test.local\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n".into()
            } else {
                "250-test.local\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n".into()
            }
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") || upper.starts_with("RSET") {
            "250 OK\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            current = ReceivedMail { mail_from: command[10..].to_string(), rcpt_to: Vec::new(), data: Vec::new() };
            ahead = !lines.buffer().is_empty();
            "250 OK\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            match replies.as_ref().and_then(|replies| replies(&command[8..])) {
                Some(reply) => format!("{reply}\r\n"),
                None => {
                    current.rcpt_to.push(command[8..].to_string());
                    "250 OK\r\n".into()
                }
            }
        } else if upper == "DATA" {
            let _ = write.write_all(b"354 go ahead\r\n").await;
            let mut data = Vec::new();
            loop {
                let mut raw = Vec::new();
                if lines.read_until(b'\n', &mut raw).await.unwrap_or(0) == 0 {
                    return;
                }
                if raw == b".\r\n" {
                    break;
                }
                let raw = if raw.starts_with(b"..") { raw[1..].to_vec() } else { raw };
                data.extend_from_slice(&raw);
            }
            current.data = data;
            store.lock().unwrap().push(current.clone());
            if ahead {
                pipelined.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            if lines.buffer().starts_with(b"MAIL FROM:") {
                behind.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            "250 2.0.0 queued\r\n".into()
        } else if upper == "QUIT" {
            quits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            "502 command not implemented\r\n".into()
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The fixed "now" of rendering tests.
pub const RENDER_NOW: &str = "2025-03-10T02:00:00Z";

/// The member of `tests/fixtures/templates/member.json`.
pub fn fixture_member() -> Member {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates/member.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the fixture member parses")
}

/// The example templates of the repository.
pub fn example_templates() -> tidings::template::TemplateCatalog {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let (catalog, diagnostics) = tidings::template::TemplateCatalog::load(&dir);
    assert!(diagnostics.is_empty(), "the example templates have problems: {diagnostics:?}");
    catalog
}

/// The render context for `member` at [`RENDER_NOW`], with a `tier.changed` event and the
/// links of delivery `delivery_id` signed by `signer`.
pub fn message_context(
    member: &Member,
    vars: &tidings::journey::model::Vars,
    links: &tidings::links::DeliveryLinks,
) -> tidings::template::MessageContext {
    use tidings::template::{JourneyInfo, Links, MessageContext, ShopInfo, StepInfo};
    let event = tidings::member::Event {
        id: "evt-1".into(),
        member_id: member.id.clone(),
        name: "tier.changed".into(),
        occurred_at: "2025-03-09T12:00:00Z".parse().unwrap(),
        properties: serde_json::json!({ "from": "gold", "to": "diamond" }),
    };
    let unsubscribe = links.unsubscribe_url();
    MessageContext {
        member: tidings::template::member_value(member, RENDER_NOW.parse().unwrap(), chrono_tz::Asia::Shanghai),
        event: tidings::template::event_value(&event),
        journey: JourneyInfo { id: "birthday".into(), name: "Birthday".into() },
        step: StepInfo { id: "email".into() },
        variant: None,
        vars: vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        links: Links { unsubscribe, preferences: "https://t.example/preferences".into() },
        shop: ShopInfo {
            name: "Tea House".into(),
            url: "https://teahouse.example".into(),
            support_email: "help@teahouse.example".into(),
            address: "88 Longjing Road, Hangzhou".into(),
        },
    }
}

/// The link secret of the tests.
pub const LINK_SECRET: &[u8] = b"test-link-secret-0123456789abcdef";

pub fn link_signer() -> tidings::links::LinkSigner {
    tidings::links::LinkSigner::new("https://t.example", LINK_SECRET).unwrap()
}
