//! Output safety: one place that decides whether a run may write its outputs, and how it writes
//! them, so that no subcommand destroys a file the user did not ask it to replace.
//!
//! Two parts:
//!
//! - [`OutputCheck`]: before anything is opened for writing (and before the model loads), every
//!   output path is resolved (`file://` URIs decoded, symlinks followed, `(device, inode)` taken for
//!   existing files, so hard links are caught) and compared with every input and every other
//!   output. A clash is an [`OutputError`] that names both roles and the paths; the CLI exits with
//!   code 2 (usage) on it ([`OutputError::is_usage`]). The same pass checks that each output's
//!   directory exists and is writable, and that an existing output is not a directory.
//! - [`AtomicFile`] / [`PartialPath`]: outputs are written to a clearly named partial file next to
//!   the target (`NAME.partial`, or `NAME.partial-N` when that name is taken), which is fsynced and
//!   renamed over the target on [`AtomicFile::commit`]. Until then the previous target is
//!   untouched; a failed or dropped writer removes only the partial file it created itself (checked
//!   by `(device, inode)`), and never anything that is not a regular file. A `kill -9` leaves the
//!   previous target intact and the partial file on disk. Targets that are not regular files
//!   (`/dev/null`, a FIFO) are written in place and never renamed over or unlinked.
//!
//! How a subcommand uses it:
//!
//! ```no_run
//! use std::io::Write;
//! use std::path::Path;
//! use fastsam_track::outputs::{AtomicFile, OutputCheck, Role};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (input, model) = ("file:///data/in%20a.mp4", Path::new("/models/FastSAM-s.onnx"));
//! let (video_out, mot): (&Path, Option<&Path>) = (Path::new("/data/out.mp4"), Some(Path::new("/data/out.txt")));
//! // 1. Before the model loads: clash and directory checks (exit 2 on a clash).
//! OutputCheck::new()
//!     .input(Role::InputVideo, input) // a path or a URI; network URIs are skipped
//!     .input(Role::Model, model)
//!     .output(Role::OutputVideo, video_out)
//!     .maybe_output(Role::TracksMot, mot) // Option: nothing to check when None
//!     .check()?;
//! // 2. Write atomically: the previous /data/out.txt survives until commit.
//! let mut f = AtomicFile::create(Path::new("/data/out.txt"))?;
//! writeln!(f, "1,1,10,10,5,5,0.9,-1,-1,-1")?;
//! f.commit()?; // fsync + rename; dropping `f` instead removes only its partial file
//! # Ok(()) }
//! ```
//!
//! Writers that are not Rust code (the GStreamer `filesink` of the MP4 sink) use [`PartialPath`]:
//! it reserves the partial file, hands its path to the external writer, and renames it on commit.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// What a path is for, as named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The main job's input video (path or URI).
    InputVideo,
    /// The model file (`--model`).
    Model,
    /// A tracker config (`--tracker`).
    TrackerConfig,
    /// The pipeline config (`--pipelines`) or a template file.
    PipelineConfig,
    /// Detections read by `track-detections`.
    Detections,
    /// Ground truth of `eval-mot`.
    GroundTruth,
    /// Predictions of `eval-mot`.
    Predictions,
    /// A `.pt` checkpoint being converted.
    Checkpoint,
    /// An input image of `segment`.
    Image,
    /// The main job's MP4 (`-o`).
    OutputVideo,
    /// `--tracks-mot`.
    TracksMot,
    /// `--tracks-json`.
    TracksJson,
    /// The track file of `track-detections -o`.
    Tracks,
    /// The `.onnx` written by `model convert`.
    ConvertedModel,
    /// A JSON result of `segment`.
    SegmentJson,
    /// An overlay PNG of `segment`.
    SegmentPng,
    /// Anything else, named by the caller (e.g. `"the calibration data (--calib)"`).
    Other(&'static str),
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::InputVideo => "the input video",
            Role::Model => "the model (--model)",
            Role::TrackerConfig => "the tracker config (--tracker)",
            Role::PipelineConfig => "the pipeline config",
            Role::Detections => "the detections",
            Role::GroundTruth => "the ground truth (--gt)",
            Role::Predictions => "the predictions (--pred)",
            Role::Checkpoint => "the checkpoint",
            Role::Image => "the input image",
            Role::OutputVideo => "the output video (-o)",
            Role::TracksMot => "the MOT track file (--tracks-mot)",
            Role::TracksJson => "the JSON track file (--tracks-json)",
            Role::Tracks => "the track file (-o)",
            Role::ConvertedModel => "the converted model (-o)",
            Role::SegmentJson => "the JSON result",
            Role::SegmentPng => "the overlay PNG",
            Role::Other(s) => s,
        })
    }
}

/// Why an output may not be written. [`OutputError::is_usage`] tells the CLI to exit with 2.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(
        "{output_role} {output} is the same file as {input_role} {input}{how}: writing it would destroy \
         {input_role}. Choose another output path"
    )]
    OverwritesInput { output_role: Role, output: PathBuf, input_role: Role, input: PathBuf, how: &'static str },
    #[error("{first_role} {first} and {second_role} {second} are the same file{how}: give each output its own path")]
    SameOutput { first_role: Role, first: PathBuf, second_role: Role, second: PathBuf, how: &'static str },
    #[error(
        "cannot write {role} {path}: the directory {dir} does not exist. Create it (mkdir -p {dir}) or choose a path in an existing directory"
    )]
    NoDirectory { role: Role, path: PathBuf, dir: PathBuf },
    #[error("cannot write {role} {path}: {dir} is not a directory")]
    NotADirectory { role: Role, path: PathBuf, dir: PathBuf },
    #[error("cannot write {role} {path}: the directory {dir} is not writable ({error})")]
    NotWritable { role: Role, path: PathBuf, dir: PathBuf, error: std::io::Error },
    #[error("cannot write {role} {path}: it is a directory")]
    IsDirectory { role: Role, path: PathBuf },
    #[error("cannot write {role}: {path} does not name a file")]
    NoFileName { role: Role, path: PathBuf },
    /// An I/O error while writing or committing a file (the cause is part of the message).
    #[error("{action} {path}: {error}")]
    Io { action: &'static str, path: PathBuf, error: std::io::Error },
}

impl OutputError {
    /// A usage error (a clash, a missing or read-only directory): the CLI exits with code 2.
    pub fn is_usage(&self) -> bool {
        !matches!(self, OutputError::Io { .. })
    }

    fn io(action: &'static str, path: &Path, error: std::io::Error) -> Self {
        OutputError::Io { action, path: path.to_path_buf(), error }
    }
}

impl From<OutputError> for std::io::Error {
    fn from(e: OutputError) -> Self {
        match e {
            OutputError::Io { error, .. } => error,
            other => std::io::Error::other(other.to_string()),
        }
    }
}

/// Whether `s` starts with a URI scheme (`scheme://`), like `uridecodebin` expects.
pub fn uri_scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .then_some(scheme)
}

/// The local path of a `file://` URI (`file:///a%20b.mp4` → `/a b.mp4`; `file://localhost/…`
/// accepted), percent-decoded. `None` for other schemes, other hosts or malformed escapes.
pub fn file_uri_to_path(uri: &str) -> Option<PathBuf> {
    let scheme = uri_scheme(uri)?;
    if !scheme.eq_ignore_ascii_case("file") {
        return None;
    }
    let rest = &uri[scheme.len() + 3..];
    let path = if rest.starts_with('/') {
        rest
    } else {
        let (host, path) = rest.split_at(rest.find('/')?);
        if !host.eq_ignore_ascii_case("localhost") {
            return None;
        }
        path
    };
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(PathBuf::from(OsString::from_vec(out)))
}

/// The local file an input names: a plain path, or the path of a `file://` URI. `None` for
/// network URIs (`http://`, `rtsp://`, …).
pub fn local_input_path(input: impl AsRef<OsStr>) -> Option<PathBuf> {
    let input = input.as_ref();
    match input.to_str() {
        Some(s) if uri_scheme(s).is_some() => file_uri_to_path(s),
        _ => Some(PathBuf::from(input)),
    }
}

/// Identity of an existing file: `(device, inode)` after following symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> Self {
        FileId { dev: meta.dev(), ino: meta.ino() }
    }
}

/// Lexically clean a path (drop `.`, fold `..` where possible), made absolute against the cwd.
fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Follow a chain of symlinks at `path` itself (not its directories), even a dangling one: the
/// path a write to `path` would really create or replace. Gives up after 40 links.
fn follow_links(path: &Path) -> PathBuf {
    let mut p = absolute(path);
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(&p) {
                Ok(t) => {
                    let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
                    p = absolute(&base.join(t));
                }
                Err(_) => break,
            },
            _ => break,
        }
    }
    p
}

/// Where a write to `path` lands: the real directory (canonical) and file name, and the identity
/// and type of the file there now, if any.
#[derive(Debug, Clone)]
struct Resolved {
    /// Canonical directory + file name (symlinks at the file itself followed).
    real: PathBuf,
    dir: PathBuf,
    existing: Option<(FileId, std::fs::FileType)>,
}

fn resolve_output(role: Role, path: &Path) -> Result<Resolved, OutputError> {
    let target = follow_links(path);
    let name = target.file_name().ok_or_else(|| OutputError::NoFileName { role, path: path.to_path_buf() })?;
    let dir = target.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let dir_meta = match std::fs::metadata(&dir) {
        Ok(m) => m,
        Err(_) => return Err(OutputError::NoDirectory { role, path: path.to_path_buf(), dir }),
    };
    if !dir_meta.is_dir() {
        return Err(OutputError::NotADirectory { role, path: path.to_path_buf(), dir });
    }
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let real = dir.join(name);
    let existing = std::fs::metadata(&real).ok().map(|m| (FileId::of(&m), m.file_type()));
    if existing.is_some_and(|(_, t)| t.is_dir()) {
        return Err(OutputError::IsDirectory { role, path: path.to_path_buf() });
    }
    Ok(Resolved { real, dir, existing })
}

/// Whether the process may create files in `dir` (`access(W_OK|X_OK)`; catches read-only
/// filesystems and permissions, for root too where the kernel says so).
fn dir_writable(dir: &Path) -> Result<(), std::io::Error> {
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Sinks like `/dev/null` may be named by several outputs at once.
fn is_shared_sink(t: &std::fs::FileType) -> bool {
    t.is_char_device()
}

#[derive(Debug, Clone)]
struct Named {
    role: Role,
    shown: PathBuf,
}

/// The clash and directory checks of a run's inputs and outputs; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct OutputCheck {
    inputs: Vec<(Named, PathBuf)>,
    outputs: Vec<(Named, PathBuf)>,
}

impl OutputCheck {
    pub fn new() -> Self {
        Self::default()
    }

    /// An input: a path, or a URI (`file://` URIs are decoded; network URIs are ignored).
    pub fn input(mut self, role: Role, input: impl AsRef<OsStr>) -> Self {
        self.push_input(role, input);
        self
    }

    /// [`OutputCheck::input`] for an optional input.
    pub fn maybe_input<P: AsRef<OsStr>>(mut self, role: Role, input: Option<P>) -> Self {
        if let Some(i) = input {
            self.push_input(role, i);
        }
        self
    }

    /// An output path (a plain path: outputs are never URIs).
    pub fn output(mut self, role: Role, path: impl AsRef<Path>) -> Self {
        self.push_output(role, path);
        self
    }

    /// [`OutputCheck::output`] for an optional output.
    pub fn maybe_output<P: AsRef<Path>>(mut self, role: Role, path: Option<P>) -> Self {
        if let Some(p) = path {
            self.push_output(role, p);
        }
        self
    }

    /// Add an input in place (for loops).
    pub fn push_input(&mut self, role: Role, input: impl AsRef<OsStr>) {
        let input = input.as_ref();
        if let Some(p) = local_input_path(input) {
            self.inputs.push((Named { role, shown: PathBuf::from(input) }, p));
        }
    }

    /// Add an output in place (for loops).
    pub fn push_output(&mut self, role: Role, path: impl AsRef<Path>) {
        let p = path.as_ref().to_path_buf();
        self.outputs.push((Named { role, shown: p.clone() }, p));
    }

    /// Run the checks: every output's directory exists and is writable, no output is a directory,
    /// no output is an input, no two outputs are the same file.
    pub fn check(&self) -> Result<(), OutputError> {
        // Inputs that exist: identity, real path and how they were named.
        let inputs: Vec<(&Named, FileId, PathBuf)> = self
            .inputs
            .iter()
            .filter_map(|(n, p)| {
                let m = std::fs::metadata(p).ok()?;
                Some((n, FileId::of(&m), std::fs::canonicalize(p).unwrap_or_else(|_| absolute(p))))
            })
            .collect();
        let mut seen: Vec<(&Named, Resolved)> = Vec::new();
        for (named, path) in &self.outputs {
            let r = resolve_output(named.role, path)?;
            for (inp, id, real) in &inputs {
                let same_id = r.existing.is_some_and(|(oid, _)| oid == *id);
                if same_id || r.real == *real {
                    let how = how_same(&named.shown, &inp.shown, r.real == *real, path);
                    return Err(OutputError::OverwritesInput {
                        output_role: named.role,
                        output: named.shown.clone(),
                        input_role: inp.role,
                        input: inp.shown.clone(),
                        how,
                    });
                }
            }
            for (prev, pr) in &seen {
                let both_sink = matches!((pr.existing, r.existing), (Some((_, a)), Some((_, b))) if is_shared_sink(&a) && is_shared_sink(&b));
                let same_id = matches!((pr.existing, r.existing), (Some((a, _)), Some((b, _))) if a == b);
                if !both_sink && (same_id || pr.real == r.real) {
                    return Err(OutputError::SameOutput {
                        first_role: prev.role,
                        first: prev.shown.clone(),
                        second_role: named.role,
                        second: named.shown.clone(),
                        how: how_same(&named.shown, &prev.shown, pr.real == r.real, path),
                    });
                }
            }
            let writable_needed = r.existing.is_none_or(|(_, t)| t.is_file());
            if writable_needed && let Err(error) = dir_writable(&r.dir) {
                return Err(OutputError::NotWritable {
                    role: named.role,
                    path: named.shown.clone(),
                    dir: r.dir,
                    error,
                });
            }
            seen.push((named, r));
        }
        Ok(())
    }
}

fn how_same(a: &Path, b: &Path, same_path: bool, a_raw: &Path) -> &'static str {
    if a == b {
        ""
    } else if !same_path {
        " (a hard link)"
    } else if std::fs::symlink_metadata(a_raw).is_ok_and(|m| m.file_type().is_symlink())
        || std::fs::symlink_metadata(b).is_ok_and(|m| m.file_type().is_symlink())
    {
        " (through a symlink)"
    } else {
        ""
    }
}

/// A partial file next to a target, written by someone else (e.g. a GStreamer `filesink`) and
/// renamed over the target on [`PartialPath::commit`]. Dropped without commit, it removes the
/// partial file, if it is still the regular file it created. For targets that are not regular
/// files (`/dev/null`), [`PartialPath::path`] is the target itself and nothing is ever removed.
#[derive(Debug)]
pub struct PartialPath {
    target: PathBuf,
    /// The partial file and its identity; `None` when writing the target in place.
    partial: Option<(PathBuf, FileId)>,
    /// Held open so that the inode cannot be freed and reused by another file while we compare
    /// `(device, inode)`.
    hold: Option<File>,
    keep: bool,
}

impl PartialPath {
    /// Reserve `NAME.partial` (or `NAME.partial-N`) in the directory a write to `target` lands in
    /// (symlinks at `target` followed). The file is created empty, exclusively: an existing file of
    /// that name (a stale partial of a killed run) is left alone.
    pub fn create(target: &Path) -> Result<Self, OutputError> {
        let role = Role::Other("the output");
        let r = resolve_output(role, target)?;
        if let Some((_, t)) = r.existing
            && !t.is_file()
        {
            // A device or FIFO: written in place, never renamed over or removed.
            return Ok(Self { target: r.real, partial: None, hold: None, keep: false });
        }
        let name = r.real.file_name().map(OsStr::to_os_string).unwrap_or_default();
        for n in 0..1000u32 {
            let mut pname = name.clone();
            pname.push(if n == 0 { ".partial".to_string() } else { format!(".partial-{n}") });
            let p = r.dir.join(pname);
            match OpenOptions::new().write(true).create_new(true).open(&p) {
                Ok(f) => {
                    let meta = f.metadata().map_err(|e| OutputError::io("cannot create", &p, e))?;
                    return Ok(Self {
                        target: r.real,
                        partial: Some((p, FileId::of(&meta))),
                        hold: Some(f),
                        keep: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(match dir_writable(&r.dir) {
                        Err(error) => OutputError::NotWritable { role, path: target.to_path_buf(), dir: r.dir, error },
                        Ok(()) => OutputError::io("cannot create", &p, e),
                    });
                }
            }
        }
        Err(OutputError::io(
            "cannot create a partial file for",
            target,
            std::io::Error::other("1000 partial files already exist"),
        ))
    }

    /// Where the writer should write now.
    pub fn path(&self) -> &Path {
        self.partial.as_ref().map(|(p, _)| p.as_path()).unwrap_or(&self.target)
    }

    /// The file that [`PartialPath::commit`] replaces (symlinks followed).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Whether the target is written in place (not a regular file, e.g. `/dev/null`).
    pub fn in_place(&self) -> bool {
        self.partial.is_none()
    }

    /// Whether the partial file is still the one this run created.
    fn partial_is_ours(&self) -> bool {
        self.partial.as_ref().is_some_and(|(p, id)| {
            std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file() && FileId::of(&m) == *id)
        })
    }

    /// Rename the partial file over the target (after the writer has closed it). Keeps the
    /// permissions of a target that existed.
    pub fn commit(mut self) -> Result<PathBuf, OutputError> {
        self.keep = true;
        let Some((partial, _)) = self.partial.clone() else { return Ok(self.target.clone()) };
        if !self.partial_is_ours() {
            return Err(OutputError::io(
                "the partial file was replaced while writing",
                &partial,
                std::io::Error::other("not committed"),
            ));
        }
        if let Ok(m) = std::fs::metadata(&self.target)
            && m.is_file()
        {
            let _ = std::fs::set_permissions(&partial, m.permissions());
        }
        std::fs::rename(&partial, &self.target).map_err(|e| OutputError::io("cannot rename", &partial, e))?;
        if let Some(dir) = self.target.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(self.target.clone())
    }

    /// Keep the partial file as it is (a partial result); returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path().to_path_buf()
    }

    /// Remove the partial file now (only if it is still the regular file this run created).
    pub fn discard(mut self) {
        self.remove_partial();
        self.keep = true;
    }

    fn remove_partial(&mut self) {
        if self.partial_is_ours()
            && let Some((p, _)) = &self.partial
            && let Err(e) = std::fs::remove_file(p)
        {
            tracing::warn!("cannot remove the partial file {}: {e}", p.display());
        }
    }
}

impl Drop for PartialPath {
    fn drop(&mut self) {
        if !self.keep {
            self.remove_partial();
        }
    }
}

/// A file written through a partial file and renamed over its target on [`AtomicFile::commit`];
/// see the module docs. Buffered: [`Write::flush`] pushes the buffer to the partial file (so a
/// killed run leaves complete lines there).
#[derive(Debug)]
pub struct AtomicFile {
    w: Option<BufWriter<File>>,
    partial: Option<PartialPath>,
}

impl AtomicFile {
    /// Start writing `target` (its directory must exist; see [`PartialPath::create`]).
    pub fn create(target: &Path) -> Result<Self, OutputError> {
        let partial = PartialPath::create(target)?;
        let file = match &partial.hold {
            Some(f) => f.try_clone(),
            None => OpenOptions::new().write(true).open(partial.path()),
        }
        .map_err(|e| OutputError::io("cannot open", partial.path(), e))?;
        Ok(Self { w: Some(BufWriter::with_capacity(64 * 1024, file)), partial: Some(partial) })
    }

    /// Write `bytes` to `target` atomically in one call.
    pub fn write_all_to(target: &Path, bytes: &[u8]) -> Result<PathBuf, OutputError> {
        let mut f = Self::create(target)?;
        let p = f.partial_path().to_path_buf();
        f.write_all(bytes).map_err(|e| OutputError::io("cannot write", &p, e))?;
        f.commit()
    }

    /// Where the bytes go until commit.
    pub fn partial_path(&self) -> &Path {
        self.partial.as_ref().map(PartialPath::path).unwrap_or(Path::new(""))
    }

    /// The file replaced on commit.
    pub fn target(&self) -> &Path {
        self.partial.as_ref().map(PartialPath::target).unwrap_or(Path::new(""))
    }

    /// Flush, fsync and rename over the target. Returns the target path.
    pub fn commit(mut self) -> Result<PathBuf, OutputError> {
        let partial = self.partial.take().ok_or_else(|| {
            OutputError::io("cannot commit", Path::new(""), std::io::Error::other("already committed"))
        })?;
        if let Some(w) = self.w.take() {
            let p = partial.path().to_path_buf();
            let file = w.into_inner().map_err(|e| OutputError::io("cannot write", &p, e.into_error()))?;
            if !partial.in_place() {
                file.sync_all().map_err(|e| OutputError::io("cannot sync", &p, e))?;
            }
        }
        partial.commit()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.w {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("file already committed")),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match &mut self.w {
            Some(w) => w.write_all(buf),
            None => Err(std::io::Error::other("file already committed")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.w {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Close the file before the partial path removes it (PartialPath's own Drop).
        drop(self.w.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(p: &Path) -> Vec<u8> {
        use sha2::Digest;
        sha2::Sha256::digest(std::fs::read(p).unwrap()).to_vec()
    }

    #[test]
    fn file_uris_decode() {
        assert_eq!(file_uri_to_path("file:///a%20b/c.mp4"), Some(PathBuf::from("/a b/c.mp4")));
        assert_eq!(file_uri_to_path("FILE://localhost/x"), Some(PathBuf::from("/x")));
        assert_eq!(file_uri_to_path("file://otherhost/x"), None);
        assert_eq!(file_uri_to_path("file:///bad%2"), None);
        assert_eq!(file_uri_to_path("http://h/x"), None);
        assert_eq!(local_input_path("rtsp://cam/x"), None);
        assert_eq!(local_input_path("dir/x.mp4"), Some(PathBuf::from("dir/x.mp4")));
        assert_eq!(uri_scheme("rtsp://x"), Some("rtsp"));
        assert_eq!(uri_scheme("C:/x"), None);
        assert_eq!(uri_scheme("a b://x"), None);
    }

    #[test]
    fn clashes_are_found_through_uris_symlinks_and_hard_links() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in put.mp4");
        std::fs::write(&input, b"video").unwrap();
        let uri = format!("file://{}", dir.path().join("in%20put.mp4").display());
        let sym = dir.path().join("sym.mp4");
        std::os::unix::fs::symlink(&input, &sym).unwrap();
        let hard = dir.path().join("hard.mp4");
        std::fs::hard_link(&input, &hard).unwrap();
        for out in [&input, &sym, &hard] {
            let e =
                OutputCheck::new().input(Role::InputVideo, &uri).output(Role::OutputVideo, out).check().unwrap_err();
            assert!(matches!(e, OutputError::OverwritesInput { .. }), "{e}");
            assert!(e.is_usage());
            let msg = e.to_string();
            assert!(msg.contains("the output video (-o)") && msg.contains("the input video"), "{msg}");
        }
        // ./x and x, not existing yet: the same output twice
        let a = dir.path().join("t.txt");
        let b = dir.path().join(".").join("t.txt");
        let e = OutputCheck::new().output(Role::TracksMot, &a).output(Role::TracksJson, &b).check().unwrap_err();
        assert!(matches!(e, OutputError::SameOutput { .. }), "{e}");
        // a dangling symlink to another output
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("t.txt"), &dangling).unwrap();
        assert!(OutputCheck::new().output(Role::TracksMot, &a).output(Role::TracksJson, &dangling).check().is_err());
        // distinct files are fine; /dev/null may be named twice
        OutputCheck::new()
            .input(Role::InputVideo, &input)
            .output(Role::OutputVideo, dir.path().join("o.mp4"))
            .output(Role::TracksMot, "/dev/null")
            .output(Role::TracksJson, "/dev/null")
            .maybe_output(Role::Tracks, None::<&Path>)
            .check()
            .unwrap();
    }

    #[test]
    fn directories_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let e = OutputCheck::new().output(Role::TracksMot, dir.path().join("nope/t.txt")).check().unwrap_err();
        assert!(matches!(e, OutputError::NoDirectory { .. }), "{e}");
        let e = OutputCheck::new().output(Role::TracksMot, dir.path()).check().unwrap_err();
        assert!(matches!(e, OutputError::IsDirectory { .. }), "{e}");
        let f = dir.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        let e = OutputCheck::new().output(Role::TracksMot, f.join("t.txt")).check().unwrap_err();
        assert!(matches!(e, OutputError::NotADirectory { .. }), "{e}");
    }

    #[test]
    fn atomic_file_keeps_the_previous_target_until_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t.txt");
        std::fs::write(&target, b"previous").unwrap();
        let before = sha(&target);
        {
            let mut f = AtomicFile::create(&target).unwrap();
            assert_eq!(f.partial_path(), dir.path().canonicalize().unwrap().join("t.txt.partial"));
            f.write_all(b"new").unwrap();
            f.flush().unwrap();
            assert_eq!(std::fs::read(f.partial_path()).unwrap(), b"new");
            assert_eq!(sha(&target), before);
        } // dropped: partial removed, target intact
        assert_eq!(sha(&target), before);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // a stale partial of another run is left alone
        std::fs::write(dir.path().join("t.txt.partial"), b"stale").unwrap();
        let mut f = AtomicFile::create(&target).unwrap();
        assert!(f.partial_path().ends_with("t.txt.partial-1"));
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(std::fs::read(dir.path().join("t.txt.partial")).unwrap(), b"stale");
    }

    #[test]
    fn atomic_file_through_a_symlink_replaces_the_link_target() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.txt");
        std::fs::write(&real, b"old").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        AtomicFile::write_all_to(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
    }

    #[test]
    fn devices_are_written_in_place_and_never_removed() {
        let mut f = AtomicFile::create(Path::new("/dev/null")).unwrap();
        assert_eq!(f.partial_path(), Path::new("/dev/null"));
        f.write_all(b"discarded").unwrap();
        drop(f);
        let p = PartialPath::create(Path::new("/dev/null")).unwrap();
        assert!(p.in_place());
        drop(p);
        assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    }

    #[test]
    fn a_replaced_partial_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("v.mp4");
        let p = PartialPath::create(&target).unwrap();
        let partial = p.path().to_path_buf();
        // someone replaces the partial file with their own
        std::fs::remove_file(&partial).unwrap();
        std::fs::write(&partial, b"theirs").unwrap();
        drop(p);
        assert_eq!(std::fs::read(&partial).unwrap(), b"theirs");
    }
}
