//! The traits at a pipeline's edges. Decoding ([`FrameSource`]), encoding ([`FrameSink`]) and
//! track files ([`ResultSink`]) plug in here: the GStreamer file/URI source and MP4 sink, the
//! track writers, and later reconnecting RTSP input and RTSP output.

use std::sync::atomic::AtomicBool;

use super::FrameResult;
use crate::frame::{Frame, FramePool, VideoInfo};

/// Where frames come from.
pub trait FrameSource: Send {
    type Error: std::error::Error + Send + Sync + 'static;

    /// What is known of the stream (size, rate, liveness), from its first frame on.
    fn info(&self) -> &VideoInfo;

    /// The next frame (its buffer taken from `pool`), `Ok(None)` at the end of the stream or when
    /// `stop` is set. After an error, later calls return `Ok(None)`.
    fn next_frame(&mut self, pool: &FramePool, stop: &AtomicBool) -> Result<Option<Frame>, Self::Error>;

    /// Frames returned so far.
    fn frames_read(&self) -> u64;

    /// Outages the source recovered from by reconnecting (live inputs).
    fn reconnects(&self) -> u64 {
        0
    }
}

impl<S: FrameSource + ?Sized> FrameSource for Box<S> {
    type Error = S::Error;
    fn info(&self) -> &VideoInfo {
        (**self).info()
    }
    fn next_frame(&mut self, pool: &FramePool, stop: &AtomicBool) -> Result<Option<Frame>, Self::Error> {
        (**self).next_frame(pool, stop)
    }
    fn frames_read(&self) -> u64 {
        (**self).frames_read()
    }
    fn reconnects(&self) -> u64 {
        (**self).reconnects()
    }
}

/// Where drawn frames go (an encoder).
pub trait FrameSink: Send {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Take one frame, in stream order.
    fn push(&mut self, frame: &Frame) -> Result<(), Self::Error>;

    /// Finalise the output (a playable file); returns the frames written.
    fn finish(self: Box<Self>) -> Result<u64, Self::Error>;

    /// A short description (the encode pipeline).
    fn describe(&self) -> String;
}

/// Where per-frame results go (track files).
pub trait ResultSink: Send {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Whether the sink needs mask RLEs (costly to make).
    fn wants_masks(&self) -> bool;

    /// Record one frame's result, in stream order.
    fn write(&mut self, result: &FrameResult) -> Result<(), Self::Error>;

    /// Flush and close.
    fn finish(self: Box<Self>) -> Result<(), Self::Error>;
}

/// The MOT / JSON Lines track files as a [`ResultSink`].
pub struct TrackFiles {
    writer: crate::export::TrackWriter,
    objects: Vec<crate::export::ExportObject>,
    /// Gap interpolation (`None`: frames are written as they come).
    filler: Option<crate::export::GapFiller>,
    ready: Vec<crate::export::HeldFrame>,
}

impl TrackFiles {
    pub fn new(writer: crate::export::TrackWriter) -> Self {
        Self { writer, objects: Vec::new(), filler: None, ready: Vec::new() }
    }

    /// Interpolate track gaps of up to `max_gap` frames in the files (see
    /// [`crate::export::GapFiller`]); 0 turns it off.
    pub fn with_gap_filling(mut self, max_gap: u64) -> Self {
        self.filler = (max_gap > 0).then(|| crate::export::GapFiller::new(max_gap));
        self
    }

    fn write_ready(&mut self) -> Result<(), crate::export::ExportError> {
        for h in self.ready.drain(..) {
            self.writer.write_frame(h.frame, h.pts, &h.objects)?;
        }
        Ok(())
    }
}

impl ResultSink for TrackFiles {
    type Error = crate::export::ExportError;

    fn wants_masks(&self) -> bool {
        self.writer.wants_masks()
    }

    fn write(&mut self, result: &FrameResult) -> Result<(), Self::Error> {
        result.export_objects(self.writer.wants_masks(), &mut self.objects);
        match &mut self.filler {
            None => self.writer.write_frame(result.meta.index + 1, result.meta.pts, &self.objects),
            Some(f) => {
                f.push(result.meta.index + 1, result.meta.pts, &self.objects, &mut self.ready);
                self.write_ready()
            }
        }
    }

    /// Commit the files when at least one frame was written; a run that produced nothing leaves
    /// any previous file untouched (the partial file it created is removed).
    fn finish(mut self: Box<Self>) -> Result<(), Self::Error> {
        if let Some(f) = &mut self.filler {
            f.drain(&mut self.ready);
            self.write_ready()?;
        }
        if self.writer.frames() == 0 {
            return Ok(());
        }
        self.writer.finish()
    }
}
