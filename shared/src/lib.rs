//! Types and pure functions shared by the tokenscope proxy and its browser frontend.
//!
//! This crate is the wire contract: plain serde data and functions without I/O. It must
//! not depend on tokio, tonic, prost or leptos.

pub mod api;
pub mod capacity;
pub mod civil;
pub mod goodput;
pub mod lengths;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod number;
pub mod prompt;
pub mod protocol;
pub mod record;
pub mod report;
pub mod schedule;
pub mod server_stats;
pub mod spec;
pub mod stats;
pub mod telemetry;
pub mod varint;

pub use live::{Batch, LiveRun, RequestDone, RunEvent};
pub use protocol::Protocol;
pub use record::{RequestRecord, ResponseRecord, Responses, TokenCountSource};
pub use report::{ModelInfo, RunReport, RunStatus};
pub use spec::{InputStyle, SweepSpec};
pub use stats::{PointStats, Summary};
