#!/usr/bin/env bash
# Element vs CLI throughput on the same clip and model, file -> file (decode, segment, track, draw,
# encode), release builds, alternating runs. Usage: scripts/bench-element.sh [CLIP] [MODEL] [IMGSZ] [RUNS]
# Build first: cargo build --release --workspace --lib --bins
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLIP="${1:-$ROOT/../shared/assets/synth/synth_track_a.mp4}"
MODEL="${2:-$ROOT/../shared/models/FastSAM-n-synth-dynamic.onnx}"
IMGSZ="${3:-640}"
RUNS="${4:-3}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
export GST_PLUGIN_PATH="$ROOT/target/release"
export GST_REGISTRY="$OUT/registry.bin"
gst-inspect-1.0 fastsamtrack >/dev/null
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>"$OUT/err" || { cat "$OUT/err"; exit 1; }; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
for i in $(seq "$RUNS"); do
  # the line of pipelines/fastsamtrack-file.txt
  e=$(secs gst-launch-1.0 -e filesrc location="$CLIP" ! decodebin ! videoconvert ! queue ! fastsamtrack model="$MODEL" imgsz="$IMGSZ" device=cpu ! queue ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=superfast bframes=0 ! h264parse ! mp4mux ! filesink location="$OUT/element.mp4")
  c=$(secs "$ROOT/target/release/fastsam-track" "$CLIP" --model "$MODEL" --imgsz "$IMGSZ" --device cpu -o "$OUT/cli.mp4")
  echo "run $i: element ${e} s, cli ${c} s"
done
