//! `fastsam-track` subcommand (placeholder, to be implemented).

#[derive(Debug, clap::Args)]
pub struct ModelCmdArgs {}

pub fn run(_args: ModelCmdArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
