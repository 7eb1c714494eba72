"""torch/transformers backend: any Hugging Face causal LM behind the Backend interface.

The engine owns sampling, stop strings and streaming, so this backend only
turns chunks of tokens into logits and keeps each slot's KV cache. Two ways
to do that:

- batched (GPT-2 and Llama-like families, whose attention goes through
  ``Cache.update`` and accepts explicit position ids and a 4D mask): one
  ``SlotCache`` holds every slot's keys/values at their absolute positions, so
  the decode steps of all running samples go through the model as ONE batch
  of rows with different lengths, each masked to its own past. That is what
  makes concurrency pay on a CPU: the weights are read once per step for all
  rows. Measured on SmolLM2-135M (benchmarks/torch_batching.py, one thread):
  16 rows decode ~6x the tokens/s of 16 separate calls; 1 row costs the same;
- sequential (every other architecture): a transformers ``DynamicCache`` per
  slot and one model call per chunk. Slower under load, but it makes no
  assumption about the model's attention (sliding windows, ALiBi, ...).

transformers' own continuous batching (``generate_batch`` /
``ContinuousBatchingManager``) does batch on CPU, but it samples inside its own
loop with its own scheduler and logits processors; pocketlm's engine must own
sampling, seeds, stop strings and cancellation so both backends behave the
same, which is why batching is done here instead.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from pocketlm.backends.base import Backend, Chunk, ModelInfo
from pocketlm.errors import InvalidParameter
from pocketlm.models.hf import inspect_hf_dir, load_model, load_tokenizer

# Families whose attention we know reads keys/values only through Cache.update and takes our 4D mask as-is.
BATCHED_MODEL_TYPES = frozenset({"gpt2", "llama", "qwen2", "qwen3", "mistral", "gpt_neox", "phi3", "olmo", "olmo2"})
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_CACHE_STEP = 256  # slot buffers grow in steps of this many positions


class SlotCache:
    """Keys/values of every slot, each at its absolute positions, for batched decoding.

    The model calls ``update(k, v, layer)`` once per layer with the new
    positions of the current batch; we write them into each row's slot and
    hand back every row's keys/values padded to the longest row. Padding
    positions are masked out by the caller's attention mask.

    Each slot has its own buffer, grown in steps as its tokens grow and
    dropped when the slot is cleared: memory follows the tokens actually held,
    not ``slots`` times the longest sample.
    """

    is_compileable = False

    def __init__(self, slots: int, max_len: int):
        self.slots, self.max_len = slots, max_len
        self.keys: list[list[torch.Tensor | None]] = []  # [layer][slot] -> [heads, capacity, head_dim]
        self.values: list[list[torch.Tensor | None]] = []
        self.lengths = [0] * slots
        self._rows: list[tuple[int, int]] = []  # (slot, start) of each batch row
        self._n_new = self._total = 0

    def prepare(self, slots: list[int], starts: list[int], n_new: int) -> None:
        """Set where the next forward pass writes: rows ``slots`` get ``n_new`` tokens from ``starts``."""
        self._rows = list(zip(slots, starts))
        self._n_new, self._total = n_new, max(starts) + n_new
        for slot, start in self._rows:
            self.lengths[slot] = start + n_new

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        if layer_idx == len(self.keys):
            self.keys.append([None] * self.slots)
            self.values.append([None] * self.slots)
        return self._write(self.keys[layer_idx], key), self._write(self.values[layer_idx], value)

    def _write(self, slots: list[torch.Tensor | None], new: torch.Tensor) -> torch.Tensor:
        """Store ``new`` [batch, heads, n_new, dim] in each row's slot; return [batch, heads, total, dim]."""
        out = None if len(self._rows) == 1 else new.new_zeros((new.shape[0], new.shape[1], self._total, new.shape[3]))
        for b, (slot, start) in enumerate(self._rows):
            end = start + self._n_new
            buf = slots[slot]
            if buf is None or buf.shape[1] < end:
                buf = slots[slot] = self._grown(buf, new, end)
            buf[:, start:end] = new[b]
            if out is None:
                return buf[None, :, :end]  # a single row: a view, no copy
            out[b, :, :end] = buf[:, :end]
        return out

    def _grown(self, buf, like: torch.Tensor, needed: int) -> torch.Tensor:
        cap = max(needed, min(self.max_len, -(-needed // _CACHE_STEP) * _CACHE_STEP))
        bigger = like.new_zeros((like.shape[1], cap, like.shape[3]))
        if buf is not None:
            bigger[:, : buf.shape[1]] = buf
        return bigger

    def copy(self, src: int, dst: int) -> None:
        n = self.lengths[src]
        for store in (self.keys, self.values):
            for slots in store:
                slots[dst] = None if slots[src] is None else slots[src].clone()
        self.lengths[dst] = n

    def clear(self, slot: int, keep: int = 0) -> None:
        """Forget positions ``keep`` on; the buffer stays while anything is kept (later writes overwrite the rest)."""
        self.lengths[slot] = keep
        if keep:
            return
        for store in (self.keys, self.values):
            for slots in store:
                slots[slot] = None

    # The parts of transformers' Cache interface models may ask about.
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self._total

    def __len__(self) -> int:
        return len(self.keys)


class TorchBackend(Backend):
    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        slots: int,
        n_ctx: int,
        threads: int | None = None,
        dtype: str = "float32",
        allow_pickle: bool = False,
        trust_remote_code: bool = False,
        batched: bool | None = None,
    ):
        if dtype not in _DTYPES:
            raise InvalidParameter("dtype", f"must be one of {', '.join(_DTYPES)}; got {dtype!r}")
        path = Path(path)
        name = name or path.name
        if threads:
            torch.set_num_threads(threads)
        hf = inspect_hf_dir(path, allow_pickle=allow_pickle)
        self.tokenizer = load_tokenizer(hf, trust_remote_code=trust_remote_code)
        self.model = load_model(hf, trust_remote_code=trust_remote_code, dtype=_DTYPES[dtype])
        self.slots, self.n_ctx = slots, n_ctx
        self.n_vocab = self.model.get_output_embeddings().weight.shape[0]
        self._pieces = token_pieces(self.tokenizer, self.n_vocab)
        self.eog_ids = frozenset(_end_of_generation_ids(self.model, self.tokenizer, self.n_vocab))
        n_ctx_train = _n_ctx_train(hf.config)
        self.batched = hf.model_type in BATCHED_MODEL_TYPES if batched is None else batched
        self.cache = SlotCache(slots, min(n_ctx, n_ctx_train or n_ctx)) if self.batched else None
        self.caches: dict[int, object] = {}  # sequential mode: one DynamicCache per slot
        template = self.tokenizer.chat_template
        self.info = ModelInfo(
            name=name,
            path=str(path),
            architecture=hf.architecture,
            n_ctx_train=n_ctx_train,
            n_vocab=self.n_vocab,
            n_params=sum(p.numel() for p in self.model.parameters()),
            quantization={"float32": "F32", "bfloat16": "BF16", "float16": "F16"}[dtype],
            chat_template=template if isinstance(template, str) else None,
            bos_token=self.tokenizer.bos_token or "",
            eos_token=self.tokenizer.eos_token or "",
        )

    # ------------------------------------------------------------ text

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        # add_special=False also means "special-token text is plain text", as in llama.cpp.
        return self.tokenizer(text, add_special_tokens=add_special, split_special_tokens=not add_special)["input_ids"]

    def token_bytes(self, token: int) -> bytes:
        return self._pieces[token] if 0 <= token < len(self._pieces) else b""

    # ------------------------------------------------------------ forward

    @torch.inference_mode()
    def forward(self, chunks: list[Chunk]) -> np.ndarray:
        results: list[np.ndarray | None] = [None] * len(chunks)
        for group in self._groups(chunks):
            rows = (
                self._forward_batch([chunks[i] for i in group])
                if self.batched
                else [self._forward_one(chunks[i]) for i in group]
            )
            for i, r in zip(group, rows):
                results[i] = r
        rows = [r for r in results if r is not None and len(r)]
        return np.concatenate(rows) if rows else np.empty((0, self.n_vocab), np.float32)

    def _groups(self, chunks: list[Chunk]) -> list[list[int]]:
        """Batch chunks of equal length (decode steps are all length 1); padding a decode row up
        to a prefill chunk's length would cost that whole length in compute."""
        groups: dict[int, list[int]] = {}
        for i, c in enumerate(chunks):
            if c.tokens:
                groups.setdefault(len(c.tokens), []).append(i)
        return list(groups.values())

    def _forward_batch(self, chunks: list[Chunk]) -> list[np.ndarray]:
        n_new = len(chunks[0].tokens)
        starts = [c.pos for c in chunks]
        self.cache.prepare([c.slot for c in chunks], starts, n_new)
        positions = torch.tensor(starts)[:, None] + torch.arange(n_new)
        keep = max(c.n_logits for c in chunks)
        out = self.model(
            input_ids=torch.tensor([c.tokens for c in chunks]),
            position_ids=positions,
            attention_mask=self._mask(positions, max(starts) + n_new),
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=max(keep, 1),
        )
        logits = out.logits.float().numpy()
        return [logits[b, logits.shape[1] - c.n_logits :] for b, c in enumerate(chunks)]

    def _mask(self, positions: torch.Tensor, total: int) -> torch.Tensor:
        """[batch, 1, n_new, total] additive mask: a query at position p sees keys 0..p of its own row."""
        visible = torch.arange(total)[None, None, :] <= positions[:, :, None]
        dtype = self.model.dtype
        return torch.zeros(visible.shape, dtype=dtype).masked_fill_(~visible, torch.finfo(dtype).min)[:, None]

    def _forward_one(self, c: Chunk) -> np.ndarray:
        from transformers import DynamicCache

        cache = self.caches.get(c.slot)
        if cache is None or c.pos == 0:
            cache = self.caches[c.slot] = DynamicCache(config=self.model.config)
        elif cache.get_seq_length() > c.pos:
            cache.crop(c.pos)
        out = self.model(
            input_ids=torch.tensor([c.tokens]), past_key_values=cache, use_cache=True, logits_to_keep=max(c.n_logits, 1)
        )
        logits = out.logits[0].float().numpy()
        return logits[logits.shape[0] - c.n_logits :]

    @torch.inference_mode()  # the cache tensors were made in inference mode; in-place writes must be too
    def copy_slot(self, src: int, dst: int) -> None:
        if self.batched:
            self.cache.copy(src, dst)
        elif src in self.caches:
            self.caches[dst] = copy.deepcopy(self.caches[src])

    def clear_slot(self, slot: int, keep: int = 0) -> None:
        if self.batched:
            self.cache.clear(slot, keep)
        elif keep == 0:
            self.caches.pop(slot, None)
        elif slot in self.caches:
            self.caches[slot].crop(keep)

    def close(self) -> None:
        """Drop the KV caches and the weights: a server unloading this model gets the memory back even while
        something still holds the backend (a finished request not yet collected)."""
        self.caches.clear()
        self.cache = None
        self.model = None


# ---------------------------------------------------------------- token bytes


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE writes every byte as a printable character; this maps them back.

    Printable Latin-1 bytes stand for themselves; the other 68 bytes (control
    characters, space, ...) were shifted to code points 256 and up, in order.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {chr(b): b for b in printable}
    shifted = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + shifted)] = b
            shifted += 1
    return table


def token_pieces(tokenizer, n_vocab: int) -> list[bytes]:
    """The raw bytes of every token id, as llama.cpp's ``token_to_piece`` (special tokens as their text)."""
    import json

    spec = json.loads(tokenizer.backend_tokenizer.to_str()) if getattr(tokenizer, "is_fast", False) else {}
    decoder = json.dumps(spec.get("decoder") or {})
    byte_level = '"ByteLevel"' in decoder
    byte_fallback = bool((spec.get("model") or {}).get("byte_fallback"))
    table = _byte_decoder()
    added = {a["id"] for a in spec.get("added_tokens", [])}
    pieces = []
    for i in range(n_vocab):
        text = tokenizer.convert_ids_to_tokens(i)
        if text is None:
            pieces.append(b"")
        elif i in added:
            pieces.append(text.encode("utf-8"))
        elif byte_level and all(ch in table for ch in text):
            pieces.append(bytes(table[ch] for ch in text))
        elif byte_fallback and len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
            pieces.append(bytes([int(text[3:5], 16)]))
        elif byte_fallback or '"Metaspace"' in decoder:
            pieces.append(text.replace("\u2581", " ").encode("utf-8"))
        else:  # WordPiece and other decoders: the tokenizer's own rendering of the single token
            pieces.append(tokenizer.convert_tokens_to_string([text]).encode("utf-8"))
    return pieces


def _end_of_generation_ids(model, tokenizer, n_vocab: int) -> set[int]:
    ids = set()
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos])
    ids.add(tokenizer.eos_token_id)
    # Chat models end a turn with these even when eos_token says otherwise (as llama.cpp's EOG list).
    for text in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"):
        token_id = tokenizer.convert_tokens_to_ids(text)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            ids.add(token_id)
    return {i for i in ids if isinstance(i, int) and 0 <= i < n_vocab}


def _n_ctx_train(config: dict) -> int:
    text = config.get("text_config") or config
    return int(text.get("max_position_embeddings") or text.get("n_positions") or text.get("n_ctx") or 0)
