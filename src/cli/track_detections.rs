//! `fastsam-track track-detections DETS -o TRACKS.txt`: run the tracker on precomputed detections
//! (MOTChallenge `det.txt` or the golden CSV `frame,x1,y1,x2,y2,score`) and write MOTChallenge
//! results. Without `--tracker`, the parameters are Ultralytics' `bytetrack.yaml` (box
//! association, Ultralytics IDs, no duplicate suppression): `TrackerConfig::default()`, not the
//! product config the main job uses. This command is the tracker-parity tool: detection files
//! carry no masks, so the product's mask-aware parts (fused association, `[dedup]`) would fall
//! back to boxes anyway, and its output is compared with Ultralytics' `BYTETracker`. Pass
//! `--tracker configs/bytetrack.toml` for the product settings. Each option below overrides the
//! config.

use std::path::PathBuf;

use anyhow::Context;

use fastsam_track::eval;
use fastsam_track::outputs::{OutputCheck, Role};
use fastsam_track::track::{Association, ByteTracker, TrackerConfig};

#[derive(Debug, clap::Args)]
pub struct TrackDetectionsArgs {
    /// Detections: MOTChallenge det.txt (frame,id,x,y,w,h,score,...) or CSV with header frame,x1,y1,x2,y2,score.
    pub dets: PathBuf,
    /// Output tracks in MOTChallenge format (frame,id,x,y,w,h,score,-1,-1,-1).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Tracker config TOML (e.g. configs/bytetrack.toml for the main job's product defaults);
    /// default: Ultralytics bytetrack.yaml values (exact Ultralytics parity, no dedup).
    /// Missing keys in FILE take Ultralytics' values.
    #[arg(long)]
    pub tracker: Option<PathBuf>,
    /// Frame rate of the sequence (lost tracks live round(frame_rate/30 * track_buffer) frames).
    #[arg(long)]
    pub frame_rate: Option<f64>,
    /// Score threshold of the first association.
    #[arg(long)]
    pub track_high_thresh: Option<f32>,
    /// Lower score bound of the second association.
    #[arg(long)]
    pub track_low_thresh: Option<f32>,
    /// Minimum score to start a new track.
    #[arg(long)]
    pub new_track_thresh: Option<f32>,
    /// Frames (at 30 fps) to keep lost tracks.
    #[arg(long)]
    pub track_buffer: Option<u32>,
    /// Cost limit of the first association.
    #[arg(long)]
    pub match_thresh: Option<f32>,
    /// Fuse detection scores into the IoU cost (true/false).
    #[arg(long)]
    pub fuse_score: Option<bool>,
    /// Association similarity: box, mask or fused (detection files carry no masks: mask/fused fall back to box).
    #[arg(long)]
    pub association: Option<Association>,
    /// Weight of mask IoU in fused association.
    #[arg(long)]
    pub mask_weight: Option<f32>,
    /// Downscale factor for mask IoU.
    #[arg(long)]
    pub mask_downscale: Option<u32>,
    /// Cost limit of the second (low-score) association.
    #[arg(long)]
    pub second_match_thresh: Option<f32>,
    /// Cost limit of the unconfirmed-track association.
    #[arg(long)]
    pub unconfirmed_match_thresh: Option<f32>,
    /// IoU above which a tracked and a lost track are duplicates.
    #[arg(long)]
    pub duplicate_iou: Option<f32>,
    /// Give IDs only to confirmed tracks (true/false).
    #[arg(long)]
    pub lazy_ids: Option<bool>,
    /// Suppress duplicate detections before association (true/false); detection files have no
    /// masks, so boxes decide (box IoU above dedup.mask_iou, or box containment).
    #[arg(long)]
    pub dedup: Option<bool>,
}

/// The tracker configuration from `--tracker` and the overrides.
pub fn config_from_args(a: &TrackDetectionsArgs) -> anyhow::Result<TrackerConfig> {
    let mut c = match &a.tracker {
        Some(p) => TrackerConfig::from_toml_file(p)?,
        None => TrackerConfig::default(),
    };
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = a.$f { c.$f = v; } )* };
    }
    set!(
        frame_rate,
        track_high_thresh,
        track_low_thresh,
        new_track_thresh,
        track_buffer,
        match_thresh,
        fuse_score,
        association,
        mask_weight,
        mask_downscale,
        second_match_thresh,
        unconfirmed_match_thresh,
        duplicate_iou,
        lazy_ids
    );
    if let Some(on) = a.dedup {
        c.dedup.enabled = on;
    }
    c.validate()?;
    Ok(c)
}

pub fn run(args: TrackDetectionsArgs) -> anyhow::Result<()> {
    // `-o` naming the detections or the config would destroy them: exit 2 before reading.
    OutputCheck::new()
        .input(Role::Detections, &args.dets)
        .maybe_input(Role::TrackerConfig, args.tracker.as_ref())
        .output(Role::Tracks, &args.output)
        .check()?;
    let cfg = config_from_args(&args)?;
    let seq = eval::read_detections(&args.dets)?;
    if seq.num_detections() == 0 {
        anyhow::bail!("{} holds no detections: nothing to track", args.dets.display());
    }
    tracing::info!(
        "{} detections in {} frames; max_time_lost = {} frames",
        seq.num_detections(),
        seq.frames.len(),
        cfg.max_time_lost()
    );
    let mut tracker = ByteTracker::new(cfg);
    let mut rows = Vec::new();
    let mut objs = Vec::new();
    for (k, dets) in seq.frames.iter().enumerate() {
        tracker.update_into(dets, &mut objs);
        eval::io::tracks_to_rows(seq.first_frame + k as i64, &objs, &mut rows);
    }
    eval::write_mot(&args.output, &rows).with_context(|| "writing the tracks")?;
    let mut ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    outln!("{} track rows, {} tracks -> {}", rows.len(), ids.len(), args.output.display());
    Ok(())
}
