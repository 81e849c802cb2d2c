//! Locating the shared test assets (`../shared` beside the repository) for tests and benches.
//!
//! `FASTSAM_ASSETS` overrides the location. When a file is missing, [`require`] prints a loud
//! message and returns `None` so that the caller can skip, unless `FASTSAM_REQUIRE_ASSETS=1`,
//! in which case it panics and the test fails.

use std::path::PathBuf;

/// The assets root: `$FASTSAM_ASSETS`, or `../shared` relative to the workspace root (the first
/// folder above the including crate that holds `Cargo.lock`).
pub fn root() -> PathBuf {
    match std::env::var_os("FASTSAM_ASSETS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            let ws = manifest.ancestors().find(|d| d.join("Cargo.lock").is_file()).unwrap_or(manifest);
            ws.join("../shared")
        }
    }
}

/// Whether missing assets must fail instead of skipping (`FASTSAM_REQUIRE_ASSETS=1`).
pub fn required() -> bool {
    std::env::var("FASTSAM_REQUIRE_ASSETS").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The path of `rel` under the assets root if it exists. Otherwise prints a loud skip message and
/// returns `None`, or panics when [`required`].
pub fn require(rel: &str) -> Option<PathBuf> {
    let p = root().join(rel);
    if p.exists() {
        return Some(p);
    }
    let msg =
        format!("ASSET MISSING: {} (set FASTSAM_ASSETS to the shared assets folder; default ../shared)", p.display());
    if required() {
        panic!("{msg} and FASTSAM_REQUIRE_ASSETS=1");
    }
    eprintln!("\n!!!!!!!!!! SKIPPING: {msg} !!!!!!!!!!\n");
    None
}
