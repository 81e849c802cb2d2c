//! Resumable, verified HTTP(S) downloads with a progress bar.
//!
//! The body is written to `<dest>.part`; an interrupted transfer (connection dropped, server error,
//! short body) is retried up to [`DownloadOptions::retries`] times, resuming with an HTTP `Range`
//! request when the server supports it (206) and restarting otherwise (200). The result must match
//! the announced `Content-Length`, the expected size and the expected SHA-256 when those are known;
//! a mismatch deletes the partial file and returns [`ConvertError::Corrupt`]. Only a verified file is
//! moved into place, with an atomic rename.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::ConvertError;

/// Receives download progress (the CLI draws a bar; the library itself draws nothing).
pub trait Progress: Send + Sync {
    /// A transfer of `name` starts.
    fn start(&self, _name: &str) {}
    /// The total size became known.
    fn set_length(&self, _bytes: u64) {}
    /// Bytes on disk so far.
    fn set_position(&self, _bytes: u64) {}
    /// The download completed.
    fn finish(&self) {}
    /// The download gave up.
    fn abandon(&self) {}
}

/// Makes the [`Progress`] receiver of downloads that are given none (see [`set_default_progress`]).
pub type ProgressFactory = Box<dyn Fn() -> Arc<dyn Progress> + Send + Sync>;

static DEFAULT_PROGRESS: OnceLock<ProgressFactory> = OnceLock::new();

/// Install the process-wide progress receiver for downloads started without one (the CLI installs
/// a progress bar). Only the first call takes effect.
pub fn set_default_progress(factory: ProgressFactory) {
    let _ = DEFAULT_PROGRESS.set(factory);
}

/// A progress receiver that logs the start and end of a transfer.
struct LogProgress;

impl Progress for LogProgress {
    fn start(&self, name: &str) {
        tracing::info!("downloading {name}");
    }
}

/// Download settings.
#[derive(Clone)]
pub struct DownloadOptions {
    /// Expected size in bytes, if known.
    pub expected_size: Option<u64>,
    /// Expected SHA-256 (lower-case hex), if known.
    pub sha256: Option<String>,
    /// How many times an interrupted transfer is resumed/retried.
    pub retries: u32,
    /// Pause before a retry (doubled each time).
    pub retry_delay: Duration,
    /// Where progress goes; `None`: the process default ([`set_default_progress`]), else a log line.
    pub progress: Option<Arc<dyn Progress>>,
    /// Connect/response timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("expected_size", &self.expected_size)
            .field("sha256", &self.sha256)
            .field("retries", &self.retries)
            .field("retry_delay", &self.retry_delay)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            expected_size: None,
            sha256: None,
            retries: 5,
            retry_delay: Duration::from_millis(500),
            progress: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// What happened during a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    /// Number of HTTP requests made (1 when nothing went wrong).
    pub attempts: u32,
    /// Number of requests that resumed a partial file with `Range`.
    pub resumed: u32,
}

enum Attempt {
    Done { total: Option<u64> },
    Retry(String),
}

fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// Downloads `url` to `dest` (see the module docs).
pub fn download(url: &str, dest: &Path, opts: &DownloadOptions) -> Result<DownloadReport, ConvertError> {
    let derr = |msg: String| ConvertError::Download { url: url.to_string(), msg };
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ConvertError::io(dir, e))?;
    }
    let part = part_path(dest);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(opts.timeout))
        .timeout_recv_response(Some(opts.timeout))
        .user_agent(concat!("fastsam-track/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let bar: Arc<dyn Progress> =
        opts.progress.clone().or_else(|| DEFAULT_PROGRESS.get().map(|f| f())).unwrap_or_else(|| Arc::new(LogProgress));
    let name = dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    bar.start(&name);
    let mut attempts = 0u32;
    let mut resumed = 0u32;
    let mut delay = opts.retry_delay;
    let mut last_err = String::new();
    let total = loop {
        if attempts > opts.retries {
            bar.abandon();
            let kept = match std::fs::metadata(&part) {
                Ok(m) if m.len() > 0 => {
                    format!(
                        "; the partial file {} ({} bytes) is kept and will be resumed next time",
                        part.display(),
                        m.len()
                    )
                }
                _ => String::new(),
            };
            return Err(derr(format!("gave up after {attempts} attempts ({last_err}){kept}")));
        }
        if attempts > 0 {
            tracing::warn!("download of {url} interrupted ({last_err}); retrying in {delay:?}");
            std::thread::sleep(delay);
            delay = delay.saturating_mul(2).min(Duration::from_secs(10));
        }
        attempts += 1;
        match attempt(&agent, url, &part, &bar, &mut resumed)? {
            Attempt::Done { total } => break total,
            Attempt::Retry(e) => last_err = e,
        }
    };
    bar.finish();
    // Verify.
    let len = std::fs::metadata(&part).map_err(|e| ConvertError::io(&part, e))?.len();
    let corrupt = |msg: String| {
        let _ = std::fs::remove_file(&part);
        ConvertError::Corrupt { url: url.to_string(), msg }
    };
    if let Some(t) = total
        && len != t
    {
        return Err(corrupt(format!("got {len} bytes but the server announced {t}")));
    }
    if let Some(exp) = opts.expected_size
        && len != exp
    {
        return Err(corrupt(format!("size is {len} bytes, expected {exp}")));
    }
    let sha = sha256_file(&part)?;
    if let Some(exp) = &opts.sha256
        && !sha.eq_ignore_ascii_case(exp)
    {
        return Err(corrupt(format!("SHA-256 is {sha}, expected {exp}")));
    }
    std::fs::rename(&part, dest).map_err(|e| ConvertError::io(dest, e))?;
    tracing::info!("downloaded {url} -> {} ({len} bytes, sha256 {sha})", dest.display());
    Ok(DownloadReport { path: dest.to_path_buf(), bytes: len, sha256: sha, attempts, resumed })
}

/// `a-b/total` from a `Content-Range: bytes a-b/total` header.
fn content_range(v: &str) -> Option<(u64, u64)> {
    let r = v.trim().strip_prefix("bytes")?.trim();
    let (range, total) = r.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()?))
}

fn attempt(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    bar: &Arc<dyn Progress>,
    resumed: &mut u32,
) -> Result<Attempt, ConvertError> {
    let derr = |msg: String| ConvertError::Download { url: url.to_string(), msg };
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut req = agent.get(url);
    if have > 0 {
        req = req.header("Range", format!("bytes={have}-"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Io(e)) => return Ok(Attempt::Retry(format!("connection error: {e}"))),
        Err(ureq::Error::Timeout(t)) => return Ok(Attempt::Retry(format!("timeout ({t})"))),
        Err(ureq::Error::ConnectionFailed) => return Ok(Attempt::Retry("connection failed".into())),
        Err(e @ (ureq::Error::HostNotFound | ureq::Error::BadUri(_))) => {
            return Err(derr(format!("{e} (check the URL or FASTSAM_MODEL_BASE_URL)")));
        }
        Err(e) => return Ok(Attempt::Retry(e.to_string())),
    };
    let status = resp.status().as_u16();
    let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let content_length: Option<u64> = header("content-length").and_then(|v| v.trim().parse().ok());
    let (mut file, start, total) = match status {
        206 if have > 0 => {
            let (start, total) = header("content-range")
                .and_then(|v| content_range(&v))
                .ok_or_else(|| derr("206 response without a valid Content-Range".into()))?;
            if start != have {
                // Unexpected offset: start over.
                let _ = std::fs::remove_file(part);
                return Ok(Attempt::Retry(format!("server resumed at byte {start} instead of {have}")));
            }
            *resumed += 1;
            let f = OpenOptions::new().append(true).open(part).map_err(|e| ConvertError::io(part, e))?;
            (f, have, Some(total))
        }
        200 => {
            let f = File::create(part).map_err(|e| ConvertError::io(part, e))?;
            (f, 0, content_length)
        }
        416 => {
            // Our partial file is not a prefix the server can continue: start over.
            let _ = std::fs::remove_file(part);
            return Ok(Attempt::Retry("range not satisfiable; restarting".into()));
        }
        404 | 410 => return Err(derr(format!("HTTP {status}: no such file on the server"))),
        400..=499 => return Err(derr(format!("HTTP {status}"))),
        _ => return Ok(Attempt::Retry(format!("HTTP {status}"))),
    };
    if let Some(t) = total {
        bar.set_length(t);
    }
    bar.set_position(start);
    let mut reader = resp.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut pos = start;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                file.write_all(&buf[..n]).map_err(|e| ConvertError::io(part, e))?;
                pos += n as u64;
                bar.set_position(pos);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                file.flush().map_err(|e| ConvertError::io(part, e))?;
                return Ok(Attempt::Retry(format!("transfer interrupted at byte {pos}: {e}")));
            }
        }
    }
    file.flush().map_err(|e| ConvertError::io(part, e))?;
    file.sync_all().map_err(|e| ConvertError::io(part, e))?;
    if let Some(t) = total
        && pos < t
    {
        return Ok(Attempt::Retry(format!("connection closed at byte {pos} of {t}")));
    }
    Ok(Attempt::Done { total })
}

/// SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, ConvertError> {
    let mut f = File::open(path).map_err(|e| ConvertError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| ConvertError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_range() {
        assert_eq!(content_range("bytes 100-199/200"), Some((100, 200)));
        assert_eq!(content_range("bytes */200"), None);
        assert_eq!(content_range("items 1-2/3"), None);
    }
}
