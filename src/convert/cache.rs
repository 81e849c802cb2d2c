//! Model resolution and the on-disk cache of downloaded checkpoints and converted models.
//!
//! Layout of the cache directory ([`cache_dir`]: `$FASTSAM_CACHE_DIR`, else
//! `dirs::cache_dir()/fastsam-track`):
//! - `FastSAM-s.pt`, `FastSAM-x.pt`: downloaded official checkpoints;
//! - `converted/<stem>-<sha256 of the weights, 16 hex>-c<converter version>.onnx`: converted models,
//!   so a checkpoint is converted once and any change of weights or converter gives a new file;
//! - `hashes/`: remembered checksums (keyed by path, size and mtime) to avoid re-hashing.
//!
//! Environment: `FASTSAM_MODEL` (default model spec), `FASTSAM_CACHE_DIR`, `FASTSAM_OFFLINE=1`
//! (never touch the network), `FASTSAM_MODEL_BASE_URL` (mirror of the release assets).

use std::path::{Path, PathBuf};

use super::ConvertError;
use super::download::{self, DownloadOptions, sha256_file};
use super::graph::{CONVERTER_VERSION, ConvertOptions, convert_checkpoint};

/// The Ultralytics assets release that Ultralytics 8.4.x downloads FastSAM weights from
/// (`attempt_download_asset(release="v8.4.0")` in `ultralytics/utils/downloads.py`).
pub const DEFAULT_BASE_URL: &str = "https://github.com/ultralytics/assets/releases/download/v8.4.0";

/// Official model names this tool can download.
pub const KNOWN_MODELS: &[&str] = &["FastSAM-s", "FastSAM-x"];

/// The default model when none is given.
pub const DEFAULT_MODEL: &str = "FastSAM-s";

fn env_nonempty(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

/// Whether `FASTSAM_OFFLINE` forbids network access.
pub fn offline() -> bool {
    env_nonempty("FASTSAM_OFFLINE").is_some_and(|v| !matches!(v.trim(), "0" | "false" | "no"))
}

/// The base URL for downloads (`FASTSAM_MODEL_BASE_URL` or [`DEFAULT_BASE_URL`]), without a trailing slash.
pub fn base_url() -> String {
    env_nonempty("FASTSAM_MODEL_BASE_URL")
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// The cache directory (created on demand by the functions that write to it).
pub fn cache_dir() -> Result<PathBuf, ConvertError> {
    if let Some(d) = env_nonempty("FASTSAM_CACHE_DIR") {
        return Ok(PathBuf::from(d));
    }
    dirs::cache_dir().map(|d| d.join("fastsam-track")).ok_or(ConvertError::NoCacheDir)
}

/// The official name (`FastSAM-s` / `FastSAM-x`) for a spec like `fastsam-s`, `FastSAM-x.pt`.
pub fn official_name(spec: &str) -> Option<&'static str> {
    let s = spec.strip_suffix(".pt").unwrap_or(spec);
    KNOWN_MODELS.iter().copied().find(|k| k.eq_ignore_ascii_case(s))
}

/// SHA-256 of a file, remembered in `<cache>/hashes/` (keyed by the file's absolute path) together
/// with its size and mtime, so that a large checkpoint is hashed once, and nothing is written
/// next to the user's files.
pub fn cached_sha256(path: &Path) -> Result<String, ConvertError> {
    use sha2::{Digest, Sha256};
    let meta = std::fs::metadata(path).map_err(|e| ConvertError::io(path, e))?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos());
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let stamp = format!("{} {} {}", meta.len(), mtime.unwrap_or(0), abs.display());
    let key: String =
        Sha256::digest(abs.to_string_lossy().as_bytes()).iter().take(12).map(|b| format!("{b:02x}")).collect();
    let side = cache_dir()?.join("hashes").join(format!("{key}.txt"));
    if let Ok(s) = std::fs::read_to_string(&side)
        && let Some((st, sha)) = s.trim().rsplit_once('\n')
        && st == stamp
        && sha.len() == 64
    {
        return Ok(sha.to_string());
    }
    let sha = sha256_file(path)?;
    // Best effort: a read-only cache only costs a re-hash next time.
    if let Some(dir) = side.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&side, format!("{stamp}\n{sha}\n"));
    Ok(sha)
}

/// Converts `pt` (dynamic shapes) into `<cache>/converted/`, unless already done; returns the `.onnx` path.
pub fn convert_cached(pt: &Path) -> Result<PathBuf, ConvertError> {
    let sha = cached_sha256(pt)?;
    let dir = cache_dir()?.join("converted");
    std::fs::create_dir_all(&dir).map_err(|e| ConvertError::io(&dir, e))?;
    let stem = pt.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "model".into());
    let out = dir.join(format!("{stem}-{}-c{CONVERTER_VERSION}.onnx", &sha[..16]));
    match std::fs::metadata(&out) {
        Ok(m) if m.is_file() && m.len() > 0 => {
            tracing::debug!("converted model cache hit: {}", out.display());
            return Ok(out);
        }
        Ok(m) if m.is_file() => {
            tracing::warn!("the cached conversion {} is empty (damaged): converting again", out.display());
        }
        _ => {}
    }
    tracing::info!("converting {} to ONNX (once; cached as {})", pt.display(), out.display());
    let t = std::time::Instant::now();
    let s = convert_checkpoint(pt, &out, &ConvertOptions::default())?;
    tracing::info!(
        "converted in {:.2}s: {} layers, {} initializers, {} nodes, scale {}",
        t.elapsed().as_secs_f64(),
        s.layers,
        s.initializers,
        s.nodes,
        s.scale.as_deref().unwrap_or("?")
    );
    Ok(out)
}

/// When `model` is a converted model in the cache: a hint naming it and how to clear it
/// (appended to "cannot load the model" errors, since a damaged cache file would otherwise fail
/// every run the same way).
pub fn damaged_hint(model: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(cache_dir().ok()?.join("converted")).ok()?;
    let path = std::fs::canonicalize(model).ok()?;
    path.starts_with(&dir).then(|| {
        format!(
            " (a cached conversion: if it is damaged, delete it with `rm {}`, or clear all conversions with \
             `rm -r {}`; the next run converts the checkpoint again)",
            path.display(),
            dir.display()
        )
    })
}

/// Where the checkpoint of an official model lives in the cache.
pub fn checkpoint_path(name: &str) -> Result<PathBuf, ConvertError> {
    Ok(cache_dir()?.join(format!("{name}.pt")))
}

/// Downloads an official checkpoint into the cache if it is not there yet; returns its path.
pub fn fetch(name: &str, force: bool) -> Result<PathBuf, ConvertError> {
    let dest = checkpoint_path(name)?;
    let url = format!("{}/{name}.pt", base_url());
    if dest.is_file() && !force {
        return Ok(dest);
    }
    if offline() {
        return Err(ConvertError::Offline { name: format!("{name}.pt"), expected: dest, url });
    }
    // One download per file across processes: hold `<name>.pt.lock` while downloading.
    let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(|e| ConvertError::io(&dir, e))?;
    let lock_path = dir.join(format!("{name}.pt.lock"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| ConvertError::io(&lock_path, e))?;
    if lock.try_lock().is_err() {
        tracing::info!("another fastsam-track process is downloading {name}.pt; waiting for it");
        lock.lock().map_err(|e| ConvertError::io(&lock_path, e))?;
        if dest.is_file() && !force {
            return Ok(dest);
        }
    }
    tracing::info!("downloading {url} -> {}", dest.display());
    download::download(&url, &dest, &DownloadOptions::default()).map_err(|e| match e {
        ConvertError::Download { url, msg } => ConvertError::Download {
            msg: format!(
                "{msg}. You can also download {name}.pt yourself and put it at {} (FASTSAM_MODEL_BASE_URL sets a mirror); {}",
                dest.display(),
                super::HOW_TO_GET
            ),
            url,
        },
        other => other,
    })?;
    Ok(dest)
}

/// Resolves a model spec to an ONNX file, downloading and converting as needed.
///
/// - `None`: `$FASTSAM_MODEL` if set, else the default FastSAM-s (a converted copy in the cache is
///   reused; otherwise it is downloaded and converted).
/// - an existing `.onnx` file: used as is.
/// - an existing `.pt` file: converted once (cached by weights hash and converter version).
/// - `FastSAM-s`, `FastSAM-x` (optionally with `.pt`): a local file of that name if present,
///   else the cached download, else downloaded from the Ultralytics assets release.
pub fn resolve_model(spec: Option<&str>) -> Result<PathBuf, ConvertError> {
    let spec = match spec.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => s.to_string(),
        None => match env_nonempty("FASTSAM_MODEL") {
            Some(s) => {
                tracing::debug!("model from FASTSAM_MODEL: {s}");
                s
            }
            None => {
                // A user-placed FastSAM-s.onnx in the cache wins; otherwise the FastSAM-s flow below.
                if let Ok(d) = cache_dir() {
                    let onnx = d.join(format!("{DEFAULT_MODEL}.onnx"));
                    if onnx.is_file() {
                        tracing::info!("using model {}", onnx.display());
                        return Ok(onnx);
                    }
                }
                DEFAULT_MODEL.to_string()
            }
        },
    };
    let path = resolve_spec(&spec)?;
    tracing::info!("using model {}", path.display());
    Ok(path)
}

fn resolve_spec(spec: &str) -> Result<PathBuf, ConvertError> {
    let p = Path::new(spec);
    let ext = p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
    if p.is_file() {
        return match ext.as_deref() {
            Some("onnx") => Ok(p.to_path_buf()),
            Some("pt") => convert_cached(p),
            _ => Err(ConvertError::Other(format!(
                "model {spec}: unknown file type (expected a .onnx model or an Ultralytics .pt checkpoint)"
            ))),
        };
    }
    if p.is_dir() {
        return Err(ConvertError::Other(format!("model {spec} is a directory, not a .onnx or .pt file")));
    }
    if let Some(name) = official_name(spec).filter(|_| p.components().count() == 1) {
        let pt = fetch(name, false)?;
        return convert_cached(&pt);
    }
    Err(ConvertError::NotFound { spec: spec.to_string() })
}
