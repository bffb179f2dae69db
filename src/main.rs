use std::process::ExitCode;

use clap::Parser;
use tidings::cli::{Cli, Command, run};

#[tokio::main]
async fn main() -> ExitCode {
    // clap exits with 2 on bad usage by itself.
    let cli = Cli::parse();
    // `simulate` runs the engine over a year in seconds: its per-firing log lines are noise.
    let quiet = matches!(cli.command, Command::Simulate { .. } | Command::Preview { .. });
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TIDINGS_LOG")
                .unwrap_or_else(|_| if quiet { "warn" } else { "info" }.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
