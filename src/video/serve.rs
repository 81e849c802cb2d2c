//! `--serve rtsp://127.0.0.1:8554/fastsam`: the overlay stream as an RTSP server
//! (gst-rtsp-server), for any number of clients at once.
//!
//! [`RtspServer::start`] binds the address of the URL (loopback unless another address is given
//! explicitly) and runs the server's GLib main loop on its own thread. Each stream gets a mount
//! ([`RtspServer::mount`]): a shared media `appsrc → H.264 (x264, zero latency) → RTP`, created
//! when the first client connects; every client receives the same encoded stream. The returned
//! [`ServeSink`] is a [`FrameSink`]: frames pushed while no client is connected are dropped (a
//! live stream has no backlog), and pushing never blocks the pipeline.

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

use super::{Frame, VideoError, VideoInfo};
use crate::stream::FrameSink;

/// The default port of `--serve`.
pub const DEFAULT_PORT: u16 = 8554;

/// Where to serve: parsed from `rtsp://HOST[:PORT]/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeAddr {
    pub host: String,
    pub port: u16,
    /// Mount path, starting with `/`.
    pub path: String,
}

impl std::str::FromStr for ServeAddr {
    type Err = VideoError;
    fn from_str(url: &str) -> Result<Self, VideoError> {
        let bad = |why: &str| {
            VideoError::Other(format!(
                "--serve {url}: {why}; expected rtsp://HOST:PORT/PATH, e.g. rtsp://127.0.0.1:8554/fastsam"
            ))
        };
        let rest = url.strip_prefix("rtsp://").ok_or_else(|| bad("not an rtsp:// URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/fastsam"),
        };
        if authority.contains('@') {
            return Err(bad("credentials are not supported in the serving address"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse::<u16>().map_err(|_| bad(&format!("`{p}` is not a port number")))?)
            }
            _ => (authority, DEFAULT_PORT),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = match host {
            "" | "localhost" => "127.0.0.1",
            h => h,
        };
        let path = path.trim_end_matches('/');
        let path = if path.is_empty() { "/fastsam" } else { path };
        Ok(ServeAddr { host: host.to_string(), port, path: path.to_string() })
    }
}

impl std::fmt::Display for ServeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "rtsp://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "rtsp://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

struct Inner {
    server: rtsp::RTSPServer,
    main_loop: glib::MainLoop,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.server.client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
        self.main_loop.quit();
        if let Ok(mut t) = self.thread.lock()
            && let Some(t) = t.take()
        {
            let _ = t.join();
        }
    }
}

/// A running RTSP server (see the module docs). Cheap to clone; it stops when the last clone and
/// the last [`ServeSink`] are gone.
#[derive(Clone)]
pub struct RtspServer {
    inner: Arc<Inner>,
    addr: ServeAddr,
}

impl RtspServer {
    /// Bind `addr` and start serving (no mount yet).
    pub fn start(addr: &ServeAddr) -> Result<Self, VideoError> {
        super::init()?;
        let server = rtsp::RTSPServer::new();
        server.set_address(&addr.host);
        server.set_service(&addr.port.to_string());
        let ctx = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&ctx), false);
        server.attach(Some(&ctx)).map_err(|e| {
            VideoError::Other(format!(
                "--serve: cannot listen on {}:{} ({e}); is the port taken by another program? Choose another port",
                addr.host, addr.port
            ))
        })?;
        let thread = {
            let (ctx, main_loop) = (ctx.clone(), main_loop.clone());
            std::thread::Builder::new()
                .name("rtsp-serve".into())
                .spawn(move || {
                    if let Err(e) = ctx.with_thread_default(|| main_loop.run()) {
                        tracing::error!("RTSP server main loop: {e}");
                    }
                })
                .map_err(|e| VideoError::io("cannot start the RTSP server thread", e))?
        };
        let inner = Inner { server, main_loop, thread: Mutex::new(Some(thread)) };
        tracing::info!("serving RTSP on {}:{}", addr.host, addr.port);
        Ok(RtspServer { inner: Arc::new(inner), addr: addr.clone() })
    }

    /// Serve a stream of frames described by `info` at `path` (e.g. `/fastsam`).
    pub fn mount(&self, path: &str, info: &VideoInfo) -> Result<ServeSink, VideoError> {
        let factory = rtsp::RTSPMediaFactory::new();
        let keyint = info.fps_f64().map_or(25, |f| f.round().max(1.0) as u64);
        factory.set_launch(&format!(
            "( appsrc name=src is-live=true format=time do-timestamp=true ! videoconvert \
             ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=superfast bframes=0 \
             key-int-max={keyint} ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        ));
        factory.set_shared(true);
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", info.width as i32)
            .field("height", info.height as i32)
            .field("framerate", gst::Fraction::new(info.fps.map_or(0, |f| f.0), info.fps.map_or(1, |f| f.1)))
            .build();
        let current: Arc<Mutex<Option<gst_app::AppSrc>>> = Arc::default();
        {
            let (current, caps) = (current.clone(), caps.clone());
            factory.connect_media_configure(move |_, media| {
                let Ok(bin) = media.element().downcast::<gst::Bin>() else { return };
                let Some(src) = bin.by_name_recurse_up("src").and_then(|e| e.downcast::<gst_app::AppSrc>().ok()) else {
                    return;
                };
                src.set_caps(Some(&caps));
                // never block the pipeline: a slow client loses frames, not the stream
                src.set_max_bytes(3 * (caps_size(&caps) as u64));
                src.set_property_from_str("leaky-type", "downstream");
                if let Ok(mut c) = current.lock() {
                    *c = Some(src);
                }
            });
        }
        let mounts = self
            .inner
            .server
            .mount_points()
            .ok_or_else(|| VideoError::Other("the RTSP server has no mount points".into()))?;
        mounts.add_factory(path, factory);
        let url = ServeAddr { path: path.to_string(), ..self.addr.clone() };
        tracing::info!("serving the overlay at {url}");
        Ok(ServeSink {
            _server: self.clone(),
            current,
            url: url.to_string(),
            frames: 0,
            size: (info.width, info.height),
        })
    }

    pub fn addr(&self) -> &ServeAddr {
        &self.addr
    }
}

fn caps_size(caps: &gst::Caps) -> usize {
    caps.structure(0)
        .and_then(|s| Some(s.get::<i32>("width").ok()? as usize * s.get::<i32>("height").ok()? as usize * 3))
        .unwrap_or(1 << 20)
}

/// One stream's overlay, served (see the module docs).
pub struct ServeSink {
    _server: RtspServer,
    current: Arc<Mutex<Option<gst_app::AppSrc>>>,
    url: String,
    frames: u64,
    size: (u32, u32),
}

impl ServeSink {
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl FrameSink for ServeSink {
    type Error = VideoError;

    fn push(&mut self, frame: &Frame) -> Result<(), VideoError> {
        if (frame.width, frame.height) != self.size {
            return Err(VideoError::Encode {
                frames: self.frames,
                message: format!(
                    "frame size changed from {}x{} to {}x{}",
                    self.size.0, self.size.1, frame.width, frame.height
                ),
            });
        }
        let src = self.current.lock().ok().and_then(|c| c.clone());
        if let Some(src) = src {
            let len = frame.width as usize * frame.height as usize * 3;
            let buf = gst::Buffer::from_slice(frame.data[..len.min(frame.data.len())].to_vec());
            if src.push_buffer(buf).is_err() {
                // the media went away (last client left): wait for the next one
                if let Ok(mut c) = self.current.lock()
                    && c.as_ref() == Some(&src)
                {
                    *c = None;
                }
            } else {
                self.frames += 1;
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<u64, VideoError> {
        if let Some(src) = self.current.lock().ok().and_then(|c| c.clone()) {
            let _ = src.end_of_stream();
        }
        Ok(self.frames)
    }

    fn describe(&self) -> String {
        format!("RTSP server {}", self.url)
    }
}

/// Several sinks fed the same frames (a recording and the RTSP server).
pub struct TeeSink(pub Vec<Box<dyn FrameSink<Error = VideoError>>>);

impl FrameSink for TeeSink {
    type Error = VideoError;

    fn push(&mut self, frame: &Frame) -> Result<(), VideoError> {
        for s in &mut self.0 {
            s.push(frame)?;
        }
        Ok(())
    }

    /// Finish every sink; the frames written are the first one's (the file).
    fn finish(self: Box<Self>) -> Result<u64, VideoError> {
        let mut first = None;
        let mut err = None;
        for s in self.0 {
            match s.finish() {
                Ok(n) => {
                    first.get_or_insert(n);
                }
                Err(e) => {
                    err.get_or_insert(e);
                }
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(first.unwrap_or(0)),
        }
    }

    fn describe(&self) -> String {
        self.0.iter().map(|s| s.describe()).collect::<Vec<_>>().join(" + ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_urls_default_to_loopback_and_port_8554() {
        let a: ServeAddr = "rtsp://127.0.0.1:9000/cam".parse().unwrap();
        assert_eq!(a, ServeAddr { host: "127.0.0.1".into(), port: 9000, path: "/cam".into() });
        let b: ServeAddr = "rtsp://localhost/x/".parse().unwrap();
        assert_eq!(b, ServeAddr { host: "127.0.0.1".into(), port: 8554, path: "/x".into() });
        let c: ServeAddr = "rtsp://0.0.0.0:8554".parse().unwrap();
        assert_eq!((c.host.as_str(), c.path.as_str()), ("0.0.0.0", "/fastsam"));
        assert_eq!(c.to_string(), "rtsp://0.0.0.0:8554/fastsam");
        assert!("http://127.0.0.1/x".parse::<ServeAddr>().is_err());
        assert!("rtsp://127.0.0.1:http/x".parse::<ServeAddr>().is_err());
        assert!("rtsp://u:p@127.0.0.1:1/x".parse::<ServeAddr>().is_err());
    }
}
