#!/usr/bin/env bash
# Regenerates the perf_analyzer profile exports the tests import, with the real perf_analyzer
# (tritonclient 2.51, from scripts/triton-tools.sh), streaming, prompts of 8, 32 and 128 words,
# 8 tokens each, six requests per prompt length kept so the files stay small:
#
#   server/tests/fixtures/pa-sim-vllm.json        against `tokenscope sim` (sim-vllm), whose
#                                                  schedule is fixed below
#   server/tests/fixtures/pa-triton-tutorial.json  against the real tritonserver with the test
#                                                  models (tutorial_like: the guide's 2023 model,
#                                                  cumulative TEXT, separate empty final, send_ns
#                                                  and recv_ns)
#   server/tests/fixtures/pa-sim-openai-chat.json  perf_analyzer's OpenAI service kind (as
#                                                  GenAI-Perf runs it) against the simulator's
#                                                  /v1/chat/completions, same schedule as sim
#
# Usage: scripts/make-pa-fixture.sh [sim|triton|openai]   (all when no argument is given)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS="${TOKENSCOPE_TOOLS:-$HOME/.cache/tokenscope}"
bash scripts/triton-tools.sh >/dev/null
which=${1:-all}
work=$(mktemp -d)
cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c"; done; rm -rf "$work"' EXIT

# prompts FILE PROMPT_INPUT STREAM_INPUT SAMPLING_INPUT: prompts.json with one prompt per length.
prompts() {
    python3 - "$@" <<'PY'
import json, sys
out, prompt, stream, sampling_name = sys.argv[1:5]
words = lambda n: " ".join(["the"] + ["w%d" % i for i in range(1, n)])
sampling = json.dumps({"max_tokens": 8, "ignore_eos": True})
data = [{prompt: [words(n)], stream: [True], sampling_name: [sampling]} for n in (8, 32, 128)]
json.dump({"data": data}, open(out, "w"))
PY
}

# measure TARGET MODEL PROMPTS OUT [extra perf_analyzer args]
measure() {
    local target=$1 model=$2 input=$3 out=$4
    shift 4
    "$TOOLS/bin/perf_analyzer" -m "$model" "$@" -i grpc -u "$target" --async --streaming \
        --input-data="$input" --profile-export-file="$work/export.json" \
        --measurement-mode=count_windows --measurement-request-count=12 --stability-percentage=999 \
        --concurrency-range=1 >/dev/null
    keep_six "$work/export.json" "$out"
}

# keep_six EXPORT OUT: perf_analyzer keeps measuring until its windows settle; six requests per
# prompt length, in the order it sent them, are kept.
keep_six() {
    python3 - "$1" "$2" <<'PY'
import json, sys
export = json.load(open(sys.argv[1]))
seen = {}
for experiment in export["experiments"]:
    kept = []
    for request in experiment["requests"]:
        inputs = request["request_inputs"]
        if "payload" in inputs:
            prompt = json.loads(inputs["payload"])["messages"][-1]["content"]
        else:
            prompt = inputs.get("text_input") or inputs.get("PROMPT")
        words = len(prompt.split())
        if seen.get(words, 0) < 6:
            seen[words] = seen.get(words, 0) + 1
            kept.append(request)
    experiment["requests"] = kept
json.dump(export, open(sys.argv[2], "w"), separators=(",", ":"))
PY
    echo "wrote $2 ($(wc -c <"$2") bytes)"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# sim PORT [ARGS...]: starts the simulator with the fixtures' schedule, waiting until its first port
# answers.
sim() {
    local port=$1
    cargo build --quiet --bin tokenscope
    target/debug/tokenscope sim --listen "127.0.0.1:$port" "${@:2}" \
        --prefill-base-ms 5 --prefill-per-token-ms 0.1 --decode-ms 2 >/dev/null 2>&1 &
    cleanup+=("kill $! 2>/dev/null")
    for _ in $(seq 50); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
        sleep 0.1
    done
}

if [ "$which" = sim ] || [ "$which" = all ]; then
    port=$(free_port)
    sim "$port"
    prompts "$work/sim.json" text_input stream sampling_parameters
    # The version is named: without it perf_analyzer 2.51 finds no server-side statistics.
    measure "127.0.0.1:$port" sim-vllm "$work/sim.json" server/tests/fixtures/pa-sim-vllm.json -x 1
fi

if [ "$which" = openai ] || [ "$which" = all ]; then
    port=$(free_port)
    openai=$(free_port)
    sim "$port" --openai-listen "127.0.0.1:$openai"
    # GenAI-Perf's way: the whole request body as the payload, `stream` in it, and no
    # --streaming (perf_analyzer allows that flag only over gRPC).
    python3 - "$work/openai.json" <<'PY'
import json, sys
words = lambda n: " ".join(["the"] + ["w%d" % i for i in range(1, n)])
payload = lambda n: {"model": "sim-vllm", "messages": [{"role": "user", "content": words(n)}],
                     "max_tokens": 8, "ignore_eos": True, "stream": True}
json.dump({"data": [{"payload": [payload(n)]} for n in (8, 32, 128)]}, open(sys.argv[1], "w"))
PY
    "$TOOLS/bin/perf_analyzer" -m sim-vllm --service-kind openai --endpoint v1/chat/completions \
        -i http -u "127.0.0.1:$openai" --async --input-data="$work/openai.json" \
        --profile-export-file="$work/export.json" --measurement-mode=count_windows \
        --measurement-request-count=12 --stability-percentage=999 --concurrency-range=1 >/dev/null
    keep_six "$work/export.json" server/tests/fixtures/pa-sim-openai-chat.json
fi

if [ "$which" = triton ] || [ "$which" = all ]; then
    export TRITON_STATE_DIR="$work/triton"
    # Registered first, so a server that started but never became ready is stopped too.
    cleanup+=("bash scripts/stop-triton.sh '$work/triton' >/dev/null 2>&1")
    grpc=$(bash scripts/start-triton.sh server/tests/triton_models | sed -n 's/^TRITON_GRPC=//p')
    prompts "$work/triton.json" PROMPT STREAM SAMPLING_PARAMETERS
    measure "$grpc" tutorial_like "$work/triton.json" server/tests/fixtures/pa-triton-tutorial.json
fi
