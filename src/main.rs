fn main() -> std::process::ExitCode {
    fastsam_track::cli::main()
}
