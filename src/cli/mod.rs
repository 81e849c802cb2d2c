//! Command-line front end. Each subcommand lives in its own file with an `Args` struct and a
//! `run` function; this file only dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` for the command line's results: a reader that went away (`fastsam-track eval-mot
/// ... | head`) must not panic the process (Rust ignores SIGPIPE, so `println!` panics on a
/// closed pipe) nor stop a run half way, whose outputs must still be finalized; the lines are
/// dropped instead.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod common;
pub mod eval_mot;
pub mod model_cmd;
pub mod quantize;
pub mod run;
pub mod segment;
pub mod track_detections;
pub mod val;

/// Real-time video segmentation and tracking with FastSAM.
///
/// `fastsam-track VIDEO` segments and tracks every object in a video (file, URI or RTSP) and
/// writes VIDEO_STEM.tracked.mp4. The subcommands below expose the individual stages.
#[derive(Debug, Parser)]
#[command(
    name = "fastsam-track",
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  fastsam-track samples/synth_track_a.mp4 --model FastSAM-s\n  fastsam-track segment photo.jpg --point 320,240\n  fastsam-track track-detections det.txt -o tracks.txt\n  fastsam-track eval-mot --gt gt.txt --pred tracks.txt\n  fastsam-track val --pred preds.json --ann instances.json"
)]
pub struct Cli {
    /// Log verbosity: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: run::RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Segment images with FastSAM; write an overlay PNG and a JSON file per image.
    Segment(segment::SegmentArgs),
    /// Run the tracker on precomputed detections (MOTChallenge det.txt or CSV).
    TrackDetections(track_detections::TrackDetectionsArgs),
    /// Compute CLEAR MOT, identity and HOTA metrics of tracks against ground truth.
    EvalMot(eval_mot::EvalMotArgs),
    /// Download official FastSAM checkpoints and convert them to ONNX.
    Model(model_cmd::ModelCmdArgs),
    /// COCO box and mask mAP (pycocotools COCOeval semantics) of the model on an annotated image
    /// set, or of a COCO results file (--pred).
    Val(val::ValArgs),
    /// Quantize a model to INT8 (static QDQ, calibrated on a video or images) for fast CPU
    /// inference.
    Quantize(quantize::QuantizeArgs),
}

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

/// A download progress bar on stderr (hidden when stderr is not a terminal).
struct DownloadBar(indicatif::ProgressBar);

impl fastsam_track::convert::download::Progress for DownloadBar {
    fn start(&self, name: &str) {
        self.0.set_message(format!("downloading {name}"));
    }
    fn set_length(&self, bytes: u64) {
        self.0.set_length(bytes);
    }
    fn set_position(&self, bytes: u64) {
        self.0.set_position(bytes);
    }
    fn finish(&self) {
        self.0.finish();
    }
    fn abandon(&self) {
        self.0.abandon();
    }
}

fn download_bar() -> std::sync::Arc<dyn fastsam_track::convert::download::Progress> {
    use indicatif::{ProgressBar, ProgressStyle};
    let b = ProgressBar::new(0);
    b.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    std::sync::Arc::new(DownloadBar(b))
}

/// Entry point of the `fastsam-track` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    fastsam_track::convert::download::set_default_progress(Box::new(download_bar));
    let result = match cli.command {
        Some(Command::Segment(a)) => segment::run(a),
        Some(Command::TrackDetections(a)) => track_detections::run(a),
        Some(Command::EvalMot(a)) => eval_mot::run(a),
        Some(Command::Model(a)) => model_cmd::run(a),
        Some(Command::Val(a)) => val::run(a),
        Some(Command::Quantize(a)) => quantize::run(a),
        None => run::run(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors can quote the input URL (GStreamer messages do): never print its credentials.
            eprintln!("error: {}", fastsam_track::video::redact_credentials(&error_message(&e)));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Exit code for usage errors (clap uses it too): a clash between outputs and inputs, an output
/// directory that does not exist or is not writable, a [`UsageError`].
pub const EXIT_USAGE: u8 = 2;

/// A command-line usage error raised after parsing (exit code 2), e.g. two inputs that would
/// write the same output.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// 2 for usage errors anywhere in the chain, else 1.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    use fastsam_track::outputs::OutputError;
    // `#[error(transparent)]` wrappers hide the inner error from the chain: look inside them.
    let output_usage = |c: &(dyn std::error::Error + 'static)| -> bool {
        let inner: Option<&OutputError> = c
            .downcast_ref::<OutputError>()
            .or_else(|| match c.downcast_ref::<fastsam_track::video::VideoError>()? {
                fastsam_track::video::VideoError::Output(o) => Some(&**o),
                _ => None,
            })
            .or_else(|| match c.downcast_ref::<fastsam_track::convert::ConvertError>()? {
                fastsam_track::convert::ConvertError::Output(o) => Some(&**o),
                _ => None,
            });
        inner.is_some_and(OutputError::is_usage)
    };
    let usage = e.chain().any(|c| c.downcast_ref::<UsageError>().is_some() || output_usage(c));
    if usage { EXIT_USAGE } else { 1 }
}

/// The chain of an error as one line, `outer: cause: root cause`, printing each message once:
/// a cause already quoted by the message before it (`"{context}: {source}"` with `#[source]`) is
/// not repeated.
pub fn error_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for c in e.chain() {
        let s = c.to_string();
        if s.is_empty() || out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = fastsam_track::export::ExportError { path: "x.txt".into(), source: io };
        let e = anyhow::Error::from(e).context("writing tracks");
        assert_eq!(error_message(&e), "writing tracks: cannot write track file x.txt: No such file");
        assert_eq!(exit_code(&e), 1);
        let e = anyhow::Error::from(UsageError("two inputs".into())).context("segment");
        assert_eq!(exit_code(&e), 2);
    }
}
