//! What the benchmarks share: finding and running the real perf_analyzer, and reading the
//! send times a server wrote into its responses.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// perf_analyzer as scripts/triton-tools.sh installs it, if it is there.
pub fn find_perf_analyzer() -> Option<PathBuf> {
    let tools = std::env::var_os("TOKENSCOPE_TOOLS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tokenscope")))?;
    let candidate = tools.join("bin/perf_analyzer");
    candidate.exists().then_some(candidate)
}

/// One run of the guide's perf_analyzer command.
pub struct PerfAnalyzer<'a> {
    pub binary: &'a Path,
    /// `host:port` or `http://host:port` of the gRPC endpoint.
    pub target: &'a str,
    pub model: &'a str,
    /// Named with `-x` when given.
    pub version: Option<&'a str>,
    /// perf_analyzer's `--input-data` JSON: `{"data": [{INPUT: [VALUE], ...}]}`.
    pub data: &'a Value,
    pub concurrency: u32,
    /// `--measurement-request-count`: requests per measurement window.
    pub window_requests: u32,
}

impl PerfAnalyzer<'_> {
    /// Runs it (streaming, `count_windows`, every window accepted) and leaves its profile
    /// export at `export`. On failure, returns the last lines it printed.
    pub fn run(&self, work: &Path, export: &Path) -> Result<(), String> {
        let input = work.join(format!("prompts-{}.json", std::process::id()));
        std::fs::write(&input, self.data.to_string()).map_err(|e| e.to_string())?;
        let mut command = Command::new(self.binary);
        command.args(["-m", self.model]);
        if let Some(version) = self.version {
            command.args(["-x", version]);
        }
        let output = command
            .args(["-i", "grpc", "-u", self.target.trim_start_matches("http://"), "--async", "--streaming"])
            .arg(format!("--input-data={}", input.display()))
            .arg(format!("--profile-export-file={}", export.display()))
            .args([
                "--measurement-mode=count_windows",
                &format!("--measurement-request-count={}", self.window_requests),
            ])
            .args(["--stability-percentage=999", &format!("--concurrency-range={}", self.concurrency)])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        if !output.status.success() || !export.exists() {
            let text = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
            return Err(text.lines().rev().take(5).collect::<Vec<_>>().join(" | "));
        }
        Ok(())
    }
}

/// Reads a JSON file, or stops the benchmark saying which file.
pub fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
