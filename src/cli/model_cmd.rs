//! `fastsam-track model fetch|convert|path`: download official FastSAM checkpoints, convert `.pt`
//! checkpoints to ONNX (no Python needed), and show which model file a spec resolves to.

use std::path::PathBuf;

use anyhow::{Context, bail};
use fastsam_track::convert::{self, ConvertOptions, cache};
use fastsam_track::outputs::{OutputCheck, Role};

#[derive(Debug, clap::Args)]
pub struct ModelCmdArgs {
    #[command(subcommand)]
    pub action: ModelAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum ModelAction {
    /// Download an official checkpoint (FastSAM-s or FastSAM-x) into the cache and convert it to ONNX.
    ///
    /// Source: the Ultralytics assets release (override with FASTSAM_MODEL_BASE_URL for a mirror).
    Fetch {
        /// FastSAM-s or FastSAM-x (".pt" optional).
        #[arg(default_value = "FastSAM-s")]
        name: String,
        /// Download again even if the file is cached.
        #[arg(long)]
        force: bool,
    },
    /// Convert an Ultralytics YOLOv8-seg / FastSAM `.pt` checkpoint to ONNX.
    ///
    /// The checkpoint is read with a data-only pickle reader: nothing in it is executed.
    Convert {
        /// The .pt checkpoint.
        checkpoint: PathBuf,
        /// Output .onnx (default: next to the checkpoint, same stem).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Fixed input size (multiple of 32, square unless --imgsz-w is given); default: dynamic shapes.
        #[arg(long)]
        imgsz: Option<u32>,
        /// Fixed input width when it differs from --imgsz (height).
        #[arg(long, requires = "imgsz")]
        imgsz_w: Option<u32>,
    },
    /// Print the ONNX file a model spec resolves to (downloading/converting if needed).
    Path {
        /// A .onnx or .pt path, FastSAM-s / FastSAM-x, or nothing for the default ($FASTSAM_MODEL, then FastSAM-s).
        spec: Option<String>,
    },
    /// Print the cache directory and its contents.
    Cache,
}

pub fn run(args: ModelCmdArgs) -> anyhow::Result<()> {
    match args.action {
        ModelAction::Fetch { name, force } => {
            let Some(official) = cache::official_name(&name) else {
                bail!("unknown model {name:?}: `model fetch` knows {}", cache::KNOWN_MODELS.join(", "));
            };
            let pt = cache::fetch(official, force)?;
            outln!("checkpoint: {}", pt.display());
            let onnx = convert::convert_cached(&pt)?;
            outln!("onnx: {}", onnx.display());
        }
        ModelAction::Convert { checkpoint, output, imgsz, imgsz_w } => {
            let out = output.unwrap_or_else(|| checkpoint.with_extension("onnx"));
            // `-o` naming the checkpoint (or a link to it) would destroy it: exit 2 before reading.
            OutputCheck::new().input(Role::Checkpoint, &checkpoint).output(Role::ConvertedModel, &out).check()?;
            let opts = ConvertOptions { imgsz: imgsz.map(|h| (h, imgsz_w.unwrap_or(h))) };
            let t = std::time::Instant::now();
            let s = convert::convert_checkpoint(&checkpoint, &out, &opts)
                .with_context(|| format!("converting {}", checkpoint.display()))?;
            outln!(
                "wrote {} in {:.2}s: scale {}, {} layers, {} initializers, {} nodes, nc={}, strides {:?}, {}",
                out.display(),
                t.elapsed().as_secs_f64(),
                s.scale.as_deref().unwrap_or("?"),
                s.layers,
                s.initializers,
                s.nodes,
                s.nc,
                s.strides,
                match opts.imgsz {
                    Some((h, w)) => format!("static {h}x{w}"),
                    None => "dynamic shapes".into(),
                }
            );
        }
        ModelAction::Path { spec } => {
            outln!("{}", convert::resolve_model(spec.as_deref())?.display());
        }
        ModelAction::Cache => {
            let dir = convert::cache_dir()?;
            outln!("{}", dir.display());
            for sub in [dir.clone(), dir.join("converted")] {
                let Ok(rd) = std::fs::read_dir(&sub) else { continue };
                let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
                entries.sort_by_key(|e| e.file_name());
                for e in entries {
                    let md = e.metadata()?;
                    if md.is_file() {
                        outln!("  {:>12}  {}", md.len(), e.path().display());
                    }
                }
            }
        }
    }
    Ok(())
}
