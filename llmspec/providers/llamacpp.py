"""The `llamacpp` provider: GGUF files through llama-cpp-python and guidance.

Only available where llama-cpp-python is installed (`pip install llama-cpp-python`, which
builds llama.cpp: about 17 minutes on 2 busy cores); guidance enforces the output constraint
token by token. llama.cpp runs with the replica's threads (`OMP_NUM_THREADS`, set by the
runner). Rows are decoded one at a time (guidance's
high-level API has no batching); guidance samples from NumPy's global RNG, so each row seeds it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from llmspec.errors import LlmspecError, Loc
from llmspec.providers import CAPABILITIES, Request, Result


class LlamaCppProvider:
    capabilities = CAPABILITIES["llamacpp"]

    def __init__(self, spec: Any, weights: Path | None = None):
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise LlmspecError.one(
                "E062",
                "the `llamacpp` provider needs llama-cpp-python, which is not installed",
                Loc(str(spec.path)),
                "pip install llama-cpp-python (it builds llama.cpp)",
            ) from None
        import logging

        from guidance.models import LlamaCpp

        # guidance warns on every load that it cannot collect GPU statistics
        logging.getLogger("guidance.metrics._metrics").setLevel(logging.ERROR)
        self.spec = spec
        threads = os.environ.get("OMP_NUM_THREADS", "")  # set by the runner, per replica
        try:
            self.model = LlamaCpp(
                str(weights if weights is not None else spec.path),
                echo=False,
                n_ctx=spec.n_ctx,
                n_gpu_layers=-1 if spec.gpus else 0,
                verbose=False,
                **({"n_threads": int(threads)} if threads.isdigit() and int(threads) > 0 else {}),
            )
        except (ValueError, RuntimeError, OSError) as e:
            raise LlmspecError.one(
                "E064",
                f"llama.cpp cannot load `{spec.path}`: {e}",
                Loc(str(spec.path)),
                "check `path`: a GGUF file (llama.cpp's convert_hf_to_gguf.py writes one)",
            ) from None

    def generate(self, requests: list[Request]) -> list[Result]:
        return [self._one(r) for r in requests]

    def _one(self, r: Request) -> Result:
        import guidance
        import numpy as np

        np.random.seed(r.seed % (2**32))
        c = r.constraint.to_json() if r.constraint is not None else {}
        t = r.temperature or None
        if "json_schema" in c:
            schema = (
                r.constraint.enforced_schema()[0] if r.constraint.best_effort else c["json_schema"]
            )
            grammar = guidance.json(
                name="out",
                schema=schema,
                max_tokens=r.max_tokens,
                temperature=t,
                separators=(", ", ": "),
            )
        elif "regex" in c:
            grammar = guidance.gen(
                name="out", regex=c["regex"], max_tokens=r.max_tokens, temperature=t
            )
        elif "choice" in c:
            grammar = guidance.select(list(c["choice"]), name="out")
        else:
            grammar = guidance.gen(
                name="out",
                max_tokens=r.max_tokens,
                temperature=t,
                top_p=r.top_p,
                stop=list(r.stop) or None,
            )
        prompt = r.prompt if r.system is None else f"{r.system}\n\n{r.prompt}"
        t0 = time.perf_counter()
        try:
            lm = self.model + prompt + grammar
            text = str(lm["out"])
        except UnicodeDecodeError as e:  # a token cut a UTF-8 sequence at max_tokens
            return Result(
                "",
                "error",
                "token" if c else "none",
                f"cut UTF-8 output: {e.reason}",
                seconds=time.perf_counter() - t0,
            )
        except Exception as e:  # noqa: BLE001 - one row's failure must not stop the others
            return Result(
                "",
                "error",
                "token" if c else "none",
                f"{type(e).__name__}: {e}",
                seconds=time.perf_counter() - t0,
            )
        finish = "stop"
        if c:
            from llmspec.constraints import check_output

            if check_output(c, text) is not None:
                finish = "length"  # a constrained prefix that did not complete
        return Result(text, finish, "token" if c else "none", seconds=time.perf_counter() - t0)
