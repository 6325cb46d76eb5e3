#!/usr/bin/env bash
# Regenerates server/tests/fixtures/pa-sim-vllm.json: a profile export written by the real
# perf_analyzer (tritonclient 2.51, from scripts/triton-tools.sh) against `tokenscope sim`,
# streaming, with prompts of 8, 32 and 128 words. The simulator's schedule is fixed here,
# so tests can check the imported timings against it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS="${TOKENSCOPE_TOOLS:-$HOME/.cache/tokenscope}"
bash scripts/triton-tools.sh >/dev/null
cargo build --quiet --bin tokenscope

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/debug/tokenscope sim --listen "127.0.0.1:$port" \
    --prefill-base-ms 5 --prefill-per-token-ms 0.1 --decode-ms 2 >/dev/null 2>&1 &
sim=$!
work=$(mktemp -d)
trap 'kill $sim 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.1
done

python3 - "$work/prompts.json" <<'PY'
import json, sys
words = lambda n: " ".join(["the"] + ["word%d" % i for i in range(1, n)])
sampling = json.dumps({"max_tokens": 8, "ignore_eos": True})
data = [{"text_input": [words(n)], "stream": [True], "sampling_parameters": [sampling]} for n in (8, 32, 128)]
json.dump({"data": data}, open(sys.argv[1], "w"))
PY

"$TOOLS/bin/perf_analyzer" -m sim-vllm -x 1 -i grpc -u "127.0.0.1:$port" --async --streaming \
    --input-data="$work/prompts.json" --profile-export-file="$work/export.json" \
    --measurement-mode=count_windows --measurement-request-count=12 --stability-percentage=999 \
    --concurrency-range=1 >/dev/null
# perf_analyzer keeps measuring until its windows settle; six requests per prompt length,
# in the order it sent them, are kept so the fixture stays small.
python3 - "$work/export.json" server/tests/fixtures/pa-sim-vllm.json <<'PY'
import json, sys
export = json.load(open(sys.argv[1]))
seen = {}
for experiment in export["experiments"]:
    kept = []
    for request in experiment["requests"]:
        words = len(request["request_inputs"]["text_input"].split())
        if seen.get(words, 0) < 6:
            seen[words] = seen.get(words, 0) + 1
            kept.append(request)
    experiment["requests"] = kept
json.dump(export, open(sys.argv[2], "w"), separators=(",", ":"))
PY
echo "wrote server/tests/fixtures/pa-sim-vllm.json"
