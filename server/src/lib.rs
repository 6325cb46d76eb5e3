//! The tokenscope proxy: drives streaming gRPC requests at Triton, times every response,
//! and serves a simulated Triton for demos, tests and benchmarks.

pub mod arrival;
pub mod bytes;
pub mod cli;
pub mod clock;
pub mod dashboard;
pub mod engine;
pub mod export;
pub mod import;
pub mod response;
pub mod signals;
pub mod sim;
pub mod store;
pub mod style;
pub mod sweep;
pub mod tls;
pub mod triton;

/// Code generated from `proto/inference.proto`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("inference");
}
