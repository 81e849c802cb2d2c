//! Locating and loading the ONNX Runtime shared library (ort `load-dynamic`).
//!
//! Search order:
//! 1. an explicit path (the `--ort-lib` flag), then `FASTSAM_ORT_LIB`, then `ORT_DYLIB_PATH`;
//! 2. next to the running executable (`libonnxruntime.so*`, or `onnxruntime/` beside it);
//! 3. the repository's `third_party/onnxruntime/` (where `scripts/setup.sh` puts it), found by
//!    walking up from the executable and from the crate's build-time manifest directory;
//! 4. the system library directories.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The command that installs ONNX Runtime into the repository.
pub const SETUP_HINT: &str = "run `scripts/setup.sh` from the fastsam-track repository (it downloads ONNX Runtime into third_party/onnxruntime), or pass --ort-lib /path/to/libonnxruntime.so";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("ONNX Runtime library not found (searched: {searched}); {hint}", hint = SETUP_HINT)]
    NotFound { searched: String },
    #[error("ONNX Runtime library {path} does not exist; {hint}", hint = SETUP_HINT)]
    ExplicitMissing { path: PathBuf },
    #[error("failed to load ONNX Runtime from {path}: {message}")]
    Load { path: PathBuf, message: String },
}

static LOADED: OnceLock<(PathBuf, ort::environment::Environment)> = OnceLock::new();
static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

const LIB_NAMES: &[&str] =
    &["libonnxruntime.so", "libonnxruntime.so.1.32.0", "libonnxruntime.so.1.31.1", "libonnxruntime.so.1"];

fn find_in_dir(dir: &Path) -> Option<PathBuf> {
    LIB_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// Candidate directories, in search order (excluding explicit paths).
pub fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(d) = exe.parent()
    {
        dirs.push(d.to_path_buf());
        dirs.push(d.join("onnxruntime"));
        for anc in d.ancestors().skip(1).take(6) {
            dirs.push(anc.join("third_party/onnxruntime"));
        }
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("third_party/onnxruntime"));
    for d in [
        "/usr/local/lib",
        "/usr/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/opt/onnxruntime/lib",
    ] {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

/// Find the library without loading it.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let env_path = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) =
        explicit.map(Path::to_path_buf).or_else(|| env_path("FASTSAM_ORT_LIB")).or_else(|| env_path("ORT_DYLIB_PATH"))
    {
        let p = if p.is_dir() { find_in_dir(&p).unwrap_or(p) } else { p };
        return if p.is_file() {
            Ok(std::path::absolute(&p).unwrap_or(p))
        } else {
            Err(RuntimeError::ExplicitMissing { path: p })
        };
    }
    let dirs = candidate_dirs();
    for d in &dirs {
        if let Some(p) = find_in_dir(d) {
            return Ok(p);
        }
    }
    Err(RuntimeError::NotFound {
        searched: dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
    })
}

/// Load ONNX Runtime once per process and return the path it was loaded from.
/// Later calls return the first path (ONNX Runtime cannot be re-initialised).
pub fn init(explicit: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, _)) = LOADED.get() {
        return Ok(p.clone());
    }
    let path = locate(explicit)?;
    let load_err = |message: String| RuntimeError::Load { path: path.clone(), message };
    let builder = ort::init_from(&path).map_err(|e| load_err(e.to_string()))?;
    let env = builder.with_name("fastsam-track").with_telemetry(false).build().map_err(|e| load_err(e.to_string()))?;
    tracing::debug!(path = %path.display(), "loaded ONNX Runtime");
    Ok(LOADED.get_or_init(|| (path, env)).0.clone())
}

/// The process-wide ONNX Runtime environment that sessions are built from (loads the library first if
/// needed; ort allows only one environment per process).
pub fn environment(explicit: Option<&Path>) -> Result<ort::environment::Environment, RuntimeError> {
    let path = init(explicit)?;
    LOADED
        .get()
        .map(|(_, env)| env.clone())
        .ok_or_else(|| RuntimeError::Load { path, message: "environment missing after initialisation".into() })
}
