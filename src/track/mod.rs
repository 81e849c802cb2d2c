//! Multi-object tracking: ByteTrack as Ultralytics 8.4 implements it, plus optional
//! mask-aware association.
//!
//! * [`ByteTracker`] ([`tracker`]) — the tracker; one [`ByteTracker::update`] per frame.
//! * [`TrackerConfig`] — its parameters (`configs/bytetrack.toml`); [`TrackerConfig::default`]
//!   is Ultralytics' `bytetrack.yaml` with box association, which reproduces Ultralytics'
//!   `BYTETracker` output exactly (IDs and Kalman boxes).
//! * [`kalman`] — the constant-velocity Kalman filter over `(cx, cy, a, h)`.
//! * [`lap`] — optimal linear assignment with a cost limit.
//! * [`matching`] — IoU / mask-IoU cost matrices.
//! * [`dedup`] — mask-aware suppression of near-duplicate detections before association
//!   (`[dedup]` in the config; off in [`TrackerConfig::default`], on in the product config
//!   [`TrackerConfig::product`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::types::BBox;

pub mod dedup;
pub mod kalman;
pub mod lap;
pub mod matching;
pub mod reid;
pub mod tracker;

pub use dedup::{DedupConfig, suppress_duplicates};
pub use reid::ReidConfig;
pub use tracker::ByteTracker;

/// Errors of the tracking stage.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("cannot read tracker config {path}: {err}")]
    ConfigIo { path: String, err: std::io::Error },
    #[error("invalid tracker config {path}: {message}")]
    ConfigParse { path: String, message: String },
    #[error("invalid tracker parameter `{name}` = {value}: {fix}")]
    InvalidParameter { name: &'static str, value: String, fix: &'static str },
    #[error("{0}")]
    Other(String),
}

/// How tracks are associated with detections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Association {
    /// Box IoU of the Kalman-predicted box and the detection box (Ultralytics / ByteTrack).
    #[default]
    Box,
    /// IoU of the track's last mask, shifted by the Kalman-predicted motion, and the detection's
    /// mask (falls back to box IoU where either mask is missing).
    Mask,
    /// `mask_weight * mask IoU + (1 - mask_weight) * box IoU`.
    Fused,
}

impl std::str::FromStr for Association {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "box" => Ok(Association::Box),
            "mask" => Ok(Association::Mask),
            "fused" => Ok(Association::Fused),
            _ => Err(format!("unknown association `{s}`: use box, mask or fused")),
        }
    }
}

/// Which box a track reports in each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportBox {
    /// The Kalman filter's posterior box after this frame's update (Ultralytics).
    #[default]
    Kalman,
    /// The box of the detection matched in this frame (what the model saw; the Kalman box lags
    /// behind accelerating objects and smooths away real changes of extent).
    Detection,
}

/// Tracker parameters. `Default` is Ultralytics' `bytetrack.yaml` (8.4.190) with box
/// association, at 30 fps. See `configs/bytetrack.toml` for the documentation of each field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// Detections with `score >= track_high_thresh` take part in the first association.
    pub track_high_thresh: f32,
    /// Detections with `track_low_thresh < score < track_high_thresh` take part in the second.
    pub track_low_thresh: f32,
    /// An unmatched high detection starts a track only when `score >= new_track_thresh`.
    pub new_track_thresh: f32,
    /// Frames (at 30 fps) a lost track is kept before removal.
    pub track_buffer: u32,
    /// Cost limit of the first association (cost = `1 - IoU`, or `1 - IoU * score` with `fuse_score`).
    pub match_thresh: f32,
    /// Multiply IoU by the detection score in the first and the unconfirmed association.
    pub fuse_score: bool,
    /// Real frame rate of the sequence; lost tracks live `round(frame_rate / 30 * track_buffer)` frames.
    pub frame_rate: f64,
    /// Similarity used for association.
    pub association: Association,
    /// Weight of mask IoU in `fused` association.
    pub mask_weight: f32,
    /// Masks are compared at `1 / mask_downscale` resolution.
    pub mask_downscale: u32,
    /// Cost limit of the second association (low-score detections, `1 - IoU`).
    pub second_match_thresh: f32,
    /// Cost limit of the association of unconfirmed tracks.
    pub unconfirmed_match_thresh: f32,
    /// Tracked and lost tracks overlapping with IoU above this are duplicates (the younger goes).
    pub duplicate_iou: f32,
    /// Number track IDs only when a track is confirmed (a one-frame false positive uses no ID).
    /// `false` reproduces Ultralytics, which draws an ID for every started track.
    pub lazy_ids: bool,
    /// Which box each output reports.
    pub report_box: ReportBox,
    /// Track files of recorded input: fill gaps of up to this many frames (at 30 fps, scaled
    /// like `track_buffer`) in a track by linear interpolation (0: off; never for live input).
    pub interpolate_gap: u32,
    /// Mask-aware suppression of near-duplicate detections before association (TOML table
    /// `[dedup]`); disabled by default.
    pub dedup: DedupConfig,
    /// Appearance re-identification of lost tracks (TOML table `[reid]`); disabled by default.
    pub reid: ReidConfig,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            track_high_thresh: 0.25,
            track_low_thresh: 0.1,
            new_track_thresh: 0.25,
            track_buffer: 30,
            match_thresh: 0.8,
            fuse_score: true,
            frame_rate: 30.0,
            association: Association::Box,
            mask_weight: 0.5,
            mask_downscale: 4,
            second_match_thresh: 0.5,
            unconfirmed_match_thresh: 0.7,
            duplicate_iou: 0.85,
            lazy_ids: false,
            report_box: ReportBox::Kalman,
            interpolate_gap: 0,
            dedup: DedupConfig::default(),
            reid: ReidConfig::default(),
        }
    }
}

/// The shipped product configuration, `configs/bytetrack.toml`, embedded at build time.
pub const PRODUCT_TOML: &str = include_str!("../../configs/bytetrack.toml");

impl TrackerConfig {
    /// The product defaults: [`PRODUCT_TOML`] (`configs/bytetrack.toml`) parsed. This is what the
    /// main job uses without `--tracker`; unlike [`TrackerConfig::default`] (Ultralytics'
    /// tracker, exactly) it has duplicate suppression, mask-aware association and lazy IDs.
    pub fn product() -> Result<Self, TrackError> {
        Self::from_toml_str(PRODUCT_TOML).map_err(|e| match e {
            TrackError::ConfigParse { message, .. } => {
                TrackError::ConfigParse { path: "configs/bytetrack.toml (built in)".into(), message }
            }
            other => other,
        })
    }

    /// Read a TOML file (missing keys take their default) and validate it.
    pub fn from_toml_file(p: &Path) -> Result<Self, TrackError> {
        let path = p.display().to_string();
        let text = std::fs::read_to_string(p).map_err(|err| TrackError::ConfigIo { path: path.clone(), err })?;
        Self::from_toml_str(&text).map_err(|e| match e {
            TrackError::ConfigParse { message, .. } => TrackError::ConfigParse { path, message },
            other => other,
        })
    }

    /// Parse TOML text (missing keys take their default) and validate it.
    pub fn from_toml_str(text: &str) -> Result<Self, TrackError> {
        let cfg: TrackerConfig = toml::from_str(text)
            .map_err(|e| TrackError::ConfigParse { path: "<string>".into(), message: e.to_string() })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check every parameter's range.
    pub fn validate(&self) -> Result<(), TrackError> {
        fn unit(name: &'static str, v: f32) -> Result<(), TrackError> {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(TrackError::InvalidParameter { name, value: v.to_string(), fix: "use a value in [0, 1]" })
            }
        }
        unit("track_high_thresh", self.track_high_thresh)?;
        unit("track_low_thresh", self.track_low_thresh)?;
        unit("new_track_thresh", self.new_track_thresh)?;
        unit("mask_weight", self.mask_weight)?;
        unit("duplicate_iou", self.duplicate_iou)?;
        self.dedup.validate()?;
        self.reid.validate()?;
        for (name, v) in [
            ("match_thresh", self.match_thresh),
            ("second_match_thresh", self.second_match_thresh),
            ("unconfirmed_match_thresh", self.unconfirmed_match_thresh),
        ] {
            if !(v > 0.0 && v <= 2.0) {
                return Err(TrackError::InvalidParameter {
                    name,
                    value: v.to_string(),
                    fix: "use a cost limit in (0, 2] (costs are 1 - similarity)",
                });
            }
        }
        if self.track_low_thresh > self.track_high_thresh {
            return Err(TrackError::InvalidParameter {
                name: "track_low_thresh",
                value: self.track_low_thresh.to_string(),
                fix: "must not exceed track_high_thresh",
            });
        }
        if !(self.frame_rate.is_finite() && self.frame_rate > 0.0) {
            return Err(TrackError::InvalidParameter {
                name: "frame_rate",
                value: self.frame_rate.to_string(),
                fix: "use the video's frame rate in frames per second (> 0)",
            });
        }
        if self.mask_downscale == 0 || self.mask_downscale > 64 {
            return Err(TrackError::InvalidParameter {
                name: "mask_downscale",
                value: self.mask_downscale.to_string(),
                fix: "use an integer factor in 1..=64",
            });
        }
        Ok(())
    }

    /// Frames a lost track survives: `round(frame_rate / 30 * track_buffer)`.
    /// (Ultralytics 8.4.190 does not scale by the frame rate; at 30 fps the two agree.)
    pub fn max_time_lost(&self) -> u64 {
        (self.frame_rate / 30.0 * self.track_buffer as f64).round().max(0.0) as u64
    }

    /// Longest track gap the track files fill: `round(frame_rate / 30 * interpolate_gap)`.
    pub fn interpolation_frames(&self) -> u64 {
        (self.frame_rate / 30.0 * self.interpolate_gap as f64).round().max(0.0) as u64
    }
}

/// One confirmed, currently tracked object in a frame's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedObject {
    pub track_id: u64,
    /// Kalman posterior box after this frame's update (as Ultralytics reports it).
    pub bbox: BBox,
    /// Score of the detection matched in this frame.
    pub score: f32,
    pub class_id: u32,
    /// Index into the detections passed to [`ByteTracker::update`] (to pick its mask).
    pub det_index: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_time_lost_scales_with_frame_rate() {
        let mut c = TrackerConfig::default();
        assert_eq!(c.max_time_lost(), 30);
        c.frame_rate = 25.0;
        assert_eq!(c.max_time_lost(), 25);
        c.frame_rate = 60.0;
        assert_eq!(c.max_time_lost(), 60);
    }

    #[test]
    fn toml_defaults_unknown_keys_and_ranges() {
        assert_eq!(TrackerConfig::from_toml_str("").unwrap(), TrackerConfig::default());
        let c = TrackerConfig::from_toml_str("association = \"fused\"\ntrack_buffer = 60").unwrap();
        assert_eq!((c.association, c.track_buffer), (Association::Fused, 60));
        let e = TrackerConfig::from_toml_str("trak_buffer = 3").unwrap_err().to_string();
        assert!(e.contains("trak_buffer"), "{e}");
        let e = TrackerConfig::from_toml_str("track_high_thresh = 1.5").unwrap_err().to_string();
        assert!(e.contains("track_high_thresh"), "{e}");
        let e = TrackerConfig::from_toml_str("frame_rate = 0.0").unwrap_err().to_string();
        assert!(e.contains("frame_rate"), "{e}");
        let c = TrackerConfig::from_toml_str("[dedup]\nenabled = true").unwrap();
        assert_eq!(c.dedup, DedupConfig { enabled: true, ..DedupConfig::default() });
        let e = TrackerConfig::from_toml_str("[dedup]\ncontainment = 2.0").unwrap_err().to_string();
        assert!(e.contains("dedup.containment"), "{e}");
        let e = TrackerConfig::from_toml_str("[dedup]\nmask_io = 0.5").unwrap_err().to_string();
        assert!(e.contains("mask_io"), "{e}");
    }

    #[test]
    fn product_config_is_the_shipped_file() {
        // Ultralytics parity needs dedup off in Default; the shipped file turns it on.
        assert!(!TrackerConfig::default().dedup.enabled);
        let p = TrackerConfig::product().unwrap();
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/bytetrack.toml");
        assert_eq!(p, TrackerConfig::from_toml_file(&file).unwrap());
        assert!(p.dedup.enabled);
        assert_ne!(p, TrackerConfig::default());
    }
}
