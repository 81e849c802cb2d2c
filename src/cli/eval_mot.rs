//! `fastsam-track` subcommand (placeholder, to be implemented).

#[derive(Debug, clap::Args)]
pub struct EvalMotArgs {}

pub fn run(_args: EvalMotArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
