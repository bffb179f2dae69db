//! The command line (DESIGN §5): argument types and one function per command.
//! Exit codes: 0 ok, 1 problems found, 2 bad usage.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::diagnostic::Severity;
use crate::project::{Project, Sources};

#[derive(Debug, Parser)]
#[command(name = "tidings", version, about = "Member-lifecycle marketing journeys, defined in git")]
pub struct Cli {
    /// The config file; defaults apply when `tidings.toml` is absent.
    #[arg(long, global = true, default_value = "tidings.toml", env = "TIDINGS_CONFIG")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check journeys and templates; print every problem with file:line:col.
    Validate {
        /// Journey files or folders, and a templates folder (default: the config's).
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = DiagnosticFormat::Full)]
        format: DiagnosticFormat,
    },
    /// Print the JSON Schema of a journey file (for editor autocomplete).
    Schema,
    /// Run the service: HTTP, the scheduler and workers in one process.
    Serve,
    /// Run workers only (no HTTP), to scale out beside `serve` on a shared PostgreSQL.
    Worker,
    /// Create or update the database schema.
    Migrate,
    /// Load members or events from a CSV or JSON-lines file (then recompute lifecycle, CLV, RFM).
    Import {
        /// What the file holds.
        #[arg(value_enum)]
        kind: crate::import::ImportKind,
        /// A `.csv` or `.jsonl` file.
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = DataFormat::Table)]
        format: DataFormat,
    },
    /// Show a member: fields, derived state, recent events, runs, deliveries and skips.
    Member {
        /// The shop's customer id.
        id: String,
        /// How many recent events, runs and deliveries to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long, value_enum, default_value_t = DataFormat::Table)]
        format: DataFormat,
    },
    /// A journey's funnel per step and its experiment results (A/B arms against the control).
    Report {
        /// The journey id.
        journey: String,
        /// The database (overrides the config and TIDINGS_DATABASE_URL).
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, value_enum, default_value_t = DataFormat::Table)]
        format: DataFormat,
    },
    /// Show the message a send step gives one member, and the context it was rendered from.
    Preview {
        /// The journey's id.
        journey: String,
        /// The send step's id.
        step: String,
        /// A member id in the database, or a JSON/CSV file with one member.
        #[arg(long)]
        member: String,
        /// Render this A/B variant instead of the member's own.
        #[arg(long)]
        variant: Option<String>,
        /// A JSON file with the triggering event (default: the member's latest such event).
        #[arg(long)]
        event: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = DataFormat::Table)]
        format: DataFormat,
    },
    /// The alerts: each rule's status and numbers, and the latest transitions (exit 1 while
    /// one is firing).
    Alerts {
        /// The database (overrides the config and TIDINGS_DATABASE_URL).
        #[arg(long)]
        database_url: Option<String>,
        /// How many recent transitions to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long, value_enum, default_value_t = DataFormat::Table)]
        format: DataFormat,
    },
    /// Run the journeys over fixtures on a virtual clock; print every send, skip and exit.
    Simulate {
        /// Members as CSV or JSON lines, as they are at --from.
        #[arg(long)]
        members: PathBuf,
        /// Events as JSON lines (those before --from are history).
        #[arg(long)]
        events: Option<PathBuf>,
        /// The catalogue as CSV or JSON lines, as `tidings import products` reads it.
        #[arg(long)]
        products: Option<PathBuf>,
        /// Start: RFC 3339, or a date (midnight in the default time zone).
        #[arg(long)]
        from: String,
        /// End (inclusive), written like --from.
        #[arg(long)]
        until: String,
        /// The journeys folder (default: the config's).
        #[arg(long)]
        workflows: Option<PathBuf>,
        /// The templates folder (default: the config's).
        #[arg(long)]
        templates: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = DataFormat::Table)]
        format: DataFormat,
    },
}

/// How commands that print data print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataFormat {
    /// For people.
    Table,
    /// For programs.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagnosticFormat {
    /// rustc-style: the source line with a caret and a hint.
    Full,
    /// One line per problem: `file:line:col: severity[CODE] message`.
    Short,
    /// One JSON object per problem.
    Json,
}

/// Runs a command and returns its exit code; errors are reported by `main`.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let explicit_config =
        std::env::var_os("TIDINGS_CONFIG").is_some() || cli.config != std::path::Path::new("tidings.toml");
    let config = Config::load(&cli.config, explicit_config, |key| std::env::var(key).ok())
        .with_context(|| format!("loading config {}", cli.config.display()))?;
    match cli.command {
        Command::Validate { paths, format } => validate(&config, &paths, format, explicit_config),
        Command::Schema => {
            let schema = serde_json::to_string_pretty(&crate::journey::json_schema())?;
            writeln!(std::io::stdout(), "{schema}")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => crate::service::run(&config, true).await.map(|()| ExitCode::SUCCESS),
        Command::Worker => crate::service::run(&config, false).await.map(|()| ExitCode::SUCCESS),
        Command::Migrate => migrate(&config).await,
        Command::Import { kind, file, format } => {
            crate::import::run(&config, kind, &file, format == DataFormat::Json).await
        }
        Command::Member { id, limit, format } => {
            crate::member_view::run(&config, &id, limit, format == DataFormat::Json).await
        }
        Command::Report { journey, database_url, format } => {
            let mut config = config;
            if let Some(url) = database_url {
                config.database_url = url;
            }
            crate::report::run(&config, &journey, format == DataFormat::Json).await
        }
        Command::Preview { journey, step, member, variant, event, format } => {
            let request =
                crate::preview::Request { journey, step, member, variant, event, json: format == DataFormat::Json };
            crate::preview::run(&config, &request).await
        }
        Command::Alerts { database_url, limit, format } => {
            let mut config = config;
            if let Some(url) = database_url {
                config.database_url = url;
            }
            crate::alert_view::run(&config, limit, format == DataFormat::Json).await
        }
        Command::Simulate { members, events, products, from, until, workflows, templates, format } => {
            let request = crate::simulate::Request {
                members,
                events,
                products,
                from,
                until,
                workflows,
                templates,
                json: format == DataFormat::Json,
            };
            crate::simulate::cli(&config, &request).await
        }
    }
}

fn load_project(config: &Config, paths: &[PathBuf]) -> anyhow::Result<Project> {
    let sources = if paths.is_empty() {
        Sources::standard(&config.workflows_dir, &config.templates_dir)
            .with_context(|| format!("reading {}", config.workflows_dir.display()))?
    } else {
        Sources::from_paths(paths)?
    };
    Ok(Project::load(&sources, config.timezone()))
}

fn validate(
    config: &Config,
    paths: &[PathBuf],
    format: DiagnosticFormat,
    explicit_config: bool,
) -> anyhow::Result<ExitCode> {
    let mut project = load_project(config, paths)?;
    // The `[[alerts]]` name journeys: checked against all of them (no paths) or whenever
    // the config was named.
    let mut alert_rules = 0;
    if paths.is_empty() || explicit_config {
        let (_, found) = crate::service::alert_rules(config, &project);
        project.diagnostics.extend(found);
        alert_rules = config.alerts.len();
    }
    let mut out = std::io::stdout().lock();
    for d in &project.diagnostics {
        match format {
            DiagnosticFormat::Full => writeln!(out, "{}", d.render())?,
            DiagnosticFormat::Short => writeln!(out, "{}", d.render_short())?,
            DiagnosticFormat::Json => {
                let (line, column) = d.line_col();
                let json = serde_json::json!({
                    "code": d.code, "severity": d.severity, "message": d.message,
                    "file": d.file.path(), "line": line, "column": column, "hint": d.hint,
                });
                writeln!(out, "{json}")?;
            }
        }
    }
    let (errors, warnings) = (project.count(Severity::Error), project.count(Severity::Warning));
    if format != DiagnosticFormat::Json {
        let checked = match alert_rules {
            0 => format!("{} journeys and {} templates", project.journey_files, project.templates.len()),
            n => format!(
                "{} journeys, {} templates and {n} {}",
                project.journey_files,
                project.templates.len(),
                plural(n, "alert rule")
            ),
        };
        writeln!(
            out,
            "checked {checked}: {} {}, {} {}",
            errors,
            plural(errors, "error"),
            warnings,
            plural(warnings, "warning"),
        )?;
    }
    Ok(if errors > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

async fn migrate(config: &Config) -> anyhow::Result<ExitCode> {
    crate::store::migrate(&config.database_url).await.with_context(|| format!("migrating {}", config.database_url))?;
    println!("database {} is up to date", config.database_url);
    Ok(ExitCode::SUCCESS)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { word.to_string() } else { format!("{word}s") }
}
