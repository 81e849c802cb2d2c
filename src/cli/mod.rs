//! Command-line front end. Each subcommand lives in its own file with an `Args` struct and a
//! `run` function; this file only dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Real-time video segmentation and tracking with FastSAM.
///
/// Run `fastsam-track VIDEO` to segment and track every object in a video, or use one of the
/// subcommands below.
#[derive(Debug, Parser)]
#[command(name = "fastsam-track", version, about, long_about = None)]
pub struct Cli {
    /// Log verbosity: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Segment images with FastSAM and write an overlay PNG and a JSON file per image.
    Segment(segment::SegmentArgs),
}

pub mod segment;

fn init_logging(verbose: u8) {
    use tracing_subscriber::{EnvFilter, fmt};
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}

/// Entry point of the `fastsam-track` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Segment(a) => segment::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
