//! The tokenscope proxy: drives streaming gRPC requests at Triton, times every response,
//! and serves a simulated Triton for demos, tests and benchmarks.

pub mod arrival;
pub mod bytes;
pub mod cli;
pub mod clock;
pub mod convention;
pub mod dashboard;
pub mod engine;
pub mod export;
pub mod import;
pub mod prompt_file;
pub mod prompts;
pub mod protocol;
pub mod response;
pub mod signals;
pub mod sim;
pub mod sse;
pub mod store;
pub mod sweep;
pub mod telemetry;
pub mod tls;
pub mod tokenizer;
pub mod triton;

/// Keeps this process off transparent huge pages; every program that runs the engine or the
/// dashboard calls it first. The first touch of one zeroes 2 MiB at once, and on a virtual
/// machine may wait for the host to back it: as a run's records grew, such faults stopped the
/// engine's socket reads for 3 to 5 ms at a time, dozens of times a run, and every response
/// then waiting in the socket was recorded that late (in half of all runs at 512 streams on a
/// 2-core VM where THP was `madvise`, which the allocator asks for). Huge pages also make the
/// resident memory creep: the kernel's khugepaged fills in a 2 MiB range around any page still
/// in use of those the allocator asked for, so memory it gave back returns over the minutes
/// (under the soak benchmark's load a dashboard went from 46 to 52 MiB in half an hour, at
/// times to 61; off them it held at 35 to 37 MiB).
pub fn small_pages() {
    #[cfg(target_os = "linux")]
    if let Err(err) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!("transparent huge pages stay on ({err}); a fault on one may delay recorded arrivals");
    }
}

/// Code generated from `proto/inference.proto`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("inference");
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_process_keeps_off_transparent_huge_pages() {
        super::small_pages();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(status.lines().any(|l| l.split_whitespace().eq(["THP_enabled:", "0"])), "{status}");
    }
}
