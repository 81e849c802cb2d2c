#!/usr/bin/env python3
"""Time COCO evaluation (no model) of `fastsam-track val --pred`, pycocotools and faster-coco-eval
on the same data: golden/coco replicated to at least N images (default 5,000).

Usage: python3 scripts/bench-coco.py [--images 5000] [--bin target/release/fastsam-track]
       [--assets ../shared] [--preds preds_ultralytics.json] [--workdir DIR] [--repeat 1]

pycocotools and faster-coco-eval are benchmark-only dependencies (pip install pycocotools
faster-coco-eval numpy); the script prints one line per evaluator and a Markdown table. Each
evaluator runs in its own process and is timed from reading the files to the 12 statistics of
both bbox and segm; the three must agree (AP, segm and bbox, to 1e-4).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

PY_EVAL = r"""
import sys, time, json, contextlib, io
t0 = time.perf_counter()
kind, gt_path, dt_path = sys.argv[1:4]
if kind == "pycocotools":
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval as Eval
else:
    from faster_coco_eval import COCO
    from faster_coco_eval import COCOeval_faster as Eval
out = {}
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(gt_path)
    dt = gt.loadRes(dt_path)
    t1 = time.perf_counter()
    for iou_type in ("bbox", "segm"):
        e = Eval(gt, dt, iou_type)
        e.evaluate(); e.accumulate(); e.summarize()
        out[iou_type] = [float(v) for v in e.stats[:12]]
t2 = time.perf_counter()
out["load_s"] = t1 - t0
out["eval_s"] = t2 - t1
print(json.dumps(out))
"""


def replicate(assets, preds_name, n_images, workdir):
    coco = os.path.join(assets, "golden", "coco")
    gt = json.load(open(os.path.join(coco, "instances.json")))
    preds = json.load(open(os.path.join(coco, preds_name)))
    k = -(-n_images // len(gt["images"]))
    id_span = max(i["id"] for i in gt["images"]) + 1
    ann_span = max(a["id"] for a in gt["annotations"]) + 1
    images, anns, dts = [], [], []
    for r in range(k):
        for im in gt["images"]:
            images.append(dict(im, id=r * id_span + im["id"], file_name=f"r{r}_{im['file_name']}"))
        for a in gt["annotations"]:
            anns.append(dict(a, id=r * ann_span + a["id"], image_id=r * id_span + a["image_id"]))
        for p in preds:
            dts.append(dict(p, image_id=r * id_span + p["image_id"]))
    gt_out = dict(gt, images=images, annotations=anns)
    gt_path = os.path.join(workdir, "instances.json")
    dt_path = os.path.join(workdir, "preds.json")
    with open(gt_path, "w") as f:
        json.dump(gt_out, f)
    with open(dt_path, "w") as f:
        json.dump(dts, f)
    return gt_path, dt_path, len(images), len(anns), len(dts)


def run_python(kind, gt_path, dt_path):
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PY_EVAL, kind, gt_path, dt_path], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{r.stderr}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return wall, out["bbox"], out["segm"], (out["load_s"], out["eval_s"])


def run_ours(binary, gt_path, dt_path):
    t0 = time.perf_counter()
    env = dict(os.environ, RUST_LOG="debug", NO_COLOR="1")
    r = subprocess.run([binary, "val", "--pred", dt_path, "--ann", gt_path, "--json"], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"fastsam-track failed:\n{r.stderr}")
    out = json.loads(r.stdout)
    names = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]
    # stage timings from the debug log: "predictions read in X s" (since start), "<type> evaluated in X s"
    log = re.sub(r"\x1b\[[0-9;]*m", "", r.stderr)
    load = float(re.search(r"predictions read in ([0-9.]+) s", log).group(1))
    ev = sum(float(x) for x in re.findall(r"(?:bbox|segm) evaluated in ([0-9.]+) s", log))
    return wall, [out["bbox"][n] for n in names], [out["segm"][n] for n in names], (load, ev)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "fastsam-track"))
    ap.add_argument("--assets", default=os.environ.get("FASTSAM_ASSETS", os.path.join(HERE, "..", "..", "shared")))
    ap.add_argument("--preds", default="preds_ultralytics.json")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--skip", default="", help="comma-separated evaluators to skip")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=a.workdir) as work:
        gt_path, dt_path, ni, na, nd = replicate(a.assets, a.preds, a.images, work)
        size = os.path.getsize(dt_path) / 1e6
        print(f"data: {ni} images, {na} annotations, {nd} predictions ({size:.0f} MB of results JSON)", flush=True)
        runs = {
            "fastsam-track val --pred": lambda: run_ours(a.bin, gt_path, dt_path),
            "pycocotools": lambda: run_python("pycocotools", gt_path, dt_path),
            "faster-coco-eval": lambda: run_python("faster-coco-eval", gt_path, dt_path),
        }
        results = {}
        for name, fn in runs.items():
            if name in a.skip.split(","):
                continue
            best = None
            for _ in range(a.repeat):
                r = fn()
                best = r if best is None or r[0] < best[0] else best
            results[name] = best
            print(f"{name}: {best[0]:.2f} s (read {best[3][0]:.2f} s, evaluate bbox+segm {best[3][1]:.2f} s); "
                  f"bbox AP {best[1][0]:.6f}, segm AP {best[2][0]:.6f}", flush=True)
        ref = results.get("pycocotools")
        for name, (_, bbox, segm, _) in results.items():
            if ref is not None:
                d = max(abs(x - y) for x, y in zip(bbox + segm, ref[1] + ref[2]))
                print(f"{name}: max |stat - pycocotools| = {d:.2e}")
        print("\n| evaluator | wall time (s) | read files (s) | evaluate bbox + segm (s) | vs pycocotools (wall) |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, (wall, _, _, (load, ev)) in results.items():
            rel = f"{ref[0] / wall:.1f}x" if ref is not None else "n/a"
            print(f"| {name} | {wall:.2f} | {load:.2f} | {ev:.2f} | {rel} |")


if __name__ == "__main__":
    main()
