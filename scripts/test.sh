#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine (idempotent) and run the full test suite:
# formatting, clippy with warnings denied, and every unit/integration/doc test.
#
# Tests read the shared assets from $FASTSAM_ASSETS (default ../shared). Missing assets make the
# tests that need them skip loudly; FASTSAM_REQUIRE_ASSETS=1 turns that into a failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "[test] cargo fmt --check"
cargo fmt --all -- --check
echo "[test] cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "[test] cargo test (workspace: the library, the CLI and the gst-fastsam plugin)"
# Build first: the plugin's tests load libgstfastsam.so (a cdylib, not built by `cargo test`) and
# run the fastsam-track binary.
cargo build --locked --workspace
cargo test --locked --workspace --all-targets
cargo test --locked --workspace --doc
