//! `tidings serve` and `tidings worker`: build the engine from the config, run it until
//! SIGTERM/ctrl-c, reload journeys on SIGHUP, and (serve) answer HTTP.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;

use crate::channels::Channels;
use crate::config::Config;
use crate::diagnostic::Severity;
use crate::engine::{self, Engine, Registry};
use crate::links::LinkSigner;
use crate::project::{Project, Sources};
use crate::store::Store;

/// How long an idle worker sleeps before looking again.
const POLL: Duration = Duration::from_millis(200);

/// Loads and checks the journeys; a journey with errors stops the start.
pub fn load_project(config: &Config) -> anyhow::Result<Project> {
    let sources = Sources::standard(&config.workflows_dir, &config.templates_dir)
        .with_context(|| format!("reading {}", config.workflows_dir.display()))?;
    let project = Project::load(&sources, config.timezone());
    for d in &project.diagnostics {
        eprintln!("{}", d.render());
    }
    let errors = project.count(Severity::Error);
    anyhow::ensure!(errors == 0, "{errors} error(s) in the journeys; fix them and start again");
    Ok(project)
}

/// The config's `[[alerts]]` checked against the journeys: the rules and every problem.
pub fn alert_rules(
    config: &Config,
    project: &Project,
) -> (Vec<crate::alert::Rule>, Vec<crate::diagnostic::Diagnostic>) {
    let file = config.source.clone().unwrap_or_else(|| crate::source::SourceFile::new("tidings.toml", ""));
    crate::alert::compile(&config.alerts, &file, &project.journeys)
}

/// The alert rules and their notification targets (a rule with an error stops the start).
fn alerting(config: &Config, project: &Project) -> anyhow::Result<engine::alerts::Alerting> {
    let (rules, diagnostics) = alert_rules(config, project);
    for d in &diagnostics {
        eprintln!("{}", d.render());
    }
    let errors = diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
    anyhow::ensure!(errors == 0, "{errors} error(s) in the alert rules; fix them and start again");
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    Ok(engine::alerts::Alerting {
        rules,
        webhook: env(crate::notifier::WEBHOOK_URL_VAR).is_some(),
        email: env(crate::notifier::EMAIL_VAR),
    })
}

/// Builds the engine the config describes; `links` signs the links in its messages.
pub async fn engine(config: &Config, store: Store, channels: Channels, links: LinkSigner) -> anyhow::Result<Engine> {
    let project = load_project(config)?;
    let alerting = alerting(config, &project)?;
    let registry = Registry::load(project, &store, config.timezone(), Utc::now()).await?;
    let policies = engine::policies(config).map_err(anyhow::Error::msg)?;
    let options = engine::Options::from_config(config, links);
    let engine = Engine::new(store, registry, policies, config.state_settings(), channels, options);
    engine.set_alerting(alerting);
    Ok(engine)
}

/// Runs the engine (and with `http`, the HTTP routes) until SIGTERM or ctrl-c.
pub async fn run(config: &Config, http: bool) -> anyhow::Result<()> {
    let store = Store::open(&config.database_url).await.with_context(|| format!("opening {}", config.database_url))?;
    let channels = Channels::from_config(config, |name| std::env::var(name).ok()).context("configuring channels")?;
    // One signer for the messages and the routes that answer their links.
    let links =
        LinkSigner::from_env(&config.public_url, |name| std::env::var(name).ok()).context(crate::links::SECRET_VAR)?;
    let notifier = crate::notifier::Notifier::from_env(
        store.clone(),
        channels.clone(),
        crate::channels::RetryPolicy::from_config(&config.channels.retry),
        Some(config.public_url.clone()),
        |name| std::env::var(name).ok(),
    )
    .context("configuring alert notifications")?;
    let engine = Arc::new(engine(config, store.clone(), channels, links.clone()).await?);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    // Alert notifications go out beside the tick, so a slow receiver never delays a send.
    let notifications = crate::notifier::spawn(Arc::new(notifier), Duration::from_secs(1), stop.clone());

    let server = if http {
        let state = http_state(config, store.clone(), links)?;
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        tracing::info!(listen = %config.listen, "HTTP up");
        let mut stop = stop.clone();
        Some(tokio::spawn(async move {
            axum::serve(listener, crate::http::router(state))
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        }))
    } else {
        None
    };

    let clock = database_clock(&store).await?;
    let worker = {
        let engine = Arc::clone(&engine);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                match engine.tick_with(&clock).await {
                    Ok(tick) if !tick.is_idle() => {
                        tracing::debug!(?tick, "tick");
                        continue;
                    }
                    Ok(_) => {}
                    Err(error) => tracing::error!(%error, "engine tick failed; trying again"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        })
    };

    tracing::info!(worker = %engine.options().worker, "engine running");
    wait_for_signals(config, &engine).await;
    let bound = shutdown_bound(config);
    tracing::info!(?bound, "stopping: finishing the batch in flight");
    let stopping = std::time::Instant::now();
    engine.stop();
    let _ = stop_tx.send(true);
    // The worker finishes the batch in flight (sends already handed to a channel are
    // waited for and recorded; the rest of the batch is given back), then stops. A send
    // cannot outlast its channel's timeout, so this is within the bound; past it, what is
    // still claimed is left to its lease.
    match tokio::time::timeout(bound, worker).await {
        Ok(done) => done.context("the engine task failed")?,
        Err(_) => {
            tracing::error!(?bound, "the batch in flight did not finish within the bound; leaving it to its lease")
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), notifications).await;
    engine.release().await?;
    engine.channels().close().await;
    tracing::info!(elapsed = ?stopping.elapsed(), "leases released, channels closed");
    if let Some(server) = server {
        server.await.context("the HTTP task failed")??;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Shifts this process's clock by that many seconds (tests: a host whose clock is off).
pub const CLOCK_SKEW_VAR: &str = "TIDINGS_TEST_CLOCK_SKEW_SECONDS";

/// The engine's clock: this host's, corrected by its offset from the database's clock as
/// measured at start. Leases, claims and due times are compared in SQL against times the
/// workers write, so two workers must read one clock: a worker whose clock ran two minutes
/// ahead would otherwise see every other worker's lease as over, and take it.
async fn database_clock(store: &Store) -> anyhow::Result<impl Fn() -> chrono::DateTime<Utc> + Sync + use<>> {
    let skew = std::env::var(CLOCK_SKEW_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map_or(chrono::Duration::zero(), chrono::Duration::seconds);
    let host = move || Utc::now() + skew;
    let before = host();
    let database = store.database_now().await.context("reading the database's clock")?;
    let after = host();
    // The database read its clock about halfway through the round trip.
    let offset = database - (before + (after - before) / 2);
    if offset.abs() > chrono::Duration::seconds(1) {
        tracing::warn!(
            offset_ms = offset.num_milliseconds(),
            "this host's clock is off the database's; the engine uses the database's"
        );
    }
    Ok(move || host() + offset)
}

/// How long a stop may take at most: the longest channel timeout (a send in flight
/// cannot outlast it) plus 10 s to record outcomes, release leases and close connections.
/// The README states it.
pub fn shutdown_bound(config: &Config) -> Duration {
    let c = &config.channels;
    let longest = [&c.email.timeout, &c.sms.timeout, &c.push.timeout, &c.webhook.timeout]
        .into_iter()
        .map(|t| Config::seconds(t))
        .max()
        .unwrap_or_default();
    longest + Duration::from_secs(10)
}

/// The HTTP routes' state: secrets from the environment only, and the engine's link
/// signer (see [`LinkSigner::from_env`] for what happens without `TIDINGS_LINK_SECRET`).
fn http_state(config: &Config, store: Store, links: LinkSigner) -> anyhow::Result<crate::http::AppState> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let secrets = crate::http::Secrets::from_env(env).context("reading the webhook secrets")?;
    Ok(crate::http::AppState::new(store, config.state_settings(), env("TIDINGS_API_TOKEN"), Arc::new(Utc::now))
        .with_secrets(secrets)
        .with_links(links)
        .with_storefront(crate::http::shop::Storefront {
            url: config.shop.url.clone(),
            currency: config.recommendations.currency.clone(),
        }))
}

/// Waits for SIGTERM or ctrl-c; reloads the journeys on SIGHUP.
async fn wait_for_signals(config: &Config, engine: &Engine) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return,
                _ = tokio::signal::ctrl_c() => return,
                _ = hup.recv() => match reload(config, engine).await {
                    Ok(()) => tracing::info!("journeys reloaded"),
                    Err(error) => tracing::error!(%error, "reload failed; keeping the journeys that run"),
                },
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn reload(config: &Config, engine: &Engine) -> anyhow::Result<()> {
    let project = load_project(config)?;
    let alerting = alerting(config, &project)?;
    let registry = Registry::load(project, engine.store(), config.timezone(), Utc::now()).await?;
    engine.reload(registry).await;
    engine.set_alerting(alerting);
    Ok(())
}
