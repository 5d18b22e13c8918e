//! What every tier binary shares: Prometheus-style flags, loading the configuration, wiring
//! ingest → store → query API → forward, and signals. `edge`, `cascade` and `central` are
//! one-line `main`s over [`main`]; they differ only in which parts [`Tier`] switches on.

mod commands;
mod flags;
mod reload;
mod runtime;
mod sources;

use std::io::IsTerminal;
use std::process::ExitCode;

pub use flags::Flags;
pub use runtime::{RunningTier, start};

/// Which tier a process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// Scrapes targets and forwards upward.
    Edge,
    /// Receives from edges and Prometheus senders, forwards upward.
    Cascade,
    /// Receives, stores, evaluates rules and notifies.
    Central,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Edge => "edge",
            Tier::Cascade => "cascade",
            Tier::Central => "central",
        }
    }

    /// Whether the tier serves `POST /api/v1/write`.
    pub fn receives(self) -> bool {
        !matches!(self, Tier::Edge)
    }

    /// Whether the tier evaluates rule files and sends notifications.
    pub fn runs_rules(self) -> bool {
        matches!(self, Tier::Central)
    }
}

/// Parses flags, runs the tier until SIGINT/SIGTERM, and maps failures to an exit code.
pub fn main(tier: Tier) -> ExitCode {
    let mut flags = <Flags as clap::Parser>::parse();
    if let Some(command) = flags.command.take() {
        return if commands::run(command) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    init_logging(&flags.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", tier.name());
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(runtime::run(tier, flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: error: {e}", tier.name());
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FEDWATCH_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
