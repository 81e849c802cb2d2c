//! Options shared by the subcommands that run the model (`segment`, the main job).
//! Owned by the model work; other subcommands `#[command(flatten)]` it.

#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {}
