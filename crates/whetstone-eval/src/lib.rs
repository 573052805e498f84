//! Evaluation for whetstone: classification metrics, inference-efficiency
//! measurement, an append-only JSONL metrics log (mirrored into TensorBoard event files),
//! training-curve plots and a Markdown run report.
//!
//! The plots ([`plot`]: PNG and SVG through `plotters`, with an embedded DejaVu font) are the
//! default-on `plot` feature; without it the crate has no drawing dependencies.
//!
//! The crate is deliberately independent of any tensor library: metrics take
//! plain `i64` class ids, timing takes closures, so it can be tested (and
//! reused) without libtorch.
//!
//! ```
//! use whetstone_eval::classification_report;
//!
//! let names: Vec<String> = ["negative", "positive"].map(String::from).to_vec();
//! let labels = [0, 0, 1, 1, 1];
//! let preds = [0, 1, 1, 1, 1];
//! let report = classification_report(&labels, &preds, &names)?;
//!
//! assert_eq!(report.n, 5);
//! assert!((report.accuracy - 0.8).abs() < 1e-12);
//! assert_eq!(report.confusion, vec![vec![1, 1], vec![0, 3]]);
//! // Binary MCC is the phi coefficient: (3·1 − 1·0) / sqrt(4·3·1·2) ≈ 0.6124.
//! assert!((report.mcc - 3.0 / 24f64.sqrt()).abs() < 1e-12);
//! assert_eq!(report.metric("macro_f1"), Some(report.macro_f1));
//! # Ok::<(), whetstone_eval::EvalError>(())
//! ```

#![warn(missing_docs)]

mod error;
#[cfg(feature = "plot")]
mod font;
pub mod fs;
mod markdown;

pub mod efficiency;
pub mod entities;
pub mod log;
pub mod metrics;
#[cfg(feature = "plot")]
pub mod plot;
pub mod report;
pub mod tfevents;

pub use efficiency::{file_size, measure_latency, measure_throughput, Efficiency, LatencyStats};
pub use entities::{entity_scores, EntityScores, EntityTypeScores};
pub use error::EvalError;
pub use fs::write_atomic;
pub use log::{read_jsonl, MetricsLog};
pub use metrics::{classification_report, ClassMetrics, ClassificationReport};
#[cfg(feature = "plot")]
pub use plot::{plot_lines, plot_lines_log_x, plot_training_curves, Curve};
pub use report::{format_count, write_report_md, RunReport};
pub use tfevents::TfEventsWriter;
