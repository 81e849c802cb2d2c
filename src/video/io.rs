//! The GStreamer source and sink as the pipeline's edge traits ([`FrameSource`], [`FrameSink`]).

use std::sync::atomic::AtomicBool;

use super::{Frame, FramePool, VideoError, VideoInfo, VideoSink, VideoSource};
use crate::stream::{FrameSink, FrameSource};

impl FrameSource for VideoSource {
    type Error = VideoError;

    fn info(&self) -> &VideoInfo {
        VideoSource::info(self)
    }

    fn next_frame(&mut self, pool: &FramePool, stop: &AtomicBool) -> Result<Option<Frame>, VideoError> {
        VideoSource::next_frame(self, pool, stop)
    }

    fn frames_read(&self) -> u64 {
        VideoSource::frames_read(self)
    }
}

impl FrameSink for VideoSink {
    type Error = VideoError;

    fn push(&mut self, frame: &Frame) -> Result<(), VideoError> {
        VideoSink::push(self, frame)
    }

    fn finish(self: Box<Self>) -> Result<u64, VideoError> {
        VideoSink::finish(*self)
    }

    fn describe(&self) -> String {
        self.description().to_string()
    }
}
