//! The tracker and the MOT metrics: Ultralytics parity, synthetic scenarios, association modes,
//! py-motmetrics parity and TrackEval HOTA parity.

#[path = "../support/mod.rs"]
mod support;

mod association;
mod hota;
mod mot_metrics;
mod parity;
mod scenarios;
