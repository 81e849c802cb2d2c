//! `fastsam-track` subcommand (placeholder, to be implemented).

#[derive(Debug, clap::Args)]
pub struct TrackDetectionsArgs {}

pub fn run(_args: TrackDetectionsArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
