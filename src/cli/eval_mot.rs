//! `fastsam-track eval-mot --gt gt.txt --pred tracks.txt [--json]`: CLEAR MOT and identity
//! metrics (py-motmetrics 1.4.0 semantics) and HOTA (TrackEval 1.3.0 semantics) of MOTChallenge
//! tracks against ground truth.

use std::path::PathBuf;

use fastsam_track::eval;

#[derive(Debug, clap::Args)]
pub struct EvalMotArgs {
    /// Ground truth, MOTChallenge format (frame,id,x,y,w,h,conf,...).
    #[arg(long)]
    pub gt: PathBuf,
    /// Tracker output, MOTChallenge format.
    #[arg(long)]
    pub pred: PathBuf,
    /// IoU needed for a match (motmetrics distth = 1 - iou).
    #[arg(long, default_value_t = 0.5)]
    pub iou: f64,
    /// Drop ground-truth rows whose 7th column (conf / consider flag) is below this (motmetrics
    /// min_confidence; use 1 for MOTChallenge gt with ignore regions).
    #[arg(long, default_value_t = -1.0)]
    pub gt_min_conf: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalMotArgs) -> anyhow::Result<()> {
    if !(args.iou > 0.0 && args.iou <= 1.0) {
        anyhow::bail!("--iou {} is out of range: use a value in (0, 1]", args.iou);
    }
    let all_gt = eval::read_mot(&args.gt)?;
    let n_all = all_gt.len();
    let gt: Vec<_> = all_gt.into_iter().filter(|r| r.conf >= args.gt_min_conf).collect();
    if gt.is_empty() {
        if n_all == 0 {
            anyhow::bail!("the ground truth {} has no rows: nothing to evaluate against", args.gt.display());
        }
        anyhow::bail!(
            "none of the {n_all} ground-truth rows of {} has conf >= --gt-min-conf {}: nothing to evaluate against",
            args.gt.display(),
            args.gt_min_conf
        );
    }
    let pred = eval::read_mot(&args.pred)?;
    let m = eval::evaluate(&gt, &pred, args.iou)?;
    // HOTA integrates over its own IoU thresholds (0.05..0.95); `--iou` does not apply to it.
    let h = eval::evaluate_hota(&gt, &pred)?;
    // With ground truth these are finite; MOTP and precision are NaN (as in motmetrics) only when
    // nothing matched.
    if [m.mota, m.idf1, m.recall].iter().any(|v| !v.is_finite()) {
        anyhow::bail!(
            "the metrics are not finite (MOTA {}, IDF1 {}): check {} and {}",
            m.mota,
            m.idf1,
            args.gt.display(),
            args.pred.display()
        );
    }
    if args.json {
        /// The motmetrics fields and the HOTA fields (TrackEval names) side by side.
        #[derive(serde::Serialize)]
        struct Report<'a> {
            #[serde(flatten)]
            mot: &'a eval::MotMetrics,
            #[serde(flatten)]
            hota: &'a eval::HotaMetrics,
        }
        outln!("{}", serde_json::to_string_pretty(&Report { mot: &m, hota: &h })?);
        return Ok(());
    }
    let pct = |v: f64| format!("{:.1}%", v * 100.0);
    let table: [(&str, String); 20] = [
        ("HOTA", pct(h.hota)),
        ("DetA", pct(h.det_a)),
        ("AssA", pct(h.ass_a)),
        ("LocA", pct(h.loc_a)),
        ("IDF1", pct(m.idf1)),
        ("IDP", pct(m.idp)),
        ("IDR", pct(m.idr)),
        ("Rcll", pct(m.recall)),
        ("Prcn", pct(m.precision)),
        ("GT", m.num_unique_objects.to_string()),
        ("MT", m.mostly_tracked.to_string()),
        ("PT", m.partially_tracked.to_string()),
        ("ML", m.mostly_lost.to_string()),
        ("FP", m.num_false_positives.to_string()),
        ("FN", m.num_misses.to_string()),
        ("IDs", m.num_switches.to_string()),
        ("FM", m.num_fragmentations.to_string()),
        ("MOTA", pct(m.mota)),
        ("MOTP", format!("{:.3}", m.motp)),
        ("frames", m.num_frames.to_string()),
    ];
    let head: Vec<String> = table.iter().map(|(k, v)| format!("{k:>w$}", w = v.len().max(k.len()))).collect();
    let vals: Vec<String> = table.iter().map(|(k, v)| format!("{v:>w$}", w = v.len().max(k.len()))).collect();
    outln!("{}", head.join(" "));
    outln!("{}", vals.join(" "));
    outln!(
        "(MOTP is the mean 1 - IoU of matches, as in py-motmetrics; IoU threshold {}. HOTA, DetA, AssA, LocA: \
         TrackEval's means over IoU thresholds 0.05..0.95; --json has DetRe, DetPr, AssRe, AssPr, OWTA and the \
         per-threshold arrays)",
        args.iou
    );
    Ok(())
}
