"""Models: the providers' settings, and the jobs that make a model's weights (fine-tuning,
quantization)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    model_validator,
)

from llmspec.spec.base import Float, Int, Name, Spec, Str


class Params(Spec):
    """Decoding parameters; every one of them is part of a generation's content key."""

    temperature: Float = Field(0.0, ge=0, le=2, description="0 decodes greedily")
    top_p: Float = Field(1.0, gt=0, le=1)
    max_tokens: Int = Field(256, ge=1, le=131072)
    seed: Int = Field(0, ge=0, description="seed for sampling; same seed, same outputs")
    stop: tuple[Str, ...] = Field((), description="strings that end a generation")


class Price(Spec):
    """What a model costs, for the `cost` metric (any currency, said once for the project)."""

    input_per_1k: Float = Field(0.0, ge=0, description="per 1,000 prompt tokens")
    output_per_1k: Float = Field(0.0, ge=0, description="per 1,000 generated tokens")


MADE_BY = ("finetune", "quantize")
"""Fields of a transformers model that make its weights with a job of the same name."""


class Lora(Spec):
    """LoRA settings for `finetune: {method: lora}` (peft)."""

    r: Int = Field(8, ge=1, le=4096, description="rank of the update matrices")
    alpha: Float = Field(16, gt=0, description="scaling: the update is multiplied by alpha / r")
    dropout: Float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA inputs")
    target_modules: Literal["auto", "all-linear"] | tuple[Str, ...] = Field(
        "auto",
        description="`auto`: peft's choice for the architecture (GPT-2: c_attn; Llama: q_proj, "
        "v_proj); `all-linear`; or module names",
    )


class Finetune(Spec):
    """Train a model from another one; the result is a model like any other."""

    from_: Name = Field(alias="from", description="the model to start from (a transformers model)")
    dataset: Name = Field(description="the training rows")
    prompt: Name = Field(description="renders each row into what the model sees")
    expected: Str | None = Field(
        None, description="the column the model learns to produce (default: the dataset's)"
    )
    retrieve: Name | None = Field(
        None, description="a knowledge source filling the prompt's `context`, as in suites"
    )
    method: Literal["lora", "full"] = "lora"
    lora: Lora = Lora()
    epochs: Int = Field(3, ge=1, le=100_000)
    learning_rate: Float = Field(1e-4, gt=0, le=10)
    batch_size: Int = Field(8, ge=1, le=65_536, description="rows per optimizer step, in all")
    seed: Int = Field(0, ge=0)
    workers: Int = Field(
        1, ge=1, le=1024, description="data-parallel workers (Ray Train); each takes its share"
    )
    threads: Int = Field(
        1, ge=1, le=256, description="CPU threads per worker: the count changes float sums"
    )
    device: Literal["cpu", "cuda"] = Field(
        "cpu", description="where each worker trains; cuda needs the model's `gpus`"
    )

    @model_validator(mode="after")
    def _lora_for_lora(self) -> Finetune:
        if self.method != "lora" and "lora" in self.model_fields_set:
            raise ValueError("`lora` settings apply to `method: lora` only")
        if self.batch_size < self.workers:
            raise ValueError("`batch_size` counts rows over all workers: give each at least one")
        return self


QUANTIZE_METHODS = ("dynamic_int8", "dynamic_float16", "bnb_int8", "bnb_4bit")
GPU_QUANTIZE_METHODS = ("bnb_int8", "bnb_4bit")


class Quantize(Spec):
    """Quantize another model; the result is a model like any other."""

    from_: Name = Field(alias="from", description="the model to quantize (a transformers model)")
    method: Literal[QUANTIZE_METHODS] = Field(  # type: ignore[valid-type]
        "dynamic_int8",
        description="dynamic_int8, dynamic_float16: torch dynamic quantization of the linear "
        "layers, on CPU; bnb_int8, bnb_4bit: bitsandbytes, on a GPU",
    )


class TransformersModel(Spec):
    """A local model run with transformers; constraints are enforced token by token. Its
    weights are a folder (`path`), a model in the local Hugging Face cache (`model`), or made
    by a job from another model (`finetune`, `quantize`)."""

    provider: Literal["transformers"]
    path: Str | None = Field(None, description="folder saved with save_pretrained")
    model: Str | None = Field(
        None, description="a Hugging Face model id already in the local cache (never downloaded)"
    )
    finetune: Finetune | None = Field(None, description="train these weights from another model")
    quantize: Quantize | None = Field(None, description="quantize another model's weights")
    revision: Str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    params: Params = Params()
    price: Price | None = Field(None, description="for the `cost` metric")
    gpus: Float = Field(0, ge=0, description="GPUs per replica (Ray num_gpus)")
    cpus: Float = Field(1, gt=0, description="CPUs per replica (Ray num_cpus)")
    replicas: Int = Field(1, ge=1, le=1024)
    batch_size: Int = Field(16, ge=1, le=4096, description="rows decoded together")

    @model_validator(mode="after")
    def _one_source(self) -> TransformersModel:
        made = [f for f in MADE_BY if getattr(self, f) is not None]
        given = [f for f in ("path", "model") if getattr(self, f) is not None]
        if len(made) > 1:
            raise ValueError(
                "give one of `finetune` or `quantize`, not both: declare the tuned model, then a "
                "second model that quantizes it"
            )
        if made and given:
            raise ValueError(
                f"a model made by `{made[0]}` takes its weights from that job: drop `{given[0]}`"
            )
        if not made and len(given) != 1:
            raise ValueError(
                "give exactly one of `path` (a local folder), `model` (a hub id), `finetune` "
                "(train from another model) or `quantize` (quantize another model)"
            )
        if self.revision is not None and self.model is None:
            raise ValueError("`revision` applies to a hub `model` only")
        return self

    @property
    def made_by(self) -> str | None:
        """The job kind that makes this model's weights (`finetune`, `quantize`), or None."""
        return next((f for f in MADE_BY if getattr(self, f) is not None), None)


class Drift(Spec):
    """How a remote model is probed for drift: the model id and system fingerprint it reports,
    and the answers to canary prompts at temperature 0, compared with the lock."""

    canaries: Name | None = Field(
        None, description="a dataset of prompts answered at temperature 0 (a `path` dataset)"
    )
    every: Str = Field(
        "1d",
        pattern=r"^[1-9][0-9]{0,5}[smhd]$",
        description="how often a schedule probes it: `llmspec drift --due` skips younger probes",
    )


class OpenAIModel(Spec):
    """Any OpenAI-compatible server: vLLM, llama.cpp server, Ollama, OpenAI."""

    provider: Literal["openai"]
    base_url: Str = Field(description="e.g. http://127.0.0.1:8000/v1")
    model: Str
    api_key: Str | None = Field(None, description="only as a reference: ${env:NAME}")
    params: Params = Params()
    price: Price | None = Field(None, description="for the `cost` metric")
    concurrency: Int = Field(8, ge=1, le=1024, description="requests in flight per model")
    timeout_s: Float = Field(60, gt=0)
    max_retries: Int = Field(4, ge=0, le=20)
    drift: Drift | None = Field(None, description="canary prompts for `llmspec drift`")
    circuit_breaker: Int = Field(
        10,
        ge=0,
        le=10_000,
        description="consecutive failed attempts (connection errors, timeouts, 5xx) after which "
        "the server is taken for down: the shard's other rows fail at once, and the next shard "
        "sends one probe first; 0: never",
    )
    max_tokens_param: Literal["auto", "max_tokens", "max_completion_tokens"] = Field(
        "auto",
        description="the request field that carries params.max_tokens: max_tokens (vLLM, "
        "llama.cpp, Ollama), max_completion_tokens (newer OpenAI models), or auto: max_tokens, "
        "switching when the server asks for max_completion_tokens",
    )


class EchoModel(Spec):
    """Returns the rendered prompt: inspect prompts without calling a model."""

    provider: Literal["echo"]
    params: Params = Params()
    price: Price | None = Field(None, description="for the `cost` metric")


class LlamaCppModel(Spec):
    """A GGUF file run with llama-cpp-python through guidance."""

    provider: Literal["llamacpp"]
    path: Str = Field(description="a .gguf file")
    n_ctx: Int = Field(4096, ge=128)
    params: Params = Params()
    price: Price | None = Field(None, description="for the `cost` metric")
    gpus: Float = Field(0, ge=0)
    cpus: Float = Field(1, gt=0)
    replicas: Int = Field(1, ge=1, le=1024)


Model = Annotated[
    TransformersModel | OpenAIModel | EchoModel | LlamaCppModel,
    Field(discriminator="provider"),
]
