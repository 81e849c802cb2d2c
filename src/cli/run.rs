//! `fastsam-track INPUT`: the main job (placeholder, to be implemented).

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Input video: a file path, file:// or http(s):// URI, or rtsp:// URL.
    #[arg(required = true)]
    pub input: Option<String>,
}

pub fn run(_args: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
