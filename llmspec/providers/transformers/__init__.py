"""The `transformers` provider: local weights, batched decoding, constraints as token masks.

The model and tokenizer load once per provider (once per worker); requests are decoded in
batches by `decode.generate_batch`, which applies llguidance token masks to every row of a batch
at each step. Nothing is ever downloaded: a hub id must already be in the local cache.
"""

from __future__ import annotations

from itertools import groupby
from pathlib import Path
from typing import Any

from llmspec.errors import LlmspecError, Loc
from llmspec.providers import CAPABILITIES, Request, Result


class TransformersProvider:
    capabilities = CAPABILITIES["transformers"]

    def __init__(self, spec: Any, weights: Path | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from llmspec.providers.transformers.quantized import is_quantized, load_quantized

        self.spec = spec
        source = str(weights) if weights is not None else (spec.path or spec.model)
        kwargs: dict[str, Any] = {"local_files_only": True}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            if spec.dtype != "auto":
                kwargs["dtype"] = getattr(torch, spec.dtype)
            if is_quantized(Path(source)):  # made by a `quantize` job: not a save_pretrained
                self.model = load_quantized(Path(source))
            else:
                self.model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        except OSError as e:
            hint = (
                "the model must already be on this machine: llmspec never downloads weights"
                if spec.model
                else "check `path`: a folder saved with save_pretrained"
            )
            shown = spec.path or spec.model
            raise LlmspecError.one(
                "E061", f"cannot load model `{shown}`: {e}", Loc(shown), hint
            ) from None
        self.model.eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self.max_positions = _max_positions(self.model)
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))
        self._llg = None

    @property
    def llg_tokenizer(self) -> Any:
        if self._llg is None:
            from llmspec.providers.transformers.masks import llg_tokenizer_for

            self._llg = llg_tokenizer_for(self.tokenizer)
        return self._llg

    def render(self, r: Request) -> str:
        """The text the model sees: the chat template when the tokenizer has one (fine-tuning
        renders its rows the same way: `train.render_text`)."""
        from llmspec.providers.transformers.train import render_text

        return render_text(self.tokenizer, r.system, r.prompt)

    def generate(self, requests: list[Request]) -> list[Result]:
        """One Result per request, in order. Rows with the same decoding settings decode
        together; a row's `seconds` is the time from the start of its batch until that row
        finished, which is what a caller waiting for it would see (rows of a batch share
        forward passes, so these times overlap and do not add up to the batch's time)."""
        from llmspec.providers.transformers.decode import generate_batch

        results: list[Result | None] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: _group(requests[i]))
        for (max_tokens, temperature, top_p), idx in groupby(order, lambda i: _group(requests[i])):
            idx = list(idx)
            texts, ok, lengths = [], [], []
            for i in idx:
                text = self.render(requests[i])
                n = len(self.tokenizer(text, add_special_tokens=not self.chat).input_ids)
                if self.max_positions and n + max_tokens > self.max_positions:
                    results[i] = Result(
                        "",
                        "error",
                        "none",
                        f"prompt is {n} tokens; with max_tokens {max_tokens} it exceeds the "
                        f"model's {self.max_positions} positions",
                        prompt_tokens=n,
                    )
                    continue
                texts.append(text)
                ok.append(i)
                lengths.append(n)
            if not ok:
                continue
            gens = generate_batch(
                self.model,
                self.tokenizer,
                texts,
                [requests[i].constraint for i in ok],
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                seeds=[requests[i].seed for i in ok],
                llg_tokenizer=self.llg_tokenizer,
                batch_size=self.spec.batch_size,
                add_special_tokens=not self.chat,
            )
            for i, n, g in zip(ok, lengths, gens, strict=True):
                text, finish = g.text, g.finish
                if requests[i].constraint is None and requests[i].stop:
                    text, cut = _cut_at_stop(text, requests[i].stop)
                    finish = "stop" if cut else finish
                guarantee = (
                    "token"
                    if g.guarantee == "token"
                    else ("checked" if requests[i].constraint else "none")
                )
                results[i] = Result(
                    text,
                    finish,
                    guarantee,
                    g.error,
                    g.tokens,
                    g.seconds,
                    prompt_tokens=n,
                    first_token_seconds=g.first_token_seconds,
                )
        return [r for r in results if r is not None]

    def logprobs(
        self, items: list[tuple[Request, str]], batch_size: int = 8
    ) -> list[tuple[float, int] | str]:
        """For each (request, continuation): the negative log-likelihood (nats, summed) of the
        continuation's tokens after the rendered request, and their number; or an error."""
        import torch

        out: list[tuple[float, int] | str] = []
        encoded = []
        for r, continuation in items:
            prefix = self.tokenizer(self.render(r), add_special_tokens=not self.chat).input_ids
            full = self.tokenizer(
                self.render(r) + continuation, add_special_tokens=not self.chat
            ).input_ids
            n_cont = len(full) - len(prefix)
            if n_cont <= 0 or full[: len(prefix)] != prefix:
                # the continuation merged with the prompt's last token: score it on its own ids
                cont = self.tokenizer(continuation, add_special_tokens=False).input_ids
                full, n_cont = prefix + cont, len(cont)
            if n_cont == 0:
                encoded.append("the reference is empty")
            elif self.max_positions and len(full) > self.max_positions:
                encoded.append(
                    f"prompt and reference are {len(full)} tokens, over the model's "
                    f"{self.max_positions} positions"
                )
            else:
                encoded.append((full, n_cont))
        todo = [(i, e) for i, e in enumerate(encoded) if not isinstance(e, str)]
        results: dict[int, tuple[float, int]] = {}
        with torch.inference_mode():
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                width = max(len(e[0]) for _, e in chunk)
                pad = self.tokenizer.pad_token_id or 0
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for j, (_, (seq, _)) in enumerate(chunk):  # right-padded for scoring
                    ids[j, : len(seq)] = torch.tensor(seq)
                    mask[j, : len(seq)] = 1
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
                logp = torch.log_softmax(logits[:, :-1], dim=-1)
                target = ids[:, 1:]
                token_lp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
                for j, (i, (seq, n_cont)) in enumerate(chunk):
                    span = token_lp[j, len(seq) - 1 - n_cont : len(seq) - 1]
                    results[i] = (float(-span.sum()), n_cont)
        for i, e in enumerate(encoded):
            out.append(e if isinstance(e, str) else results[i])
        return out


def _group(r: Request) -> tuple[int, float, float]:
    return (r.max_tokens, r.temperature, r.top_p)


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    cuts = [text.find(s) for s in stops if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _max_positions(model: Any) -> int | None:
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return None
