//! A finished (or stopped) run: what was asked, what the model is, and what was measured.

use serde::{Deserialize, Serialize};

use crate::record::RequestRecord;
use crate::spec::{InputStyle, SweepSpec};
use crate::stats::PointStats;

/// What the proxy learned about the model before sending anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    /// The version the server reported, if any.
    #[serde(default)]
    pub version: Option<String>,
    /// The style requests were built in (never `auto`).
    pub input_style: InputStyle,
    /// Whether the model is decoupled, i.e. can stream several responses per request.
    pub decoupled: bool,
    /// Whether inputs carry a leading batch dimension (`max_batch_size > 0`).
    pub batched: bool,
    /// Inputs the model declares, as `name: DATATYPE [shape]`.
    pub inputs: Vec<String>,
    /// Outputs the model declares, as `name: DATATYPE [shape]`.
    pub outputs: Vec<String>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    Cancelled,
    /// Stopped by a fault; everything finished before it is kept.
    Failed {
        error: String,
    },
}

/// The whole result of a sweep, as written to `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub tool: String,
    pub spec: SweepSpec,
    /// Wall-clock time of the run's start (its monotonic zero), nanoseconds since the Unix epoch.
    pub started_unix_ns: i64,
    pub model: Option<ModelInfo>,
    pub status: RunStatus,
    /// Prompt lengths are approximate (words of synthetic text), not tokenizer counts.
    pub prompt_lengths_approximate: bool,
    pub points: Vec<PointStats>,
    pub requests: Vec<RequestRecord>,
}

impl RunReport {
    /// Recomputes every point's statistics from the raw records.
    pub fn recompute_points(&mut self) {
        self.points = self
            .spec
            .prompt_lengths
            .iter()
            .enumerate()
            .map(|(i, &len)| PointStats::compute(len, self.requests.iter().filter(|r| r.point as usize == i)))
            .collect();
    }
}
