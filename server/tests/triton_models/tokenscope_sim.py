"""Simulated LLM for tokenscope's Triton Python-backend test models.

Every model directory's ``1/model.py`` imports ``TritonPythonModel`` from here; the behaviour
is chosen by the ``style`` parameter in the model's ``config.pbtxt``:

  vllm      decoupled; vLLM-backend I/O; delta ``text_output``; FINAL flag on the last token
  tutorial  decoupled; 2023 vLLM tutorial I/O; cumulative ``TEXT`` (prompt prepended);
            FINAL as a separate empty response
  trtllm    decoupled; TensorRT-LLM ensemble I/O (batch dim); delta ``text_output`` and
            ``output_ids``; every 5th response carries 2 tokens; FINAL as a separate empty response
  unary     not decoupled; vLLM-backend I/O; one response with the whole text
  failing   like vllm, but every 3rd request (per-instance counter: 3rd, 6th, ...) sends its
            first token and then an error response (pb_utils.TritonError) flagged FINAL

Latency schedule (config parameters, milliseconds, floats), measured from the moment
``execute`` receives the request:
  token 0 (first) is sent at   prefill_base_ms + prefill_per_token_ms * prompt_words
  token i is sent at           first + i * decode_ms
where prompt_words = len(prompt.split()), or with the ``tokenizer`` parameter (a
``tokenizer.json`` path relative to the model's folder) the prompt's tokens as Hugging Face
``tokenizers`` counts them, special tokens included, as vLLM counts a completion's prompt; that
count is also what ``num_input_tokens`` reports. Each response is sent at the deadline of the last
token it carries (absolute deadlines, so sleep jitter does not accumulate). Each request runs
on its own thread, so any number can be in flight at once.

Every response that carries tokens has the extra output tensors ``send_ns`` and ``recv_ns``
(INT64, shape [1]; [1, 1] for trtllm_like): the model's ``time.time_ns()`` taken right before
``sender.send``, and taken when ``execute`` received the request.
(Triton 2.51, the server in nvidia-pytriton 0.7.0, has no response parameters in the Python
backend: ``InferenceResponse(parameters=...)`` raises TypeError.) Empty final responses carry
no tensors. Each token is the text " tok".
"""

import json
import os
import threading
import time

import numpy as np
import triton_python_backend_utils as pb_utils

TOKEN = " tok"
FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
DEFAULT_MAX_TOKENS = 16


def _as_str(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return str(v)


def _scalar(request, name, default=None):
    t = pb_utils.get_input_tensor_by_name(request, name)
    if t is None:
        return default
    a = t.as_numpy().reshape(-1)
    if a.size == 0:
        return default
    return a[0]


class _BadRequest(Exception):
    pass


class TritonPythonModel:
    def initialize(self, args):
        self.config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in self.config.get("parameters", {}).items()}
        self.name = self.config.get("name", "?")
        self.style = params.get("style", "vllm")
        if self.style not in ("vllm", "tutorial", "trtllm", "unary", "failing"):
            raise pb_utils.TritonModelException(f"{self.name}: unknown style {self.style!r}")
        self.prefill_base_s = float(params.get("prefill_base_ms", "7")) / 1e3
        self.prefill_per_token_s = float(params.get("prefill_per_token_ms", "0")) / 1e3
        self.decode_s = float(params.get("decode_ms", "3")) / 1e3
        self.tokenizer = None
        if params.get("tokenizer"):
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_file(os.path.join(args["model_repository"], params["tokenizer"]))
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(self.config)
        self.batched = int(self.config.get("max_batch_size", 0)) > 0
        self.counter = 0
        self.stopping = False
        self.threads = set()
        self.lock = threading.Lock()
        # Each request's thread keeps when execute received it, for the recv_ns output.
        self.received = threading.local()

    # ---------------------------------------------------------------- scheduling
    def _prompt_tokens(self, prompt):
        if self.tokenizer is None:
            return len(prompt.split())
        return len(self.tokenizer.encode(prompt).ids)

    def _deadline(self, t0, n_prompt, i):
        """Absolute monotonic deadline of output token i (0-based)."""
        return t0 + self.prefill_base_s + self.prefill_per_token_s * n_prompt + i * self.decode_s

    def _sleep_until(self, deadline):
        while not self.stopping:
            d = deadline - time.monotonic()
            if d <= 0:
                return
            time.sleep(d)

    def _send(self, sender, tensors, flags=0):
        # Triton 2.51's python backend has no response parameters, so the send time travels
        # as the extra output tensor send_ns (INT64; shape [1], or [1, 1] with a batch dim).
        shape = (1, 1) if self.batched else (1,)
        send_ns = time.time_ns()
        tensors.append(pb_utils.Tensor("send_ns", np.full(shape, send_ns, dtype=np.int64)))
        tensors.append(pb_utils.Tensor("recv_ns", np.full(shape, self.received.ns, dtype=np.int64)))
        sender.send(pb_utils.InferenceResponse(output_tensors=tensors), flags=flags)

    # ---------------------------------------------------------------- triton API
    def execute(self, requests):
        t0 = time.monotonic()
        recv_ns = time.time_ns()
        for request in requests:
            self.counter += 1
            fail = self.style == "failing" and self.counter % 3 == 0
            sender = request.get_response_sender()
            th = threading.Thread(target=self._run, args=(request, sender, t0, recv_ns, fail), daemon=True)
            with self.lock:
                self.threads.add(th)
            th.start()
        return None

    def finalize(self):
        self.stopping = True
        with self.lock:
            threads = list(self.threads)
        for th in threads:
            th.join(timeout=2)

    # ---------------------------------------------------------------- per request
    def _run(self, request, sender, t0, recv_ns, fail):
        self.received.ns = recv_ns
        done = False
        try:
            if self.style == "tutorial":
                self._tutorial(request, sender, t0)
            elif self.style == "trtllm":
                self._trtllm(request, sender, t0)
            else:
                self._vllm(request, sender, t0, fail)
            done = True
        except _BadRequest as e:
            err = str(e)
        except Exception as e:  # noqa: BLE001 - report anything to the client
            err = f"{self.name}: internal error: {type(e).__name__}: {e}"
        finally:
            with self.lock:
                self.threads.discard(threading.current_thread())
        if not done:
            try:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(err)), flags=FINAL)
            except Exception:  # noqa: BLE001 - final already sent
                pass

    def _vllm(self, request, sender, t0, fail):
        prompt = _scalar(request, "text_input")
        if prompt is None:
            raise _BadRequest(f"{self.name}: missing input 'text_input'")
        prompt = _as_str(prompt)
        stream = bool(_scalar(request, "stream", False)) and self.style != "unary"
        sp_raw = _scalar(request, "sampling_parameters")
        try:
            sp = json.loads(_as_str(sp_raw)) if sp_raw is not None and _as_str(sp_raw).strip() else {}
        except ValueError as e:
            raise _BadRequest(f"{self.name}: sampling_parameters is not JSON: {e}")
        max_tokens = int(sp.get("max_tokens", DEFAULT_MAX_TOKENS))
        exclude = bool(_scalar(request, "exclude_input_in_output", False))
        ret_in = bool(_scalar(request, "return_num_input_tokens", False))
        ret_out = bool(_scalar(request, "return_num_output_tokens", False))
        n_prompt = self._prompt_tokens(prompt)

        def tensors(text, n_out):
            ts = [pb_utils.Tensor("text_output", np.array([text.encode()], dtype=np.object_))]
            if ret_in:
                ts.append(pb_utils.Tensor("num_input_tokens", np.array([n_prompt], dtype=np.uint32)))
            if ret_out:
                ts.append(pb_utils.Tensor("num_output_tokens", np.array([n_out], dtype=np.uint32)))
            return ts

        if fail:
            self._sleep_until(self._deadline(t0, n_prompt, 0))
            self._send(sender, tensors(TOKEN, 1))
            raise _BadRequest(f"{self.name}: simulated failure (every 3rd request fails after its first token)")
        if max_tokens <= 0:
            self._sleep_until(self._deadline(t0, n_prompt, 0))
            self._send(sender, tensors("" if (stream or exclude) else prompt, 0), FINAL)
            return
        if stream:
            for i in range(max_tokens):
                self._sleep_until(self._deadline(t0, n_prompt, i))
                self._send(sender, tensors(TOKEN, 1), FINAL if i == max_tokens - 1 else 0)
        else:
            self._sleep_until(self._deadline(t0, n_prompt, max_tokens - 1))
            text = ("" if exclude else prompt) + TOKEN * max_tokens
            self._send(sender, tensors(text, max_tokens), FINAL)

    def _tutorial(self, request, sender, t0):
        prompt = _scalar(request, "PROMPT")
        if prompt is None:
            raise _BadRequest(f"{self.name}: missing input 'PROMPT'")
        prompt = _as_str(prompt)
        stream = bool(_scalar(request, "STREAM", False))
        sp_raw = _scalar(request, "SAMPLING_PARAMETERS")
        try:
            sp = json.loads(_as_str(sp_raw)) if sp_raw is not None and _as_str(sp_raw).strip() else {}
        except ValueError as e:
            raise _BadRequest(f"{self.name}: SAMPLING_PARAMETERS is not JSON: {e}")
        max_tokens = max(int(sp.get("max_tokens", DEFAULT_MAX_TOKENS)), 0)
        n_prompt = self._prompt_tokens(prompt)

        def tensors(n):
            text = prompt + TOKEN * n
            return [pb_utils.Tensor("TEXT", np.array([text.encode()], dtype=np.object_))]

        if stream:
            for i in range(max_tokens):
                self._sleep_until(self._deadline(t0, n_prompt, i))
                self._send(sender, tensors(i + 1))
        else:
            self._sleep_until(self._deadline(t0, n_prompt, max(max_tokens - 1, 0)))
            self._send(sender, tensors(max_tokens))
        sender.send(flags=FINAL)

    def _trtllm(self, request, sender, t0):
        t = pb_utils.get_input_tensor_by_name(request, "text_input")
        if t is None:
            raise _BadRequest(f"{self.name}: missing input 'text_input'")
        if t.as_numpy().shape[0] != 1:
            raise _BadRequest(f"{self.name}: only batch size 1 per request is supported")
        prompt = _as_str(t.as_numpy().reshape(-1)[0])
        mt = _scalar(request, "max_tokens")
        if mt is None:
            raise _BadRequest(f"{self.name}: missing input 'max_tokens'")
        max_tokens = max(int(mt), 0)
        stream = bool(_scalar(request, "stream", False))
        # min_tokens is accepted and ignored: exactly max_tokens tokens are always produced.
        n_prompt = self._prompt_tokens(prompt)

        def tensors(first, count):
            ids = np.arange(first + 1, first + count + 1, dtype=np.int32).reshape(1, count)
            text = np.array([[(TOKEN * count).encode()]], dtype=np.object_)
            return [pb_utils.Tensor("text_output", text), pb_utils.Tensor("output_ids", ids)]

        if stream:
            i, r = 0, 0
            while i < max_tokens:
                r += 1
                count = min(2 if r % 5 == 0 else 1, max_tokens - i)
                self._sleep_until(self._deadline(t0, n_prompt, i + count - 1))
                self._send(sender, tensors(i, count))
                i += count
        elif max_tokens > 0:
            self._sleep_until(self._deadline(t0, n_prompt, max_tokens - 1))
            self._send(sender, tensors(0, max_tokens))
        sender.send(flags=FINAL)
