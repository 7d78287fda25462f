"""Training throughput of the `finetune` job beside a plain PyTorch loop over the same model
and data: rows per second once training has started (the model loaded, the optimizer made),
in interleaved rounds, with the ratio of the medians. Optionally the same job on Ray Train (one
worker on an embedded Ray), with what its start-up costs.

    .venv/bin/python bench/finetune_throughput.py            # 24 rows x 8 epochs, 3 rounds
    .venv/bin/python bench/finetune_throughput.py --ray      # also the Ray Train path
    .venv/bin/python bench/finetune_throughput.py --smoke    # 8 rows x 2 epochs, 1 round

The model is the example project's tiny GPT-2 (seed 7), built into a temporary folder. The
rows are the example's training questions with two knowledge-base files as context, rendered
through its `qa` prompt as the finetune job renders them (about 300 tokens each), so the
sequence lengths are the example's. Both loops use one thread, the same batches in the same
order, AdamW and the same learning rate; the job's loop adds what it does beside the plain one
(loss on target tokens only is common to both: they share the batches): gradient clipping,
deterministic algorithms, progress points.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _projects as P  # noqa: E402

SETTINGS = {
    "method": "full",
    "learning_rate": 0.005,
    "batch_size": 4,
    "seed": 1,
    "workers": 1,
    "threads": 1,
    "device": "cpu",
}


def examples(base: str, n: int) -> tuple[list, int]:
    """The example's training rows rendered through its `qa` prompt, repeated to `n` rows."""
    from llmspec import templating
    from llmspec.jobs.finetune import target_text
    from llmspec.providers.transformers import train

    rows = [json.loads(x) for x in (REPO / "specs/data/train.jsonl").read_text().splitlines()]
    context = [(REPO / "specs/kb" / f).read_text() for f in ("refunds.md", "shipping.md")]
    system = "Answer only from the context. Reply in JSON."
    template = (
        "Context:\n{% for chunk in context %}- {{ chunk }}\n{% endfor %}Question: {{ question }}\n"
    )
    rows = (rows * (n // len(rows) + 1))[:n]
    prompts = [(system, templating.render_string(template, r | {"context": context})) for r in rows]
    return train.encode_examples(base, prompts, [target_text(r["target"]) for r in rows])


def plain_loop(base: str, exs: list, pad: int, epochs: int) -> float:
    """The loop anyone would write: zero_grad, forward, backward, step. Rows per second."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmspec.providers.transformers.train import _batch

    torch.set_num_threads(SETTINGS["threads"])
    torch.manual_seed(SETTINGS["seed"])
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=SETTINGS["learning_rate"])
    order_rng = torch.Generator().manual_seed(SETTINGS["seed"])
    size, device = SETTINGS["batch_size"], torch.device("cpu")
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(exs), generator=order_rng).tolist()
        for start in range(0, len(exs), size):
            ids, mask, labels = _batch([exs[i] for i in order[start : start + size]], pad, device)
            opt.zero_grad()
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            opt.step()
    return len(exs) * epochs / (time.perf_counter() - t0)


def job_loop(base: str, exs: list, pad: int, epochs: int) -> tuple[float, float]:
    """The finetune job's own training (inline runner): rows/s once started, and the whole
    call (load, train, save) in seconds."""
    from llmspec.providers.transformers import train

    cfg = {
        "base": base,
        "examples": exs,
        "pad": pad,
        "settings": SETTINGS | {"epochs": epochs},
        "job": "bench",
    }
    points: list = []
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        meta = train.train_here(cfg, Path(out), points.append)
        whole = time.perf_counter() - t0
    assert points, "the job reports progress"
    return meta["samples_per_s"], whole


def ray_job(base: str, exs: list, pad: int, epochs: int) -> dict:
    """The same training on Ray Train: one worker on an embedded 2-CPU Ray."""
    import logging

    import ray

    from llmspec.providers.transformers import train
    from llmspec.runner.ray import _loopback_only

    _loopback_only()
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")  # fmt: skip
    started = time.perf_counter() - t0
    cfg = {
        "base": base,
        "examples": exs,
        "pad": pad,
        "settings": SETTINGS | {"epochs": epochs},
        "job": "bench",
    }
    try:
        with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as scratch:
            t1 = time.perf_counter()
            meta = train.train_on_ray(cfg, Path(out), Path(scratch), {"cpus": 1.0})
            fit = time.perf_counter() - t1
    finally:
        ray.shutdown()
    return {"ray_init": started, "fit": fit, "train": meta["train_seconds"], **meta}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ray", action="store_true", help="also the job on Ray Train")
    ap.add_argument("--smoke", action="store_true", help="8 rows x 2 epochs, 1 round")
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.epochs, args.rounds = 8, 2, 1
    from llmspec.tinymodel import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        base = str(build_tiny_model(Path(tmp) / "tiny", seed=7))
        exs, pad = examples(base, args.rows)
        tokens = sum(len(a) + len(b) for a, b in exs) / len(exs)
        print(f"{args.rows} rows ({tokens:.0f} tokens each on average), {args.epochs} epochs, "
              f"batch {SETTINGS['batch_size']}, {args.rounds} rounds, 1 thread")  # fmt: skip
        plain_loop(base, exs[:4], pad, 1)  # warm-up, not counted: first calls pay for imports
        job_loop(base, exs[:4], pad, 1)
        plain, job, whole = [], [], []
        for r in range(args.rounds):  # interleaved, the order alternating
            cases = ("plain", "job") if r % 2 == 0 else ("job", "plain")
            for case in cases:
                if case == "plain":
                    plain.append(plain_loop(base, exs, pad, args.epochs))
                else:
                    rate, seconds = job_loop(base, exs, pad, args.epochs)
                    job.append(rate)
                    whole.append(seconds)
        p, j = statistics.median(plain), statistics.median(job)
        rows = [
            ["plain PyTorch loop", f"{p:.1f}", f"{min(plain):.1f}-{max(plain):.1f}", "1.00x"],
            ["finetune job, inline", f"{j:.1f}", f"{min(job):.1f}-{max(job):.1f}", f"{p / j:.2f}x"],
        ]
        if args.ray:  # once (it costs a Ray start), between two plain runs
            before = plain_loop(base, exs, pad, args.epochs)
            r = ray_job(base, exs, pad, args.epochs)
            after = plain_loop(base, exs, pad, args.epochs)
            rate, beside = r["samples_per_s"], (before + after) / 2
            rows.append(["plain, beside the Ray run", f"{beside:.1f}", "-", "1.00x"])
            ratio = f"{beside / rate:.2f}x"
            rows.append(["finetune job, Ray Train worker", f"{rate:.1f}", "-", ratio])
        print(P.table(("case", "rows/s (median)", "min-max", "plain / case"), rows))
        print("goal: plain / finetune job at most 1.2x once started")
        print(f"finetune job, whole call (load, train, save): {statistics.median(whole):.2f}s")
        if args.ray:
            overhead = r["fit"] - r["train"]
            print(f"Ray Train: ray.init {r['ray_init']:.1f}s, fit {r['fit']:.1f}s of which "
                  f"training {r['train']:.1f}s: {overhead:.1f}s to start and stop it")  # fmt: skip


if __name__ == "__main__":
    main()
