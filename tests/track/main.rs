//! The tracker and the MOT metrics: Ultralytics parity, synthetic scenarios, association modes,
//! and py-motmetrics parity.

#[path = "../support/mod.rs"]
mod support;

mod association;
mod mot_metrics;
mod parity;
mod scenarios;
