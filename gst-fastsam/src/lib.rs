//! GStreamer plugin `fastsam` (`libgstfastsam.so`): the `fastsamtrack` element, FastSAM
//! segmentation and mask tracking with stable IDs inside any GStreamer pipeline.
//!
//! The element is thin glue around the `fastsam_track` library: the model (`FastSam`), the
//! per-stream core (`StreamProcessor`: tracker, prompt, followed IDs) and the overlay (`Overlay`).
//! Each output buffer carries one `GstVideoRegionOfInterestMeta` per track; see
//! [`fastsamtrack`] for the metadata layout.

use gst::glib;

pub mod fastsamtrack;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    fastsamtrack::register(plugin)
}

gst::plugin_define!(
    fastsam,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    // A licence string GStreamer knows (the crate is MIT OR Apache-2.0).
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY")
);
