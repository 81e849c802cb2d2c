//! A loopback RTSP camera for the live tests, in the test process (gst-rtsp-server through the
//! `gstreamer-rtsp-server` crate: nothing to install beyond `scripts/setup.sh`, no Python).
//!
//! [`Camera::start`] serves `rtsp://127.0.0.1:PORT/cam`: H.264 of frames made by a closure
//! (a looped clip from the shared assets, or the synthetic scene with its frame code), pushed in
//! real time at the given rate. [`Camera::stop`] is an outage (the listening socket closes and
//! every client is dropped, as when a camera reboots); [`Camera::restart`] brings it back on the
//! same port. Every pushed frame's wall-clock time is recorded (by a global frame counter that
//! keeps counting across restarts), so tests can measure the age of what they process.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

/// Makes frame `n` (RGB, `width × height × 3`).
pub type FrameFn = dyn Fn(u64, &mut [u8]) + Send + Sync;

pub struct Camera {
    pub port: u16,
    server: rtsp::RTSPServer,
    ctx: glib::MainContext,
    main_loop: glib::MainLoop,
    source: Option<glib::SourceId>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Feeders of the media currently served stop when this is set.
    feeding: Arc<Mutex<Arc<AtomicBool>>>,
    /// Wall-clock time each frame was pushed, by global frame number.
    pub pushed: Arc<Mutex<Vec<Instant>>>,
}

impl Camera {
    /// Serve frames of `width × height` at `fps`, made by `make`.
    pub fn start(width: u32, height: u32, fps: u32, make: Arc<FrameFn>) -> Camera {
        gst::init().expect("gstreamer");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = rtsp::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&port.to_string());
        let factory = rtsp::RTSPMediaFactory::new();
        factory.set_launch(
            "( appsrc name=src is-live=true format=time ! videoconvert ! video/x-raw,format=I420 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 \
             ! rtph264pay name=pay0 pt=96 config-interval=-1 )",
        );
        factory.set_shared(true);
        let pushed: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let counter = Arc::new(AtomicU64::new(0));
        let feeding: Arc<Mutex<Arc<AtomicBool>>> = Arc::new(Mutex::new(Arc::new(AtomicBool::new(false))));
        {
            let (pushed, counter, feeding) = (pushed.clone(), counter.clone(), feeding.clone());
            factory.connect_media_configure(move |_, media| {
                let bin = media.element().downcast::<gst::Bin>().expect("media bin");
                let appsrc = bin.by_name_recurse_up("src").expect("appsrc").downcast::<gst_app::AppSrc>().unwrap();
                let caps = gst::Caps::builder("video/x-raw")
                    .field("format", "RGB")
                    .field("width", width as i32)
                    .field("height", height as i32)
                    .field("framerate", gst::Fraction::new(fps as i32, 1))
                    .build();
                appsrc.set_caps(Some(&caps));
                let stop = feeding.lock().unwrap().clone();
                let (make, pushed, counter) = (make.clone(), pushed.clone(), counter.clone());
                std::thread::spawn(move || feed(appsrc, width, height, fps, make, pushed, counter, stop));
            });
        }
        server.mount_points().unwrap().add_factory("/cam", factory);
        let ctx = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&ctx), false);
        let thread = {
            let (ctx, main_loop) = (ctx.clone(), main_loop.clone());
            std::thread::spawn(move || {
                ctx.with_thread_default(|| main_loop.run()).expect("server main context");
            })
        };
        let mut cam = Camera { port, server, ctx, main_loop, source: None, thread: Some(thread), feeding, pushed };
        cam.restart();
        cam
    }

    /// A looped clip (decoded once into memory) served at its own size.
    pub fn looped_clip(path: &std::path::Path, fps: u32) -> Camera {
        let (info, frames) = crate::support::video::decode_all(path);
        let frames: Vec<Vec<u8>> = frames.into_iter().map(|f| f.data).collect();
        let n = frames.len() as u64;
        Camera::start(
            info.width,
            info.height,
            fps,
            Arc::new(move |i, out| out.copy_from_slice(&frames[(i % n) as usize])),
        )
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    /// Frames pushed so far (all connections).
    pub fn frames_pushed(&self) -> usize {
        self.pushed.lock().unwrap().len()
    }

    /// An outage: stop listening, drop every client, stop feeding.
    pub fn stop(&mut self) {
        if let Some(id) = self.source.take()
            && let Some(src) = self.ctx.find_source_by_id(&id)
        {
            src.destroy();
        }
        self.server.client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
        self.feeding.lock().unwrap().store(true, Ordering::Relaxed);
        // the port must refuse connections now
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "the RTSP server still accepts connections after stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Listen again (on the same port).
    pub fn restart(&mut self) {
        *self.feeding.lock().unwrap() = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.server.attach(Some(&self.ctx)) {
                Ok(id) => {
                    self.source = Some(id);
                    return;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot listen on port {} again: {e}", self.port);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop_quietly();
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Camera {
    fn stop_quietly(&mut self) {
        if let Some(id) = self.source.take()
            && let Some(src) = self.ctx.find_source_by_id(&id)
        {
            src.destroy();
        }
        self.server.client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
        self.feeding.lock().unwrap().store(true, Ordering::Relaxed);
    }
}

/// Push frames in real time until the media goes away or the camera stops.
#[allow(clippy::too_many_arguments)]
fn feed(
    appsrc: gst_app::AppSrc,
    width: u32,
    height: u32,
    fps: u32,
    make: Arc<FrameFn>,
    pushed: Arc<Mutex<Vec<Instant>>>,
    counter: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let period = Duration::from_secs(1) / fps;
    let start = Instant::now();
    let mut data = vec![0u8; (width * height * 3) as usize];
    for k in 0u32.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let due = start + period * k;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let n = counter.fetch_add(1, Ordering::Relaxed);
        make(n, &mut data);
        let mut buf = gst::Buffer::from_slice(data.clone());
        {
            let b = buf.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_nseconds((period * k).as_nanos() as u64));
            b.set_duration(gst::ClockTime::from_nseconds(period.as_nanos() as u64));
        }
        pushed.lock().unwrap().push(Instant::now());
        if appsrc.push_buffer(buf).is_err() {
            return;
        }
    }
}
