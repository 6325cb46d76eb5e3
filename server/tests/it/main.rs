//! Integration tests of the server crate: one binary, one module per area.

mod access;
mod browser;
mod cli;
mod dashboard;
mod errors;
mod exports;
mod import;
mod limits;
mod load;
mod protocols;
mod real_openai;
mod real_triton;
mod schedule;
mod sim;
mod staying_up;
mod store;
mod support;
mod telemetry;
mod tls;
mod tokenizers;
mod webdriver;
