//! Pages: the dashboard and a drawing benchmark.

pub mod bench;
pub mod home;
