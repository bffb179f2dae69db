//! `tidings simulate`: run the real engine over fixtures on a virtual clock and print what
//! every member would have received, when, and why not (DESIGN §5).
//!
//! Nothing here decides anything. The members file is imported with the importer
//! (`import::import_file`, as of `--from`), the engine is built the way `serve` builds it
//! (the same `Registry`, `Policies`, `Options`) on a temporary in-memory SQLite store, and
//! the clock is driven by calling `Engine::settle(now)` — `serve` calls `Engine::tick` in a
//! loop the same way. Only the senders differ: a [`Recorder`] behind every channel keeps
//! the rendered subject or text of each message instead of sending it, after the engine
//! rendered it exactly as it would for a provider.
//!
//! The clock does not tick through empty minutes: after each settle it jumps to the next
//! instant anything can happen — the next fixture event, the next due run or delivery, the
//! next schedule firing, the next member-local time a date trigger can fire
//! ([`Engine::next_wake`]). Fixture events are stored as the API stores them
//! (`Store::ingest_events`) when the clock reaches their `occurred_at`; events before
//! `--from` are history (stored and folded into the members, but journeys do not react).
//! The window is `[from, until]`: a schedule firing or date exactly at `--from` fires,
//! earlier ones do not.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;

use crate::channels::{Channels, Outgoing, Receipt, SendError, Sender};
use crate::config::Config;
use crate::engine::{self, Engine, EngineError, Registry};
use crate::import::{self, ImportError, ImportKind};
use crate::journey::Trigger;
use crate::member::Event;
use crate::project::Project;
use crate::store::{Store, StoreError};
use crate::template::Rendered;
use crate::timing::member_timezone;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Members as CSV or JSON lines (DESIGN §1 fields), as they are at `from`.
    pub members: PathBuf,
    /// Events as JSON lines; `None` for none.
    pub events: Option<PathBuf>,
    /// The catalogue as CSV or JSON lines (`tidings import products`); `None` for none.
    pub products: Option<PathBuf>,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// One line of the timeline (DESIGN §5): what happened to a member in a journey, when.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub at: DateTime<Utc>,
    pub member: String,
    pub journey: String,
    pub step: Option<String>,
    /// `enter`, `send`, `skip`, `wait`, `exit`, `goal`.
    pub action: String,
    pub channel: Option<String>,
    pub template: Option<String>,
    pub variant: Option<String>,
    /// Why, for skips and early exits; `failed: …` for a send the engine could not make
    /// (a template that does not render for this member).
    pub reason: Option<String>,
    /// The email subject or push title that was rendered.
    pub subject: Option<String>,
    /// The SMS text, push body or webhook JSON that was rendered.
    pub body: Option<String>,
    /// The member's time zone (their own, or the default), for member-local times.
    pub timezone: Tz,
}

impl Line {
    /// The line as one JSON object (`simulate --format json`), keys in DESIGN §5's order.
    pub fn to_json(&self) -> String {
        let text = |v: &Option<String>| v.as_deref().map_or(serde_json::Value::Null, |s| s.into());
        let fields: [(&str, serde_json::Value); 11] = [
            ("at", self.at.to_rfc3339_opts(SecondsFormat::Secs, true).into()),
            ("member", self.member.as_str().into()),
            ("journey", self.journey.as_str().into()),
            ("step", text(&self.step)),
            ("action", self.action.as_str().into()),
            ("channel", text(&self.channel)),
            ("template", text(&self.template)),
            ("variant", text(&self.variant)),
            ("reason", text(&self.reason)),
            ("subject", text(&self.subject)),
            ("body", text(&self.body)),
        ];
        let pairs: Vec<String> = fields.iter().map(|(key, value)| format!("\"{key}\":{value}")).collect();
        format!("{{{}}}", pairs.join(","))
    }

    /// The instant in the member's time zone, e.g. `2027-03-14 09:00 EDT`.
    pub fn local_time(&self) -> String {
        self.at.with_timezone(&self.timezone).format("%Y-%m-%d %H:%M %Z").to_string()
    }
}

/// What a simulation did.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub lines: Vec<Line>,
    pub members: u64,
    pub events: usize,
    /// Instants the clock stopped at.
    pub wakes: u64,
    /// Sends the engine could not make (a template failed to render).
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The fixtures cannot be used as they are (rows rejected, unreadable file).
    #[error("{0}")]
    Fixture(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The simulation's thread or runtime could not run (not the fixtures' fault).
    #[error("{0}")]
    Runtime(String),
}

impl From<ImportError> for SimulateError {
    fn from(error: ImportError) -> SimulateError {
        match error {
            ImportError::Store(e) => SimulateError::Store(e),
            other => SimulateError::Fixture(other.to_string()),
        }
    }
}

/// What the recorder keeps of a message: the subject or title, and the text.
type Kept = (Option<String>, Option<String>);

/// A sender for every channel that keeps what it was given instead of sending it.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    /// Delivery id → (subject or title, text).
    messages: Arc<Mutex<HashMap<i64, Kept>>>,
}

impl Recorder {
    /// The rendered subject and text of a delivery.
    fn get(&self, delivery: i64) -> Kept {
        self.messages.lock().map(|m| m.get(&delivery).cloned().unwrap_or_default()).unwrap_or_default()
    }

    pub fn channels(&self) -> Channels {
        let sender: Arc<dyn Sender> = Arc::new(self.clone());
        Channels::new(sender.clone(), sender.clone(), sender.clone(), sender)
    }
}

#[async_trait::async_trait]
impl Sender for Recorder {
    async fn send(&self, msg: &Outgoing) -> Result<Receipt, SendError> {
        let kept = match &msg.message {
            Rendered::Email { subject, .. } => (Some(subject.clone()), None),
            Rendered::Sms { body } => (None, Some(body.clone())),
            Rendered::Push { title, body, .. } => (Some(title.clone()), Some(body.clone())),
            Rendered::Webhook { body } => (None, Some(body.to_string())),
        };
        if let Ok(mut messages) = self.messages.lock() {
            messages.insert(msg.delivery_id, kept);
        }
        Ok(Receipt { provider_message_id: Some(format!("simulated-{}", msg.delivery_id)) })
    }

    fn provider(&self) -> &'static str {
        "simulate"
    }
}

/// Reads an events fixture (JSON lines), checked as the importer checks them, in time
/// order (file order among equal times).
pub fn read_events(path: &Path) -> Result<Vec<Event>, SimulateError> {
    let file = std::fs::File::open(path)
        .map_err(|e| SimulateError::Fixture(format!("cannot read {}: {e}", path.display())))?;
    let mut events = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| SimulateError::Fixture(format!("cannot read {}: {e}", path.display())))?;
        let text = line.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            continue;
        }
        let parsed = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(object)) => import::event_from_json(object),
            Ok(_) => Err("expected a JSON object".to_string()),
            Err(e) => Err(format!("not JSON: {e}")),
        };
        match parsed {
            Ok(event) => events.push(event),
            Err(reason) => problems.push(format!("{}:{}: {reason}", path.display(), i + 1)),
        }
    }
    if !problems.is_empty() {
        return Err(SimulateError::Fixture(problems.join("\n")));
    }
    events.sort_by_key(|e| e.occurred_at);
    Ok(events)
}

/// [`run`] on a thread of its own pinned to one CPU, on a single-threaded runtime; every
/// thread it starts (the importer's reader) inherits the pin.
///
/// A simulation is sequential. While its SQLite ran on a connection thread of its own
/// (sqlx; now `store::memory` runs it on this thread), each of the ~20 statements of a
/// clock stop was a round trip between the engine and that thread. With the two on
/// different CPUs each round trip woke the other CPU — on a virtual machine a vCPU wake-up,
/// measured here at ~200 µs a statement, four times what SQLite spends running it; on one
/// CPU it was a context switch. 2,000 members over 90 days (`benches/simulate.rs`, 2-core
/// VM): 45 s on the multi-threaded runtime, 34.6 s on a single-threaded one, 7.1 s pinned.
pub async fn run_pinned(config: Config, project: Project, scenario: Scenario) -> Result<Timeline, SimulateError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("simulate".to_string())
        .spawn(move || {
            // Where the process may run on one CPU only, or cannot be pinned, it runs as is.
            if let Some(core) = core_affinity::get_core_ids().and_then(|cores| cores.into_iter().next()) {
                core_affinity::set_for_current(core);
            }
            batch_scheduling();
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| SimulateError::Runtime(format!("cannot start the simulation's runtime: {e}")))
                .and_then(|runtime| runtime.block_on(run(&config, project, &scenario)));
            // The receiver is gone only if the caller stopped waiting.
            let _ = reply.send(result);
        })
        .map_err(|e| SimulateError::Runtime(format!("cannot start the simulation's thread: {e}")))?;
    answer.await.unwrap_or_else(|_| Err(SimulateError::Runtime("the simulation's thread panicked".to_string())))
}

/// Asks Linux to schedule this thread, and the threads it starts, as `SCHED_BATCH`: a
/// thread woken up does not preempt the one running. While SQLite ran on a connection
/// thread of its own (sqlx), that thread handed rows and results to the simulation's;
/// woken at each one, the simulation took the CPU from SQLite mid-statement (450,000
/// involuntary context switches for 2,000 members over 90 days; 138 with this; a year of
/// 10,000 members 87.8 s → 60.4 s). The in-memory store now runs SQLite on this thread
/// (`store::memory`), so little is left to preempt; it stays a batch job either way.
/// Nothing else changes; where it is refused, the simulation runs as scheduled.
fn batch_scheduling() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `sched_setscheduler` reads `param` and changes only this thread's policy.
        let refused = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0;
        if refused {
            tracing::debug!("SCHED_BATCH refused: {}", std::io::Error::last_os_error());
        }
    }
}

/// Runs a simulation of `project`'s journeys under `config`'s policies.
pub async fn run(config: &Config, project: Project, scenario: &Scenario) -> Result<Timeline, SimulateError> {
    let (from, until) = (scenario.from, scenario.until);
    if until < from {
        return Err(SimulateError::Fixture("--until is before --from".to_string()));
    }
    let settings = config.state_settings();
    let events = match &scenario.events {
        Some(path) => read_events(path)?,
        None => Vec::new(),
    };

    let store = Store::open("sqlite::memory:").await?;
    let mut options = import::Options::new(from, settings);
    options.bulk = Some(false);
    let summary = import::import_file(&store, ImportKind::Members, &scenario.members, &options).await?;
    if !summary.rejected.is_empty() {
        let lines: Vec<String> = summary
            .rejected
            .iter()
            .map(|r| format!("{}:{}: {}", scenario.members.display(), r.line, r.reason))
            .collect();
        return Err(SimulateError::Fixture(lines.join("\n")));
    }
    if let Some(products) = &scenario.products {
        options.recommend = config.recommendations.settings();
        let summary = import::import_file(&store, ImportKind::Products, products, &options).await?;
        if let Some(r) = summary.rejected.first() {
            return Err(SimulateError::Fixture(format!("{}:{}: {}", products.display(), r.line, r.reason)));
        }
    }
    let split = events.partition_point(|e| e.occurred_at < from);
    if split > 0 {
        store.append_events(&events[..split], from, &settings).await?;
    }
    let live = &events[split..];

    // The engine as `serve` builds it (`service::engine`), on the virtual clock.
    let date_journeys: Vec<String> =
        project.journeys.iter().filter(|j| matches!(j.trigger, Trigger::Date { .. })).map(|j| j.id.clone()).collect();
    let registry = Registry::load(project, &store, config.timezone(), from).await?;
    let policies = engine::policies(config).map_err(SimulateError::Fixture)?;
    // Links are signed as `serve` signs them, with a key of no value: nothing is sent.
    let links =
        crate::links::LinkSigner::new(&config.public_url, b"tidings-simulate: nothing is sent").expect("a 33-byte key");
    let mut engine_options = engine::Options::from_config(config, links);
    engine_options.worker = "simulate".to_string();
    // Schedules fire from `from` on (a firing at `from` itself included), and date triggers
    // likewise: no catch-up of what came before the window.
    engine_options.catch_up = chrono::Duration::seconds(1);
    // One worker on a clock that jumps hours at a time: with `serve`'s 60-second lease, the
    // inbox's and the scheduler's leases ran out between any two clock stops and were
    // written again at every one (27,000 write transactions in a year). Claims are let go
    // when their decision or send is written, so their length changes nothing here.
    engine_options.lease = chrono::Duration::days(1);
    // Nothing is sent, so no provider's rate is kept (its bucket runs on the wall clock).
    engine_options.rates.clear();
    for journey in &date_journeys {
        store.set_date_scan_cursor(journey, from - chrono::Duration::seconds(1)).await?;
    }
    let recorder = Recorder::default();
    let engine = Engine::new(store.clone(), registry, policies.clone(), settings, recorder.channels(), engine_options);

    let mut now = from;
    let mut last = from - chrono::Duration::seconds(1);
    let mut next_event = 0;
    let mut zones = engine.member_zones().await?;
    let default_zone = policies.default_timezone;
    let mut wakes = 0;
    loop {
        wakes += 1;
        let due = live[next_event..].partition_point(|e| e.occurred_at <= now);
        if due > 0 {
            let batch = &live[next_event..next_event + due];
            store.ingest_events(batch, now, &settings).await?;
            next_event += due;
            // Only a member's own fields (a new member, a move) bring a zone. None is taken
            // away: a zone nobody lives in any more costs a clock stop with nothing to do.
            for zone in batch.iter().filter(|e| e.name.starts_with("member.")).filter_map(|e| {
                e.properties
                    .get("timezone")
                    .and_then(|tz| tz.as_str())
                    .map(|tz| member_timezone(Some(tz), default_zone))
            }) {
                if !zones.contains(&zone) {
                    zones.push(zone);
                }
            }
        }
        let triggers = engine.next_trigger(last, &zones).await.is_some_and(|at| at <= now);
        engine.refresh_models(now).await?;
        engine.settle_jump(now, last, triggers).await?;
        let mut next = engine.next_wake(now, &zones).await?;
        if let Some(event) = live.get(next_event) {
            next = Some(next.map_or(event.occurred_at, |n| n.min(event.occurred_at)));
        }
        match next {
            Some(at) if at <= until => (last, now) = (now, at),
            _ => break,
        }
    }

    let mut timeline = timeline(&store, &recorder, &policies).await?;
    timeline.members = store.member_count().await? as u64;
    timeline.events = events.len();
    timeline.wakes = wakes;
    Ok(timeline)
}

/// The journal of the whole base, with each send's rendered message.
async fn timeline(
    store: &Store,
    recorder: &Recorder,
    policies: &crate::decision::Policies,
) -> Result<Timeline, SimulateError> {
    let journal = store.journal_of(None, i64::MAX).await?;
    // The deliveries each run made at each step, in order (a step visited twice in a loop
    // made two); skipped sends have their own lines in the journal.
    let mut sends: HashMap<(i64, String), VecDeque<crate::store::timeline::DeliveryOutcomeRow>> = HashMap::new();
    for d in store.all_deliveries().await? {
        if d.status != "skipped" {
            sends.entry((d.run_id, d.step.clone())).or_default().push_back(d);
        }
    }
    let mut ids: Vec<String> = journal.iter().map(|j| j.member_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let members = store.members(&ids).await?;
    let zone = |id: &str| members.get(id).map_or(policies.default_timezone, |m| policies.timezone_of(m));

    let mut out = Timeline::default();
    for j in journal {
        let mut line = Line {
            at: j.at,
            timezone: zone(&j.member_id),
            member: j.member_id,
            journey: j.journey_id,
            step: j.step,
            action: j.action,
            channel: j.channel,
            template: j.template,
            variant: j.variant,
            reason: j.reason,
            subject: None,
            body: None,
        };
        if line.action == "send"
            && let (Some(run), Some(step)) = (j.run_id, line.step.clone())
            && let Some(delivery) = sends.get_mut(&(run, step)).and_then(VecDeque::pop_front)
        {
            match delivery.status.as_str() {
                "sent" | "delivered" => (line.subject, line.body) = recorder.get(delivery.id),
                "failed" => {
                    out.failed += 1;
                    line.reason = Some(format!("failed: {}", delivery.last_error.unwrap_or_default()));
                }
                other => line.reason = Some(other.to_string()),
            }
        }
        out.lines.push(line);
    }
    // Members handled at the same instant come in the order the engine's batches met them:
    // order those by member and journey (stable, so each run's own lines keep their order).
    out.lines.sort_by(|a, b| (a.at, &a.member, &a.journey).cmp(&(b.at, &b.member, &b.journey)));
    Ok(out)
}

impl Timeline {
    /// The timeline for people: one line per happening with the member-local time, then
    /// totals.
    pub fn render_table(&self) -> String {
        let headers = [
            "LOCAL TIME",
            "UTC",
            "MEMBER",
            "JOURNEY",
            "STEP",
            "ACTION",
            "CHANNEL",
            "TEMPLATE",
            "VARIANT",
            "REASON",
            "MESSAGE",
        ];
        let dash = |v: &Option<String>| v.clone().unwrap_or_default();
        let rows: Vec<[String; 11]> = self
            .lines
            .iter()
            .map(|l| {
                let message = match (&l.subject, &l.body) {
                    (Some(s), Some(b)) => format!("{s} — {b}"),
                    (Some(s), None) => s.clone(),
                    (None, Some(b)) => b.clone(),
                    (None, None) => String::new(),
                };
                [
                    l.local_time(),
                    l.at.format("%Y-%m-%d %H:%M").to_string(),
                    l.member.clone(),
                    l.journey.clone(),
                    dash(&l.step),
                    l.action.clone(),
                    dash(&l.channel),
                    dash(&l.template),
                    dash(&l.variant),
                    dash(&l.reason),
                    message.split_whitespace().collect::<Vec<_>>().join(" "),
                ]
            })
            .collect();
        let width = |i: usize| {
            rows.iter()
                .map(|r| unicode_width::UnicodeWidthStr::width(r[i].as_str()))
                .chain(std::iter::once(headers[i].len()))
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..headers.len()).map(width).collect();
        let mut out = String::new();
        let mut push_row = |cells: &[String]| {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < cells.len() {
                    let pad = widths[i] - unicode_width::UnicodeWidthStr::width(cell.as_str());
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        };
        push_row(&headers.map(str::to_string));
        for row in &rows {
            push_row(row);
        }
        out.push('\n');
        out.push_str(&self.summary());
        out
    }

    /// Totals: sends per channel, skips per reason, exits, goals.
    pub fn summary(&self) -> String {
        let mut sends: BTreeMap<&str, usize> = BTreeMap::new();
        let mut skips: BTreeMap<&str, usize> = BTreeMap::new();
        let (mut entered, mut exits, mut goals) = (0, 0, 0);
        for l in &self.lines {
            match l.action.as_str() {
                "enter" => entered += 1,
                "send" if l.reason.is_none() => *sends.entry(l.channel.as_deref().unwrap_or("?")).or_default() += 1,
                "skip" => *skips.entry(l.reason.as_deref().unwrap_or("?")).or_default() += 1,
                "exit" => exits += 1,
                "goal" => goals += 1,
                _ => {}
            }
        }
        let list = |m: &BTreeMap<&str, usize>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
            }
        };
        let plural = |n: usize, word: &str| if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") };
        let mut out = format!(
            "{}, {}: {entered} entered, {} sent ({}), {} skipped ({}), {exits} exited, {goals} reached the goal\n",
            plural(self.members as usize, "member"),
            plural(self.events, "event"),
            sends.values().sum::<usize>(),
            list(&sends),
            skips.values().sum::<usize>(),
            list(&skips),
        );
        if self.failed > 0 {
            out.push_str(&format!("{} sends failed: see `failed:` in REASON\n", self.failed));
        }
        out
    }

    /// One JSON object per line (`--format json`).
    pub fn render_json_lines(&self) -> String {
        self.lines.iter().map(|l| format!("{}\n", l.to_json())).collect()
    }
}

/// `--from`/`--until`: an RFC 3339 timestamp, or a date (`2027-01-01`, the start of that
/// day in the default time zone).
pub fn parse_time(text: &str, default_timezone: Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        return Ok(crate::timing::local_instant(date, chrono::NaiveTime::MIN, default_timezone));
    }
    crate::state::patch::parse_timestamp(text)
        .map_err(|_| format!("`{text}` is not a time: write 2027-01-01T09:00:00+08:00 or a date like 2027-01-01"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_a_date_at_local_midnight() {
        let sh = chrono_tz::Asia::Shanghai;
        assert_eq!(parse_time("2027-01-01", sh).unwrap().to_rfc3339(), "2026-12-31T16:00:00+00:00");
        assert_eq!(parse_time("2027-01-01T09:00:00Z", sh).unwrap().to_rfc3339(), "2027-01-01T09:00:00+00:00");
        assert!(parse_time("next tuesday", sh).unwrap_err().contains("not a time"));
    }
}

/// What `tidings simulate` was asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub members: PathBuf,
    pub events: Option<PathBuf>,
    pub products: Option<PathBuf>,
    pub from: String,
    pub until: String,
    pub workflows: Option<PathBuf>,
    pub templates: Option<PathBuf>,
    pub json: bool,
}

/// `tidings simulate`: exit 0 with the timeline; 1 when the journeys have errors, a
/// fixture row is rejected or a send failed to render; 2 for bad times.
pub async fn cli(config: &Config, request: &Request) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context as _;
    use std::io::Write as _;
    use std::process::ExitCode;
    let mut config = config.clone();
    if let Some(dir) = &request.workflows {
        config.workflows_dir = dir.clone();
    }
    if let Some(dir) = &request.templates {
        config.templates_dir = dir.clone();
    }
    let tz = config.timezone();
    let (from, until) = match (parse_time(&request.from, tz), parse_time(&request.until, tz)) {
        (Ok(from), Ok(until)) => (from, until),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let sources = crate::project::Sources::standard(&config.workflows_dir, &config.templates_dir)
        .with_context(|| format!("reading {}", config.workflows_dir.display()))?;
    let project = Project::load(&sources, tz);
    let errors = project.count(crate::diagnostic::Severity::Error);
    if errors > 0 {
        for d in &project.diagnostics {
            eprintln!("{}", d.render());
        }
        eprintln!("error: {errors} error(s) in the journeys; `tidings validate` shows them, fix them to simulate");
        return Ok(ExitCode::from(1));
    }
    let scenario = Scenario {
        members: request.members.clone(),
        events: request.events.clone(),
        products: request.products.clone(),
        from,
        until,
    };
    let timeline = match run_pinned(config, project, scenario).await {
        Ok(timeline) => timeline,
        Err(SimulateError::Fixture(problem)) => {
            eprintln!("error: {problem}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e).context("simulating"),
    };
    let mut out = std::io::stdout().lock();
    if request.json {
        write!(out, "{}", timeline.render_json_lines())?;
    } else {
        write!(out, "{}", timeline.render_table())?;
    }
    Ok(if timeline.failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
