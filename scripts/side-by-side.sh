#!/usr/bin/env bash
# tokenscope beside perf_analyzer against a real Triton server: installs tritonserver and
# perf_analyzer (scripts/triton-tools.sh; a no-op once done), then runs the benchmark, which
# starts the server with the test models, alternates the two tools for the prefill and the
# generation preset at concurrency 1 and 16, and prints their means and arrival delays.
# Env: BENCH_ROUNDS (4), BENCH_PROMPT_WORDS (128), BENCH_QUICK=1, BENCH_ONLY=prefill-1,generation-16
# (only those cells), BENCH_PIN=0/1 (server and tools on separate cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/triton-tools.sh >/dev/null
exec cargo bench -p server --bench side_by_side "$@"
