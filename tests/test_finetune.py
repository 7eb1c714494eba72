"""Fine-tuning: it learns, it resumes after kill -9 to the same weights, LoRA trains/merges/serves,
bad input is refused.

Tiny random GPT-2 (real GPT-2 tokenizer) on slices of the Shakespeare corpus; a few
dozen optimizer steps each, so the whole file stays well under two minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from pocketlm import datasets  # noqa: E402
from pocketlm.errors import InvalidParameter  # noqa: E402
from pocketlm.models.options import ModelOptions  # noqa: E402
from pocketlm.training.checkpoints import CHECKPOINTS, STAGING, checkpoint_steps, latest_checkpoint  # noqa: E402
from pocketlm.training.finetune import FinetuneConfig, finetune  # noqa: E402
from tiny_models import build_tiny_gpt2  # noqa: E402

SMALL = dict(block_size=32, batch_size=4, logging_steps=2, progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny") / "gpt2", n_positions=128)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("corpus")
    train, valid = d / "train.txt", d / "valid.txt"
    train.write_text(
        datasets.resolve("shakespeare:train").read_text(encoding="utf-8")[200_000:230_000], encoding="utf-8"
    )
    valid.write_text(datasets.resolve("shakespeare:valid").read_text(encoding="utf-8")[:3_000], encoding="utf-8")
    return train, valid


def valid_nll(model_dir: Path, valid: Path, block: int = 32) -> float:
    """Mean token NLL computed straight from transformers, independent of the Trainer's evaluation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = torch.tensor(tok(valid.read_text(encoding="utf-8"))["input_ids"])
    blocks = ids[: len(ids) // block * block].view(-1, block)
    with torch.no_grad():
        logits = model(blocks).logits[:, :-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), blocks[:, 1:].reshape(-1)).item()


def test_full_finetune_lowers_validation_perplexity(tiny, corpus, tmp_path):
    train, valid = corpus
    out = tmp_path / "out"
    m = finetune(
        FinetuneConfig(
            model_options=ModelOptions(str(tiny)),
            data=str(train),
            valid=str(valid),
            output=str(out),
            max_steps=12,
            save_steps=6,
            learning_rate=3e-3,
            **SMALL,
        )
    )
    assert m["valid_ppl_after"] < 0.5 * m["valid_ppl_before"], m
    assert valid_nll(out, valid) < valid_nll(tiny, valid) - 0.5  # measured without the Trainer
    written = json.loads((out / "metrics.json").read_text())
    assert written["steps"] == 12 and written["valid_ppl_after"] == m["valid_ppl_after"]
    assert [h["step"] for h in written["log_history"] if "loss" in h] == [2, 4, 6, 8, 10, 12]
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [s for s, _ in checkpoint_steps(out)] == [6, 12]
    from pocketlm.models.hf import inspect_hf_dir

    assert inspect_hf_dir(out).architecture == "GPT2LMHeadModel"  # a servable directory


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "pocketlm", "finetune", *map(str, args)]


def test_killed_run_resumes_to_the_same_weights(tiny, corpus, tmp_path):
    train, _ = corpus
    steps = 12
    args = dict(max_steps=steps, save_steps=3, learning_rate=1e-3, seed=7, block_size=32, batch_size=4)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in args.items()]
    killed = tmp_path / "killed"
    log = open(tmp_path / "killed.log", "wb")
    proc = subprocess.Popen(
        _cli("--model", tiny, "--data", train, "--output", killed, *flags), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        while latest_checkpoint(killed) is None and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # kill -9: no handler, no cleanup
    finally:
        proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-2000:]
    done = [s for s, _ in checkpoint_steps(killed)]
    assert done and done[-1] < steps and not (killed / "model.safetensors").exists()
    assert all(p.name.startswith("checkpoint-") for p in (killed / CHECKPOINTS).iterdir())

    m = finetune(
        FinetuneConfig(
            model_options=ModelOptions(str(tiny)),
            data=str(train),
            output=str(killed),
            resume=True,
            progress=False,
            **args,
        )
    )
    assert m["resumed_from_step"] == done[-1] >= 3
    assert m["steps_this_run"] == steps - done[-1]  # finished steps were not redone
    assert not list((killed / STAGING).glob("checkpoint-*"))  # every staged checkpoint was published

    straight = tmp_path / "straight"
    finetune(
        FinetuneConfig(
            model_options=ModelOptions(str(tiny)), data=str(train), output=str(straight), progress=False, **args
        )
    )
    a, b = load_file(killed / "model.safetensors"), load_file(straight / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_disk_full_during_checkpoint_keeps_last_good_one(tiny, corpus, tmp_path):
    """A real ENOSPC from the kernel: the file the Trainer writes last in checkpoint-4 is a link to /dev/full.

    Writing to /dev/full always fails with ENOSPC ("No space left on device"), exactly what a full
    disk returns, without root, a loop device or a tiny filesystem. The link is planted just before
    the Trainer saves step 4 (on_step_end runs first); every byte is written by the real save path.
    """
    from transformers import TrainerCallback

    train, _ = corpus
    out = tmp_path / "out"

    class FullDiskAtStep4(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 4:
                staged = Path(args.output_dir) / "checkpoint-4"
                staged.mkdir(parents=True, exist_ok=True)
                (staged / "trainer_state.json").symlink_to("/dev/full")

    args = dict(
        model_options=ModelOptions(str(tiny)),
        data=str(train),
        output=str(out),
        max_steps=6,
        save_steps=2,
        learning_rate=1e-3,
        **SMALL,
    )
    with pytest.raises(InvalidParameter) as e:
        finetune(FinetuneConfig(**args), callbacks=[FullDiskAtStep4()])
    assert e.value.param == "output"
    assert "full" in e.value.message and "checkpoint-2" in e.value.message and "--resume" in e.value.message
    assert [s for s, _ in checkpoint_steps(out)] == [2]  # the half-written checkpoint-4 is not visible
    assert sorted(p.name for p in (out / CHECKPOINTS).iterdir()) == ["checkpoint-2"]

    m = finetune(FinetuneConfig(**args, resume=True))  # the last good checkpoint is usable
    assert m["resumed_from_step"] == 2 and m["steps"] == 6


@pytest.fixture(scope="module")
def lora_runs(tiny, corpus, tmp_path_factory):
    """The same LoRA fine-tune twice: kept as base + adapter, and merged (--merge) into a plain model."""
    train, valid = corpus
    root = tmp_path_factory.mktemp("lora")
    common = dict(
        model_options=ModelOptions(str(tiny)),
        data=str(train),
        valid=str(valid),
        max_steps=10,
        save_steps=5,
        learning_rate=1e-2,
        lora=True,
        lora_r=8,
        **SMALL,
    )
    adapter = finetune(FinetuneConfig(output=str(root / "adapter"), **common))
    merged = finetune(FinetuneConfig(output=str(root / "merged"), merge=True, **common))
    return root / "adapter", adapter, root / "merged", merged


def test_lora_trains_merges_and_matches_adapter(tiny, lora_runs, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from pocketlm.models.adapters import merge_adapter

    adapter, m, merged, mm = lora_runs
    assert m["valid_ppl_after"] < m["valid_ppl_before"], m
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert not (adapter / "model.safetensors").exists()  # only the small adapter is written
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny)
    assert mm["method"] == "lora+merge" and (merged / "model.safetensors").is_file()
    assert mm["valid_ppl_after"] == pytest.approx(m["valid_ppl_after"], rel=1e-4)  # same seed, same training

    ids = torch.tensor([[464, 3290, 286, 262, 1110, 318]])
    with torch.no_grad():
        base_plus_adapter = (
            PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), adapter).eval()(ids).logits
        )
        plain = AutoModelForCausalLM.from_pretrained(merged).eval()(ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny).eval()(ids).logits
        later = AutoModelForCausalLM.from_pretrained(merge_adapter(adapter, tmp_path / "m")).eval()(ids).logits
    assert torch.allclose(plain, base_plus_adapter, atol=1e-4)
    assert torch.allclose(later, base_plus_adapter, atol=1e-4)  # an adapter kept apart merges the same later
    assert not torch.allclose(plain, base, atol=1e-3)  # the adapters did change the model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kept", ["merged", "adapter"])
def test_finetuned_directory_serves_over_http(lora_runs, tmp_path, kept):
    """`pocketlm serve --model OUT` on a LoRA fine-tune, merged or kept as base + adapter: greedy text
    equals transformers' own on the merged weights."""
    httpx = pytest.importorskip("httpx")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = lora_runs[2]
    out = merged if kept == "merged" else lora_runs[0]
    prompt = "ROMEO.\n"
    tok = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForCausalLM.from_pretrained(merged).eval()
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.eos_token_id)
    expected_text = tok.decode(expected[0, ids.shape[1] :])

    port = _free_port()
    env = {**os.environ, "POCKETLM_CACHE": str(tmp_path / "cache"), "POCKETLM_QUANTIZATION": "f32"}
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "pocketlm", "serve", "--model", str(out), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(1200):  # wait for it to listen (conversion + load), up to ~2 minutes
            if server.poll() is not None:
                break
            try:
                if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        r = httpx.post(
            f"{url}/v1/completions",
            timeout=60,
            json={"model": out.name, "prompt": prompt, "max_tokens": 8, "temperature": 0, "ignore_eos": True},
        )
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["text"] == expected_text
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_adapter_without_its_base_says_what_is_missing(lora_runs, tmp_path):
    from pocketlm.errors import ModelLoadError
    from pocketlm.models.prepare import prepare

    adapter = shutil.copytree(lora_runs[0], tmp_path / "adapter")
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"LoRA adapter for base model .*gone.*not a directory.*--merge"):
        prepare(str(adapter))


# ---- bad input: each fails before any training step, with a message that says what to do ----


def _expect_error(param: str, *words: str, **cfg):
    with pytest.raises(InvalidParameter) as e:
        finetune(FinetuneConfig(**{"progress": False, **cfg}))
    assert e.value.param == param, e.value.message
    for w in words:
        assert w in e.value.message, e.value.message
    return e.value


def test_empty_dataset_is_refused(tiny, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n\n")
    _expect_error(
        "data",
        "no text",
        model_options=ModelOptions(str(tiny)),
        data=str(empty),
        output=str(tmp_path / "o"),
        block_size=32,
    )


def test_jsonl_without_text_field_is_refused(tiny, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "fine"}\n{"body": "no text field here"}\n')
    err = _expect_error(
        "text_field",
        "line 2",
        "'text'",
        "body",
        "--text-field",
        model_options=ModelOptions(str(tiny)),
        data=str(data),
        output=str(tmp_path / "o"),
        block_size=32,
    )
    assert "d.jsonl" in err.message


def test_block_size_above_context_is_refused(tiny, corpus, tmp_path):
    _expect_error(
        "block_size",
        "128",
        "--block-size",
        model_options=ModelOptions(str(tiny)),
        data=str(corpus[0]),
        output=str(tmp_path / "o"),
        block_size=129,
    )


def test_unwritable_output_dir_is_refused(tiny, corpus, tmp_path):
    # A path under a regular file can never be created, even by root (who ignores permission bits).
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _expect_error(
        "output",
        "cannot write",
        model_options=ModelOptions(str(tiny)),
        data=str(corpus[0]),
        output=str(blocker / "out"),
        block_size=32,
    )
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        _expect_error(
            "output",
            "cannot write",
            model_options=ModelOptions(str(tiny)),
            data=str(corpus[0]),
            output=str(locked / "out"),
            block_size=32,
        )


def test_existing_run_needs_resume(tiny, corpus, tmp_path):
    out = tmp_path / "o"
    finetune(
        FinetuneConfig(
            model_options=ModelOptions(str(tiny)),
            data=str(corpus[0]),
            output=str(out),
            max_steps=2,
            save_steps=2,
            **SMALL,
        )
    )
    _expect_error(
        "output",
        "--resume",
        model_options=ModelOptions(str(tiny)),
        data=str(corpus[0]),
        output=str(out),
        max_steps=2,
        block_size=32,
    )


# ---- data formats and streaming tokenization ----


def test_data_formats_give_the_same_tokens(tiny, tmp_path):
    from transformers import AutoTokenizer

    from pocketlm.training.data import tokenize_to_file

    tok = AutoTokenizer.from_pretrained(tiny)
    docs = ["ROMEO.\nBut soft, what light", 'JULIET, she said, "yes"', "Olá, ação!"]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": d, "n": i}) + "\n" for i, d in enumerate(docs)))
    import csv

    with open(tmp_path / "d.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "body"])
        w.writerows([[i, d] for i, d in enumerate(docs)])
    folder = tmp_path / "dir"
    folder.mkdir()
    for i, d in enumerate(docs):
        (folder / f"{i}.txt").write_text(d)
    from datasets import Dataset

    Dataset.from_dict({"text": docs}).save_to_disk(str(tmp_path / "saved"))

    expected = []
    for d in docs:
        expected += tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]

    def ids(source, field="text"):
        dest = tmp_path / "ids.bin"
        tokenize_to_file(source, tok, dest, text_field=field)
        return np.fromfile(dest, dtype=np.uint32).tolist()

    assert ids(tmp_path / "d.jsonl") == expected
    assert ids(tmp_path / "d.csv", "body") == expected
    assert ids(folder) == expected
    assert ids(tmp_path / "saved") == expected
    with pytest.raises(InvalidParameter, match="no column 'text'"):
        ids(tmp_path / "d.csv")


def test_big_text_is_tokenized_in_pieces_with_identical_ids(tiny, monkeypatch, tmp_path):
    """Pieces of ~2 KB (instead of 1 MB) over 40 KB of text: same ids as tokenizing it whole."""
    from transformers import AutoTokenizer

    from pocketlm import texts
    from pocketlm.training import data

    tok = AutoTokenizer.from_pretrained(tiny)
    text = datasets.resolve("shakespeare:valid").read_text(encoding="utf-8")[:40_000]
    src = tmp_path / "big.txt"
    src.write_text(text, encoding="utf-8")
    monkeypatch.setattr(texts, "PIECE_CHARS", 2_000)  # how a file is read
    monkeypatch.setattr(data, "PIECE_CHARS", 2_000)  # how much text goes to the tokenizer at once
    pieces = list(next(texts.iter_documents(src)))
    assert len(pieces) >= 15 and max(map(len, pieces)) < 4_000 and "".join(pieces) == text
    dest = tmp_path / "ids.bin"
    n = data.tokenize_to_file(src, tok, dest)
    got = np.fromfile(dest, dtype=np.uint32).tolist()
    assert n == len(got) and got == tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
