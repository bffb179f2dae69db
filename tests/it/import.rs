//! `tidings import`: CSV and JSON lines, every bad row rejected with its line and reason
//! and never half-written, the good rows around it stored, on both engines.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use tidings::import::{ImportError, ImportKind, Options, Rejection, Summary, import_file};
use tidings::state::Settings;
use tidings::store::Store;

use crate::engines::on_both_engines;
use crate::store::at;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import").join(name)
}

fn options() -> Options {
    let mut options = Options::new(at("2026-06-01T00:00:00Z"), Settings::default());
    // Small batches, so a file spans several transactions.
    options.batch_size = 3;
    options
}

async fn import(store: &Store, kind: ImportKind, name: &str) -> Summary {
    import_file(store, kind, &fixture(name), &options()).await.unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The rejections as (line, the start of the reason).
fn rejected(summary: &Summary) -> Vec<(u64, String)> {
    summary.rejected.iter().map(|Rejection { line, reason }| (*line, reason.clone())).collect()
}

fn assert_rejected(summary: &Summary, expected: &[(u64, &str)]) {
    let got = rejected(summary);
    assert_eq!(got.len(), expected.len(), "rejections: {got:#?}");
    for ((line, reason), (want_line, want)) in got.iter().zip(expected) {
        assert_eq!(line, want_line, "{got:#?}");
        assert!(reason.contains(want), "line {line}: `{reason}` does not say `{want}`");
    }
}

on_both_engines! {
    async fn a_members_csv_keeps_its_good_rows_and_explains_every_bad_one(store) {
        let summary = import(&store, ImportKind::Members, "members.csv").await;
        assert_rejected(&summary, &[
            (4, "birthday: `1990-02-30` is not a date"),
            (5, "timezone: unknown time zone `Mars/Olympus_Mons`"),
            (6, "duplicate id `1001` (first on line 2)"),
            (7, "expected 21 fields, found 7"),
            (8, "email: `not-an-email` is not an email address"),
            // The unclosed quote makes one field of everything after it, line 11 included.
            (10, "expected 21 fields, found 2 (an unclosed quote"),
        ]);
        assert_eq!((summary.inserted, summary.updated, summary.rows), (3, 0, 9));
        assert!(summary.derived.is_some(), "lifecycle, CLV and RFM were recomputed");

        let mei = store.member("1001").await.unwrap().unwrap();
        assert_eq!((mei.first_name.as_deref(), mei.last_name.as_deref()), (Some("美玲"), Some("王")));
        assert_eq!(mei.birthday.map(|b| b.to_string()).as_deref(), Some("1992-02-29"));
        assert_eq!(mei.tags, vec!["oolong".to_string(), "vip".to_string()]);
        assert_eq!(mei.first_order_at, Some(at("2023-03-01T02:00:00Z")));
        assert_eq!(Value::Object(mei.attributes), json!({"favourite_tea": "Tie Guan Yin", "visits": 42}));
        assert!(mei.rfm_segment.is_some() && mei.lifecycle.is_some() && mei.clv.unwrap() > 0);

        let robert = store.member("1002").await.unwrap().unwrap();
        assert_eq!(robert.first_name.as_deref(), Some("Robert'); DROP TABLE members;--"));
        assert_eq!(robert.last_name.as_deref(), Some("O'Brien"));
        assert_eq!(robert.email.as_deref(), Some("o'brien@example.com"));
        assert_eq!(Value::Object(robert.attributes), json!({"favourite_tea": "' OR '1'='1", "visits": 7}));
        assert_eq!(robert.birthday.map(|b| b.to_string()).as_deref(), Some("--07-04"));
        assert!(robert.email_consent && !robert.sms_consent);

        for never in ["1003", "1004", "1005", "1006", "1008", "1009"] {
            assert!(store.member(never).await.unwrap().is_none(), "{never} was half-written");
        }
        assert_eq!(store.member_count().await.unwrap(), 3);
    }

    async fn a_members_json_lines_file_is_read_by_the_same_rules(store) {
        let summary = import(&store, ImportKind::Members, "members.jsonl").await;
        assert_rejected(&summary, &[
            (2, "joined_at: `2026-13-01T00:00:00Z` is not an RFC 3339 timestamp"),
            (3, "timezone: unknown time zone `Asia/Beijing`"),
            (4, "not JSON"),
            (5, "id must be a string"),
            (6, "unknown field `emial` (did you mean `email`?)"),
            (8, "duplicate id `2001` (first on line 1)"),
            (9, "expected a JSON object"),
            (10, "points: expected a whole number, found a string"),
        ]);
        assert_eq!((summary.inserted, summary.rows), (2, 10));
        let li = store.member("2001").await.unwrap().unwrap();
        assert_eq!(li.first_name.as_deref(), Some("李"));
        assert_eq!(li.attributes.get("note"), Some(&json!("Robert'); DROP TABLE members;--")));
        assert_eq!(li.lifecycle.as_deref(), Some("new"));
        let again = import(&store, ImportKind::Members, "members.jsonl").await;
        assert_eq!((again.inserted, again.updated), (0, 2), "a second import updates");
    }

    async fn events_are_stored_once_folded_in_and_checked(store) {
        import(&store, ImportKind::Members, "members.csv").await;
        let summary = import(&store, ImportKind::Events, "events.jsonl").await;
        assert_rejected(&summary, &[
            (4, "order.placed: properties.total must be a whole number"),
            (5, "`Order Placed` is not an event name"),
            (10, "occurred_at: `not a time` is not an RFC 3339 timestamp"),
        ]);
        assert_eq!(
            (summary.inserted, summary.duplicates, summary.members_created, summary.stale),
            (6, 1, 1, 1),
            "{summary:#?}"
        );
        let mei = store.member("1001").await.unwrap().unwrap();
        assert_eq!((mei.order_count, mei.total_spend), (13, 356_000 + 12_800), "the 2020 order is in the import already");
        assert_eq!(mei.tier.as_deref(), Some("diamond"));
        assert_eq!(mei.last_order_at, Some(at("2026-06-01T02:00:00Z")));
        let newcomer = store.member("3001").await.unwrap().unwrap();
        assert_eq!((newcomer.email.as_deref(), newcomer.first_name.as_deref()), (Some("new@example.com"), Some("新")));
        assert_eq!((newcomer.order_count, newcomer.total_spend), (1, 1250));
        let events = store.events_of("1001", 10).await.unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events[1].properties, json!({"friend": "'; DROP TABLE events; --"}));

        let csv = import(&store, ImportKind::Events, "events.csv").await;
        assert_rejected(&csv, &[(5, "properties: not JSON")]);
        let robert = store.member("1002").await.unwrap().unwrap();
        assert_eq!((robert.points, robert.total_spend, robert.order_count), (225, 40_000, 3));
        assert!(!robert.email_consent && !robert.sms_consent);
    }

    async fn a_bulk_load_stores_the_same_members_and_rebuilds_its_indexes(store) {
        let indexes = index_definitions(&store).await;
        let mut bulk = options();
        bulk.bulk = Some(true);
        let summary = import_file(&store, ImportKind::Members, &fixture("members.csv"), &bulk).await.unwrap();
        assert_eq!(index_definitions(&store).await, indexes, "every index is back as it was");
        assert!(deferred_indexes(&store).await.is_empty(), "and none is left to rebuild");
        assert_eq!((summary.inserted, summary.rejected.len()), (3, 6));
        let expr = tidings::condition::parse(r#"tier == "gold""#).unwrap();
        let filter = tidings::condition::to_sql(&expr, store.dialect(), at("2026-06-01T00:00:00Z"), 1).unwrap();
        let plan = store.explain_audience(&filter).await.unwrap().join("\n");
        assert!(plan.contains("members_by_tier"), "the index is back:\n{plan}");
        assert_eq!(store.member("1001").await.unwrap().unwrap().tags, vec!["oolong".to_string(), "vip".to_string()]);
    }

    /// One batch of 300 members (one multi-row statement, or a `COPY … FROM STDIN` if a
    /// large batch is ever copied: its text format makes a tab, a newline and a backslash
    /// syntax) stores awkward values as they went in, and as batches of three store them.
    async fn awkward_values_survive_a_large_batch_as_they_survive_a_small_one(store) {
        let awkward = [
            "tab\there", "new\nline", "carriage\r\nreturn", "back\\slash \\N \\t", "\\N", "\"double\" 'single'",
            "王美玲 ünïcödé 😀", "", " ", "trailing\t", "\u{7f}\u{1}",
        ];
        let record = |id: String, i: usize| {
            let text = awkward[i % awkward.len()];
            let mut record = json!({
                "id": id,
                "email": format!("m{i}@example.com"),
                "first_name": text,
                "tags": [text.replace(['\n', '\r'], " ").trim().to_string() + "tag", "vip"],
                "attributes.note": text,
                "attributes.nested": { "list": [text, null, 1.5] },
                "points": i as i64 - 150,
                "email_consent": i.is_multiple_of(2),
                "joined_at": "1999-12-31T23:59:59.123456Z",
            });
            // Absent, null and empty are three different inputs.
            match i % 3 {
                0 => {}
                1 => record["last_name"] = Value::Null,
                _ => record["last_name"] = json!(""),
            }
            record
        };
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, prefix: &str| {
            let path = dir.path().join(name);
            let lines: Vec<String> = (0..300).map(|i| record(format!("{prefix}{i}"), i).to_string()).collect();
            std::fs::write(&path, lines.join("\n") + "\n").unwrap();
            path
        };
        let (large, small) = (write("large.jsonl", "l-"), write("small.jsonl", "s-"));
        let mut one_batch = options();
        one_batch.batch_size = 1_000;
        let summary = import_file(&store, ImportKind::Members, &large, &one_batch).await.unwrap();
        assert_eq!((summary.inserted, summary.rejected.len()), (300, 0), "{:?}", summary.rejected);
        let summary = import_file(&store, ImportKind::Members, &small, &options()).await.unwrap();
        assert_eq!((summary.inserted, summary.rejected.len()), (300, 0), "{:?}", summary.rejected);
        for i in 0..300 {
            let large = store.member(&format!("l-{i}")).await.unwrap().unwrap();
            let small = store.member(&format!("s-{i}")).await.unwrap().unwrap();
            let text = awkward[i % awkward.len()];
            assert_eq!(large.first_name.as_deref(), small.first_name.as_deref(), "member {i}");
            if !text.is_empty() {
                assert_eq!(large.first_name.as_deref(), Some(text), "member {i}");
            }
            assert_eq!(large.attributes.get("note"), Some(&json!(text)), "member {i}");
            assert_eq!(large, tidings::member::Member { id: large.id.clone(), ..small }, "member {i}");
        }
        // A second large batch updates every row through the same path.
        let summary = import_file(&store, ImportKind::Members, &large, &one_batch).await.unwrap();
        assert_eq!((summary.inserted, summary.updated), (0, 300));
        assert_eq!(store.member("l-4").await.unwrap().unwrap().first_name.as_deref(), Some(awkward[4]));
    }

    async fn a_file_with_a_bad_header_writes_nothing(store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, "id,emial,first_name\n1,a@example.com,Ann\n").unwrap();
        let error = import_file(&store, ImportKind::Members, &path, &options()).await.unwrap_err();
        assert!(matches!(&error, ImportError::File(p) if p.contains("did you mean `email`")), "{error}");
        std::fs::write(&path, "member_id,email\n1,a@example.com\n").unwrap();
        assert!(import_file(&store, ImportKind::Members, &path, &options()).await.is_err());
        assert_eq!(store.member_count().await.unwrap(), 0);
    }

    async fn a_row_that_is_not_utf8_is_rejected_alone(store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.csv");
        std::fs::write(&path, b"id,first_name\r\nm1,Ann\r\nm2,Jos\xe9\r\n\r\nm3,\xe6\x9d\x8e\r\n").unwrap();
        let summary = import_file(&store, ImportKind::Members, &path, &options()).await.unwrap();
        assert_rejected(&summary, &[(3, "first_name: not valid UTF-8")]);
        assert_eq!(summary.inserted, 2);
        assert_eq!(store.member("m3").await.unwrap().unwrap().first_name.as_deref(), Some("李"));
    }
}

/// The names and definitions of the indexes of `members` and `member_tags` (those a bulk
/// load drops and those it keeps), as the engine's catalogue holds them.
async fn index_definitions(store: &Store) -> Vec<(String, String)> {
    match store {
        Store::Sqlite(pool) => sqlx::query_as(
            "SELECT name, COALESCE(sql, '') FROM sqlite_master WHERE type = 'index' \
             AND tbl_name IN ('members', 'member_tags') ORDER BY name",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Store::Postgres(pool) => sqlx::query_as(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = current_schema() \
             AND tablename IN ('members', 'member_tags') ORDER BY indexname",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Store::Memory(_) => unreachable!("the tests run on SQLite files and PostgreSQL"),
    }
}

async fn deferred_indexes(store: &Store) -> Vec<String> {
    let sql = "SELECT name FROM deferred_indexes ORDER BY name";
    match store {
        Store::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        Store::Memory(_) => unreachable!("the tests run on SQLite files and PostgreSQL"),
    }
}

/// A bulk load that dies after dropping the indexes (here: it never finishes) leaves their
/// definitions in `deferred_indexes`; the next `Store::open` builds them again, as they were.
async fn an_unfinished_bulk_load_is_finished_by_the_next_open(store: Store, url: &str) {
    let before = index_definitions(&store).await;
    assert!(before.iter().any(|(name, _)| name == "members_by_tier"), "{before:#?}");
    assert!(store.start_bulk_load().await.unwrap(), "there were indexes to drop");
    let during = index_definitions(&store).await;
    let names = |list: &[(String, String)]| list.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>();
    let mut dropped: Vec<String> = names(&before).into_iter().filter(|n| !names(&during).contains(n)).collect();
    dropped.sort();
    assert_eq!(deferred_indexes(&store).await, dropped, "every dropped index is remembered");
    assert!(dropped.contains(&"members_by_tier".to_string()) && dropped.contains(&"member_tags_by_tag".to_string()));
    assert!(names(&during).contains(&"members_by_rfm_segment".to_string()), "an import adds nothing to it");
    // The primary keys stay (the upserts' `ON CONFLICT` and the tags' foreign key use them).
    let primary = ["sqlite_autoindex_members_1", "members_pkey"];
    assert!(during.iter().any(|(name, _)| primary.contains(&name.as_str())), "{during:#?}");
    // Writes still go through while the indexes are away.
    let options = options();
    let summary = import_file(&store, ImportKind::Members, &fixture("members.csv"), &options).await.unwrap();
    assert_eq!(summary.inserted, 3);
    drop(store);

    let reopened = Store::open(url).await.unwrap();
    assert_eq!(index_definitions(&reopened).await, before, "every index is back as it was");
    assert!(deferred_indexes(&reopened).await.is_empty());
    assert_eq!(reopened.member("1001").await.unwrap().unwrap().tags, vec!["oolong".to_string(), "vip".to_string()]);
}

mod an_unfinished_bulk_load {
    use super::*;

    #[tokio::test]
    async fn is_finished_by_the_next_open_on_sqlite() {
        let (pool, dir) = crate::support::sqlite_pool().await;
        let url = format!("sqlite://{}", dir.path().join("tidings.db").display());
        an_unfinished_bulk_load_is_finished_by_the_next_open(Store::Sqlite(pool), &url).await;
    }

    #[tokio::test]
    async fn is_finished_by_the_next_open_on_postgres() {
        if let Some((pool, url)) = crate::support::postgres_schema("unfinished_bulk_load").await {
            an_unfinished_bulk_load_is_finished_by_the_next_open(Store::Postgres(pool), &url).await;
        }
    }
}

fn tidings(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(args)
        .current_dir(dir)
        .env("TIDINGS_DATABASE_URL", format!("sqlite://{}", dir.join("tidings.db").display()))
        .env_remove("TIDINGS_CONFIG")
        .output()
        .expect("run tidings");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_cli_imports_reports_and_shows_a_member() {
    let dir = tempfile::tempdir().unwrap();
    let csv = fixture("members.csv");
    let (code, out, _) = tidings(dir.path(), &["import", "members", csv.to_str().unwrap()]);
    assert_eq!(code, 1, "rejected rows are problems found:\n{out}");
    assert!(out.contains("3 inserted, 0 updated, 6 rejected"), "{out}");
    assert!(out.contains("line 4: birthday: `1990-02-30` is not a date"), "{out}");

    let events = fixture("events.csv");
    let (code, out, _) = tidings(dir.path(), &["import", "events", events.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 1);
    let summary: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(summary["kind"], "events");
    assert_eq!(summary["rejected"][0]["line"], 5);

    let (code, out, _) = tidings(dir.path(), &["member", "1002", "--format", "json"]);
    assert_eq!(code, 0);
    let view: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(view["member"]["first_name"], "Robert'); DROP TABLE members;--");
    assert_eq!(view["event_count"], 4);
    assert!(view["computed"]["days_until_birthday"].is_i64());

    let (code, out, _) = tidings(dir.path(), &["member", "1001"]);
    assert_eq!(code, 0);
    assert!(out.contains("member 1001 — 美玲 王") && out.contains("lifecycle"), "{out}");

    let (code, _, err) = tidings(dir.path(), &["member", "nobody"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, _) = tidings(dir.path(), &["import", "widgets", "x.csv"]);
    assert_eq!(code, 2, "bad usage");
}
