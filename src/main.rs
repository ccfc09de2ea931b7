//! Thin entry point: parse the command line, set up telemetry, run the command.

use clap::Parser;
use pavemeter::cli::{self, Cli, LogFormat};

/// See Cargo.toml: freed memory is reused across threads, and small allocations (millions of record strings)
/// are cheaper.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// No transparent huge pages for this process. A model rebuild frees and reallocates gigabytes within
/// milliseconds; with huge pages, each fault on a part mimalloc had returned to the OS zeroed a whole 2 MiB page,
/// which `perf` showed as 35–40 % of a full recompute. Off, the recompute of seeds/bench-medium.toml took 17.9 s
/// instead of 22.4 s (system time 5 s instead of 15 s; BENCHMARKS.md).
fn disable_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: sets a process-wide flag, no memory is passed; a kernel without it leaves huge pages on, harmless.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[tokio::main]
async fn main() {
    disable_huge_pages();
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
