//! Live inputs that never stop: a [`FrameSource`] that reconnects.
//!
//! [`LiveSource`] wraps a [`VideoSource`] on a live URI (a camera). When the stream ends (EOS),
//! fails, or delivers nothing for the stall timeout, the decode pipeline is torn down and opened
//! again, after a wait that doubles from [`ReconnectPolicy::retry_initial`] up to
//! [`ReconnectPolicy::retry_max`] (30 s), forever or up to [`ReconnectPolicy::max_retries`]
//! failed attempts in a row. The vocabulary follows gst-plugins-rs `fallbacksrc` (timeout,
//! restart-on-eos, retry timeout).
//!
//! Across reconnects the stream stays one stream: frame indices keep counting, timestamps stay
//! monotonic (each new connection's PTS are shifted to continue one frame after the last frame
//! before the outage), and the consumer (tracker, encoder, track files) never notices more than
//! a gap. Each outage is logged with its duration; [`LiveSource::reconnects`] counts them.
//!
//! The first connection is not retried: a wrong URL or a camera that is off at start-up fails at
//! once with the clear error of [`VideoSource::open`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Frame, FramePool, SourceConfig, VideoError, VideoInfo, VideoSource, redact_credentials};
use crate::stream::FrameSource;

/// When and how often a live input is reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Reopen when the stream ends (a camera or server that restarts sends EOS).
    pub restart_on_eos: bool,
    /// First wait before reopening; doubles after each failed attempt.
    pub retry_initial: Duration,
    /// Longest wait between two attempts.
    pub retry_max: Duration,
    /// Failed attempts in a row before giving up (`None`: never give up).
    pub max_retries: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            restart_on_eos: true,
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            max_retries: None,
        }
    }
}

impl ReconnectPolicy {
    /// The wait before attempt number `attempt` (1-based) of an outage.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1).min(16)).unwrap_or(u32::MAX);
        self.retry_initial.saturating_mul(factor).min(self.retry_max)
    }
}

/// A live input that reconnects after outages (see the module docs).
pub struct LiveSource {
    input: String,
    cfg: SourceConfig,
    policy: ReconnectPolicy,
    current: Option<VideoSource>,
    info: VideoInfo,
    /// Frames returned, over every connection.
    frames: u64,
    reconnects: u64,
    /// PTS shift of the current connection, and the connection's first PTS.
    pts_base: Duration,
    conn_first_pts: Option<Duration>,
    /// Last PTS and frame duration returned (to continue after an outage).
    last_pts: Option<Duration>,
    frame_duration: Duration,
    /// The longest outage so far.
    longest_outage: Duration,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("input", &redact_credentials(&self.input))
            .field("frames", &self.frames)
            .field("reconnects", &self.reconnects)
            .finish()
    }
}

impl LiveSource {
    /// Open `input` (errors as [`VideoSource::open`]: the first connection must succeed).
    pub fn open(input: &str, cfg: &SourceConfig, policy: ReconnectPolicy) -> Result<Self, VideoError> {
        Ok(Self::from_source(VideoSource::open(input, cfg)?, input, cfg, policy))
    }

    /// Wrap an already open source.
    pub fn from_source(source: VideoSource, input: &str, cfg: &SourceConfig, policy: ReconnectPolicy) -> Self {
        let info = source.info().clone();
        let frame_duration = info
            .fps
            .filter(|&(n, d)| n > 0 && d > 0)
            .map_or(Duration::from_millis(40), |(n, d)| Duration::from_secs_f64(d as f64 / n as f64));
        LiveSource {
            input: input.to_string(),
            cfg: cfg.clone(),
            policy,
            current: Some(source),
            info,
            frames: 0,
            reconnects: 0,
            pts_base: Duration::ZERO,
            conn_first_pts: None,
            last_pts: None,
            frame_duration,
            longest_outage: Duration::ZERO,
        }
    }

    /// Outages survived so far.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The longest outage so far (from the failure to the first frame after it).
    pub fn longest_outage(&self) -> Duration {
        self.longest_outage
    }

    /// Shift a connection's PTS so that the stream's timestamps stay monotonic.
    fn shift_pts(&mut self, frame: &mut Frame) {
        let Some(pts) = frame.pts else { return };
        let first = *self.conn_first_pts.get_or_insert(pts);
        let mut out = self.pts_base + pts.saturating_sub(first);
        if let Some(last) = self.last_pts
            && out <= last
        {
            out = last + Duration::from_micros(1);
        }
        if let Some(d) = frame.duration.filter(|d| !d.is_zero()) {
            self.frame_duration = d;
        }
        self.last_pts = Some(out);
        frame.pts = Some(out);
    }

    /// Reopen after an outage that began at `since` because of `cause`. `Ok(false)`: `stop` was
    /// set while waiting.
    fn reconnect(&mut self, since: Instant, cause: &str, stop: &AtomicBool) -> Result<bool, VideoError> {
        let name = redact_credentials(&self.input);
        tracing::warn!("{name}: stream lost ({cause}); reconnecting");
        self.current = None;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let wait = self.policy.backoff(attempt);
            if !self.wait_for_server(wait, stop) {
                return Ok(false);
            }
            match VideoSource::open(&self.input, &self.cfg) {
                Ok(src) => {
                    let (w, h) = (src.info().width, src.info().height);
                    if (w, h) != (self.info.width, self.info.height) {
                        return Err(VideoError::Other(format!(
                            "{name}: the stream came back at {w}x{h} after an outage, it was {}x{}; \
                             restart the run to follow the new size",
                            self.info.width, self.info.height
                        )));
                    }
                    self.current = Some(src);
                    self.reconnects += 1;
                    // The next connection continues one frame after the last frame returned.
                    self.pts_base = self.last_pts.map_or(Duration::ZERO, |p| p + self.frame_duration);
                    self.conn_first_pts = None;
                    return Ok(true);
                }
                Err(e) => {
                    let give_up = self.policy.max_retries.is_some_and(|m| attempt >= m);
                    tracing::warn!(
                        "{name}: reconnect attempt {attempt} failed after {:.1} s of outage: {e}{}",
                        since.elapsed().as_secs_f64(),
                        if give_up { "; giving up (--max-retries)" } else { "" }
                    );
                    if give_up {
                        return Err(e);
                    }
                }
            }
        }
    }
}

impl LiveSource {
    /// Wait up to `d` before the next attempt, but for a network input whose port refuses
    /// connections, end the wait as soon as the port accepts one again (a restarted server is
    /// back within a quarter of a second, whatever the backoff has grown to; the backoff still
    /// spaces out full attempts while the port is open but the stream fails). `false`: `stop` was
    /// set.
    fn wait_for_server(&self, d: Duration, stop: &AtomicBool) -> bool {
        let uri = &self.info.uri;
        if super::network_host(uri).is_none() {
            return sleep_unless_stopped(d, stop);
        }
        let end = Instant::now() + d;
        let probe = || super::probe_network_input(uri, Duration::from_millis(200)).is_ok();
        let was_up = probe();
        while Instant::now() < end {
            if !sleep_unless_stopped(PROBE_INTERVAL.min(end.saturating_duration_since(Instant::now())), stop) {
                return false;
            }
            if !was_up && probe() {
                return true;
            }
        }
        true
    }
}

/// How often a refused port is probed during an outage.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Sleep `d` in short steps; `false` when `stop` was set.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

impl FrameSource for LiveSource {
    type Error = VideoError;

    fn info(&self) -> &VideoInfo {
        &self.info
    }

    fn next_frame(&mut self, pool: &FramePool, stop: &AtomicBool) -> Result<Option<Frame>, VideoError> {
        let mut outage: Option<Instant> = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let Some(src) = self.current.as_mut() else { return Ok(None) };
            let cause = match src.next_frame(pool, stop) {
                Ok(Some(mut frame)) => {
                    if let Some(t) = outage {
                        let d = t.elapsed();
                        self.longest_outage = self.longest_outage.max(d);
                        tracing::warn!(
                            "{}: reconnected after an outage of {:.1} s (reconnect {})",
                            redact_credentials(&self.input),
                            d.as_secs_f64(),
                            self.reconnects
                        );
                    }
                    frame.index = self.frames;
                    self.frames += 1;
                    self.shift_pts(&mut frame);
                    return Ok(Some(frame));
                }
                Ok(None) if stop.load(Ordering::Relaxed) => return Ok(None),
                Ok(None) if !self.policy.restart_on_eos => return Ok(None),
                Ok(None) => "end of stream".to_string(),
                Err(e) => e.to_string(),
            };
            let since = *outage.get_or_insert_with(Instant::now);
            if !self.reconnect(since, &cause, stop)? {
                return Ok(None);
            }
        }
    }

    fn frames_read(&self) -> u64 {
        self.frames
    }

    fn reconnects(&self) -> u64 {
        self.reconnects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = ReconnectPolicy { retry_initial: Duration::from_millis(500), ..ReconnectPolicy::default() };
        let waits: Vec<u64> = (1..=9).map(|a| p.backoff(a).as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn sleeping_ends_early_on_stop() {
        let stop = AtomicBool::new(true);
        let t = Instant::now();
        assert!(!sleep_unless_stopped(Duration::from_secs(10), &stop));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
