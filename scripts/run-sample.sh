#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine (idempotent), build fastsam-track in release mode, and run
# the main job on the bundled sample clip. Extra arguments are passed to fastsam-track
# (e.g. --model /path/to/FastSAM-s.onnx, --device cuda).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
cargo build --release --locked
mkdir -p out
./target/release/fastsam-track samples/synth_track_a.mp4 -o out/synth_track_a.tracked.mp4 \
  --tracks-mot out/synth_track_a.tracks.txt --tracks-json out/synth_track_a.tracks.jsonl "$@"
