//! Integration tests of the server crate: one binary, one module per area.

mod cli;
mod errors;
mod real_triton;
mod sim;
mod support;
