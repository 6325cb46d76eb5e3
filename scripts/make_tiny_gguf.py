#!/usr/bin/env python3
"""Writes a tiny random-weight llama model as GGUF for the OpenAI-compatible test server.

The model is a real two-layer llama network that llama.cpp runs like any other, small enough
to answer in milliseconds on a CPU. Its weights are shaped so that every sampled token is one
plain lowercase letter, with or without a leading space: the end-of-text token, the control
tokens and the byte tokens get logits far below the rest whatever the input. So a request for
N tokens always streams N tokens, each with text of its own, even from a server that ignores
`ignore_eos`.

How: every token embedding carries a large constant in dimension 0 and small random values
elsewhere, and every layer's weights are small, so after the final RMS norm dimension 0 of the
hidden state is about sqrt(n_embd) for any input. The output row of a token that must never
come has -64 in dimension 0; the rows of the letters have 0 there and random values
elsewhere, so the letters share the probability, varying with the input.

Usage: make_tiny_gguf.py OUT.gguf   (needs numpy and the gguf package)
"""

import sys

import numpy as np
import gguf

N_EMBD = 64
N_HEAD = 4
N_LAYER = 2
N_FF = 128
N_CTX = 4096
SEED = 20261204


def vocabulary():
    """SentencePiece-style pieces: unknown, BOS, EOS, the 256 byte tokens, then letters."""
    tokens, scores, types = [], [], []

    def add(piece, score, kind):
        tokens.append(piece)
        scores.append(score)
        types.append(kind)

    add("<unk>", 0.0, gguf.TokenType.UNKNOWN)
    add("<s>", 0.0, gguf.TokenType.CONTROL)
    add("</s>", 0.0, gguf.TokenType.CONTROL)
    for byte in range(256):
        add(f"<0x{byte:02X}>", 0.0, gguf.TokenType.BYTE)
    first_letter = len(tokens)
    add("\u2581", -1.0, gguf.TokenType.NORMAL)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        add(letter, -1.0, gguf.TokenType.NORMAL)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        add("\u2581" + letter, -2.0, gguf.TokenType.NORMAL)
    # The lone word boundary would stream as a bare space; only letters are ever sampled.
    sampled = list(range(first_letter + 1, len(tokens)))
    return tokens, scores, types, sampled


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_tiny_gguf.py OUT.gguf")
    rng = np.random.default_rng(SEED)
    tokens, scores, types, sampled = vocabulary()
    n_vocab = len(tokens)

    def small(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    embeddings = small(n_vocab, N_EMBD)
    embeddings[:, 0] = 10.0
    output = rng.standard_normal((n_vocab, N_EMBD)).astype(np.float32)
    output[:, 0] = -64.0
    output[sampled, 0] = 0.0

    writer = gguf.GGUFWriter(sys.argv[1], "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)

    writer.add_tensor("token_embd.weight", embeddings)
    for layer in range(N_LAYER):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{block}.{name}.weight", small(N_EMBD, N_EMBD))
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{block}.ffn_gate.weight", small(N_FF, N_EMBD))
        writer.add_tensor(f"{block}.ffn_up.weight", small(N_FF, N_EMBD))
        writer.add_tensor(f"{block}.ffn_down.weight", small(N_EMBD, N_FF))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
