//! Thin entry point: parse the command line, set up telemetry, run the command.

use clap::Parser;
use pavemeter::cli::{self, Cli, LogFormat};

/// See Cargo.toml: freed memory is reused across threads, and small allocations (millions of record strings)
/// are cheaper.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    pavemeter::telemetry::init(cli.log_format == LogFormat::Json);
    match cli::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
