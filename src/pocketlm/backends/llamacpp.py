"""llama.cpp backend, through llama-cpp-python's low-level (ctypes) API.

One llama context holds a KV cache for ``slots`` slots (llama.cpp's
"sequences": a slot's number is its sequence id). Each forward pass packs
chunks from many slots into one ``llama_batch``, tagged with their slots, so
decoding 16 streams costs one pass over the weights instead of 16. ctypes
releases the GIL during ``llama_decode``, so the HTTP event loop keeps running
while the model computes.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from pocketlm.backends.base import Backend, Chunk, ModelInfo
from pocketlm.errors import GenerationFailed, InvalidParameter, ModelLoadError
from pocketlm.llama_library import ONE_PATH_ATTENTION, C
from pocketlm.models.gguf_info import read_gguf_info
from pocketlm.settings import cores

# Micro-batch rows per llama.cpp compute pass (see _context_params).
UBATCH = 512
_DECODE_ERRORS = {1: "no free KV cache cells", 2: "aborted", -1: "invalid batch"}


KV_BYTES = {"f16": 2.0, "q8_0": 34 / 32}  # bytes per value: q8_0 stores 32 values in 34 bytes


def _kv_types(kv_type: str, head_dim: int, one_path: bool = ONE_PATH_ATTENTION) -> tuple[str, str]:
    """The KV cache's key and value types.

    "auto" keeps a slot's logits the same whatever shares its pass, its own drafts included (the promise
    of "same seed, same text alone or batched"), at the best speed the loaded library allows. llama.cpp's
    attention takes one of three kernels by what the pass holds, and they round differently: with f16
    keys, as llama-cpp-python ships it, a seeded text changed beside others or drafted. With pocketlm's
    build of its kernels (``one_path``: ``pocketlm.llama_library``) f16 keys and values take one kernel
    for every pass, the tiled one llama-server prefills with: auto is f16. Without it, auto stores keys
    as q8_0 (one kernel, the slowest for long prompts) and values as f16, cheaper to attend over than
    q8_0's; q8_0 stores whole blocks of 32 values, so other head widths get f16 (measured:
    benchmarks/NOTES.md, "KV cache type", issue 27 and "one path").
    """
    if kv_type == "auto":
        kv_type = "f16" if one_path or head_dim % 32 else "q8_0/f16"
    keys, _, values = kv_type.partition("/")
    if "q8_0" in (keys, values) and head_dim % 32:
        raise InvalidParameter(
            "kv_type",
            f"q8_0 needs attention heads a multiple of 32 wide; this model's are {head_dim}: use --kv-type f16",
        )
    return keys, values or keys


class LlamaCppBackend(Backend):
    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        slots: int,
        n_ctx: int,
        threads: int | None = None,
        n_batch: int = 1024,
        n_ubatch: int | None = None,
        kv_type: str = "auto",
        perf: bool = False,
    ):
        """``kv_type``: "auto", "f16", "q8_0", or "K/V" such as "q8_0/f16" for keys and values apart
        (``pocketlm serve --kv-type``). ``n_ubatch`` (None: 512 rows) and ``perf``
        (llama.cpp's own timers, read with ``perf()``) are for measuring levers (benchmarks/profile_engine.py)."""
        path = Path(path)
        gguf = read_gguf_info(path)  # rejects non-GGUF or damaged headers with a clear message
        self.slots, self.n_batch, self._perf = slots, n_batch, perf
        self.n_ctx = n_ctx
        keys, values = _kv_types(kv_type, gguf.head_dim)
        types = {"f16": C.GGML_TYPE_F16, "q8_0": C.GGML_TYPE_Q8_0}
        self.k_type, self.v_type = types[keys], types[values]
        kv_mb = gguf.kv_bytes_per_token((KV_BYTES[keys] + KV_BYTES[values]) / 2) * slots * n_ctx / 1e6
        self.model = C.llama_model_load_from_file(str(path).encode(), C.llama_model_default_params())
        if not self.model:
            raise ModelLoadError(
                f"llama.cpp could not load {path} (truncated file or unsupported architecture "
                f"'{gguf.architecture}'); re-download or re-convert it"
            )
        self.n_ubatch = n_ubatch or UBATCH
        self.ctx = C.llama_init_from_model(self.model, self._context_params(threads))
        if not self.ctx:
            C.llama_model_free(self.model)
            raise ModelLoadError(
                f"llama.cpp could not create {slots} slots of {n_ctx} tokens for {path}; lower --n-ctx or --slots"
            )
        self.vocab = C.llama_model_get_vocab(self.model)
        self.memory = C.llama_get_memory(self.ctx)
        self.n_vocab = C.llama_vocab_n_tokens(self.vocab)
        self.batch = C.llama_batch_init(n_batch, 0, 1)
        self._pieces = self._all_pieces()
        self.eog_ids = frozenset(t for t in range(self.n_vocab) if C.llama_vocab_is_eog(self.vocab, t))
        self.info = ModelInfo(
            name=name or path.stem,
            path=str(path),
            architecture=gguf.architecture,
            n_ctx_train=gguf.n_ctx_train or C.llama_model_n_ctx_train(self.model),
            n_vocab=self.n_vocab,
            n_params=C.llama_model_n_params(self.model),
            quantization=gguf.quantization,
            chat_template=gguf.chat_template,
            bos_token=self._text(C.llama_vocab_bos(self.vocab)),
            eos_token=self._text(C.llama_vocab_eos(self.vocab)),
            kv_cache=f"{keys if keys == values else keys + '/' + values}, {kv_mb:.0f} MB for {slots} x {n_ctx} tokens",
        )

    def _context_params(self, threads: int | None):
        p = C.llama_context_default_params()
        p.n_ctx = self.n_ctx * self.slots
        p.n_batch = self.n_batch
        # Prompts go through in passes of up to 512 rows. With q8_0 keys, or f16 keys on pocketlm's
        # attention kernel (llama_library), every micro-batch size gives bit-identical logits. With f16
        # keys on llama.cpp as shipped its CPU attention takes a tiled kernel from 64 rows of a sequence
        # and a split one for a lone sequence past 256 cells, which round differently (benchmarks/NOTES.md,
        # "f16 keys never kept the promise"): no pass size keeps a seeded text then.
        p.n_ubatch = self.n_ubatch
        p.n_seq_max = self.slots
        p.n_threads = p.n_threads_batch = threads or cores()
        # One KV stream per slot. A unified cache would make every token attend over all
        # slots' cells (masked): at 16 streams that was 1.6x slower per step, measured.
        p.kv_unified = False
        p.type_k, p.type_v = self.k_type, self.v_type
        p.no_perf = not self._perf
        return p

    def perf(self) -> dict:
        """llama.cpp's own counters since load (needs ``perf=True``): eval times, tokens, graphs reused."""
        d = C.llama_perf_context(self.ctx)
        return {
            "prompt_eval_ms": d.t_p_eval_ms,
            "eval_ms": d.t_eval_ms,
            "prompt_tokens": d.n_p_eval,
            "eval_calls": d.n_eval,
            "graphs_reused": d.n_reused,
        }

    def _all_pieces(self) -> list[bytes]:
        """Every token's bytes, read once at load, into one shared buffer (a buffer per token made it a
        noticeable part of start-up: benchmarks/NOTES.md, "start-up")."""
        buf, pieces = ctypes.create_string_buffer(256), []
        for token in range(self.n_vocab):
            n = C.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
            if n < 0:  # longer than the buffer: ask again with the size llama.cpp reported
                big = ctypes.create_string_buffer(-n)
                n = C.llama_token_to_piece(self.vocab, token, big, len(big), 0, True)
                pieces.append(big.raw[:n])
            else:
                pieces.append(buf.raw[:n])
        return pieces

    def _text(self, token: int) -> str:
        return self._pieces[token].decode("utf-8", "replace") if 0 <= token < self.n_vocab else ""

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (C.llama_token * cap)()
        n = C.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, add_special)
        if n < 0:  # never more tokens than bytes + specials, but be safe
            buf = (C.llama_token * -n)()
            n = C.llama_tokenize(self.vocab, data, len(data), buf, -n, add_special, add_special)
        return list(buf[:n])

    def token_bytes(self, token: int) -> bytes:
        return self._pieces[token]

    def forward(self, chunks: list[Chunk]) -> np.ndarray:
        """Decode the chunks in as few llama_decode calls as the batch size allows."""
        rows: list[np.ndarray] = []
        items = [
            (c.slot, tok, c.pos + i, i >= len(c.tokens) - c.n_logits) for c in chunks for i, tok in enumerate(c.tokens)
        ]
        for start in range(0, len(items), self.n_batch):
            rows.append(self._decode(items[start : start + self.n_batch]))
            if start + self.n_batch < len(items):  # the next call overwrites llama.cpp's logits buffer
                rows[-1] = rows[-1].copy()
        if len(rows) == 1:
            return rows[0]  # a view of llama.cpp's buffer (writable): the engine samples from its rows in place
        return np.concatenate(rows) if rows else np.empty((0, self.n_vocab), np.float32)

    def _decode(self, items) -> np.ndarray:
        b = self.batch
        n_out = 0
        for i, (slot, tok, pos, want) in enumerate(items):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos, 1, want
            b.seq_id[i][0] = slot
            n_out += want
        b.n_tokens = len(items)
        ret = C.llama_decode(self.ctx, b)
        if ret != 0:
            raise GenerationFailed(f"llama_decode returned {ret} ({_DECODE_ERRORS.get(ret, 'fatal error')})")
        if n_out == 0:
            return np.empty((0, self.n_vocab), np.float32)
        ptr = C.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_out, self.n_vocab))

    def copy_slot(self, src: int, dst: int) -> None:
        C.llama_memory_seq_cp(self.memory, src, dst, -1, -1)

    def clear_slot(self, slot: int, keep: int = 0) -> None:
        C.llama_memory_seq_rm(self.memory, slot, keep if keep > 0 else -1, -1)

    def close(self) -> None:
        if getattr(self, "ctx", None):
            C.llama_batch_free(self.batch)
            C.llama_free(self.ctx)
            C.llama_model_free(self.model)
            self.ctx = self.model = None

    def __del__(self):
        self.close()
