//! The `fastsamtrack` implementation: properties ([`Settings`]), the per-stream [`State`] built in
//! `start()`, and the per-frame work in `transform_ip`.

use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

use fastsam_track::export::ExportObject;
use fastsam_track::model::prompt::{self, Prompt};
use fastsam_track::model::{Device, FastSam, ModelOptions};
use fastsam_track::overlay::{Overlay, OverlayItem, OverlayStyle};
use fastsam_track::stream::{FrameMeta, FrameResult, PromptSelector, StreamConfig, StreamProcessor};
use fastsam_track::track::TrackerConfig;
use fastsam_track::types::{ImageView, PixelFormat, Segmenter};

use super::AssociationMode;
use super::convert::{self, Matrix, Nv12};

/// Name of the param structure on each ROI meta.
pub const PARAM_NAME: &str = "fastsam/track";

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("fastsamtrack", gst::DebugColorFlags::empty(), Some("FastSAM segmentation and tracking"))
});

/// Errors of the element (posted on the bus as element errors).
#[derive(Debug, thiserror::Error)]
pub enum ElementError {
    #[error("cannot resolve model `{spec}`: {source}")]
    Resolve {
        spec: String,
        #[source]
        source: fastsam_track::convert::ConvertError,
    },
    #[error("cannot load model {path}: {source}")]
    Load {
        path: PathBuf,
        #[source]
        source: fastsam_track::model::ModelError,
    },
    #[error("invalid property {property}: {message}")]
    Property { property: &'static str, message: String },
    #[error("tracker config: {0}")]
    Tracker(#[from] fastsam_track::track::TrackError),
    #[error("segmentation failed: {0}")]
    Segment(#[source] fastsam_track::model::ModelError),
    #[error("tracking failed: {0}")]
    Stream(#[from] fastsam_track::stream::StreamError),
    #[error("drawing failed: {0}")]
    Overlay(#[from] fastsam_track::overlay::OverlayError),
    #[error("cannot map the video frame: {0}")]
    Map(String),
    #[error("text prompt: {0}")]
    Clip(#[from] fastsam_track::clip::ClipError),
}

/// The properties. `Default` is the single source of every property's default, itself taken
/// from the library's defaults (`ModelOptions`, `OverlayStyle`, `TrackerConfig::product`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `None`: `$FASTSAM_MODEL`, else FastSAM-s (as the CLI).
    pub model: Option<String>,
    pub device: String,
    /// 0: the model's own size.
    pub imgsz: u32,
    pub conf: f32,
    pub iou: f32,
    pub retina_masks: bool,
    /// 0: ONNX Runtime's choice.
    pub threads: u32,
    /// `None`: the built-in product config (`configs/bytetrack.toml`).
    pub tracker_config: Option<String>,
    pub association: AssociationMode,
    /// Whether `association` was set (else the tracker config's value applies).
    pub association_set: bool,
    pub draw: bool,
    pub mask_alpha: f32,
    pub show_boxes: bool,
    pub boxes: Option<String>,
    pub points: Option<String>,
    /// Text prompts, several separated by ';' (`None`: no text prompt).
    pub text: Option<String>,
    /// Below -1: follow only the best-scoring track.
    pub text_threshold: f64,
    /// 0: score a track only when it appears.
    pub text_every: u32,
    pub clip_image: Option<String>,
    pub clip_text: Option<String>,
    pub clip_vocab: Option<String>,
}

/// The product tracker config (embedded at build time, so it parses; the fallback is never used).
fn product_tracker() -> TrackerConfig {
    TrackerConfig::product().unwrap_or_default()
}

impl Default for Settings {
    fn default() -> Self {
        let model = ModelOptions::default();
        let style = OverlayStyle::default();
        Self {
            model: None,
            device: model.device.to_string(),
            imgsz: model.imgsz.unwrap_or(0),
            // A tracking element: the detector keeps what the tracker uses (as the CLI's main job).
            conf: product_tracker().track_low_thresh,
            iou: model.iou,
            retina_masks: model.retina_masks,
            threads: model.intra_threads.map_or(0, |t| t as u32),
            tracker_config: None,
            association: product_tracker().association.into(),
            association_set: false,
            draw: true,
            mask_alpha: style.alpha,
            show_boxes: style.show_boxes,
            boxes: None,
            points: None,
            text: None,
            text_threshold: TEXT_BEST,
            text_every: 0,
            clip_image: None,
            clip_text: None,
            clip_vocab: None,
        }
    }
}

/// `text-threshold` default: below -1 (no cosine similarity is), i.e. only the best track.
const TEXT_BEST: f64 = -2.0;

/// The CLIP model and text prompts of the `text` property (one model, shared by the rebuilt
/// stream processors).
struct TextPrompt {
    model: std::sync::Arc<std::sync::Mutex<fastsam_track::clip::ClipModel>>,
    texts: Vec<String>,
    cfg: fastsam_track::clip::TextPromptConfig,
    every: Option<u64>,
}

impl TextPrompt {
    fn selector(
        &self,
    ) -> Result<
        fastsam_track::clip::TextSelector<std::sync::Arc<std::sync::Mutex<fastsam_track::clip::ClipModel>>>,
        fastsam_track::clip::ClipError,
    > {
        fastsam_track::clip::TextSelector::new(self.model.clone(), self.texts.clone(), self.cfg.clone())
    }
}

impl Settings {
    fn model_options(&self) -> Result<ModelOptions, ElementError> {
        let device: Device = self.device.parse().map_err(|e: fastsam_track::engine::EngineError| {
            ElementError::Property { property: "device", message: e.to_string() }
        })?;
        Ok(ModelOptions {
            imgsz: (self.imgsz > 0).then_some(self.imgsz),
            conf: self.conf,
            iou: self.iou,
            retina_masks: self.retina_masks,
            device,
            intra_threads: (self.threads > 0).then_some(self.threads as usize),
            ..ModelOptions::default()
        })
    }

    fn tracker(&self) -> Result<TrackerConfig, ElementError> {
        let mut cfg = match &self.tracker_config {
            Some(p) => TrackerConfig::from_toml_file(std::path::Path::new(p))?,
            None => TrackerConfig::product()?,
        };
        if self.association_set {
            cfg.association = self.association.into();
            cfg.validate()?;
        }
        Ok(cfg)
    }

    /// Load CLIP for the `text` property (`None` without one); every check happens here, in `start()`.
    fn text_prompt(&self, engine: &fastsam_track::engine::EngineConfig) -> Result<Option<TextPrompt>, ElementError> {
        let Some(text) = &self.text else { return Ok(None) };
        let texts: Vec<String> = text.split(';').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect();
        let (Some(image), Some(txt)) = (&self.clip_image, &self.clip_text) else {
            return Err(ElementError::Property {
                property: "text",
                message: "a text prompt needs the CLIP encoders: set clip-image and clip-text (export them with \
                          scripts/export-clip.py, see docs/clip.md)"
                    .into(),
            });
        };
        let paths = fastsam_track::clip::ClipPaths {
            image: image.into(),
            text: txt.into(),
            vocab: self.clip_vocab.as_ref().map(PathBuf::from),
        };
        let threshold = (self.text_threshold >= -1.0).then_some(self.text_threshold as f32);
        let cfg = fastsam_track::clip::TextPromptConfig { threshold, ..Default::default() };
        let model = std::sync::Arc::new(std::sync::Mutex::new(fastsam_track::clip::ClipModel::load(&paths, engine)?));
        let tp = TextPrompt { model, texts, cfg, every: (self.text_every > 0).then_some(self.text_every as u64) };
        tp.selector()?; // empty prompts are refused now, not on the first frame
        Ok(Some(tp))
    }

    fn prompt(&self) -> Result<Option<Prompt>, ElementError> {
        let boxes = prompt::parse_boxes(self.boxes.as_deref().unwrap_or(""))
            .map_err(|e| ElementError::Property { property: "boxes", message: e.to_string() })?;
        let points = prompt::parse_points(self.points.as_deref().unwrap_or(""))
            .map_err(|e| ElementError::Property { property: "points", message: e.to_string() })?;
        Ok(Prompt::from_parts(&boxes, &points))
    }

    fn overlay_style(&self) -> OverlayStyle {
        // As the CLI's --show-boxes: boxes and scores together.
        OverlayStyle {
            alpha: self.mask_alpha,
            show_boxes: self.show_boxes,
            show_scores: self.show_boxes,
            ..OverlayStyle::default()
        }
    }
}

/// Everything built in `start()`; the stream part is rebuilt on flush, seek and stream start.
struct State {
    segmenter: FastSam,
    tracker: TrackerConfig,
    prompt: Option<Prompt>,
    text: Option<TextPrompt>,
    overlay: Option<Overlay>,
    info: Option<gst_video::VideoInfo>,
    /// `None` until the first frame after a reset.
    processor: Option<StreamProcessor>,
    /// Frames since the last reset (the `FrameMeta` index).
    index: u64,
    /// Packed 3-channel copy of the frame (formats the model cannot read in place).
    packed: Vec<u8>,
    /// The packed frame before drawing (NV12: only changed pixels are written back).
    orig: Vec<u8>,
    objects: Vec<ExportObject>,
}

impl State {
    fn reset(&mut self) {
        self.processor = None;
        self.index = 0;
    }

    fn frame_rate(&self) -> Option<f64> {
        let fps = self.info.as_ref()?.fps();
        (fps.numer() > 0 && fps.denom() > 0).then(|| fps.numer() as f64 / fps.denom() as f64)
    }

    fn processor(&mut self) -> &mut StreamProcessor {
        let frame_rate = self.frame_rate();
        let (tracker, prompt, text) = (&self.tracker, &self.prompt, &self.text);
        self.processor.get_or_insert_with(|| {
            let mut p = StreamProcessor::new(StreamConfig { tracker: tracker.clone(), frame_rate });
            if let Some(pr) = prompt {
                p = p.with_prompt(Box::new(pr.clone()) as Box<dyn PromptSelector>);
            }
            // the prompts were checked in start(): building the selector again cannot fail
            if let Some(sel) = text.as_ref().and_then(|t| t.selector().ok()) {
                let every = text.as_ref().and_then(|t| t.every);
                p.set_text_scorer(Box::new(sel), fastsam_track::stream::TextScoring { every });
            }
            p
        })
    }

    /// Segment, track (one `StreamProcessor::process` call) and draw one frame.
    fn process(
        &mut self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
        pts: Option<Duration>,
    ) -> Result<FrameResult, ElementError> {
        use gst_video::VideoFormat as F;
        let map = |e: glib::BoolError| ElementError::Map(e.to_string());
        let (w, h) = (frame.width(), frame.height());
        let (wu, hu) = (w as usize, h as usize);
        let meta = FrameMeta { index: self.index, pts };
        self.index += 1;
        let stride0 = frame.plane_stride()[0] as usize;
        let format = frame.format();
        let result = match format {
            F::Rgb | F::Bgr => {
                let pf = if format == F::Rgb { PixelFormat::Rgb8 } else { PixelFormat::Bgr8 };
                let result = {
                    let data = frame.plane_data(0).map_err(map)?;
                    let view = ImageView { width: w, height: h, stride: stride0, format: pf, data };
                    let dets = self.segmenter.segment(view).map_err(ElementError::Segment)?;
                    self.processor().process(view, meta, dets)?
                };
                if let Some(ov) = &mut self.overlay {
                    let items: Vec<OverlayItem<'_>> = result.overlay_items().collect();
                    ov.draw(frame.plane_data_mut(0).map_err(map)?, w, h, stride0, pf, &items)?;
                }
                result
            }
            F::Rgba | F::Rgbx | F::Bgrx => {
                let pf = if format == F::Bgrx { PixelFormat::Bgr8 } else { PixelFormat::Rgb8 };
                convert::pack3(frame.plane_data(0).map_err(map)?, stride0, wu, hu, 4, &mut self.packed);
                let result = self.segment_packed(w, h, pf, meta)?;
                if let Some(ov) = &mut self.overlay {
                    let items: Vec<OverlayItem<'_>> = result.overlay_items().collect();
                    ov.draw(&mut self.packed, w, h, wu * 3, pf, &items)?;
                    convert::unpack3(&self.packed, frame.plane_data_mut(0).map_err(map)?, stride0, wu, hu, 4);
                }
                result
            }
            F::Nv12 => {
                let full = frame.info().colorimetry().range() == gst_video::VideoColorRange::Range0_255;
                let m = Matrix::new(full);
                let uv_stride = frame.plane_stride()[1] as usize;
                {
                    let src = Nv12 {
                        y: frame.plane_data(0).map_err(map)?,
                        y_stride: stride0,
                        uv: frame.plane_data(1).map_err(map)?,
                        uv_stride,
                    };
                    convert::nv12_to_rgb(&src, wu, hu, m, &mut self.packed);
                }
                let result = self.segment_packed(w, h, PixelFormat::Rgb8, meta)?;
                if let Some(ov) = &mut self.overlay {
                    self.orig.clear();
                    self.orig.extend_from_slice(&self.packed);
                    let items: Vec<OverlayItem<'_>> = result.overlay_items().collect();
                    ov.draw(&mut self.packed, w, h, wu * 3, PixelFormat::Rgb8, &items)?;
                    let [yp, uvp, ..] = frame.planes_data_mut();
                    convert::write_back_nv12(&self.orig, &self.packed, wu, hu, yp, stride0, uvp, uv_stride, m);
                }
                result
            }
            other => return Err(ElementError::Map(format!("unsupported format {other:?}"))),
        };
        Ok(result)
    }

    fn segment_packed(
        &mut self,
        w: u32,
        h: u32,
        pf: PixelFormat,
        meta: FrameMeta,
    ) -> Result<FrameResult, ElementError> {
        let packed = std::mem::take(&mut self.packed);
        let out = (|| {
            let view = ImageView::packed(w, h, pf, &packed)
                .ok_or_else(|| ElementError::Map(format!("packed buffer too small for {w}x{h}")))?;
            let dets = self.segmenter.segment(view).map_err(ElementError::Segment)?;
            Ok(self.processor().process(view, meta, dets)?)
        })();
        self.packed = packed;
        out
    }
}

/// Attach one ROI meta per track (see the module docs of `fastsamtrack`).
fn attach_metas(buf: &mut gst::BufferRef, objects: &[ExportObject], width: u32, height: u32) {
    for o in objects {
        let [x, y, bw, bh] = o.bbox;
        let x0 = x.max(0.0).floor().min(width as f32);
        let y0 = y.max(0.0).floor().min(height as f32);
        let x1 = (x + bw).min(width as f32).ceil().max(x0);
        let y1 = (y + bh).min(height as f32).ceil().max(y0);
        let rect = (x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32);
        let mut s = gst::Structure::builder(PARAM_NAME)
            .field("id", o.id)
            .field("score", o.score)
            .field("class-id", o.class_id)
            .field("bbox", gst::Array::new(o.bbox))
            .build();
        if let Some(rle) = &o.rle {
            s.set("rle-size", gst::Array::new(rle.size));
            s.set("rle-counts", gst::Array::new(rle.counts.iter().copied()));
        }
        let mut meta = gst_video::VideoRegionOfInterestMeta::add(buf, "object", rect);
        meta.set_id(i32::try_from(o.id).unwrap_or(i32::MAX));
        meta.add_param(s);
    }
}

#[derive(Default)]
pub struct FastSamTrack {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FastSamTrack {
    fn build_state(&self) -> Result<State, ElementError> {
        let settings = lock(&self.settings).clone();
        let opts = settings.model_options()?;
        let tracker = settings.tracker()?;
        let prompt = settings.prompt()?;
        // CLIP before FastSAM: a bad text prompt or encoder fails first
        let text = settings.text_prompt(&opts.engine_config())?;
        let spec = settings.model.clone();
        let path = fastsam_track::convert::resolve_model(spec.as_deref()).map_err(|source| ElementError::Resolve {
            spec: spec.clone().unwrap_or_else(|| "(default: $FASTSAM_MODEL or FastSAM-s)".into()),
            source,
        })?;
        let segmenter =
            FastSam::load(&path, opts).map_err(|source| ElementError::Load { path: path.clone(), source })?;
        gst::info!(CAT, imp = self, "model {}: {}", path.display(), segmenter.describe());
        Ok(State {
            segmenter,
            tracker,
            prompt,
            text,
            overlay: settings.draw.then(|| Overlay::new(settings.overlay_style())),
            info: None,
            processor: None,
            index: 0,
            packed: Vec::new(),
            orig: Vec::new(),
            objects: Vec::new(),
        })
    }

    fn reset(&self, why: &str) {
        if let Some(state) = lock(&self.state).as_mut() {
            gst::debug!(CAT, imp = self, "tracker reset ({why})");
            state.reset();
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FastSamTrack {
    const NAME: &'static str = "GstFastSamTrack";
    type Type = super::FastSamTrack;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for FastSamTrack {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb(
                        "FastSAM ONNX model: a .onnx path, a .pt checkpoint, or FastSAM-s / FastSAM-x (downloaded and \
                         converted once, then cached). Unset: $FASTSAM_MODEL, else FastSAM-s",
                    )
                    .default_value(d.model.as_deref())
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("device")
                    .nick("Device")
                    .blurb("Execution device: cpu, cuda, cuda:N, tensorrt, tensorrt:N or auto (CUDA if available)")
                    .default_value(Some(d.device.as_str()))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("imgsz")
                    .nick("Inference size")
                    .blurb("Inference size in pixels (longest side, multiple of 32); 0: the model's own size")
                    .maximum(8192)
                    .default_value(d.imgsz)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("conf")
                    .nick("Confidence threshold")
                    .blurb("Detection confidence threshold (0-1); the default is the built-in tracker's track_low_thresh, so that low-score detections can extend tracks (new tracks need new_track_thresh)")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.conf)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("iou")
                    .nick("NMS IoU threshold")
                    .blurb("Non-maximum suppression IoU threshold (0-1)")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.iou)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("retina-masks")
                    .nick("Retina masks")
                    .blurb("Build masks at the frame's resolution (false: at the network's, then resized)")
                    .default_value(d.retina_masks)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("ONNX Runtime intra-op threads; 0: ONNX Runtime's choice")
                    .maximum(1024)
                    .default_value(d.threads)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("tracker-config")
                    .nick("Tracker config")
                    .blurb("ByteTrack parameters, a TOML file (see configs/bytetrack.toml); unset: that file, built in")
                    .default_value(d.tracker_config.as_deref())
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("association", d.association)
                    .nick("Association")
                    .blurb("Track-detection similarity; unset: the tracker config's (the built-in config's is shown)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("draw")
                    .nick("Draw")
                    .blurb("Draw masks, contours and track IDs onto the frames")
                    .default_value(d.draw)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("mask-alpha")
                    .nick("Mask opacity")
                    .blurb("Opacity of the drawn masks (0-1)")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.mask_alpha)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("show-boxes")
                    .nick("Show boxes")
                    .blurb("Also draw boxes and scores")
                    .default_value(d.show_boxes)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("boxes")
                    .nick("Box prompts")
                    .blurb(
                        "Follow only the objects in these boxes on the first frame: x1,y1,x2,y2 in pixels, several \
                         separated by ';'",
                    )
                    .default_value(d.boxes.as_deref())
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("points")
                    .nick("Point prompts")
                    .blurb(
                        "Follow only the objects under these points on the first frame: x,y[,label] (label 1 include, \
                         0 exclude), several separated by ';'",
                    )
                    .default_value(d.points.as_deref())
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("text")
                    .nick("Text prompt")
                    .blurb(
                        "Follow the objects CLIP finds most similar to this description, e.g. 'a photo of a dog' \
                         (several separated by ';'); each new track is scored when it appears. Needs clip-image \
                         and clip-text",
                    )
                    .default_value(d.text.as_deref())
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("text-threshold")
                    .nick("Text threshold")
                    .blurb(
                        "Follow every track whose CLIP cosine similarity with the text is at least this; below -1 \
                         (the default) follow only the best-scoring track",
                    )
                    .minimum(TEXT_BEST)
                    .maximum(1.0)
                    .default_value(d.text_threshold)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("text-every")
                    .nick("Text re-scoring interval")
                    .blurb("Re-score each track every this many frames (0: only when it appears)")
                    .default_value(d.text_every)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("clip-image")
                    .nick("CLIP image encoder")
                    .blurb("CLIP image encoder ONNX (images[N,3,224,224] -> [N,D]), from scripts/export-clip.py")
                    .default_value(d.clip_image.as_deref())
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("clip-text")
                    .nick("CLIP text encoder")
                    .blurb("CLIP text encoder ONNX (tokens[N,77] int64 -> [N,D]), from the same CLIP model")
                    .default_value(d.clip_text.as_deref())
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("clip-vocab")
                    .nick("CLIP vocabulary")
                    .blurb("bpe_simple_vocab_16e6.txt.gz (default: beside the text encoder)")
                    .default_value(d.clip_vocab.as_deref())
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        let string = || value.get::<Option<String>>().ok().flatten().filter(|v| !v.trim().is_empty());
        match pspec.name() {
            "model" => s.model = string(),
            "device" => s.device = string().unwrap_or_else(|| Settings::default().device),
            "imgsz" => s.imgsz = value.get().unwrap_or(s.imgsz),
            "conf" => s.conf = value.get().unwrap_or(s.conf),
            "iou" => s.iou = value.get().unwrap_or(s.iou),
            "retina-masks" => s.retina_masks = value.get().unwrap_or(s.retina_masks),
            "threads" => s.threads = value.get().unwrap_or(s.threads),
            "tracker-config" => s.tracker_config = string(),
            "association" => {
                s.association = value.get().unwrap_or(s.association);
                s.association_set = true;
            }
            "draw" => s.draw = value.get().unwrap_or(s.draw),
            "mask-alpha" => s.mask_alpha = value.get().unwrap_or(s.mask_alpha),
            "show-boxes" => s.show_boxes = value.get().unwrap_or(s.show_boxes),
            "boxes" => s.boxes = string(),
            "points" => s.points = string(),
            "text" => s.text = string(),
            "text-threshold" => s.text_threshold = value.get().unwrap_or(s.text_threshold),
            "text-every" => s.text_every = value.get().unwrap_or(s.text_every),
            "clip-image" => s.clip_image = string(),
            "clip-text" => s.clip_text = string(),
            "clip-vocab" => s.clip_vocab = string(),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
        gst::debug!(CAT, imp = self, "set {} (takes effect at the next start)", pspec.name());
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "model" => s.model.to_value(),
            "device" => s.device.to_value(),
            "imgsz" => s.imgsz.to_value(),
            "conf" => s.conf.to_value(),
            "iou" => s.iou.to_value(),
            "retina-masks" => s.retina_masks.to_value(),
            "threads" => s.threads.to_value(),
            "tracker-config" => s.tracker_config.to_value(),
            "association" => s.association.to_value(),
            "draw" => s.draw.to_value(),
            "mask-alpha" => s.mask_alpha.to_value(),
            "show-boxes" => s.show_boxes.to_value(),
            "boxes" => s.boxes.to_value(),
            "points" => s.points.to_value(),
            "text" => s.text.to_value(),
            "text-threshold" => s.text_threshold.to_value(),
            "text-every" => s.text_every.to_value(),
            "clip-image" => s.clip_image.to_value(),
            "clip-text" => s.clip_text.to_value(),
            "clip-vocab" => s.clip_vocab.to_value(),
            _ => pspec.default_value().clone(),
        }
    }
}

impl GstObjectImpl for FastSamTrack {}

impl ElementImpl for FastSamTrack {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "FastSAM segmentation and mask tracking",
                "Filter/Analyzer/Video",
                "Segments every frame with FastSAM (ONNX Runtime), tracks the masks with ByteTrack (stable IDs), \
                 optionally draws them, and attaches one GstVideoRegionOfInterestMeta per track (param \
                 fastsam/track: id, score, bbox, COCO RLE mask)",
                "fastsam-track developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            use gst_video::VideoFormat as F;
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list([F::Rgb, F::Rgba, F::Rgbx, F::Bgr, F::Bgrx, F::Nv12])
                .build();
            [gst::PadDirection::Src, gst::PadDirection::Sink]
                .into_iter()
                .filter_map(|dir| {
                    let name = if dir == gst::PadDirection::Src { "src" } else { "sink" };
                    gst::PadTemplate::new(name, dir, gst::PadPresence::Always, &caps).ok()
                })
                .collect()
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for FastSamTrack {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        match self.build_state() {
            Ok(state) => {
                *lock(&self.state) = Some(state);
                Ok(())
            }
            Err(e) => {
                gst::error!(CAT, imp = self, "{e}");
                let kind = match e {
                    ElementError::Resolve { .. } | ElementError::Load { .. } => gst::ResourceError::OpenRead,
                    _ => gst::ResourceError::Settings,
                };
                Err(gst::error_msg!(kind, ("{}", e)))
            }
        }
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::StreamStart(_) => self.reset("stream start"),
            gst::EventView::FlushStop(_) => self.reset("flush"),
            gst::EventView::Segment(_) => self.reset("new segment (seek)"),
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = lock(&self.state);
        let Some(state) = guard.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("not started"));
            return Err(gst::FlowError::Error);
        };
        let Some(info) = state.info.clone() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let pts = buf.pts().map(|t| Duration::from_nanos(t.nseconds()));
        let result = match gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info) {
            Ok(mut frame) => state.process(&mut frame, pts),
            Err(e) => Err(ElementError::Map(e.to_string())),
        };
        match result {
            Ok(result) => {
                result.export_objects(true, &mut state.objects);
                attach_metas(buf, &state.objects, info.width(), info.height());
                gst::trace!(CAT, imp = self, "frame {}: {} tracks", result.meta.index, state.objects.len());
                Ok(gst::FlowSuccess::Ok)
            }
            Err(e) => {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e));
                Err(gst::FlowError::Error)
            }
        }
    }
}

impl VideoFilterImpl for FastSamTrack {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        outcaps: &gst::Caps,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        if let Some(state) = lock(&self.state).as_mut() {
            let resized =
                state.info.as_ref().is_some_and(|i| (i.width(), i.height()) != (in_info.width(), in_info.height()));
            if resized {
                // Boxes and masks of the old size mean nothing in the new one.
                gst::info!(
                    CAT,
                    imp = self,
                    "resolution changed to {}x{}: tracker reset",
                    in_info.width(),
                    in_info.height()
                );
                state.reset();
            }
            state.info = Some(in_info.clone());
        }
        self.parent_set_info(incaps, in_info, outcaps, out_info)
    }
}
