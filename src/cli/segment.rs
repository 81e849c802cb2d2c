//! `fastsam-track segment` (placeholder).

#[derive(Debug, clap::Args)]
pub struct SegmentArgs {
    /// Images to segment.
    pub images: Vec<std::path::PathBuf>,
}

pub fn run(_args: SegmentArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
