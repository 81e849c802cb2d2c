#!/usr/bin/env bash
# N streams in one process (one shared model) against N separate processes run at the same time.
# Prints, for each N, the aggregate frames per second and the peak resident memory (one process:
# its max RSS; N processes: the sum of their max RSS).
#
# Usage: scripts/bench-streams.sh [MODEL] [CLIP] [N...]
#   MODEL default ../shared/models/FastSAM-n-synth-dynamic.onnx (imgsz 320)
#   CLIP  default ../shared/assets/synth/synth_track_a.mp4
#   N     default "1 2 4"
# Extra fastsam-track options: FASTSAM_BENCH_ARGS (default: --device cpu --imgsz 320).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${FASTSAM_BIN:-$ROOT/target/release/fastsam-track}"
MODEL="${1:-$ROOT/../shared/models/FastSAM-n-synth-dynamic.onnx}"
CLIP="${2:-$ROOT/../shared/assets/synth/synth_track_a.mp4}"
shift $(( $# > 2 ? 2 : $# )) || true
NS="${*:-1 2 4}"
read -r -a EXTRA <<< "${FASTSAM_BENCH_ARGS:---device cpu --imgsz 320}"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
FRAMES="${FASTSAM_BENCH_FRAMES:-250}"  # frames in CLIP

# Inputs must have distinct stems: link the clip under N names.
for i in $(seq 1 8); do ln -sf "$(realpath "$CLIP")" "$WORK/cam$i.mp4"; done

maxrss() { sed -n 's/.*Maximum resident set size (kbytes): //p' "$1"; }
now() { date +%s.%N; }

printf '%-3s %-26s %10s %14s\n' N mode "fps (agg.)" "peak RSS MiB"
for n in $NS; do
  inputs=(); for i in $(seq 1 "$n"); do inputs+=("$WORK/cam$i.mp4"); done
  # (workers, batch) pairs for the one-process rows
  runs="1:1 2:1"; [ "$n" -gt 1 ] && runs="1:1 1:$n 2:1 2:$n"
  for run in $runs; do
    workers="${run%%:*}"; batch="${run##*:}"
    out="$WORK/one-$n-$workers-$batch"; mkdir -p "$out"
    t0=$(now)
    /usr/bin/time -v -o "$WORK/time-one" "$BIN" "${inputs[@]}" --model "$MODEL" "${EXTRA[@]}" \
      --workers "$workers" --batch "$batch" -o "$out/" --tracks-mot "$out/" 2>/dev/null
    t1=$(now)
    fps=$(echo "$n * $FRAMES / ($t1 - $t0)" | bc -l)
    printf '%-3s %-26s %10.2f %14.0f\n' "$n" "1 process, w$workers b$batch" "$fps" "$(( $(maxrss "$WORK/time-one") / 1024 ))"
  done
  [ "$n" -gt 1 ] || continue
  # N separate processes, each with one worker (the smallest process) and with two.
  for workers in 1 2; do
    t0=$(now)
    pids=()
    for i in $(seq 1 "$n"); do
      out="$WORK/sep-$n-$i"; mkdir -p "$out"
      /usr/bin/time -v -o "$WORK/time-sep-$i" "$BIN" "$WORK/cam$i.mp4" --model "$MODEL" "${EXTRA[@]}" \
        --workers "$workers" -o "$out/" --tracks-mot "$out/" 2>/dev/null &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    t1=$(now)
    rss=0; for i in $(seq 1 "$n"); do rss=$(( rss + $(maxrss "$WORK/time-sep-$i") )); done
    fps=$(echo "$n * $FRAMES / ($t1 - $t0)" | bc -l)
    printf '%-3s %-26s %10.2f %14.0f\n' "$n" "$n processes, w$workers each" "$fps" "$(( rss / 1024 ))"
  done
done
