//! `tidings member ID`: everything about one member — stored fields, derived state, the
//! day counts as of now, recent events, runs, and every delivery and skip with its reason.

use std::fmt::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::member::{Event, Member};
use crate::state::{Computed, derived};
use crate::store::{DeliveryRow, RunRow, Store, StoreError};

/// What `tidings member` shows.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub member: Member,
    /// Computed from the stored fields and now.
    pub computed: Computed,
    pub event_count: i64,
    /// The most recent events, newest first.
    pub events: Vec<Event>,
    pub runs: Vec<RunRow>,
    pub deliveries: Vec<DeliveryRow>,
    /// What `recommend` would show the member now, best first, each with its reason.
    pub recommendations: Vec<Recommendation>,
    /// The member's latest purchases (`bought_recently`).
    pub bought_recently: Vec<Recommendation>,
}

/// One product on the member's shelf, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    pub id: String,
    pub title: String,
    pub price: Option<i64>,
    pub currency: Option<String>,
    pub category: Option<String>,
    pub reason: String,
    /// The purchase that led to it (co-purchase picks).
    pub because: Option<String>,
}

impl Recommendation {
    fn of(pick: &crate::recommend::Pick) -> Recommendation {
        let p = &pick.product;
        Recommendation {
            id: p.id.clone(),
            title: p.title.clone(),
            price: p.price,
            currency: p.currency.clone(),
            category: p.category.clone(),
            reason: pick.reason.clone(),
            because: pick.because.clone(),
        }
    }
}

/// How many recommendations `tidings member` lists.
const SHOWN: usize = 5;

impl MemberView {
    /// Fills in the member's shelf as the engine would read it at `now`.
    pub async fn with_recommendations(
        mut self,
        store: &Store,
        now: DateTime<Utc>,
        settings: &crate::recommend::Settings,
    ) -> Result<MemberView, StoreError> {
        let id = self.member.id.clone();
        if let Some(shelf) = store.shelves(std::slice::from_ref(&id), now, settings).await?.remove(&id) {
            self.recommendations = shelf.recommend(SHOWN, None).into_iter().map(Recommendation::of).collect();
            self.bought_recently = shelf.bought_recently(SHOWN).into_iter().map(Recommendation::of).collect();
        }
        Ok(self)
    }
}

/// Reads a member's view; `None` when there is no such member.
pub async fn load(
    store: &Store,
    id: &str,
    limit: i64,
    now: DateTime<Utc>,
    default_timezone: chrono_tz::Tz,
) -> Result<Option<MemberView>, StoreError> {
    let Some(member) = store.member(id).await? else { return Ok(None) };
    Ok(Some(MemberView {
        computed: derived::computed(&member, now, default_timezone),
        event_count: store.event_count(id).await?,
        events: store.events_of(id, limit).await?,
        runs: store.runs_of(id, limit).await?,
        deliveries: store.deliveries_of(id, limit).await?,
        recommendations: Vec::new(),
        bought_recently: Vec::new(),
        member,
    }))
}

fn time(t: &Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_string(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), ToString::to_string)
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

impl MemberView {
    /// The view as people read it.
    pub fn render(&self) -> String {
        let m = &self.member;
        let c = &self.computed;
        let mut out = String::new();
        let name =
            [m.first_name.as_deref(), m.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        let _ = writeln!(out, "member {}{}", m.id, if name.is_empty() { String::new() } else { format!(" — {name}") });
        let rows: Vec<(&str, String)> = vec![
            ("email", format!("{} (consent: {})", opt(&m.email), yes(m.email_consent))),
            ("phone", format!("{} (sms consent: {})", opt(&m.phone), yes(m.sms_consent))),
            ("push", format!("{} tokens (consent: {})", m.push_tokens.len(), yes(m.push_consent))),
            ("locale", opt(&m.locale)),
            ("timezone", opt(&m.timezone)),
            ("birthday", opt(&m.birthday)),
            ("joined_at", time(&m.joined_at)),
            ("tier", opt(&m.tier)),
            ("points", format!("{} ({} expiring at {})", m.points, m.points_expiring, time(&m.points_expire_at))),
            ("orders", m.order_count.to_string()),
            ("total_spend", format!("{} {}", m.total_spend, m.currency.as_deref().unwrap_or(""))),
            ("first_order_at", time(&m.first_order_at)),
            ("last_order_at", time(&m.last_order_at)),
            ("tags", if m.tags.is_empty() { "-".to_string() } else { m.tags.join(", ") }),
            (
                "attributes",
                if m.attributes.is_empty() {
                    "-".to_string()
                } else {
                    serde_json::Value::Object(m.attributes.clone()).to_string()
                },
            ),
        ];
        for (key, value) in rows {
            let _ = writeln!(out, "  {key:<22}{value}");
        }
        let _ = writeln!(out, "derived");
        let rfm = match (m.rfm_r, m.rfm_f, m.rfm_m) {
            (Some(r), Some(f), Some(mm)) => format!("R{r} F{f} M{mm} → {}", opt(&m.rfm_segment)),
            _ => "- (no orders)".to_string(),
        };
        let derived_rows: Vec<(&str, String)> = vec![
            ("lifecycle", opt(&m.lifecycle)),
            ("rfm", rfm),
            ("clv", format!("{} {}", opt(&m.clv), m.currency.as_deref().unwrap_or(""))),
            ("days_since_last_order", opt(&c.days_since_last_order)),
            ("days_until_birthday", opt(&c.days_until_birthday)),
            ("age_days", opt(&c.age_days)),
        ];
        for (key, value) in derived_rows {
            let _ = writeln!(out, "  {key:<22}{}", value.trim_end());
        }
        let _ = writeln!(out, "events ({} of {}, newest first)", self.events.len(), self.event_count);
        for e in &self.events {
            let _ = writeln!(
                out,
                "  {}  {:<20} {}  {}",
                e.occurred_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                e.name,
                e.id,
                e.properties
            );
        }
        let _ = writeln!(out, "runs ({})", self.runs.len());
        for r in &self.runs {
            let _ = writeln!(
                out,
                "  {}  {}@{}  step {}  {}{}",
                time(&r.entered_at),
                r.journey_id,
                r.journey_version,
                opt(&r.step),
                r.status,
                r.exit_reason.as_ref().map(|x| format!(" ({x})")).unwrap_or_default()
            );
        }
        let _ = writeln!(out, "deliveries and skips ({})", self.deliveries.len());
        for d in &self.deliveries {
            let _ = writeln!(
                out,
                "  {}  {}/{}  {}  {}{}{}",
                time(&d.created_at),
                d.journey_id,
                d.step,
                d.channel,
                d.status,
                d.variant.as_ref().map(|v| format!(" variant {v}")).unwrap_or_default(),
                d.reason.as_ref().map(|x| format!(" ({x})")).unwrap_or_default()
            );
        }
        let products = |out: &mut String, heading: &str, list: &[Recommendation]| {
            let _ = writeln!(out, "{heading} ({})", list.len());
            for r in list {
                let price = match (r.price, &r.currency) {
                    (Some(p), Some(c)) => format!("{p} {c}"),
                    _ => "-".to_string(),
                };
                let _ = writeln!(out, "  {}  {}  {}  {}", r.id, r.title, price, r.reason);
            }
        };
        products(&mut out, "recommendations", &self.recommendations);
        products(&mut out, "bought recently", &self.bought_recently);
        out
    }
}

/// `tidings member ID`: exit 0 when found, 1 when there is no such member.
pub async fn run(config: &crate::config::Config, id: &str, limit: i64, json: bool) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let store = Store::open(&config.database_url).await.with_context(|| format!("opening {}", config.database_url))?;
    let now = Utc::now();
    let Some(view) = load(&store, id, limit, now, config.timezone()).await? else {
        eprintln!("no member `{id}` in {}", config.database_url);
        return Ok(ExitCode::from(1));
    };
    let view = view.with_recommendations(&store, now, &config.recommendations.settings()).await?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
    } else {
        write!(out, "{}", view.render())?;
    }
    Ok(ExitCode::SUCCESS)
}
