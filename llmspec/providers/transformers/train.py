"""Fine-tuning a transformers model: the training loop of `finetune` jobs.

One loop (`train_loop`) runs in this process (the inline runner) or in Ray Train workers
(`fit_on_ray`, under the Ray runner: `TorchTrainer` with `workers` workers); for the same seed
and thread count both give bit-identical weights on CPU. Each row is the prompt exactly as the
`transformers` provider renders it for generation, followed by its target and EOS; the loss is
on the target tokens only. LoRA (peft) updates are merged into the weights before saving, so
the result is a plain `save_pretrained` folder that loads like any other model.

Determinism: the seed fixes the model's random parts (LoRA's initial matrices, dropout) and
the order of rows; `threads` fixes how float sums are split; deterministic algorithms are
asked for. Everything set here (threads, RNG state, the deterministic flag) is restored after
an in-process run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
MODEL_FILES = ("config.json", "generation_config.json")
SKIPPED = ("llmspec-tiny.json", "llmspec-quantized.json", "README.md")
MAX_GRAD_NORM = 1.0
RUN_INFO = ".llmspec-run.json"  # the curve, passed back from Ray Train beside the weights
REPORT_SECONDS = 1.0  # progress within an epoch at most this often (and at each epoch's end)
NO_CPU_MEMORY = 64 * 1024 * 1024  # what a Ray Train worker asks for when no CPU is free

Report = Callable[[dict[str, Any]], None]


def render_text(tokenizer: Any, system: str | None, prompt: str) -> str:
    """The text a model sees for a request: its chat template when the tokenizer has one,
    else the system message, a blank line and the prompt (as the provider renders it)."""
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return prompt if system is None else f"{system}\n\n{prompt}"


def encode_examples(
    base: str, prompts: list[tuple[str | None, str]], targets: list[str]
) -> tuple[list[tuple[list[int], list[int]]], int]:
    """Token ids per row: (prompt ids as generation sees them, target ids + EOS), and the pad
    id. A row longer than the model's positions is an error naming the row."""
    from transformers import AutoConfig, AutoTokenizer

    from llmspec.jobs import JobError

    tok = AutoTokenizer.from_pretrained(base, local_files_only=True)
    chat = bool(getattr(tok, "chat_template", None))
    config = AutoConfig.from_pretrained(base, local_files_only=True)
    limit = next(
        (
            v
            for v in (getattr(config, n, None) for n in ("max_position_embeddings", "n_positions"))
            if isinstance(v, int) and v > 0
        ),
        None,
    )
    eos = tok.eos_token_id
    out = []
    for i, ((system, prompt), target) in enumerate(zip(prompts, targets, strict=True)):
        ids = tok(render_text(tok, system, prompt), add_special_tokens=not chat).input_ids
        tgt = tok(target, add_special_tokens=False).input_ids + ([eos] if eos is not None else [])
        if limit is not None and len(ids) + len(tgt) > limit:
            raise JobError(
                f"training row {i}: prompt and target are {len(ids) + len(tgt)} tokens, over "
                f"the model's {limit} positions"
            )
        out.append((ids, tgt))
    pad = tok.pad_token_id if tok.pad_token_id is not None else (eos or 0)
    return out, pad


@contextlib.contextmanager
def pinned(threads: int) -> Iterator[None]:
    """Thread count, RNG state and deterministic algorithms for one run, restored after."""
    import torch

    before = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(before)
        torch.use_deterministic_algorithms(deterministic, warn_only=True)


def load_trainable(base: str, settings: dict[str, Any]) -> Any:
    """The base model in float32, with LoRA adapters (peft) or every weight trainable."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=torch.float32)
    if settings["method"] != "lora":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    lora = settings["lora"]
    targets = lora["target_modules"]
    config = LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        # peft's own choice for the architecture is `None`; the string "auto" would be read
        # as a module name
        target_modules=None if targets == "auto" else targets,
        fan_in_fan_out=model.config.model_type == "gpt2",  # GPT-2's Conv1D stores [in, out]
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as e:
        from llmspec.jobs import JobError

        raise JobError(f"LoRA: {e}") from None


def _batch(examples: list[tuple[list[int], list[int]]], pad: int, device: Any) -> tuple:
    import torch

    width = max(len(a) + len(b) for a, b in examples)
    ids = torch.full((len(examples), width), pad, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (a, b) in enumerate(examples):
        seq = a + b
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        labels[i, len(a) : len(seq)] = torch.tensor(b)
    return ids.to(device), mask.to(device), labels.to(device)


def train_loop(
    cfg: dict[str, Any],
    report: Report | None = None,
    rank: int = 0,
    world: int = 1,
    prepare: Callable[[Any], Any] | None = None,
    device: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """Train; return the trained model (LoRA merged) and what the run saw: `curve` (per epoch:
    epoch, step, mean loss) and `trainable` (parameters trained). Each optimizer step takes
    `batch_size` rows in all, split among `workers`: with `world` 1 (in this process) the
    shares' gradients are averaged here, as DDP averages them across Ray Train workers
    (`rank` of `world`, `prepare` wraps the model)."""
    import torch

    s = cfg["settings"]
    examples, pad = cfg["examples"], cfg["pad"]
    device = device or torch.device(s["device"])
    torch.manual_seed(s["seed"])
    model = load_trainable(cfg["base"], s).to(device)
    model.train()
    if prepare is not None:
        model = prepare(model)
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=s["learning_rate"])
    order_rng = torch.Generator().manual_seed(s["seed"])
    workers, size = s["workers"], s["batch_size"]
    n, step, curve, last = len(examples), 0, [], time.monotonic()
    steps_per_epoch = -(-n // size)

    started = time.perf_counter()  # throughput counts from here: model and optimizer ready

    def loss_of(share: list[int]) -> Any:
        ids, mask, labels = _batch([examples[i] for i in share], pad, device)
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss

    for epoch in range(1, s["epochs"] + 1):
        order = torch.randperm(n, generator=order_rng).tolist()
        total = 0.0
        for start in range(0, n, size):
            rows = order[start : start + size]
            opt.zero_grad(set_to_none=True)
            if world == 1 and workers == 1:
                loss = loss_of(rows)
                loss.backward()
                step_loss = float(loss.detach())
            elif world == 1:  # every worker's share here, averaged as DDP would
                step_loss = 0.0
                for share in (rows[r::workers] for r in range(workers)):
                    if share:  # a short last batch leaves some shares empty
                        loss = loss_of(share)
                        (loss / workers).backward()
                        step_loss += float(loss.detach()) / workers
            else:  # one Ray Train worker of `world`; DDP averages the gradients
                share = rows[rank::world]
                # DDP needs every worker's backward: an empty share adds a zero
                loss = loss_of(share) if share else loss_of(rows[:1]) * 0.0
                loss.backward()
                step_loss = _sum_across(float(loss.detach()) / world, device)
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            opt.step()
            step += 1
            total += step_loss
            if report is not None and time.monotonic() - last >= REPORT_SECONDS:
                last = time.monotonic()
                report(_point(epoch, s["epochs"], step, steps_per_epoch, step_loss))
        point = _point(epoch, s["epochs"], step, steps_per_epoch, total / steps_per_epoch)
        curve.append({k: point[k] for k in ("epoch", "step", "loss")})
        if report is not None:
            last = time.monotonic()
            report(point)
    seconds = time.perf_counter() - started
    model = getattr(model, "module", model)  # DDP's wrapper
    model.eval()
    if s["method"] == "lora":
        model = model.merge_and_unload()
    return model, {"curve": curve, "trainable": trainable, "seconds": seconds}


def _point(epoch: int, epochs: int, step: int, per_epoch: int, loss: float) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "epochs": epochs,
        "step": step,
        "steps": epochs * per_epoch,
        "loss": round(loss, 6),
    }


def _sum_across(value: float, device: Any) -> float:
    """The sum of a value over all Ray Train workers."""
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())


def save_model(model: Any, base: str, out: Path) -> None:
    """The trained model as a `save_pretrained` folder, with the base's tokenizer files."""
    model.save_pretrained(out, safe_serialization=True)
    copy_tokenizer(Path(base), out)
    normalize_configs(out)


def copy_tokenizer(base: Path, out: Path) -> None:
    """Every file of a model folder except its weights and model config: the tokenizer."""
    for p in sorted(base.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.name in MODEL_FILES or p.name in SKIPPED or p.name.endswith(WEIGHT_FILES):
            continue
        if not (out / p.name).exists():
            shutil.copyfile(p, out / p.name)


def normalize_configs(folder: Path) -> None:
    """Drop machine-specific fields (the path it was loaded from) from the saved configs, so
    the same weights give the same files wherever they were trained."""
    for name in MODEL_FILES:
        path = folder / name
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            data.pop("_name_or_path", None)
            path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def train_here(cfg: dict[str, Any], out: Path, report: Report | None = None) -> dict[str, Any]:
    """Train in this process (the inline runner) and save into `out`; return the run's facts."""
    with pinned(cfg["settings"]["threads"]):
        model, info = train_loop(cfg, report)
        save_model(model, cfg["base"], out)
    return _summary(cfg, info, "inline")


def _summary(cfg: dict, info: dict, trainer: str) -> dict:
    """The run's details for the store's meta (not the output: they vary run to run):
    `train_seconds` and `samples_per_s` count from the first step, once started."""
    seen = len(cfg["examples"]) * cfg["settings"]["epochs"]
    seconds = info.pop("seconds")
    return info | {
        "trainer": trainer,
        "train_seconds": round(seconds, 3),
        "samples_per_s": round(seen / seconds, 2) if seconds > 0 else None,
    }


# -- Ray Train ------------------------------------------------------------------------------


def ray_loop(cfg: dict[str, Any]) -> None:
    """The loop in a Ray Train worker: rank 0 saves the model into a checkpoint."""
    import ray.train
    import ray.train.torch
    import torch

    from llmspec.runner.progress import progress_sender

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    send = progress_sender(cfg.get("progress_to")) if rank == 0 else None

    def report(point: dict[str, Any]) -> None:
        if send is not None:
            send(cfg["job"], point)

    device = ray.train.torch.get_device()
    torch.set_num_threads(cfg["settings"]["threads"])
    torch.use_deterministic_algorithms(True, warn_only=True)
    prepare = ray.train.torch.prepare_model if world > 1 else None
    model, info = train_loop(cfg, report, rank, world, prepare, device)
    with tempfile.TemporaryDirectory() as d:
        checkpoint = None
        if rank == 0:
            save_model(model.to("cpu"), cfg["base"], Path(d))
            (Path(d) / RUN_INFO).write_text(json.dumps(info))
            checkpoint = ray.train.Checkpoint.from_directory(d)
        curve = info["curve"]
        ray.train.report({"loss": curve[-1]["loss"] if curve else None}, checkpoint=checkpoint)


def train_on_ray(
    cfg: dict[str, Any],
    out: Path,
    scratch: Path,
    resources: dict[str, float],
    progress_to: str | None = None,
) -> dict[str, Any]:
    """Train with Ray Train's `TorchTrainer` (`workers` workers) and copy the weights into
    `out`. Each worker asks for the model's `gpus` and at most its `cpus`, never more CPUs than
    the cluster has free (a trainer waiting for CPUs that pools hold would wait forever)."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from llmspec.jobs import JobError

    workers = cfg["settings"]["workers"]
    gpus = float(resources.get("gpus", 0.0)) if cfg["settings"]["device"] == "cuda" else 0.0
    free = float(ray.available_resources().get("CPU", 0.0))
    cpus = round(max(0.0, min(float(resources.get("cpus", 1.0)), free / workers)), 3)
    # Every CPU taken (model pools, other actors): ask for memory only, which a worker always
    # finds, rather than for a CPU that would never come free (Ray refuses an empty request).
    per_worker: dict[str, float] = {"CPU": cpus} if cpus >= 0.01 else {"memory": NO_CPU_MEMORY}
    if gpus:
        have = float(ray.cluster_resources().get("GPU", 0.0))
        if have < gpus * workers:
            raise JobError(
                f"{workers} workers x {gpus:g} GPUs: the Ray cluster has {have:g} GPUs in all"
            )
        per_worker["GPU"] = gpus
    t0 = time.perf_counter()
    trainer = TorchTrainer(
        ray_loop,
        train_loop_config=cfg | {"progress_to": progress_to},
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=gpus > 0, resources_per_worker=per_worker
        ),
        run_config=RunConfig(
            # a fresh name and folder per run: Ray Train resumes a run of the same name
            name=f"finetune-{os.getpid()}-{time.time_ns()}",
            storage_path=str(Path(scratch).resolve()),  # Ray Train wants it absolute
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            failure_config=FailureConfig(max_failures=0),
        ),
    )
    try:
        result = trainer.fit()
    except Exception as e:  # noqa: BLE001 - Ray wraps the worker's error; show its message
        raise JobError(f"Ray Train: {_root_cause(e)}") from None
    if result.error is not None or result.checkpoint is None:
        raise JobError(f"Ray Train: {_root_cause(result.error) or 'no checkpoint'}")
    with result.checkpoint.as_directory() as d:
        for p in Path(d).iterdir():
            if p.is_file():
                shutil.copyfile(p, out / p.name)
    info = json.loads((out / RUN_INFO).read_text())
    (out / RUN_INFO).unlink()
    summary = _summary(cfg, info, "ray-train")
    summary["fit_seconds"] = round(time.perf_counter() - t0, 3)
    summary["resources_per_worker"] = per_worker
    return summary


def _root_cause(e: Any) -> str | None:
    if e is None:
        return None
    seen = e
    while getattr(seen, "__cause__", None) is not None:
        seen = seen.__cause__
    text = str(seen).strip().splitlines()
    return f"{type(seen).__name__}: {text[-1] if text else ''}"
