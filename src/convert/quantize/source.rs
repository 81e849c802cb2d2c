//! Calibration frames from a video file, a URI, an image folder or a list of images (feature
//! `video`), and the cache of quantized models used by `--precision int8`.
//!
//! A source is checked when it is opened ([`CalibSource::open`]), before any model work: a file
//! that does not exist, is empty or cannot be decoded, or a folder without images, fails there.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::{CalibMethod, QUANTIZER_VERSION, QuantizeError, QuantizeOptions, QuantizeSummary, Quantizer};
use crate::types::{ImageView, PixelFormat};
use crate::video::{FramePool, SourceConfig, VideoSource};

/// Image file extensions read from a calibration folder.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"];

/// Where calibration frames come from.
pub enum CalibSource {
    /// A video file or URI, opened (its first frame decoded) by [`CalibSource::open`].
    Video { input: String, source: Box<VideoSource> },
    /// Still images (a folder's, sorted by name, or a list).
    Images { name: String, paths: Vec<PathBuf> },
}

impl std::fmt::Debug for CalibSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn src_err(name: &str, msg: impl Into<String>) -> QuantizeError {
    QuantizeError::CalibrationSource { source_name: crate::video::redact_credentials(name), msg: msg.into() }
}

fn is_image(p: &Path) -> bool {
    p.extension().is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn check_image(name: &str, p: &Path) -> Result<(), QuantizeError> {
    let meta = std::fs::metadata(p).map_err(|e| src_err(name, format!("cannot read {}: {e}", p.display())))?;
    if !meta.is_file() || meta.len() == 0 {
        return Err(src_err(name, format!("{} is not a non-empty image file", p.display())));
    }
    let readable = p.to_str().is_some_and(|s| opencv::imgcodecs::have_image_reader(s).unwrap_or(false));
    if !readable {
        return Err(src_err(name, format!("{} is not an image OpenCV can decode", p.display())));
    }
    Ok(())
}

impl CalibSource {
    /// Opens `spec`: an image folder, an image file, or a video file / URI (decoded with the
    /// default decode pipeline). Fails with a message naming the problem if it cannot be read.
    pub fn open(spec: &str) -> Result<CalibSource, QuantizeError> {
        let p = Path::new(spec);
        if crate::outputs::uri_scheme(spec).is_none() {
            if p.is_dir() {
                let rd = std::fs::read_dir(p).map_err(|e| src_err(spec, format!("cannot list the folder: {e}")))?;
                let mut paths: Vec<PathBuf> =
                    rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| is_image(p)).collect();
                paths.sort();
                if paths.is_empty() {
                    return Err(src_err(
                        spec,
                        format!(
                            "the folder has no images ({}); give a video or a folder of images",
                            IMAGE_EXTENSIONS.join(", ")
                        ),
                    ));
                }
                check_image(spec, &paths[0])?;
                return Ok(CalibSource::Images { name: spec.to_string(), paths });
            }
            if is_image(p) {
                return Self::images(vec![p.to_path_buf()]);
            }
        }
        crate::video::input_to_uri(spec).map_err(|e| src_err(spec, e.to_string()))?;
        let source = VideoSource::open(spec, &SourceConfig::default())
            .map_err(|e| src_err(spec, format!("cannot decode it: {e}")))?;
        Ok(CalibSource::Video { input: spec.to_string(), source: Box::new(source) })
    }

    /// A list of still images (each checked).
    pub fn images(paths: Vec<PathBuf>) -> Result<CalibSource, QuantizeError> {
        let name = match paths.as_slice() {
            [] => return Err(src_err("(no images)", "no calibration images were given")),
            [one] => one.display().to_string(),
            [first, ..] => format!("{} and {} more images", first.display(), paths.len() - 1),
        };
        for p in &paths {
            check_image(&name, p)?;
        }
        Ok(CalibSource::Images { name, paths })
    }

    /// For messages and metadata (credentials redacted).
    pub fn describe(&self) -> String {
        match self {
            CalibSource::Video { input, .. } => crate::video::redact_credentials(input),
            CalibSource::Images { name, paths } if paths.len() > 1 && Path::new(name).is_dir() => {
                format!("{name} ({} images)", paths.len())
            }
            CalibSource::Images { name, .. } => name.clone(),
        }
    }

    /// What identifies the source's content for the cache: for files their absolute path, size and
    /// modification time; for URIs the URI.
    pub fn identity(&self) -> String {
        let file_id = |p: &Path| {
            let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            let meta = std::fs::metadata(p).ok();
            let mtime = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!("{} {} {mtime}", abs.display(), meta.map(|m| m.len()).unwrap_or(0))
        };
        match self {
            CalibSource::Video { input, .. } if crate::outputs::uri_scheme(input).is_none() => {
                file_id(Path::new(input))
            }
            CalibSource::Video { input, .. } => input.clone(),
            CalibSource::Images { paths, .. } => paths.iter().map(|p| file_id(p)).collect::<Vec<_>>().join("\n"),
        }
    }

    /// Calls `f` on up to `n` frames spread over the source (a video of known length: every k-th
    /// frame; a live stream: the first `n`); `progress(done, n)` after each. Returns the frames used.
    pub fn for_each_frame(
        self,
        n: usize,
        mut f: impl FnMut(&ImageView<'_>) -> Result<(), QuantizeError>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<usize, QuantizeError> {
        let mut done = 0usize;
        match self {
            CalibSource::Images { name, paths } => {
                let k = paths.len();
                let picks: Vec<usize> = if k <= n { (0..k).collect() } else { (0..n).map(|i| i * k / n).collect() };
                for i in picks {
                    let p = &paths[i];
                    let s = p.to_str().ok_or_else(|| src_err(&name, format!("{} is not valid UTF-8", p.display())))?;
                    let m = opencv::imgcodecs::imread(s, opencv::imgcodecs::IMREAD_COLOR)
                        .map_err(|e| src_err(&name, format!("cannot read {}: {e}", p.display())))?;
                    use opencv::core::{MatTraitConst, MatTraitConstManual};
                    if m.empty() {
                        return Err(src_err(&name, format!("cannot decode {}", p.display())));
                    }
                    let m =
                        if m.is_continuous() { m } else { m.try_clone().map_err(|e| src_err(&name, e.to_string()))? };
                    let data = m.data_bytes().map_err(|e| src_err(&name, e.to_string()))?;
                    let view = ImageView::packed(m.cols() as u32, m.rows() as u32, PixelFormat::Bgr8, data)
                        .ok_or_else(|| src_err(&name, format!("{}: unexpected pixel layout", p.display())))?;
                    f(&view)?;
                    done += 1;
                    progress(done, n.min(k));
                }
            }
            CalibSource::Video { input, mut source } => {
                let info = source.info().clone();
                let step = match info.expected_frames().filter(|_| !info.live) {
                    Some(total) if total as usize > n => (total as usize / n).max(1),
                    _ => 1,
                };
                let pool = FramePool::new(2);
                let stop = AtomicBool::new(false);
                let mut index = 0usize;
                while done < n {
                    let frame = source.next_frame(&pool, &stop).map_err(|e| src_err(&input, e.to_string()))?;
                    let Some(frame) = frame else { break };
                    if index.is_multiple_of(step) {
                        f(&frame.view())?;
                        done += 1;
                        progress(done, n);
                    }
                    index += 1;
                }
            }
        }
        if done == 0 {
            return Err(QuantizeError::NoFrames("the calibration source gave no frame".into()));
        }
        Ok(done)
    }
}

/// Quantizes the float model at `model` (`.onnx`) on `source`, writing `out`.
pub fn quantize_with_source(
    model: &Path,
    source: CalibSource,
    out: &Path,
    opts: &QuantizeOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<QuantizeSummary, QuantizeError> {
    let desc = format!("calibrated on {}", source.describe());
    let mut q = Quantizer::open(model, opts)?;
    source.for_each_frame(opts.calib_frames.max(1), |im| q.observe(im), progress)?;
    q.finish(out, &desc)
}

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn method_tag(m: CalibMethod) -> String {
    match m {
        CalibMethod::MinMax => "minmax".into(),
        CalibMethod::Percentile(p) => format!("p{p}"),
        CalibMethod::Mse => "mse".into(),
    }
}

/// Where [`quantize_cached`] keeps the quantized copy of `model` for `source` and `opts`:
/// `<cache>/quantized/<stem>-<sha256 of the weights, 16 hex>-<hash of the calibration source and
/// settings, 12 hex>-q<quantizer version>.onnx`.
pub fn cached_path(model: &Path, source: &CalibSource, opts: &QuantizeOptions) -> Result<PathBuf, QuantizeError> {
    let sha = crate::convert::cache::cached_sha256(model)?;
    let key = format!(
        "{}|imgsz={:?}|frames={}|method={}|head={}|ct={}|class={}{}|float_ops={:?}|float_nodes={:?}|headroom={}|logits_float={}|share_concat={:?}|s2d={}",
        source.identity(),
        opts.imgsz,
        opts.calib_frames,
        method_tag(opts.method),
        opts.quantize_head_convs,
        opts.conv_transpose_as_conv,
        opts.class_branch_float,
        opts.class_branch_method.map(|m| format!("|class_method={}", method_tag(m))).unwrap_or_default(),
        opts.float_ops,
        opts.float_nodes,
        opts.class_headroom,
        opts.class_logits_float,
        opts.share_concat_scales,
        opts.stem_space_to_depth
    );
    let stem = model.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "model".into());
    let dir = crate::convert::cache_dir()?.join("quantized");
    Ok(dir.join(format!("{stem}-{}-{}-q{QUANTIZER_VERSION}.onnx", &sha[..16], short_hash(&key))))
}

/// The int8 model for `model` (a float `.onnx`) calibrated on `source`: from the cache, or
/// quantized now and cached ([`cached_path`]). Returns the path and whether it was quantized now.
pub fn quantize_cached(
    model: &Path,
    source: CalibSource,
    opts: &QuantizeOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(PathBuf, bool), QuantizeError> {
    let out = cached_path(model, &source, opts)?;
    if std::fs::metadata(&out).is_ok_and(|m| m.is_file() && m.len() > 0) {
        tracing::debug!("quantized model cache hit: {}", out.display());
        return Ok((out, false));
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| QuantizeError::io(dir, e))?;
    }
    tracing::info!(
        "quantizing {} to int8 on {} (once; cached as {})",
        model.display(),
        source.describe(),
        out.display()
    );
    let t = std::time::Instant::now();
    let s = quantize_with_source(model, source, &out, opts, progress)?;
    tracing::info!(
        "quantized in {:.1}s: {} nodes in int8, {} kept in float",
        t.elapsed().as_secs_f64(),
        s.total_quantized(),
        s.total_float()
    );
    Ok((out, true))
}
