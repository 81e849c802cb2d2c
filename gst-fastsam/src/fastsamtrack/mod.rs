//! `fastsamtrack`: a video filter that segments every frame with FastSAM, tracks the masks with
//! ByteTrack (the library's `StreamProcessor`), optionally draws them, and attaches the tracks as
//! metadata.
//!
//! # Metadata
//! Each output buffer carries one `GstVideoRegionOfInterestMeta` per followed track:
//! - roi type `object`, `id` = the track ID (as `gint`), `x, y, w, h` = the track's box rounded
//!   outwards to whole pixels and clipped to the frame;
//! - one param structure named [`PARAM_NAME`] (`fastsam/track`) with the exact values the CLI
//!   writes in its JSON Lines (`--tracks-json`):
//!   - `id` (`guint64`), `score` (`gfloat`), `class-id` (`guint`),
//!   - `bbox` (`GstValueArray` of 4 `gfloat`: x, y, w, h in pixels, unrounded),
//!   - `rle-size` (`GstValueArray` of 2 `guint`: height, width) and `rle-counts` (`GstValueArray`
//!     of `guint`): the mask as COCO uncompressed RLE (column-major, counts start with zeros).
//!     Both are absent when the track's detection has no mask.

use gst::glib;
use gst::prelude::*;

mod convert;
mod imp;

pub use imp::PARAM_NAME;

glib::wrapper! {
    pub struct FastSamTrack(ObjectSubclass<imp::FastSamTrack>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Track association (the `association` property); the tracker config's value when not set.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFastSamAssociation")]
pub enum AssociationMode {
    #[enum_value(name = "Box IoU of the Kalman-predicted box and the detection box", nick = "box")]
    Box = 0,
    #[enum_value(name = "IoU of the motion-shifted last mask and the detection's mask", nick = "mask")]
    Mask = 1,
    #[enum_value(name = "mask_weight * mask IoU + (1 - mask_weight) * box IoU", nick = "fused")]
    Fused = 2,
}

impl From<fastsam_track::track::Association> for AssociationMode {
    fn from(a: fastsam_track::track::Association) -> Self {
        use fastsam_track::track::Association as A;
        match a {
            A::Box => Self::Box,
            A::Mask => Self::Mask,
            A::Fused => Self::Fused,
        }
    }
}

impl From<AssociationMode> for fastsam_track::track::Association {
    fn from(a: AssociationMode) -> Self {
        use fastsam_track::track::Association as A;
        match a {
            AssociationMode::Box => A::Box,
            AssociationMode::Mask => A::Mask,
            AssociationMode::Fused => A::Fused,
        }
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "fastsamtrack", gst::Rank::NONE, FastSamTrack::static_type())
}
