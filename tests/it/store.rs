//! The member store on both engines: fields stored verbatim, events folded in idempotently
//! and in any order, lifecycle/CLV/RFM over the whole base, and audiences on indexes.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tidings::condition::{self, Dialect, SqlFilter, SqlParam};
use tidings::member::{Event, Member};
use tidings::state::{self, Field, Patch, Settings, derived};
use tidings::store::{MemberImport, Store};

use crate::engines::on_both_engines;

pub fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("a test timestamp")
}

pub fn now() -> DateTime<Utc> {
    at("2026-06-01T12:00:00Z")
}

/// A member import from a JSON object of §1 fields.
pub fn row(id: &str, fields: Value) -> MemberImport {
    let mut patch = Patch::new();
    for (key, value) in fields.as_object().expect("an object") {
        let field = Field::from_name(key).unwrap_or_else(|| panic!("no field {key}"));
        patch.set(field, state::patch::parse_json(field, value).unwrap_or_else(|e| panic!("{key}: {e}")));
    }
    MemberImport { id: id.to_string(), patch }
}

pub fn event(id: &str, member: &str, name: &str, occurred_at: &str, properties: Value) -> Event {
    let e =
        Event { id: id.into(), member_id: member.into(), name: name.into(), occurred_at: at(occurred_at), properties };
    state::check_event(&e).unwrap_or_else(|reason| panic!("{id}: {reason}"));
    e
}

async fn import(store: &Store, rows: &[MemberImport]) {
    store.import_members(rows, now(), now(), &Settings::default()).await.expect("import");
}

async fn member(store: &Store, id: &str) -> Member {
    store.member(id).await.expect("read").unwrap_or_else(|| panic!("no member {id}"))
}

fn without_id(mut m: Member) -> Member {
    m.id = String::new();
    m
}

on_both_engines! {
    async fn every_field_is_stored_verbatim_with_unicode_and_sql_looking_text(store) {
        let fields = json!({
            "email": "ann+tea@example.com",
            "phone": "+8613800138000",
            "push_tokens": ["tok-1", "tok-2"],
            "first_name": "Robert'); DROP TABLE members;--",
            "last_name": "李 小龙 🐉 Zoë \"Z\" O'Brien",
            "locale": "zh-CN",
            "timezone": "Asia/Shanghai",
            "birthday": "--02-29",
            "tier": "gold",
            "points": -5,
            "points_expiring": 40,
            "points_expire_at": "2026-06-30T15:59:59.123456Z",
            "total_spend": 123_456,
            "currency": "CNY",
            "order_count": 7,
            "first_order_at": "2024-01-02T03:04:05.000001+08:00",
            "last_order_at": "2026-05-01T00:00:00Z",
            "joined_at": "2023-12-31T23:59:59Z",
            "email_consent": true,
            "sms_consent": false,
            "push_consent": true,
            "tags": ["vip", "季节", "' OR 1=1 --"],
            "attributes": {"note": "'; DELETE FROM member_tags; --", "nested": {"a": [1, "x", null]}, "ratio": 1.5, "百分": "100%"},
        });
        let written = store.import_members(&[row("m-1 ✓", fields.clone())], now(), now(), &Settings::default()).await.unwrap();
        assert_eq!((written.inserted, written.updated), (1, 0));

        let m = member(&store, "m-1 ✓").await;
        let mut expected: Member = serde_json::from_value(fields).unwrap();
        expected.id = "m-1 ✓".into();
        expected.tags.sort();
        expected.first_order_at = Some(at("2024-01-01T19:04:05.000001Z"));
        expected.lifecycle = Some("active".into());
        expected.clv = Some(derived::clv(&expected, now(), &Settings::default()));
        assert_eq!(m, expected);
        assert_eq!(store.member_count().await.unwrap(), 1, "the SQL-looking text was only text");
    }

    async fn a_second_import_updates_only_the_fields_it_names(store) {
        import(&store, &[row("m1", json!({"email": "a@example.com", "tier": "silver", "tags": ["a"]}))]).await;
        let written = store
            .import_members(
                &[row("m1", json!({"tier": "gold"})), row("m2", json!({"email": "b@example.com"}))],
                now(),
                now(),
                &Settings::default(),
            )
            .await
            .unwrap();
        assert_eq!((written.inserted, written.updated), (1, 1));
        let m1 = member(&store, "m1").await;
        assert_eq!((m1.email.as_deref(), m1.tier.as_deref(), m1.tags), (Some("a@example.com"), Some("gold"), vec!["a".to_string()]));
        import(&store, &[row("m1", json!({"tags": ["b", "c"], "email": null}))]).await;
        let m1 = member(&store, "m1").await;
        assert_eq!((m1.email, m1.tags), (None, vec!["b".to_string(), "c".to_string()]));
    }

    async fn a_repeated_event_id_is_ignored(store) {
        let order = event("e1", "m1", "order.placed", "2026-05-01T10:00:00Z", json!({"total": 1000}));
        let s = Settings::default();
        let first = store.append_events(std::slice::from_ref(&order), now(), &s).await.unwrap();
        assert_eq!((first.inserted, first.duplicates, first.members_created), (1, 0, 1));
        let again = store.append_events(&[order.clone(), order.clone()], now(), &s).await.unwrap();
        assert_eq!((again.inserted, again.duplicates, again.members_created), (0, 2, 0));
        let m = member(&store, "m1").await;
        assert_eq!((m.order_count, m.total_spend), (1, 1000));
        assert_eq!(store.event_count("m1").await.unwrap(), 1);
    }

    async fn late_events_give_the_same_member_as_events_in_order(store) {
        let timeline = |member: &str| {
            let e = |n: u32, name: &str, day: u32, p: Value| {
                event(&format!("{member}-{n}"), member, name, &format!("2026-04-{day:02}T09:00:00Z"), p)
            };
            vec![
                e(1, "member.created", 1, json!({"email": "x@example.com", "email_consent": true})),
                e(2, "order.placed", 2, json!({"order_id": "A", "total": 5000, "currency": "CNY"})),
                e(3, "points.earned", 2, json!({"points": 50})),
                e(4, "order.placed", 9, json!({"order_id": "B", "total": 2500})),
                e(5, "order.refunded", 10, json!({"order_id": "B"})),
                e(6, "order.placed", 12, json!({"order_id": "C", "total": 800})),
                e(7, "order.refunded", 13, json!({"order_id": "A", "amount": 1000})),
                e(8, "points.redeemed", 14, json!({"points": 20})),
                e(9, "tier.changed", 15, json!({"from": "silver", "to": "gold"})),
                e(10, "member.updated", 16, json!({"first_name": "Ann", "tier": "diamond", "attributes.size": "M"})),
                e(11, "member.updated", 3, json!({"first_name": "Anne", "last_name": "Lee"})),
                e(12, "points.expiring", 17, json!({"points": 30, "expire_at": "2026-07-01T00:00:00Z"})),
                e(13, "member.unsubscribed", 18, json!({"channel": "email"})),
                e(14, "cart.abandoned", 19, json!({"value": 100})),
            ]
        };
        let s = Settings::default();
        store.append_events(&timeline("ordered"), now(), &s).await.unwrap();
        // The same history arriving one event at a time, latest first, then a replay.
        let mut late = timeline("late");
        late.reverse();
        late.swap(2, 9);
        for e in &late {
            store.append_events(std::slice::from_ref(e), now(), &s).await.unwrap();
        }
        store.append_events(&late, now(), &s).await.unwrap();

        let ordered = member(&store, "ordered").await;
        assert_eq!(without_id(member(&store, "late").await), without_id(ordered.clone()));
        assert_eq!((ordered.order_count, ordered.total_spend), (2, 4800));
        assert_eq!(ordered.last_order_at, Some(at("2026-04-12T09:00:00Z")));
        assert_eq!((ordered.points, ordered.points_expiring), (30, 30));
        assert_eq!(ordered.tier.as_deref(), Some("diamond"));
        assert_eq!((ordered.first_name.as_deref(), ordered.last_name.as_deref()), (Some("Ann"), Some("Lee")));
        assert!(!ordered.email_consent);
        assert_eq!(ordered.joined_at, Some(at("2026-04-01T09:00:00Z")));
        // And it is what the pure fold says.
        let folded = state::fold(&Member { id: "ordered".into(), ..Member::default() }, &Default::default(), &timeline("ordered"));
        let mut expected = folded.member;
        derived::refresh(&mut expected, now(), &s);
        assert_eq!(ordered, expected);
    }

    async fn events_older_than_an_import_are_kept_but_do_not_count_twice(store) {
        let s = Settings::default();
        let t = at("2026-05-01T00:00:00Z");
        let snapshot = row("m1", json!({"order_count": 3, "total_spend": 3000, "last_order_at": "2026-04-20T00:00:00Z", "points": 10}));
        store.import_members(&[snapshot], t, t, &s).await.unwrap();
        let written = store
            .append_events(
                &[
                    event("old", "m1", "order.placed", "2026-04-25T00:00:00Z", json!({"total": 700})),
                    event("new", "m1", "order.placed", "2026-05-02T00:00:00Z", json!({"total": 300})),
                    event("pts", "m1", "points.earned", "2026-04-01T00:00:00Z", json!({"points": 5})),
                ],
                now(),
                &s,
            )
            .await
            .unwrap();
        assert_eq!((written.inserted, written.stale), (3, 2), "the old order and the old points are in the import");
        let m = member(&store, "m1").await;
        assert_eq!((m.order_count, m.total_spend, m.points), (4, 3300, 10));
        assert_eq!(m.last_order_at, Some(at("2026-05-02T00:00:00Z")));

        // A later import replaces the orders snapshot; later events still fold in.
        let later = at("2026-05-03T00:00:00Z");
        store.import_members(&[row("m1", json!({"order_count": 10, "total_spend": 9000}))], later, later, &s).await.unwrap();
        store
            .append_events(&[event("newer", "m1", "order.placed", "2026-05-04T00:00:00Z", json!({"total": 100}))], now(), &s)
            .await
            .unwrap();
        let m = member(&store, "m1").await;
        assert_eq!((m.order_count, m.total_spend, m.points), (11, 9100, 10));
    }

    async fn lifecycle_and_clv_in_sql_follow_the_rules_in_rust(store) {
        let s = Settings {
            new_within: tidings::duration::Duration::from_days(7),
            dormant_after: tidings::duration::Duration::from_days(30),
            churned_after: tidings::duration::Duration::from_days(90),
            clv_months: 30,
            ..Settings::default()
        };
        let n = now();
        let ago = |d: i64, micros: i64| (n - Duration::days(d) + Duration::microseconds(micros)).to_rfc3339();
        let mut rows = Vec::new();
        // Exact thresholds, a microsecond either side, and a spread of members.
        for (i, days) in [0, 6, 7, 8, 29, 30, 31, 89, 90, 91, 364, 365, 366, 1000].into_iter().enumerate() {
            for (j, micros) in [-1, 0, 1].into_iter().enumerate() {
                let id = format!("m{i}-{j}");
                let orders = (i % 3) as i64;
                rows.push(row(&id, json!({
                    "joined_at": ago(days, micros),
                    "last_order_at": if orders > 0 { Value::String(ago(days / 2, micros)) } else { Value::Null },
                    "first_order_at": if orders > 0 { Value::String(ago(days, micros)) } else { Value::Null },
                    "order_count": orders,
                    "total_spend": (i as i64) * 1_000 + j as i64,
                })));
            }
        }
        rows.push(row("no-dates", json!({"order_count": 1, "total_spend": 500})));
        // Imported a year earlier, so every derived value is stale until the recompute.
        let earlier = n - Duration::days(365);
        store.import_members(&rows, earlier, earlier, &s).await.unwrap();
        let recomputed = store.recompute_derived(n, &s).await.unwrap();
        assert!(recomputed.lifecycle_changed > 0);
        for r in &rows {
            let m = member(&store, &r.id).await;
            assert_eq!(m.lifecycle.as_deref(), Some(derived::lifecycle(&m, n, &s).as_str()), "{}", r.id);
            assert_eq!(m.clv, Some(derived::clv(&m, n, &s)), "{}", r.id);
        }
        assert_eq!(store.recompute_derived(n, &s).await.unwrap().lifecycle_changed, 0, "nothing left to change");
    }

    async fn rfm_scores_are_quintiles_of_the_base_and_ties_score_alike(store) {
        let mut rows = Vec::new();
        for i in 0..100i64 {
            rows.push(row(&format!("m{i:03}"), json!({
                "order_count": i + 1,
                "total_spend": (100 - i) * 1_000,
                "first_order_at": "2025-01-01T00:00:00Z",
                "last_order_at": (at("2026-01-01T00:00:00Z") + Duration::days(i)).to_rfc3339(),
            })));
        }
        // Twenty members with identical behaviour, and one who never ordered.
        for i in 0..20 {
            rows.push(row(&format!("same{i:02}"), json!({
                "order_count": 1, "total_spend": 500, "last_order_at": "2025-06-01T00:00:00Z",
            })));
        }
        rows.push(row("browser", json!({"email": "b@example.com"})));
        import(&store, &rows).await;
        let recomputed = store.recompute_derived(now(), &Settings::default()).await.unwrap();
        assert_eq!(recomputed.rfm_scored, 120);

        let mut per_r = [0; 5];
        for r in &rows {
            let m = member(&store, &r.id).await;
            if r.id == "browser" {
                assert_eq!((m.rfm_r, m.rfm_segment), (None, None));
                continue;
            }
            let (rr, f, mm) = (m.rfm_r.unwrap(), m.rfm_f.unwrap(), m.rfm_m.unwrap());
            assert_eq!(m.rfm_segment.as_deref(), derived::rfm_segment(rr, f, mm), "{}", r.id);
            per_r[(rr - 1) as usize] += 1;
            if r.id.starts_with("same") {
                assert_eq!((rr, f, mm), (1, 1, 1), "ties share the lowest rank");
                assert_eq!(m.rfm_segment.as_deref(), Some("lost"));
            }
        }
        // 120 ranked members: the 20 tied ones and the 4 oldest distinct ones make quintile 1.
        assert_eq!(per_r, [24, 24, 24, 24, 24]);
        let best = member(&store, "m099").await;
        assert_eq!((best.rfm_r, best.rfm_f), (Some(5), Some(5)));
        assert_eq!(store.recompute_derived(now(), &Settings::default()).await.unwrap().rfm_changed, 0);
    }

    async fn common_audiences_run_on_indexes(store) {
        let dialect = store.dialect();
        let audiences = [
            r#"lifecycle == "churned" and email_consent"#,
            r#"lifecycle == "dormant" and email_consent"#,
            "days_since(last_order_at) >= 60",
            "days_since_last_order > 30 and points > 0",
            r#"tier in ["gold", "diamond"]"#,
            r#"rfm_segment == "at_risk""#,
            "age_days < 30",
            r#"has_tag("vip")"#,
        ];
        let mut report = String::new();
        for audience in audiences {
            let expr = condition::parse(audience).unwrap();
            let filter = condition::to_sql(&expr, dialect, now(), 1).unwrap();
            let plan = store.explain_audience(&filter).await.unwrap();
            report.push_str(&format!("{audience}\n    {}\n", plan.join("\n    ")));
            assert_uses_an_index(dialect, audience, &plan);
        }
        // The queries of date triggers: birthdays by month-day, points expiring in a window.
        let birthday = SqlFilter {
            sql: format!("{} IN ({}, {})", tidings::store::members::birthday_month_day(dialect), p(dialect, 1), p(dialect, 2)),
            params: vec![SqlParam::Text("02-28".into()), SqlParam::Text("02-29".into())],
        };
        let expiry = SqlFilter {
            sql: format!("m.points_expire_at >= {} AND m.points_expire_at < {} AND m.points_expiring > 0", p(dialect, 1), p(dialect, 2)),
            params: vec![SqlParam::Timestamp(now()), SqlParam::Timestamp(now() + Duration::days(1))],
        };
        for (name, filter) in [("birthday on 02-28 or 02-29", birthday), ("points expiring tomorrow", expiry)] {
            let plan = store.explain_audience(&filter).await.unwrap();
            report.push_str(&format!("{name}\n    {}\n", plan.join("\n    ")));
            assert_uses_an_index(dialect, name, &plan);
        }
        println!("{dialect:?} query plans:\n{report}");
    }
}

fn p(dialect: Dialect, n: usize) -> String {
    dialect.placeholder(n)
}

fn assert_uses_an_index(dialect: Dialect, what: &str, plan: &[String]) {
    let full_scan = match dialect {
        // SQLite: `SCAN m` (even `USING COVERING INDEX`) visits every member; `SEARCH m` does not.
        Dialect::Sqlite => plan.iter().any(|l| l.trim_start().starts_with("SCAN m")),
        Dialect::Postgres => plan.iter().any(|l| l.contains("Seq Scan on members")),
    };
    assert!(!full_scan, "{what} scans every member:\n{}", plan.join("\n"));
}

on_both_engines! {
    async fn a_firing_enrolls_its_audience_in_chunks_each_member_once_and_resumes_after_a_crash(store) {
        use tidings::store::runs::Reentry;
        // Inserted out of id order, so the database's row order is not the id order.
        let ids = ["m-7", "m-2", "m-9", "m-1", "m-5", "m-3", "m-8"];
        let rows: Vec<MemberImport> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| row(id, json!({ "tier": if i % 3 == 2 { "silver" } else { "gold" } })))
            .collect();
        import(&store, &rows).await;
        let gold: Vec<&str> = ids.iter().enumerate().filter(|(i, _)| i % 3 != 2).map(|(_, id)| *id).collect();
        let audience = condition::parse(r#"tier == "gold""#).unwrap();
        let enroll = |cursor: Option<String>| {
            let (store, audience) = (store.clone(), audience.clone());
            async move {
                store
                    .enroll_audience("vip", "v1", "hello", "schedule:1", Some(&audience), Reentry::Always, cursor.as_deref(), 2, now())
                    .await
                    .unwrap()
            }
        };

        // The first chunk, then the worker "crashes": the firing starts over from no cursor.
        let (first, cursor) = enroll(None).await;
        assert_eq!(first, 2);
        assert!(cursor.is_some());
        let mut total = first;
        let mut cursor = None;
        let mut chunks = 0;
        loop {
            let (n, next) = enroll(cursor).await;
            assert!(n <= 2, "a chunk holds at most the limit");
            total += n;
            chunks += 1;
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
            assert!(chunks < 10, "the cursor moves forward");
        }
        assert_eq!(total, gold.len() as u64, "every gold member once, none twice");
        for id in ids {
            let runs = store.runs_of(id, 10).await.unwrap();
            let expected = usize::from(gold.contains(&id));
            assert_eq!(runs.len(), expected, "{id}: {runs:?}");
        }
        let entered = store.journal_of(None, 100).await.unwrap().into_iter().filter(|j| j.action == "enter").count();
        assert_eq!(entered, gold.len(), "one `enter` line a run");
    }
}

/// `simulate`'s in-memory store refreshes lifecycle, CLV and RFM in one scan with the rules
/// in Rust; a file keeps the set-based SQL. Day after day, both change the same members to
/// the same values and say so alike.
#[tokio::test]
async fn the_in_memory_refresh_in_one_scan_writes_what_the_sql_refresh_writes() {
    let (pool, _dir) = crate::support::sqlite_pool().await;
    let file = Store::Sqlite(pool);
    let memory = Store::open("sqlite::memory:").await.unwrap();
    let s = Settings { clv_months: 30, ..Settings::default() };
    let n = now();
    let ago = |d: i64, micros: i64| (n - Duration::days(d) + Duration::microseconds(micros)).to_rfc3339();
    let mut rows = Vec::new();
    for (i, days) in [0, 6, 7, 29, 30, 31, 59, 60, 61, 179, 180, 181, 364, 365, 366, 1000].into_iter().enumerate() {
        for (j, micros) in [-1, 0, 1].into_iter().enumerate() {
            let orders = (i % 4) as i64;
            rows.push(row(
                &format!("m{i}-{j}"),
                json!({
                    "joined_at": ago(days + 10, micros),
                    "last_order_at": if orders > 0 { Value::String(ago(days, micros)) } else { Value::Null },
                    "first_order_at": if orders > 0 { Value::String(ago(days + 5, micros)) } else { Value::Null },
                    "order_count": orders,
                    "total_spend": (i as i64 % 5) * 1_000 + j as i64,
                }),
            ));
        }
    }
    rows.push(row("no-dates", json!({"order_count": 1, "total_spend": 500})));
    rows.push(row("orders-no-date", json!({"order_count": 2, "total_spend": 700})));
    rows.push(row("browser", json!({"email": "b@example.com"})));
    let earlier = n - Duration::days(365);
    for store in [&file, &memory] {
        store.import_members(&rows, earlier, earlier, &s).await.unwrap();
    }
    for day in [0, 1, 2, 30, 31, 200] {
        let at = n + Duration::days(day);
        let (a, b) = (file.recompute_derived(at, &s).await.unwrap(), memory.recompute_derived(at, &s).await.unwrap());
        assert_eq!(a, b, "day {day}");
        for r in &rows {
            let (x, y) = (member(&file, &r.id).await, member(&memory, &r.id).await);
            let derived = |m: &Member| (m.lifecycle.clone(), m.clv, m.rfm_r, m.rfm_f, m.rfm_m, m.rfm_segment.clone());
            assert_eq!(derived(&x), derived(&y), "{} on day {day}", r.id);
        }
    }
}
