//! perf_analyzer's profile export as types, written by [`super::Export::Profile`] and read by
//! [`crate::import`]. Fields keep perf_analyzer's names and order, so a file written here reads
//! as one of perf_analyzer's own. The lists a writer streams are type parameters: a reader
//! takes the defaults, which hold everything in memory and may be missing from a file (each
//! reader says what it lacks).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `service_kind` of a file whose requests are Triton inference requests, their inputs and
/// outputs listed as tensors (gRPC or HTTP alike).
pub const TRITON: &str = "triton";
/// `service_kind` of a file of OpenAI-compatible requests (perf_analyzer's `--service-kind
/// openai`, as GenAI-Perf runs it): each request's inputs are its JSON body as [`PAYLOAD`], each
/// response output what one read of the answer brought, as [`RESPONSE`].
pub const OPENAI: &str = "openai";
/// The input that holds an OpenAI request's body.
pub const PAYLOAD: &str = "payload";
/// The output that holds the bytes of one read of an OpenAI answer: Server-Sent Events when
/// the request streams, the JSON answer when it does not.
pub const RESPONSE: &str = "response";

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileFile<Experiments = Option<Vec<Experiment>>> {
    #[serde(default)]
    pub experiments: Experiments,
    /// The tool that wrote it.
    pub version: Option<String>,
    /// [`TRITON`] or [`OPENAI`].
    pub service_kind: Option<String>,
    /// The model (Triton; perf_analyzer leaves it empty), or the path asked (OpenAI, without
    /// its leading `/`).
    pub endpoint: Option<String>,
}

/// One load level's requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment<Requests = Option<Vec<Request>>> {
    pub experiment: Option<Load>,
    #[serde(default)]
    pub requests: Requests,
    /// When the measurement started and ended (perf_analyzer also lists the boundaries
    /// between its windows).
    pub window_boundaries: Option<Vec<i64>>,
}

/// perf_analyzer's two load modes, a concurrency or a request rate, and the level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Load {
    pub mode: Option<LoadMode>,
    pub value: Option<serde_json::Number>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    Concurrency,
    RequestRate,
    /// A mode tokenscope does not run.
    #[serde(other)]
    Other,
}

/// One request: its send time, its inputs and each response's arrival and outputs, times in
/// nanoseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request<Times = Option<Vec<i64>>, Outputs = Option<Vec<Tensors>>> {
    pub timestamp: Option<i64>,
    pub request_inputs: Option<Tensors>,
    #[serde(default)]
    pub response_timestamps: Times,
    #[serde(default)]
    pub response_outputs: Outputs,
}

/// Tensors by name, as a request's inputs or a response's outputs are listed.
pub type Tensors = BTreeMap<String, TensorValue>;

/// A tensor's value as perf_analyzer writes it: one element (text, a flag or a number) or a
/// list of them. Any other JSON is kept as it is, so that no value makes a file unreadable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TensorValue {
    Bool(bool),
    Number(serde_json::Number),
    Text(String),
    List(Vec<TensorValue>),
    Map(BTreeMap<String, TensorValue>),
    Null,
}

impl TensorValue {
    /// The value's first element: itself, or the first of its list.
    fn element(&self) -> Option<&TensorValue> {
        match self {
            TensorValue::List(list) => list.first(),
            other => Some(other),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            TensorValue::Text(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            TensorValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            TensorValue::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// The text of a one-element BYTES tensor: the string, or the first of its list.
    pub fn first_str(&self) -> Option<&str> {
        self.element()?.as_str()
    }

    pub fn first_bool(&self) -> Option<bool> {
        self.element()?.as_bool()
    }

    pub fn first_u64(&self) -> Option<u64> {
        self.element()?.as_u64()
    }

    pub fn first_i64(&self) -> Option<i64> {
        match self.element()? {
            TensorValue::Number(n) => n.as_i64(),
            _ => None,
        }
    }
}
