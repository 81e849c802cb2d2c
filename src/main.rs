//! The `fastsam-track` binary: a thin command-line front end over the `fastsam_track` library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
