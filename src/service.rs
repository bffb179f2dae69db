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

/// Builds the engine the config describes.
pub async fn engine(config: &Config, store: Store, channels: Channels) -> anyhow::Result<Engine> {
    let project = load_project(config)?;
    let registry = Registry::load(project, &store, config.timezone(), Utc::now()).await?;
    let policies = engine::policies(config).map_err(anyhow::Error::msg)?;
    Ok(Engine::new(store, registry, policies, config.state_settings(), channels, engine::Options::from_config(config)))
}

/// Runs the engine (and with `http`, the HTTP routes) until SIGTERM or ctrl-c.
pub async fn run(config: &Config, http: bool) -> anyhow::Result<()> {
    let store = Store::open(&config.database_url).await.with_context(|| format!("opening {}", config.database_url))?;
    let channels = Channels::from_config(config, |name| std::env::var(name).ok()).context("configuring channels")?;
    let engine = Arc::new(engine(config, store.clone(), channels).await?);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);

    let server = if http {
        let state = http_state(config, store.clone())?;
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

    let worker = {
        let engine = Arc::clone(&engine);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                match engine.tick(Utc::now()).await {
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
    let _ = stop_tx.send(true);
    // The worker finishes the batch in flight (its sends included), then stops.
    worker.await.context("the engine task failed")?;
    engine.release().await?;
    if let Some(server) = server {
        server.await.context("the HTTP task failed")??;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The HTTP routes' state: secrets from the environment only. Without
/// `TIDINGS_LINK_SECRET` the link routes answer 503 (a per-process random secret would
/// break every link already sent at the next restart — unsubscribe links included).
fn http_state(config: &Config, store: Store) -> anyhow::Result<crate::http::AppState> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let secrets = crate::http::Secrets::from_env(env).context("reading the webhook secrets")?;
    let mut state =
        crate::http::AppState::new(store, config.state_settings(), env("TIDINGS_API_TOKEN"), Arc::new(Utc::now))
            .with_secrets(secrets);
    match env("TIDINGS_LINK_SECRET") {
        Some(secret) => {
            let signer =
                crate::links::LinkSigner::new(&config.public_url, secret.as_bytes()).context("TIDINGS_LINK_SECRET")?;
            state = state.with_links(signer);
        }
        None => tracing::warn!("TIDINGS_LINK_SECRET is not set: unsubscribe, open and click links answer 503"),
    }
    Ok(state)
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
    let registry = Registry::load(project, engine.store(), config.timezone(), Utc::now()).await?;
    engine.reload(registry).await;
    Ok(())
}
