//! `fedwatch-sim`: the simulated world the demo and the end-to-end tests run against.
//!
//! * `fleet` serves the metrics of several meta clusters ("cells") and the tenant clusters
//!   whose control planes they host, on one port, and writes Prometheus `file_sd` files that
//!   point an edge (or a stock Prometheus) at them.
//! * `dump` prints what the fleet's targets serve over hours of fleet time, at once.
//! * `webhook` is an Alertmanager-webhook receiver that prints every payload it gets.

mod fleet;
mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "fedwatch-sim",
    about = "Simulated clusters and a printing webhook receiver for the Fedwatch demo and tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the metrics of a simulated fleet.
    Fleet(fleet::FleetArgs),
    /// Print what every target of the fleet serves over a span of fleet time, without
    /// waiting (for storage benchmarks).
    Dump(fleet::DumpArgs),
    /// Receive Alertmanager webhook payloads and print them.
    Webhook {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9595")]
        listen: SocketAddr,
        /// Also append each payload as one JSON line to this file.
        #[arg(long)]
        log_file: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Fleet(args) => fleet::run(args).await,
        Command::Dump(args) => fleet::dump(args),
        Command::Webhook { listen, log_file } => webhook::run(listen, log_file).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fedwatch-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
