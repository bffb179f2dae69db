//! `tidings import members|events|products FILE`: stream a CSV or JSON-lines file into the
//! store.
//!
//! A reader thread parses and checks each row (the rules of `state::patch` and
//! `state::check_event`) and hands batches to the writer, which stores each batch in one
//! transaction, so parsing and writing overlap on two cores. A bad row is rejected with
//! its line number and reason and never reaches the database; the rows around it are
//! written. A problem with the file itself (an unknown column, no `id` column) stops the
//! import before anything is written. After the rows, lifecycle, CLV and RFM are
//! recomputed for the whole base, and after events or products the recommendation models.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::member::Event;
use crate::recommend::{Product, product};
use crate::state::patch::{self, Field, Patch};
use crate::state::{Settings, check_event};
use crate::store::products::ModelBuilt;
use crate::store::{MemberImport, Recomputed, Store, StoreError};

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportKind {
    /// Members: one per row, with the fields of DESIGN §1.
    Members,
    /// Events: `id`, `member_id`, `name`, `occurred_at`, `properties`.
    Events,
    /// The catalogue: `id`, `title`, `url`, `image_url`, `price`, `currency`, `category`,
    /// `tags`, `in_stock`, `published`.
    Products,
}

/// How a file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl InputFormat {
    /// By extension (`.csv`; `.jsonl`, `.ndjson`, `.json`), else by the first character.
    pub fn detect(path: &Path, start: &[u8]) -> InputFormat {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("csv") => InputFormat::Csv,
            Some("jsonl" | "ndjson" | "json") => InputFormat::JsonLines,
            _ if start.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') => InputFormat::JsonLines,
            _ => InputFormat::Csv,
        }
    }
}

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// 1-based line where the row starts.
    pub line: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub kind: Option<ImportKind>,
    pub file: PathBuf,
    /// Rows read (not counting the header and blank lines).
    pub rows: u64,
    /// Members: new; events: stored.
    pub inserted: u64,
    /// Members that existed and were updated.
    pub updated: u64,
    /// Events whose id was already stored: ignored.
    pub duplicates: u64,
    /// Members created because an event named them.
    pub members_created: u64,
    /// Events older than their member's last import: stored, no effect on the member.
    pub stale: u64,
    pub rejected: Vec<Rejection>,
    pub seconds: f64,
    /// The base-wide recompute that followed.
    pub derived: Option<Recomputed>,
    pub derived_seconds: f64,
    /// The recommendation models rebuilt after events or products.
    pub models: Option<ModelBuilt>,
    pub models_seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    /// The file as a whole cannot be imported (its header); nothing was written.
    #[error("{0}")]
    File(String),
    #[error("reading the file: {0}")]
    Read(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How to import.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rows per transaction.
    pub batch_size: usize,
    /// The time the file describes the members at (see `state::fold`): usually now.
    pub as_of: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub settings: Settings,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// Recompute lifecycle, CLV and RFM for the whole base afterwards (and the
    /// recommendation models after events or products).
    pub recompute: bool,
    /// How the recommendation models are built (`[recommendations]`).
    pub recommend: crate::recommend::Settings,
    /// Defer the member indexes to the end ([`Store::start_bulk_load`]): `None` decides by
    /// size — a members file of over ~100,000 rows into a smaller base.
    pub bulk: Option<bool>,
}

impl Options {
    pub fn new(now: DateTime<Utc>, settings: Settings) -> Options {
        Options {
            batch_size: 5_000,
            as_of: now,
            now,
            settings,
            progress: false,
            recompute: true,
            recommend: crate::recommend::Settings::default(),
            bulk: None,
        }
    }
}

/// Imports a file.
pub async fn import_file(
    store: &Store,
    kind: ImportKind,
    path: &Path,
    options: &Options,
) -> Result<Summary, ImportError> {
    let open =
        |path: &Path| std::fs::File::open(path).map_err(|source| ImportError::Open { path: path.into(), source });
    let mut file = BufReader::with_capacity(1 << 20, open(path)?);
    let start = file.fill_buf().map_err(ImportError::Read)?.to_vec();
    let format = InputFormat::detect(path, &start);
    let len = file.get_ref().metadata().ok().map(|m| m.len());
    let mut summary = import_reader(store, kind, format, file, len, options).await?;
    summary.file = path.to_path_buf();
    Ok(summary)
}

/// A batch the reader hands the writer: rows and the line each starts on.
enum Batch {
    Members(Vec<u64>, Vec<MemberImport>),
    Events(Vec<u64>, Vec<Event>),
    Products(Vec<u64>, Vec<Product>),
}

enum Message {
    Batch { batch: Batch, rejected: Vec<Rejection>, rows: u64, bytes: u64 },
    Fatal(ImportError),
}

/// Imports from any reader (`len` in bytes, for the progress bar).
pub async fn import_reader<R: Read + Send + 'static>(
    store: &Store,
    kind: ImportKind,
    format: InputFormat,
    reader: R,
    len: Option<u64>,
    options: &Options,
) -> Result<Summary, ImportError> {
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(2);
    let batch_size = options.batch_size.max(1);
    let reader_thread = std::thread::spawn(move || {
        let mut sink = Sink { tx, kind, batch_size, pending: Vec::new(), rejected: Vec::new(), rows: 0 };
        let result = match format {
            InputFormat::Csv => read_csv(reader, &mut sink),
            InputFormat::JsonLines => read_json_lines(reader, &mut sink),
        };
        match result {
            Ok(bytes) => {
                sink.flush(bytes);
            }
            Err(error) => {
                let _ = sink.tx.blocking_send(Message::Fatal(error));
            }
        }
    });

    let progress = progress_bar(options.progress, len);
    let mut summary = Summary { kind: Some(kind), ..Summary::default() };
    let mut fatal = None;
    let bulk = match options.bulk {
        Some(bulk) => bulk,
        None => {
            let estimated_rows = len.unwrap_or(0) / 200;
            kind == ImportKind::Members
                && estimated_rows >= 100_000
                && store.member_count().await.is_ok_and(|n| (n as u64) < estimated_rows)
        }
    };
    if bulk && kind == ImportKind::Members {
        store.start_bulk_load().await?;
    }
    while let Some(message) = rx.recv().await {
        match message {
            Message::Fatal(error) => {
                fatal = Some(error);
                break;
            }
            Message::Batch { batch, rejected, rows, bytes } => {
                summary.rows += rows;
                summary.rejected.extend(rejected);
                if let Err(error) = write_batch(store, batch, options, &mut summary).await {
                    fatal = Some(error);
                    break;
                }
                progress.set_position(bytes);
                progress.set_message(format!("{} rows", summary.rows));
            }
        }
    }
    drop(rx);
    let _ = reader_thread.join();
    if bulk {
        progress.set_message("building indexes");
        if let Err(error) = store.finish_bulk_load().await {
            fatal.get_or_insert(error.into());
        }
    }
    progress.finish_and_clear();
    if let Some(error) = fatal {
        return Err(error);
    }
    summary.rejected.sort_by_key(|r| r.line);
    summary.seconds = started.elapsed().as_secs_f64();
    let wrote = summary.inserted + summary.updated + summary.members_created > 0;
    if options.recompute && wrote && kind != ImportKind::Members {
        let started = Instant::now();
        summary.models = Some(store.recompute_recommendations(options.now, &options.recommend).await?);
        summary.models_seconds = started.elapsed().as_secs_f64();
    }
    if options.recompute && wrote && kind != ImportKind::Products {
        let started = Instant::now();
        summary.derived = Some(store.recompute_derived(options.now, &options.settings).await?);
        summary.derived_seconds = started.elapsed().as_secs_f64();
    }
    Ok(summary)
}

fn progress_bar(wanted: bool, len: Option<u64>) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !wanted || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => indicatif::ProgressBar::new(len).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} (eta {eta})",
            )
            .expect("a valid template"),
        ),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

/// Stores one batch; when the database refuses the batch, retries its rows one by one so
/// that only the rows it refuses are rejected (and a database that refuses everything
/// stops the import).
async fn write_batch(store: &Store, batch: Batch, options: &Options, summary: &mut Summary) -> Result<(), ImportError> {
    match batch {
        Batch::Members(lines, rows) => {
            match store.import_members(&rows, options.as_of, options.now, &options.settings).await {
                Ok(w) => {
                    summary.inserted += w.inserted;
                    summary.updated += w.updated;
                }
                Err(error) => {
                    let mut any = false;
                    for (line, row) in lines.into_iter().zip(rows) {
                        match store.import_members(&[row], options.as_of, options.now, &options.settings).await {
                            Ok(w) => {
                                any = true;
                                summary.inserted += w.inserted;
                                summary.updated += w.updated;
                            }
                            Err(e) => summary
                                .rejected
                                .push(Rejection { line, reason: format!("the database refused it: {e}") }),
                        }
                    }
                    if !any {
                        return Err(error.into());
                    }
                }
            }
        }
        Batch::Products(lines, rows) => match store.upsert_products(&rows, options.now).await {
            Ok(w) => {
                summary.inserted += w.inserted;
                summary.updated += w.updated;
            }
            Err(error) => {
                let mut any = false;
                for (line, row) in lines.into_iter().zip(rows) {
                    match store.upsert_products(std::slice::from_ref(&row), options.now).await {
                        Ok(w) => {
                            any = true;
                            summary.inserted += w.inserted;
                            summary.updated += w.updated;
                        }
                        Err(e) => {
                            summary.rejected.push(Rejection { line, reason: format!("the database refused it: {e}") })
                        }
                    }
                }
                if !any {
                    return Err(error.into());
                }
            }
        },
        Batch::Events(lines, rows) => {
            let mut add = |w: crate::store::EventsWritten| {
                summary.inserted += w.inserted;
                summary.duplicates += w.duplicates;
                summary.members_created += w.members_created;
                summary.stale += w.stale;
            };
            match store.append_events(&rows, options.now, &options.settings).await {
                Ok(w) => add(w),
                Err(error) => {
                    let mut any = false;
                    let mut refused = Vec::new();
                    for (line, event) in lines.into_iter().zip(rows) {
                        match store.append_events(std::slice::from_ref(&event), options.now, &options.settings).await {
                            Ok(w) => {
                                any = true;
                                add(w);
                            }
                            Err(e) => refused.push(Rejection { line, reason: format!("the database refused it: {e}") }),
                        }
                    }
                    summary.rejected.extend(refused);
                    if !any {
                        return Err(error.into());
                    }
                }
            }
        }
    }
    Ok(())
}

/// The reader's side: collects rows into batches and sends them.
struct Sink {
    tx: tokio::sync::mpsc::Sender<Message>,
    kind: ImportKind,
    batch_size: usize,
    pending: Vec<(u64, Item)>,
    rejected: Vec<Rejection>,
    rows: u64,
}

enum Item {
    Member(MemberImport),
    Event(Event),
    Product(Product),
}

impl Sink {
    fn row(&mut self, line: u64, item: Result<Item, String>, bytes: u64) -> Result<(), ImportError> {
        self.rows += 1;
        match item {
            Ok(item) => self.pending.push((line, item)),
            Err(reason) => self.rejected.push(Rejection { line, reason }),
        }
        if self.pending.len() >= self.batch_size && !self.flush(bytes) {
            // The writer stopped on an error that it reports itself.
            return Err(ImportError::File("the import stopped".to_string()));
        }
        Ok(())
    }

    /// Sends what is pending; false when the writer has stopped.
    fn flush(&mut self, bytes: u64) -> bool {
        let pending = std::mem::take(&mut self.pending);
        let batch = match self.kind {
            ImportKind::Members => {
                let (lines, rows) = pending
                    .into_iter()
                    .filter_map(|(l, i)| match i {
                        Item::Member(m) => Some((l, m)),
                        _ => None,
                    })
                    .unzip();
                Batch::Members(lines, rows)
            }
            ImportKind::Events => {
                let (lines, rows) = pending
                    .into_iter()
                    .filter_map(|(l, i)| match i {
                        Item::Event(e) => Some((l, e)),
                        _ => None,
                    })
                    .unzip();
                Batch::Events(lines, rows)
            }
            ImportKind::Products => {
                let (lines, rows) = pending
                    .into_iter()
                    .filter_map(|(l, i)| match i {
                        Item::Product(p) => Some((l, p)),
                        _ => None,
                    })
                    .unzip();
                Batch::Products(lines, rows)
            }
        };
        let message = Message::Batch {
            batch,
            rejected: std::mem::take(&mut self.rejected),
            rows: std::mem::take(&mut self.rows),
            bytes,
        };
        self.tx.blocking_send(message).is_ok()
    }
}

/// How each column of a members file is read.
#[derive(Debug, Clone)]
enum Column {
    Id,
    Field(Field),
    Attribute(String),
}

/// Reads the header of a members file.
fn member_columns(header: &[String]) -> Result<Vec<Column>, ImportError> {
    let mut columns = Vec::with_capacity(header.len());
    let mut problems = Vec::new();
    for name in header {
        let column = if name == "id" {
            Some(Column::Id)
        } else if let Some(attribute) = name.strip_prefix("attributes.") {
            if attribute.is_empty() || attribute.contains('.') {
                problems.push(format!(
                    "column `{name}`: write one attribute name after `attributes.` (nested values go in the `attributes` JSON column)"
                ));
                None
            } else {
                Some(Column::Attribute(attribute.to_string()))
            }
        } else if let Some(field) = Field::from_name(name) {
            Some(Column::Field(field))
        } else {
            problems.push(unknown_column(name, member_column_names()));
            None
        };
        columns.extend(column);
    }
    if !header.iter().any(|h| h == "id") {
        problems.push("there is no `id` column (the shop's customer id)".to_string());
    }
    for (i, name) in header.iter().enumerate() {
        if header[..i].contains(name) {
            problems.push(format!("column `{name}` appears twice"));
        }
    }
    if problems.is_empty() { Ok(columns) } else { Err(ImportError::File(problems.join("; "))) }
}

/// The columns of a members file: `id` and every field a shop can set.
fn member_column_names() -> impl Iterator<Item = &'static str> {
    std::iter::once("id").chain(Field::ALL.iter().map(|f| f.name()))
}

const EVENT_COLUMN_NAMES: &[&str] = &["id", "member_id", "name", "occurred_at", "properties"];

fn unknown_column<'k>(name: &str, known: impl IntoIterator<Item = &'k str>) -> String {
    let best = known.into_iter().map(|k| (strsim::jaro_winkler(name, k), k)).max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((score, k)) if score > 0.8 => format!("unknown column `{name}` (did you mean `{k}`?)"),
        _ => format!("unknown column `{name}`"),
    }
}

/// Parses the cells of one members-file row.
/// Every problem of the row is reported, joined with `; `.
fn member_from_cells(columns: &[Column], cells: &[&str]) -> Result<MemberImport, String> {
    let mut id = None;
    let mut patch = Patch::new();
    let mut problems = Vec::new();
    for (column, cell) in columns.iter().zip(cells) {
        match column {
            Column::Id => id = Some(*cell),
            _ if cell.is_empty() => {}
            Column::Field(field) => match patch::parse_text(*field, cell) {
                Ok(value) => patch.set(*field, value),
                Err(e) => problems.push(format!("{}: {e}", field.name())),
            },
            Column::Attribute(name) => {
                let mut map = Map::new();
                map.insert(name.clone(), patch::attribute_from_text(cell));
                match patch::parse_json(Field::Attributes, &Value::Object(map)) {
                    Ok(value) => patch.set(Field::Attributes, value),
                    Err(e) => problems.push(format!("attributes.{name}: {e}")),
                }
            }
        }
    }
    let id = check_id(id.unwrap_or(""), "id").map_err(|e| {
        problems.insert(0, e);
        problems.join("; ")
    });
    match id {
        Ok(id) if problems.is_empty() => Ok(MemberImport { id, patch }),
        Ok(_) => Err(problems.join("; ")),
        Err(all) => Err(all),
    }
}

fn check_id(id: &str, what: &str) -> Result<String, String> {
    if id.is_empty() {
        Err(format!("{what} is empty"))
    } else if id.contains('\0') {
        Err(format!("{what} contains a NUL character"))
    } else {
        Ok(id.to_string())
    }
}

/// Parses one members-file JSON object.
fn member_from_json(object: Map<String, Value>) -> Result<MemberImport, String> {
    let mut id = Err("there is no `id`".to_string());
    let mut patch = Patch::new();
    let mut problems = Vec::new();
    for (key, value) in object {
        let result = if key == "id" {
            id = match value {
                Value::String(s) => check_id(&s, "id"),
                _ => Err("id must be a string".to_string()),
            };
            Ok(())
        } else if let Some(name) = key.strip_prefix("attributes.") {
            let mut map = Map::new();
            map.insert(name.to_string(), value);
            patch::parse_json(Field::Attributes, &Value::Object(map))
                .map(|v| patch.set(Field::Attributes, v))
                .map_err(|e| format!("{key}: {e}"))
        } else if let Some(field) = Field::from_name(&key) {
            patch::parse_json(field, &value).map(|v| patch.set(field, v)).map_err(|e| format!("{key}: {e}"))
        } else {
            Err(unknown_column(&key, member_column_names()).replacen("column", "field", 1))
        };
        problems.extend(result.err());
    }
    match id {
        Ok(id) if problems.is_empty() => Ok(MemberImport { id, patch }),
        Ok(_) => Err(problems.join("; ")),
        Err(e) => {
            problems.insert(0, e);
            Err(problems.join("; "))
        }
    }
}

/// Builds and checks an event from its parts.
fn event_from_parts(
    id: &str,
    member_id: &str,
    name: &str,
    occurred_at: &str,
    properties: Value,
) -> Result<Event, String> {
    let id = check_id(id, "id")?;
    let member_id = check_id(member_id, "member_id")?;
    if !crate::schema::is_event_name(name) {
        return Err(format!("`{name}` is not an event name (lowercase dotted words, like order.placed)"));
    }
    let occurred_at = patch::parse_timestamp(occurred_at).map_err(|e| format!("occurred_at: {e}"))?;
    let properties = match properties {
        Value::Null => Value::Object(Map::new()),
        Value::Object(map) => {
            patch::parse_json(Field::Attributes, &Value::Object(map.clone()))
                .map_err(|e| format!("properties: {e}"))?;
            Value::Object(map)
        }
        _ => return Err("properties must be a JSON object".to_string()),
    };
    let event = Event { id, member_id, name: name.to_string(), occurred_at, properties };
    check_event(&event)?;
    Ok(event)
}

/// Which column of an events CSV holds what.
struct EventColumns {
    id: usize,
    member_id: usize,
    name: usize,
    occurred_at: usize,
    properties: Option<usize>,
}

fn event_columns(header: &[String]) -> Result<EventColumns, ImportError> {
    let mut problems = Vec::new();
    for (i, name) in header.iter().enumerate() {
        if !EVENT_COLUMN_NAMES.contains(&name.as_str()) {
            problems.push(unknown_column(name, EVENT_COLUMN_NAMES.iter().copied()));
        } else if header[..i].contains(name) {
            problems.push(format!("column `{name}` appears twice"));
        }
    }
    let find = |n: &str, problems: &mut Vec<String>| match header.iter().position(|h| h == n) {
        Some(i) => i,
        None => {
            problems.push(format!("there is no `{n}` column"));
            0
        }
    };
    let columns = EventColumns {
        id: find("id", &mut problems),
        member_id: find("member_id", &mut problems),
        name: find("name", &mut problems),
        occurred_at: find("occurred_at", &mut problems),
        properties: header.iter().position(|h| h == "properties"),
    };
    if problems.is_empty() { Ok(columns) } else { Err(ImportError::File(problems.join("; "))) }
}

fn event_from_cells(c: &EventColumns, cells: &[&str]) -> Result<Event, String> {
    let properties = match c.properties.map(|i| cells[i]) {
        None | Some("") => Value::Null,
        Some(text) => serde_json::from_str(text).map_err(|e| format!("properties: not JSON: {e}"))?,
    };
    event_from_parts(cells[c.id], cells[c.member_id], cells[c.name], cells[c.occurred_at], properties)
}

pub(crate) fn event_from_json(mut object: Map<String, Value>) -> Result<Event, String> {
    if let Some(key) = object.keys().find(|k| !EVENT_COLUMN_NAMES.contains(&k.as_str())) {
        return Err(unknown_column(key, EVENT_COLUMN_NAMES.iter().copied()).replacen("column", "field", 1));
    }
    let mut text = |key: &str| match object.remove(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(format!("there is no `{key}`")),
        Some(_) => Err(format!("{key} must be a string")),
    };
    let (id, member_id, name, occurred_at) = (text("id")?, text("member_id")?, text("name")?, text("occurred_at")?);
    let properties = object.remove("properties").unwrap_or(Value::Null);
    event_from_parts(&id, &member_id, &name, &occurred_at, properties)
}

/// Checks the header of a products file: known columns, once each, and an `id`.
fn product_columns(header: &[String]) -> Result<(), ImportError> {
    let mut problems = Vec::new();
    for (i, name) in header.iter().enumerate() {
        if !product::COLUMNS.contains(&name.as_str()) {
            problems.push(unknown_column(name, product::COLUMNS.iter().copied()));
        } else if header[..i].contains(name) {
            problems.push(format!("column `{name}` appears twice"));
        }
    }
    for required in ["id", "title"] {
        if !header.iter().any(|h| h == required) {
            problems.push(format!("there is no `{required}` column"));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(ImportError::File(problems.join("; "))) }
}

/// Members seen so far in this file, to reject a second row with the same id.
#[derive(Default)]
struct SeenIds(HashMap<Box<str>, u64>);

impl SeenIds {
    fn check(&mut self, item: Result<Item, String>, line: u64) -> Result<Item, String> {
        let item = item?;
        if let Item::Member(m) = &item {
            if let Some(first) = self.0.get(m.id.as_str()) {
                return Err(format!("duplicate id `{}` (first on line {first})", m.id));
            }
            self.0.insert(m.id.as_str().into(), line);
        }
        Ok(item)
    }
}

/// The line and carriage-return bytes the CSV parser has read and not yet passed, to
/// number lines ourselves: the `csv` crate's record positions miscount lines after a blank
/// line or with CRLF endings, and point before the line ending that precedes a record.
#[derive(Default)]
struct LineEnds {
    /// (byte offset, b'\n' or b'\r'), in order.
    ends: std::collections::VecDeque<(u64, u8)>,
    /// `\n` bytes before the first entry of `ends`.
    lines_before: u64,
}

impl LineEnds {
    /// The 1-based line of the first byte at or after `position` that ends no line.
    fn line_at(&mut self, position: u64) -> u64 {
        while let Some(&(at, byte)) = self.ends.front() {
            if at >= position {
                break;
            }
            self.lines_before += u64::from(byte == b'\n');
            self.ends.pop_front();
        }
        let (mut cursor, mut extra) = (position, 0);
        for &(at, byte) in &self.ends {
            if at != cursor {
                break;
            }
            extra += u64::from(byte == b'\n');
            cursor += 1;
        }
        self.lines_before + extra + 1
    }
}

/// A reader that records where lines end, for [`LineEnds`].
struct Tracked<R> {
    inner: R,
    offset: u64,
    ends: std::rc::Rc<std::cell::RefCell<LineEnds>>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut ends = self.ends.borrow_mut();
        for (i, &byte) in buf[..n].iter().enumerate() {
            if byte == b'\n' || byte == b'\r' {
                ends.ends.push_back((self.offset + i as u64, byte));
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// Reads a CSV file; returns the bytes read.
fn read_csv<R: Read>(reader: R, sink: &mut Sink) -> Result<u64, ImportError> {
    let ends = std::rc::Rc::new(std::cell::RefCell::new(LineEnds::default()));
    let reader = Tracked { inner: reader, offset: 0, ends: ends.clone() };
    let mut csv = csv::ReaderBuilder::new().flexible(true).has_headers(true).from_reader(reader);
    let header: Vec<String> = csv
        .byte_headers()
        .map_err(|e| ImportError::File(format!("cannot read the header: {e}")))?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = String::from_utf8_lossy(h);
            let h = if i == 0 { h.trim_start_matches('\u{feff}') } else { &h };
            h.trim().to_string()
        })
        .collect();
    if header.iter().all(String::is_empty) {
        return Err(ImportError::File("the file is empty: expected a header row".to_string()));
    }
    enum Columns {
        Members(Vec<Column>),
        Events(EventColumns),
        Products,
    }
    let columns = match sink.kind {
        ImportKind::Members => Columns::Members(member_columns(&header)?),
        ImportKind::Events => Columns::Events(event_columns(&header)?),
        ImportKind::Products => {
            product_columns(&header)?;
            Columns::Products
        }
    };
    let mut seen = SeenIds::default();
    let mut record = csv::ByteRecord::new();
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(ImportError::File(format!("cannot read the file: {e}"))),
        }
        let line = ends.borrow_mut().line_at(record.position().map_or(0, csv::Position::byte));
        let bytes = csv.position().byte();
        if record.len() == 1 && record.get(0).is_some_and(<[u8]>::is_empty) {
            continue; // a blank line
        }
        let item = (|| {
            if record.len() != header.len() {
                let spans_lines = record.iter().any(|f| f.contains(&b'\n'));
                return Err(format!(
                    "expected {} fields, found {}{}",
                    header.len(),
                    record.len(),
                    if spans_lines { " (an unclosed quote makes one field of the lines after it)" } else { "" }
                ));
            }
            let cells: Vec<&str> = record
                .iter()
                .zip(&header)
                .map(|(cell, name)| std::str::from_utf8(cell).map_err(|_| format!("{name}: not valid UTF-8")))
                .collect::<Result<_, _>>()?;
            match &columns {
                Columns::Members(c) => member_from_cells(c, &cells).map(Item::Member),
                Columns::Events(c) => event_from_cells(c, &cells).map(Item::Event),
                Columns::Products => product::from_cells(&header, &cells).map(Item::Product),
            }
        })();
        let item = seen.check(item, line);
        sink.row(line, item, bytes)?;
    }
    Ok(csv.position().byte())
}

/// Reads a JSON-lines file; returns the bytes read.
fn read_json_lines<R: Read>(reader: R, sink: &mut Sink) -> Result<u64, ImportError> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut buffer = Vec::new();
    let mut seen = SeenIds::default();
    let (mut line, mut bytes) = (0u64, 0u64);
    loop {
        buffer.clear();
        let n = reader.read_until(b'\n', &mut buffer).map_err(ImportError::Read)?;
        if n == 0 {
            break;
        }
        line += 1;
        bytes += n as u64;
        let item = (|| {
            let text = std::str::from_utf8(&buffer).map_err(|_| "not valid UTF-8".to_string())?;
            let text = text.trim_start_matches('\u{feff}').trim();
            if text.is_empty() {
                return Ok(None);
            }
            let object = match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(object)) => object,
                Ok(_) => return Err("expected a JSON object".to_string()),
                Err(e) => return Err(format!("not JSON: {e}")),
            };
            match sink.kind {
                ImportKind::Members => member_from_json(object).map(|m| Some(Item::Member(m))),
                ImportKind::Events => event_from_json(object).map(|e| Some(Item::Event(e))),
                ImportKind::Products => product::from_json(&object).map(|p| Some(Item::Product(p))),
            }
        })();
        let item = match item {
            Ok(None) => continue,
            Ok(Some(item)) => Ok(item),
            Err(e) => Err(e),
        };
        let item = seen.check(item, line);
        sink.row(line, item, bytes)?;
    }
    Ok(bytes)
}

impl Summary {
    /// The summary as people read it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let kind = match self.kind {
            Some(ImportKind::Members) => "members",
            Some(ImportKind::Events) => "events",
            Some(ImportKind::Products) => "products",
            None => "rows",
        };
        let rejected = self.rejected.len();
        let rate = if self.seconds > 0.0 { self.rows as f64 / self.seconds } else { 0.0 };
        match self.kind {
            Some(ImportKind::Events) => out.push_str(&format!(
                "imported {kind} from {}: {} inserted, {} duplicates ignored, {} rejected; {} members created; {} older than their member's last import (stored, no change)\n",
                self.file.display(),
                self.inserted,
                self.duplicates,
                rejected,
                self.members_created,
                self.stale,
            )),
            _ => out.push_str(&format!(
                "imported {kind} from {}: {} inserted, {} updated, {} rejected\n",
                self.file.display(),
                self.inserted,
                self.updated,
                rejected,
            )),
        }
        out.push_str(&format!("read {} rows in {:.2}s ({:.0} rows/s)\n", self.rows, self.seconds, rate));
        if let Some(d) = &self.derived {
            out.push_str(&format!(
                "recomputed lifecycle, CLV and RFM in {:.2}s: {} members with orders scored; {} lifecycle/CLV and {} RFM changes\n",
                self.derived_seconds, d.rfm_scored, d.lifecycle_changed, d.rfm_changed
            ));
        }
        if let Some(m) = &self.models {
            out.push_str(&format!(
                "rebuilt the recommendation models in {:.2}s: {} co-purchase pairs, {} bestseller ranks\n",
                self.models_seconds, m.pairs, m.bestsellers
            ));
        }
        for r in &self.rejected {
            out.push_str(&format!("line {}: {}\n", r.line, r.reason));
        }
        out
    }
}

/// `tidings import KIND FILE`: exit 0 when every row was imported, 1 when some were
/// rejected or the file cannot be imported.
pub async fn run(
    config: &crate::config::Config,
    kind: ImportKind,
    file: &Path,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let store = Store::open_for(&config.database_url, crate::store::Workload::Bulk)
        .await
        .with_context(|| format!("opening {}", config.database_url))?;
    let mut options = Options::new(Utc::now(), config.state_settings());
    options.recommend = config.recommendations.settings();
    options.progress = !json;
    let summary = match import_file(&store, kind, file, &options).await {
        Ok(summary) => summary,
        Err(ImportError::File(problem)) => {
            eprintln!("error: {}: {problem}; nothing was imported", file.display());
            return Ok(std::process::ExitCode::from(1));
        }
        Err(e) => return Err(e).with_context(|| format!("importing {}", file.display())),
    };
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    } else {
        write!(out, "{}", summary.render())?;
    }
    Ok(if summary.rejected.is_empty() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::FieldValue;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_unknown_column_stops_the_file_with_a_suggestion() {
        let Err(ImportError::File(problem)) = member_columns(&header(&["id", "emial", "attributes.a.b"])) else {
            panic!()
        };
        assert!(problem.contains("unknown column `emial` (did you mean `email`?)"), "{problem}");
        assert!(problem.contains("attributes.a.b"), "{problem}");
        assert!(member_columns(&header(&["email"])).is_err());
    }

    #[test]
    fn csv_rows_are_numbered_by_the_line_they_start_on() {
        let lines = |data: &'static [u8]| {
            let ends = std::rc::Rc::new(std::cell::RefCell::new(LineEnds::default()));
            let reader = Tracked { inner: data, offset: 0, ends: ends.clone() };
            let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
            let mut record = csv::ByteRecord::new();
            let mut out = Vec::new();
            while csv.read_byte_record(&mut record).unwrap() {
                out.push(ends.borrow_mut().line_at(record.position().unwrap().byte()));
            }
            out
        };
        assert_eq!(lines(b"id,a\r\nm1,x\r\nm2,y\r\n\r\nm3,z\r\n"), vec![2, 3, 5]);
        assert_eq!(lines(b"id,a\nm1,x\nm2,\"two\nlines\"\n\n\nm3,z"), vec![2, 3, 7]);
    }

    #[test]
    fn empty_cells_leave_fields_alone() {
        let columns = member_columns(&header(&["id", "email", "points", "attributes.size"])).unwrap();
        let m = member_from_cells(&columns, &["m1", "", "10", "M"]).unwrap();
        assert_eq!(m.patch.get(Field::Email), None);
        assert_eq!(m.patch.get(Field::Points), Some(&FieldValue::Int(10)));
        assert!(member_from_cells(&columns, &["", "", "", ""]).unwrap_err().contains("id is empty"));
    }

    #[test]
    fn events_are_checked_before_they_are_stored() {
        let ok = event_from_json(
            serde_json::from_str(
                r#"{"id":"e1","member_id":"m1","name":"order.placed","occurred_at":"2026-01-01T00:00:00Z","properties":{"total":100}}"#,
            )
            .unwrap(),
        );
        assert!(ok.is_ok());
        let bad = |json: &str| event_from_json(serde_json::from_str(json).unwrap()).unwrap_err();
        assert!(
            bad(r#"{"id":"e1","member_id":"m1","name":"Order Placed","occurred_at":"2026-01-01T00:00:00Z"}"#)
                .contains("not an event name")
        );
        assert!(bad(r#"{"id":"e1","member_id":"m1","name":"x.y","occurred_at":"yesterday"}"#).contains("occurred_at"));
        assert!(
            bad(r#"{"id":"e1","member_id":"m1","name":"x.y","occurred_at":"2026-01-01T00:00:00Z","when":1}"#)
                .contains("unknown field `when`")
        );
    }
}
