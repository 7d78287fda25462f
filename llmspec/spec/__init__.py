"""The spec language: frozen pydantic models for everything a user writes in YAML.

`schemas/llmspec.schema.json` is generated from `Project` (`llmspec schema`); a test fails when
the two drift apart. Scalars are strict (no `"yes"` -> `True`, no `1.10` -> `"1.10"`), so YAML
surprises become errors with a hint instead of silently different values.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    StringConstraints,
    Tag,
    model_validator,
)

from llmspec.probes import FAMILY_NAMES, STRATEGY_NAMES
from llmspec.spec.base import Bool, Float, Int, Name, Spec, Str
from llmspec.spec.models import (  # re-exported: the language is one namespace
    GPU_QUANTIZE_METHODS,
    MADE_BY,
    QUANTIZE_METHODS,
    Drift,
    EchoModel,
    Finetune,
    LlamaCppModel,
    Lora,
    Model,
    OpenAIModel,
    Params,
    Price,
    Quantize,
    TransformersModel,
)


def _tagged(union: Any, tag: str) -> dict[str, type[Spec]]:
    """The members of a discriminated union by their tag value."""
    members = typing.get_args(typing.get_args(union)[0])
    return {typing.get_args(m.model_fields[tag].annotation)[0]: m for m in members}


MODEL_TYPES = _tagged(Model, "provider")
PROVIDERS = tuple(MODEL_TYPES)


class Output(Spec):
    """The constraint a generation must satisfy: one of a schema, a regex or a list of choices,
    and how it is enforced."""

    schema_: Name | None = Field(None, alias="schema", description="a name under `schemas`")
    regex: Str | None = None
    choice: tuple[Str, ...] | None = Field(None, min_length=1)
    on_budget: Literal["close", "truncate"] = Field(
        "close",
        description="close: when max_tokens is about to cut the output off, steer it onto a "
        "shortest completion so it ends valid (token-enforcing providers); truncate: let it "
        "be cut (recorded as truncated)",
    )
    enforce: Literal["strict", "best_effort"] = Field(
        "strict",
        description="schemas: strict refuses a schema the engine cannot enforce whole; "
        "best_effort enforces what it can, checks the rest after the fact and resamples a "
        "violating row",
    )
    retries: Int = Field(
        3, ge=0, le=20, description="best_effort: resamples of a row that violates the schema"
    )
    whitespace_flexible: Bool | None = Field(
        None, description="schemas: allow any JSON whitespace (default: compact JSON)"
    )
    whitespace_pattern: Str | None = Field(
        None, description="schemas: a regex for the whitespace allowed between tokens"
    )
    separators: tuple[Str, Str] | None = Field(
        None, description='schemas: item and key separators, default [", ", ": "]'
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Output:
        given = [k for k in ("schema_", "regex", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `schema`, `regex` or `choice`")
        if self.schema_ is None:
            json_only = ("whitespace_flexible", "whitespace_pattern", "separators")
            for name in json_only:
                if getattr(self, name) is not None:
                    raise ValueError(f"`{name}` applies to a `schema` output only")
            if self.enforce != "strict":
                raise ValueError("`enforce: best_effort` applies to a `schema` output only")
        return self


class Prompt(Spec):
    """A system message and a jinja2 template rendered per dataset row, in a sandbox."""

    description: Str | None = None
    system: Str | None = None
    template: Str
    output: Output | None = None


class Source(Spec):
    """Where a knowledge source's documents come from: files, or a column of a dataset."""

    path: Str | None = Field(None, description="a folder or file, relative to the project")
    include: tuple[Str, ...] = ("**/*.md", "**/*.txt")
    exclude: tuple[Str, ...] = ()
    dataset: Name | None = None
    column: Str = "text"

    @model_validator(mode="after")
    def _one_source(self) -> Source:
        if (self.path is None) == (self.dataset is None):
            raise ValueError("give exactly one of `path` or `dataset`")
        return self


class Chunk(Spec):
    """How documents are cut into chunks: windows of `size` units overlapping by `overlap`,
    cut at word boundaries, never across a Markdown or HTML heading."""

    size: Int = Field(400, ge=16, le=100_000, description="units per chunk")
    overlap: Int = Field(50, ge=0)
    unit: Literal["characters", "tokens"] = Field(
        "characters", description="characters, or tokens of the embedding model's tokenizer"
    )

    @model_validator(mode="after")
    def _overlap(self) -> Chunk:
        if self.overlap >= self.size:
            raise ValueError("`overlap` must be smaller than `size`")
        return self


INDEX_BACKENDS = ("exact", "faiss")


class Knowledge(Spec):
    """A RAG source: documents chunked, embedded and retrieved top_k at a time."""

    source: Source
    chunk: Chunk = Chunk()
    embed: Str = Field("minilm", description="an embedding model: `minilm` or a local folder")
    index: Literal[INDEX_BACKENDS] = Field(  # type: ignore[valid-type]
        "exact", description="exact (numpy), or faiss (needs faiss-cpu)"
    )
    top_k: Int = Field(3, ge=1, le=100)


TESTGEN_KINDS = (
    "simple",
    "complex",
    "distracting",
    "situational",
    "double",
    "multi_hop",
    "out_of_scope",
)
"""Kinds of generated questions, as Giskard's RAG toolset names them (and `multi_hop`)."""


class Quality(Spec):
    """Filters for generated items; a rejected item is kept in the export, marked with why."""

    duplicate: Float = Field(
        0.95, gt=0, le=1, description="reject a question this similar (cosine) to a kept one"
    )
    support: Float = Field(
        0.5,
        ge=0,
        le=1,
        description="reject a reference answer sharing less than this share of its words with "
        "its reference chunks (0: no check)",
    )


class Generate(Spec):
    """Derive a test set from a knowledge source with a model."""

    from_: Name = Field(alias="from", description="a name under `knowledge`")
    model: Name
    kinds: tuple[Literal[TESTGEN_KINDS], ...] = ("simple",)  # type: ignore[valid-type]
    count: Int = Field(10, ge=1, le=100_000)
    seed: Int = Field(0, ge=0)
    quality: Quality = Quality()
    export: Str | None = Field(
        None, description="a .jsonl file of the project: the frozen set, committed and reviewed"
    )


class Dataset(Spec):
    """Rows to run prompts over: a JSONL, CSV or JSON file, or generated from knowledge."""

    path: Str | None = None
    format: Literal["jsonl", "csv", "json"] | None = None
    generate: Generate | None = None
    expected: Str = Field("expected", description="the column holding the reference answer")
    reference_context: Str | None = Field(
        None,
        description="the column naming each row's reference context: a file name, chunk ids "
        "(`kb/a.md#2`), or a list of them",
    )
    shard_rows: Int = Field(256, ge=1, le=1_000_000, description="rows per generate job")

    @model_validator(mode="after")
    def _one_source(self) -> Dataset:
        if (self.path is None) == (self.generate is None):
            raise ValueError("give exactly one of `path` or `generate`")
        if self.format is not None and self.path is None:
            raise ValueError("`format` applies to a `path` dataset only")
        if self.reference_context is not None and self.path is None:
            raise ValueError(
                "`reference_context` applies to a `path` dataset; a generated set names its own"
            )
        return self


MetricEntry = Str | dict[Str, dict[str, Any]]
"""A metric: its name (`rouge_l`), or a one-key mapping of its name to its options
(`{exact_match: {field: answer, normalize: squad}}`); options are checked by resolve against the
metric's own settings (`llmspec.metrics`)."""


class _Suite(Spec):
    """What every kind of suite has: its target (prompt variants x models, retrieval) and its
    gates."""

    description: Str | None = None
    prompt: Name | None = Field(None, description="the prompt (or `prompts:` for variants)")
    prompts: tuple[Name, ...] | None = Field(
        None, min_length=1, description="prompt variants, compared like models"
    )
    models: tuple[Name, ...] = Field(min_length=1)
    retrieve: Name | None = Field(None, description="a knowledge source to retrieve context from")
    gates: tuple[Str, ...] = Field((), description='e.g. "rouge_l.lcb95 >= 0.35"')

    @model_validator(mode="after")
    def _one_prompt_field(self) -> _Suite:
        if (self.prompt is None) == (self.prompts is None):
            raise ValueError("give exactly one of `prompt` or `prompts` (a list of variants)")
        return self

    @property
    def prompt_names(self) -> tuple[str, ...]:
        return (self.prompt,) if self.prompt is not None else tuple(self.prompts or ())


class Suite(_Suite):
    """A test suite: prompt variants x models over a dataset, `repeats` times, scored, gated."""

    kind: Literal["eval"] = Field("eval", description="`eval` (the default) or `redteam`")
    dataset: Name
    expected: Str | None = Field(
        None, description="the reference column for this suite (default: the dataset's)"
    )
    repeats: Int = Field(1, ge=1, le=100)
    metrics: tuple[MetricEntry, ...] = Field(min_length=1)
    correct: Str | None = Field(
        None,
        description="when a row's answer counts as right, for failure attribution: \"METRIC OP "
        'NUMBER" (default: the first answer metric, == 1 for 0/1 metrics, >= 0.5 otherwise)',
    )


Canary = Annotated[str, Strict(), StringConstraints(min_length=8, max_length=200)]
"""A secret planted in the target: long enough that finding it in an output is no accident."""


class Probes(Spec):
    """Which attacks a red-team suite sends: `per_family` base probes of each family, drawn
    with `seed`, each also sent through every strategy, `attempts` times."""

    families: tuple[Literal[FAMILY_NAMES], ...] = Field(  # type: ignore[valid-type]
        FAMILY_NAMES, min_length=1, description="probe families (default: all of them)"
    )
    strategies: tuple[Literal[STRATEGY_NAMES], ...] = Field(  # type: ignore[valid-type]
        (), description="transformations of each base probe; `plain` (none) always runs too"
    )
    per_family: Int = Field(20, ge=1, le=10_000, description="base probes drawn per family")
    attempts: Int = Field(1, ge=1, le=100, description="generations per probe (when sampling)")
    seed: Int = Field(0, ge=0, description="which probes are drawn, and how strategies vary")


class RedteamSuite(_Suite):
    """A red-team suite: probe families (prompt injection, jailbreaks, leakage, PII, toxicity,
    bias, hallucination) sent to prompt variants x models, scored by deterministic detectors;
    gates read each family's attack success rate (`prompt_injection.asr <= 0.05`)."""

    kind: Literal["redteam"]
    models: tuple[Name, ...] | None = Field(
        None, min_length=1, description="the models to attack (or `deployment:`)"
    )
    deployment: Name | None = Field(
        None,
        description="attack what a deployment ships: its model, prompt and retrieval, instead "
        "of `models`, `prompt` and `retrieve` (its configuration, not its running endpoint)",
    )
    input: Str | None = Field(
        None,
        description="the prompt variable that receives each probe's text (default: the prompt's "
        "only variable besides `context`, `canaries` and those in `values`)",
    )
    values: dict[Str, Any] = Field(
        {}, description="constant values for the prompt's other variables (e.g. `product`)"
    )
    probes: Probes = Probes()
    canaries: tuple[Canary, ...] = Field(
        (),
        description="secrets planted in the system prompt and the context; a probe that gets "
        "one out (also encoded) succeeds",
    )
    gates: tuple[Str, ...] = Field(
        (),
        description='on attack success rates: e.g. "prompt_injection.asr <= 0.05", '
        '"jailbreak.base64.ucb95 <= 0.2", "overall.asr <= 0.1"',
    )

    @model_validator(mode="after")
    def _one_prompt_field(self) -> RedteamSuite:
        # with `deployment:`, resolve reports a `prompt` given as well (E047)
        if self.deployment is None and (self.prompt is None) == (self.prompts is None):
            raise ValueError(
                "give exactly one of `prompt` or `prompts` (a list of variants), or "
                "`deployment:` to attack what a deployment ships"
            )
        return self


def _suite_kind(value: Any) -> str:
    kind = value.get("kind", "eval") if isinstance(value, dict) else getattr(value, "kind", "eval")
    return kind if isinstance(kind, str) else repr(kind)


AnySuite = Annotated[
    Annotated[Suite, Tag("eval")] | Annotated[RedteamSuite, Tag("redteam")],
    Discriminator(_suite_kind),
]
SUITE_TYPES: dict[str, type[Spec]] = {"eval": Suite, "redteam": RedteamSuite}
SUITE_KINDS = tuple(SUITE_TYPES)


class ExportTarget(Spec):
    kind: Literal["export"]
    path: Str = Field(description="where the deployment manifest is written")


class HttpTarget(Spec):
    kind: Literal["http"]
    url: Str
    token: Str | None = Field(None, description="only as a reference: ${env:NAME}")


ROUTE = r"^/(?:[A-Za-z0-9_.~\-]+(?:/[A-Za-z0-9_.~\-]+)*)?$"


class RayServeTarget(Spec):
    """Serve the deployment on Ray Serve, OpenAI-compatible, at `http://host:port{route}/v1`."""

    kind: Literal["ray_serve"]
    route: Str = Field("/", pattern=ROUTE, description="the path prefix, e.g. /support")
    port: Int = Field(8000, ge=1, le=65535)
    host: Str = Field(
        "127.0.0.1", description="the address to listen on; any other than loopback needs api_key"
    )
    replicas: Int = Field(1, ge=1, le=64)
    max_tokens: Int | None = Field(
        None, ge=1, le=131072, description="the most a request may ask for (default: the model's)"
    )
    max_body_bytes: Int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    concurrency: Int = Field(8, ge=1, le=1024, description="requests in flight per replica")
    queue: Int = Field(
        64, ge=1, le=100_000, description="requests waiting beyond those; more get HTTP 503"
    )
    api_key: Str | None = Field(None, description="only as a reference: ${env:NAME}")
    runner: Name | None = Field(
        None,
        description="a runner profile (runners/NAME.yaml) of a Ray cluster to deploy on; "
        "default: a Ray head that llmspec starts on this machine and keeps running",
    )
    timeout_s: Float = Field(600, gt=0, description="how long to wait for the replicas to be up")


Target = Annotated[ExportTarget | HttpTarget | RayServeTarget, Field(discriminator="kind")]
TARGET_TYPES = _tagged(Target, "kind")
TARGET_KINDS = tuple(TARGET_TYPES)
DISCRIMINATORS = {"provider": PROVIDERS, "kind": TARGET_KINDS}
"""Union tags by field: a model's provider, a deployment target's kind."""
TAG_CALLABLES = {f"{_suite_kind.__name__}()": ("kind", SUITE_KINDS)}
"""Unions told apart by a function (a suite's `kind`, `eval` when absent): the name pydantic
gives the function in errors -> the field it reads and its tags."""


class Deployment(Spec):
    """A model and prompt that ship once the suites they require pass."""

    model: Name
    prompt: Name
    retrieve: Name | None = Field(
        None, description="a knowledge source whose top_k chunks fill the prompt's `context`"
    )
    requires: tuple[Name, ...] = Field((), description="suites that must pass first")
    after: tuple[Name, ...] = Field((), description="deployments that must happen first")
    target: Target | None = None


class Project(Spec):
    """A whole llmspec project: every `*.yaml` file of a folder merged into one."""

    model_config = ConfigDict(title="llmspec project", extra="forbid", frozen=True)

    version: Literal[1]
    name: Name
    description: Str | None = None
    models: dict[Name, Model] = {}
    schemas: dict[Name, dict[str, Any]] = Field(
        {},
        description="JSON Schemas, inline or as {file: path}; checked under the draft their "
        "`$schema` names (draft-04, -06, -07, 2019-09, 2020-12; 2020-12 when none)",
    )
    prompts: dict[Name, Prompt] = {}
    knowledge: dict[Name, Knowledge] = {}
    datasets: dict[Name, Dataset] = {}
    suites: dict[Name, AnySuite] = {}
    deployments: dict[Name, Deployment] = {}


def suites_of(project: Project, kind: str) -> list[str]:
    """The names of a project's suites of one kind (`eval` or `redteam`)."""
    return [n for n, s in project.suites.items() if s.kind == kind]


@dataclasses.dataclass(frozen=True)
class SuiteTarget:
    """What a suite runs: its models, prompt variants and retrieval, and where each was written
    (paths relative to the suite). A red-team suite with `deployment:` takes the deployment's
    model, prompt and retrieval, all written at its `deployment` field."""

    models: tuple[str, ...]
    prompt_names: tuple[str, ...]
    retrieve: str | None
    model_at: tuple[tuple[str | int, ...], ...]
    prompt_at: tuple[tuple[str | int, ...], ...]
    retrieve_at: tuple[str | int, ...] = ("retrieve",)
    deployment: str | None = None


def suite_target(project: Project, suite: Any) -> SuiteTarget:
    """The target of a suite: its own `models`, `prompt`/`prompts` and `retrieve`, or those of
    the deployment a red-team suite names (empty when that deployment does not exist, which
    resolve reports).

    >>> p = Project.model_validate({"version": 1, "name": "x",
    ...     "deployments": {"staging": {"model": "m", "prompt": "bot"}},
    ...     "suites": {"s": {"kind": "redteam", "deployment": "staging"}}})
    >>> t = suite_target(p, p.suites["s"])
    >>> t.models, t.prompt_names, t.retrieve, t.model_at
    (('m',), ('bot',), None, (('deployment',),))
    """
    name = getattr(suite, "deployment", None)
    if name is None:
        prompts = suite.prompt_names
        many = suite.prompt is None
        return SuiteTarget(
            models=tuple(suite.models or ()),
            prompt_names=prompts,
            retrieve=suite.retrieve,
            model_at=tuple(("models", i) for i in range(len(suite.models or ()))),
            prompt_at=tuple(("prompts", i) if many else ("prompt",) for i in range(len(prompts))),
        )
    d = project.deployments.get(name)
    if d is None:
        return SuiteTarget((), (), None, (), (), ("deployment",), name)
    here = ("deployment",)
    return SuiteTarget((d.model,), (d.prompt,), d.retrieve, (here,), (here,), here, name)


SECTIONS = ("models", "schemas", "prompts", "knowledge", "datasets", "suites", "deployments")
SINGULAR = {
    "models": "model",
    "schemas": "schema",
    "prompts": "prompt",
    "knowledge": "knowledge source",
    "datasets": "dataset",
    "suites": "suite",
    "deployments": "deployment",
}


# Fields that cannot change any job's output, so no job key covers them. Every other field of
# the language is read by some job and is part of its inputs; tests/unit/test_keys.py changes
# each field of a rich project and checks the plan moves unless the field is listed here, and
# docs/language.md lists them for users.
OUTPUT_NEUTRAL: dict[str, str] = {
    "Project.name": "the project's label in the lock and plan",
    "Project.description": "documentation",
    "Prompt.description": "documentation",
    "Suite.description": "documentation",
    "RedteamSuite.description": "documentation",
    "TransformersModel.replicas": "how many copies run at once",
    "TransformersModel.cpus": "resources per replica",
    "TransformersModel.gpus": "resources per replica",
    "TransformersModel.batch_size": "rows decoded together: each row keeps its own positions, "
    "masks and seed, so outputs are the same at any batch size",
    "LlamaCppModel.replicas": "how many copies run at once",
    "LlamaCppModel.cpus": "resources per replica",
    "LlamaCppModel.gpus": "resources per replica",
    "OpenAIModel.api_key": "a secret reference; secrets never enter keys",
    "OpenAIModel.concurrency": "requests in flight",
    "OpenAIModel.timeout_s": "how long to wait; a timed-out row is retried, never stored",
    "OpenAIModel.max_retries": "how often to retry; a failed row is never stored",
    "Drift.every": "how often a schedule probes the model; a probe is never reused",
    "OpenAIModel.max_tokens_param": "the name the server takes for the same output limit",
    "OpenAIModel.circuit_breaker": "when to stop calling a server that is down; a failed "
    "shard is never stored",
    "HttpTarget.token": "a secret reference; secrets never enter keys",
    "RayServeTarget.api_key": "a secret reference; secrets never enter keys (a new key in the "
    "environment is shipped by the next apply)",
    "RayServeTarget.timeout_s": "how long apply waits for the replicas to come up",
}


def neutral_fields(cls: type[Spec]) -> frozenset[str]:
    """The output-neutral fields of one spec model."""
    return frozenset(f for f in cls.model_fields if f"{cls.__name__}.{f}" in OUTPUT_NEUTRAL)


def keyed_dump(spec: Spec, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A spec value as JSON, defaults included, without its output-neutral fields (and
    `drop`): what job keys cover of it. A new field enters keys by default."""
    skip = neutral_fields(type(spec)) | set(drop)
    return spec.model_dump(mode="json", by_alias=True, exclude=skip)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the spec language, as committed in schemas/llmspec.schema.json."""
    schema = Project.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://llmspec.dev/schemas/llmspec.schema.json"
    _metric_schemas(schema)
    return schema


def _metric_schemas(schema: dict[str, Any]) -> None:
    """Spell out each metric's options for editors: a suite's metrics are checked against them
    by resolve (with locations), the schema lets an editor complete them."""
    from llmspec.metrics import METRICS

    defs = schema.setdefault("$defs", {})
    options = []
    for name, rec in sorted(METRICS.items()):
        sub = rec.options.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        defs[f"{rec.options.__name__}"] = sub
        options.append(
            {
                "type": "object",
                "properties": {name: {"$ref": f"#/$defs/{rec.options.__name__}"}},
                "required": [name],
                "additionalProperties": False,
                "description": rec.description,
            }
        )
    defs["Suite"]["properties"]["metrics"]["items"] = {
        "anyOf": [{"enum": sorted(METRICS), "description": "a metric with its defaults"}, *options]
    }
