"""The content key's promise: change any field of a project and the plan changes, unless the
field is on the one documented list of output-neutral fields (`spec.OUTPUT_NEUTRAL`), in which
case no job key moves.

A rich fixture project sets every field of the language (all kinds, all optional fields). The
test changes each leaf in turn to another valid value, compiles, and compares job keys with the
untouched project. A field of the language that no leaf of the fixture reaches fails the test
until the fixture sets it and someone decides whether it is keyed or neutral.
"""

from __future__ import annotations

import copy
import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from llmspec.compile import compile_project
from llmspec.errors import LlmspecError
from llmspec.hashing import HashCache
from llmspec.project import load_project
from llmspec.spec import OUTPUT_NEUTRAL, Project

STRUCTURAL = {
    "Project.version": "only 1 exists",
    "TransformersModel.provider": "the union tag: another provider is another kind of model",
    "OpenAIModel.provider": "the union tag",
    "EchoModel.provider": "the union tag",
    "LlamaCppModel.provider": "the union tag",
    "ExportTarget.kind": "the union tag",
    "HttpTarget.kind": "the union tag",
    "Suite.kind": "the union tag: another kind is another kind of suite",
    "RedteamSuite.kind": "the union tag",
    "RayServeTarget.kind": "the union tag",
}
"""Fields a single-leaf change cannot test: changing them changes which fields exist."""

SCHEMA = {
    "type": "object",
    "required": ["answer"],
    "additionalProperties": False,
    "properties": {
        "answer": {"type": "string", "maxLength": 60},
        "ref": {"$ref": "schemas/common.json#/$defs/level"},
    },
}

SPEC: dict[str, Any] = {
    "version": 1,
    "name": "rich",
    "description": "every field of the language",
    "models": {
        "local": {
            "provider": "transformers",
            "path": "models/a",
            "dtype": "float32",
            "params": {
                "temperature": 0.5,
                "top_p": 0.9,
                "max_tokens": 40,
                "seed": 3,
                "stop": ["\n\n"],
            },
            "gpus": 0,
            "cpus": 1,
            "replicas": 1,
            "batch_size": 4,
            "price": {"input_per_1k": 0.001, "output_per_1k": 0.002},
        },
        "hub": {
            "provider": "transformers",
            "model": "acme/tiny",
            "revision": "main",
            "params": {"max_tokens": 40},
        },
        "gguf": {
            "provider": "llamacpp",
            "path": "models/m.gguf",
            "n_ctx": 256,
            "gpus": 0,
            "cpus": 1,
            "replicas": 1,
            "params": {"max_tokens": 40},
        },
        "remote": {
            "provider": "openai",
            "base_url": "http://127.0.0.1:9/v1",
            "model": "served",
            "api_key": "${env:RICH_KEY}",
            "concurrency": 4,
            "timeout_s": 30,
            "max_retries": 2,
            "circuit_breaker": 6,
            "max_tokens_param": "max_completion_tokens",
            "params": {"max_tokens": 40},
            "drift": {"canaries": "golden", "every": "1d"},
        },
        "echo": {"provider": "echo", "params": {"seed": 1}},
        "tuned": {
            "provider": "transformers",
            "finetune": {
                "from": "local",
                "dataset": "train",
                "prompt": "qa",
                "expected": "answer",
                "retrieve": "docs",
                "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["c_attn"]},
                "epochs": 2,
                "learning_rate": 0.001,
                "batch_size": 2,
                "seed": 1,
                "workers": 1,
                "threads": 1,
                "device": "cpu",
            },
            "params": {"max_tokens": 40},
            "gpus": 1,
        },
        "full": {
            "provider": "transformers",
            "finetune": {
                "from": "hub",
                "dataset": "gen",
                "prompt": "pick",
                "method": "full",
                "expected": "question",
            },
        },
        "small": {
            "provider": "transformers",
            "quantize": {"from": "tuned", "method": "dynamic_int8"},
            "params": {"max_tokens": 40},
        },
    },
    "schemas": {
        "answer": SCHEMA,
        "level": {"file": "schemas/level.json"},
        "alt": {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 30}}},
    },
    "prompts": {
        "qa": {
            "description": "answers",
            "system": "Answer from the context.",
            "template": "Q: {{ question }} {{ context | join(' ') }}",
            "output": {
                "schema": "answer",
                "on_budget": "close",
                "enforce": "best_effort",
                "retries": 2,
                "whitespace_flexible": False,
                "whitespace_pattern": " ?",
                "separators": [",", ":"],
            },
        },
        "code": {"template": "Code for {{ question }}:", "output": {"regex": "[A-Z]{2}-[0-9]{3}"}},
        "pick": {"template": "Pick: {{ question }}", "output": {"choice": ["yes", "no"]}},
        "plain": {"template": "Hello there"},
        "grade": {"template": "Grade: {{ question }}", "output": {"schema": "level"}},
        "qa2": {"template": "{{ question }}: {{ context | length }}", "output": {"schema": "alt"}},
        "bot": {
            "system": "You help with {{ product }}.",
            "template": "{{ question }} {{ context | join(' ') }}",
        },
    },
    "knowledge": {
        "docs": {
            "source": {
                "path": "kb",
                "include": ["**/*.md", "**/*.jsonl"],
                "exclude": ["**/skip.md"],
                "column": "text",
            },
            "chunk": {"size": 200, "overlap": 20, "unit": "characters"},
            "embed": "minilm",
            "index": "exact",
            "top_k": 2,
        },
        "notes": {
            "source": {"dataset": "golden", "column": "body"},
            "embed": "embedders/e1",
        },
    },
    "datasets": {
        "golden": {
            "path": "data/golden.jsonl",
            "expected": "answer",
            "reference_context": "doc",
            "shard_rows": 2,
        },
        "dump": {"path": "data/rows.dat", "format": "jsonl"},
        "train": {"path": "data/golden2.jsonl"},
        "gen": {
            "generate": {
                "from": "docs",
                "model": "local",
                "kinds": ["simple", "complex"],
                "count": 4,
                "seed": 2,
                "quality": {"duplicate": 0.9, "support": 0.4},
                "export": "data/gen.jsonl",
            }
        },
    },
    "suites": {
        "answers": {
            "description": "grounded answers",
            "prompt": "qa",
            "models": ["local", "remote"],
            "dataset": "golden",
            "retrieve": "docs",
            "repeats": 2,
            "metrics": [
                "schema_valid",
                {"rouge_l": {"field": "answer", "stemmer": True, "tokenizer": "default"}},
                {"exact_match": {"field": "answer", "normalize": "squad", "name": "em"}},
                {
                    "judge": {
                        "model": "remote",
                        "rubric": "Score 1-5: correct?",
                        "scale": [1, 5],
                        "field": "answer",
                    }
                },
                "cost",
                {"hit_rate": {"k": 2}},
                {"mrr": {"k": 2, "name": "rank"}},
                "recall_at_k",
                "context_precision",
                {"groundedness": {"field": "answer", "threshold": 0.6}},
                {"groundedness": {"judge": "remote", "field": "answer", "name": "grounded"}},
                {"abstention": {"field": "answer", "phrases": ["no idea"]}},
            ],
            "gates": ["rouge_l >= 0", "rouge_l.lcb95 >= baseline - 0.1"],
            "correct": "rouge_l >= 0.5",
        },
        "codes": {
            "prompts": ["code", "pick"],
            "models": ["gguf", "hub"],
            "dataset": "golden",
            "metrics": ["schema_valid"],
        },
        "picks": {
            "prompt": "pick",
            "models": ["local"],
            "dataset": "gen",
            "expected": "question",
            "metrics": ["schema_valid"],
        },
        "variants": {
            "prompt": "qa",
            "models": ["tuned", "small"],
            "dataset": "golden",
            "retrieve": "docs",
            "metrics": ["schema_valid"],
        },
        "dumps": {
            "prompt": "plain",
            "models": ["echo"],
            "dataset": "dump",
            "retrieve": "notes",
            "metrics": ["json_valid"],
        },
        "safety": {
            "kind": "redteam",
            "description": "attacks",
            "prompt": "bot",
            "models": ["local"],
            "retrieve": "docs",
            "input": "question",
            "values": {"product": "the Acme router", "question": "unused"},
            "probes": {
                "families": ["prompt_injection", "data_leakage", "bias"],
                "strategies": ["base64", "rot13"],
                "per_family": 2,
                "attempts": 2,
                "seed": 5,
            },
            "canaries": ["CANARY-0001-TEST"],
            "gates": ["prompt_injection.asr <= 0.5"],
        },
        "probing": {
            "kind": "redteam",
            "prompts": ["bot", "qa"],
            "models": ["echo"],
            "retrieve": "notes",
            "values": {"product": "x"},
            "probes": {"families": ["hallucination"]},
        },
        "staged": {
            "kind": "redteam",
            "deployment": "audit",
            "probes": {"families": ["system_prompt_extraction", "pii"], "per_family": 2},
        },
    },
    "deployments": {
        "tuned": {"model": "small", "prompt": "qa"},
        "prod": {
            "model": "local",
            "prompt": "qa",
            "requires": ["answers"],
            "after": ["stage"],
            "target": {"kind": "http", "url": "http://127.0.0.1:9/deploy", "token": "${env:T}"},
        },
        "stage": {
            "model": "remote",
            "prompt": "pick",
            "requires": [],
            "after": [],
            "target": {"kind": "export", "path": "build/stage.json"},
        },
        "audit": {"model": "echo", "prompt": "grade"},
        "canary": {"model": "remote", "prompt": "qa2"},
        "serve": {
            "model": "local",
            "prompt": "qa",
            "retrieve": "docs",
            "requires": ["answers"],
            "target": {
                "kind": "ray_serve",
                "route": "/support",
                "port": 8765,
                "host": "127.0.0.1",
                "replicas": 1,
                "max_tokens": 40,
                "max_body_bytes": 65536,
                "concurrency": 4,
                "queue": 16,
                "api_key": "${env:SERVE_KEY}",
                "runner": "cluster",
                "timeout_s": 300,
            },
        },
    },
}

# Another valid value for leaves whose change must name something that exists.
ALTERNATIVES: dict[tuple, list[Any]] = {
    ("models", "local", "path"): ["models/b"],
    ("models", "gguf", "path"): ["models/m2.gguf"],
    ("models", "hub", "model"): ["acme/other"],
    ("models", "hub", "revision"): ["v2"],
    ("models", "local", "dtype"): ["bfloat16"],
    ("models", "remote", "max_tokens_param"): ["auto", "max_tokens"],
    ("schemas", "level", "file"): ["schemas/level2.json"],
    ("prompts", "qa", "output", "schema"): ["alt"],
    ("prompts", "grade", "output", "schema"): ["answer"],
    ("prompts", "qa", "output", "on_budget"): ["truncate"],
    ("prompts", "qa", "output", "enforce"): ["strict"],
    ("prompts", "qa", "output", "separators"): [[", ", ":"]],
    ("knowledge", "docs", "source", "path"): ["kb2"],
    ("knowledge", "docs", "source", "include"): [["**/a.md"]],
    ("knowledge", "docs", "source", "exclude"): [["**/b.md"]],
    ("knowledge", "docs", "embed"): ["embedders/e1"],
    ("knowledge", "notes", "embed"): ["minilm"],
    ("knowledge", "notes", "source", "column"): ["question"],
    ("knowledge", "notes", "source", "dataset"): ["dump"],
    ("datasets", "golden", "path"): ["data/golden2.jsonl"],
    ("datasets", "golden", "expected"): ["question"],
    ("datasets", "dump", "path"): ["data/rows2.dat"],
    ("datasets", "dump", "format"): ["csv"],
    ("datasets", "gen", "generate", "from"): ["notes"],
    ("datasets", "gen", "generate", "model"): ["hub"],
    ("datasets", "gen", "generate", "kinds"): [["simple"]],
    ("datasets", "gen", "generate", "export"): ["data/gen2.jsonl"],
    ("datasets", "golden", "reference_context"): ["question"],
    ("knowledge", "docs", "index"): ["faiss"],
    ("knowledge", "docs", "chunk", "unit"): ["tokens"],
    ("knowledge", "docs", "source", "column"): ["body"],
    ("suites", "answers", "metrics", 5, "hit_rate", "k"): [3],
    ("suites", "answers", "metrics", 10, "groundedness", "judge"): ["local"],
    ("suites", "answers", "metrics", 10, "groundedness", "name"): ["grounded2"],
    ("suites", "answers", "metrics", 6, "mrr", "name"): ["rank2"],
    ("suites", "answers", "metrics", 9, "groundedness", "field"): ["/answer"],
    ("suites", "answers", "metrics", 10, "groundedness", "field"): ["/answer"],
    ("suites", "answers", "metrics", 11, "abstention", "field"): ["/answer"],
    ("suites", "answers", "metrics", 7): ["json_valid"],
    ("suites", "answers", "metrics", 8): ["json_valid"],
    ("suites", "answers", "prompt"): ["qa2"],
    ("suites", "answers", "metrics", 0): ["json_valid"],
    ("suites", "answers", "models"): [["local"]],
    ("suites", "answers", "dataset"): ["gen"],
    ("suites", "answers", "retrieve"): ["notes"],
    ("suites", "answers", "metrics", 1, "rouge_l", "field"): ["/answer"],
    ("suites", "answers", "metrics", 1, "rouge_l", "tokenizer"): ["unicode"],
    ("suites", "answers", "metrics", 2, "exact_match", "field"): ["/answer"],
    ("suites", "answers", "metrics", 2, "exact_match", "normalize"): ["lower"],
    ("suites", "answers", "metrics", 2, "exact_match", "name"): ["match"],
    ("suites", "answers", "metrics", 3, "judge", "model"): ["local"],
    ("suites", "answers", "metrics", 3, "judge", "field"): ["/answer"],
    ("suites", "answers", "metrics", 3, "judge", "scale"): [[0, 10]],
    ("suites", "answers", "metrics", 4): ["tokens_out"],
    ("suites", "answers", "gates"): [["rouge_l >= 0.9"]],
    ("schemas", "alt", "type"): ["array"],
    ("schemas", "alt", "properties", "answer", "type"): ["integer"],
    ("prompts", "qa2", "output", "schema"): ["answer"],
    ("suites", "codes", "prompts"): [["code"]],
    ("suites", "picks", "expected"): ["answer"],
    ("suites", "codes", "models"): [["gguf"]],
    ("suites", "codes", "dataset"): ["gen"],
    ("suites", "codes", "metrics"): [["json_valid"]],
    ("suites", "picks", "models"): [["hub"]],
    ("suites", "picks", "prompt"): ["code"],
    ("suites", "picks", "dataset"): ["golden"],
    ("suites", "picks", "metrics"): [["json_valid"]],
    ("suites", "dumps", "models"): [["local"]],
    ("suites", "dumps", "prompt"): ["pick"],
    ("suites", "dumps", "dataset"): ["golden"],
    ("suites", "dumps", "retrieve"): ["docs"],
    ("suites", "dumps", "metrics"): [["schema_valid"]],
    ("deployments", "prod", "model"): ["hub"],
    ("deployments", "prod", "prompt"): ["pick"],
    ("deployments", "prod", "requires"): [["answers", "codes"]],
    ("deployments", "prod", "after"): [[]],
    ("deployments", "stage", "requires"): [["picks"]],
    ("deployments", "stage", "after"): [["audit"]],
    ("deployments", "stage", "model"): ["echo"],
    ("deployments", "stage", "prompt"): ["qa"],
    ("models", "remote", "api_key"): ["${env:OTHER_KEY}"],
    ("deployments", "prod", "target", "token"): ["${env:OTHER_TOKEN}"],
    ("deployments", "audit", "model"): ["local"],
    ("deployments", "canary", "model"): ["local"],
    ("deployments", "canary", "prompt"): ["qa"],
    ("deployments", "audit", "prompt"): ["pick"],
    ("schemas", "answer", "type"): ["array"],
    ("schemas", "answer", "properties", "answer", "type"): ["integer"],
    ("schemas", "answer", "properties", "ref", "$ref"): ["schemas/level.json"],
    ("deployments", "prod", "target", "url"): ["http://127.0.0.1:9/other"],
    ("deployments", "stage", "target", "path"): ["build/other.json"],
    ("suites", "safety", "prompt"): ["qa"],
    ("suites", "safety", "models"): [["hub"]],
    ("suites", "safety", "retrieve"): ["notes"],
    ("suites", "safety", "input"): ["product"],
    ("suites", "safety", "gates"): [["prompt_injection.asr <= 0.4"]],
    ("suites", "safety", "probes", "families"): [["prompt_injection", "data_leakage"]],
    ("suites", "probing", "prompts"): [["bot"]],
    ("suites", "probing", "models"): [["local"]],
    ("suites", "probing", "retrieve"): ["docs"],
    ("suites", "probing", "probes", "families"): [["hallucination", "toxicity"]],
    ("suites", "staged", "deployment"): ["serve"],
    ("models", "tuned", "finetune", "from"): ["hub"],
    ("models", "tuned", "finetune", "dataset"): ["golden"],
    ("models", "tuned", "finetune", "prompt"): ["qa2"],
    ("models", "tuned", "finetune", "expected"): ["question"],
    ("models", "tuned", "finetune", "retrieve"): ["notes"],
    ("models", "tuned", "finetune", "device"): ["cuda"],
    ("models", "full", "finetune", "from"): ["local"],
    ("models", "full", "finetune", "dataset"): ["golden"],
    ("models", "full", "finetune", "prompt"): ["code"],
    ("models", "full", "finetune", "method"): ["lora"],
    ("models", "full", "finetune", "expected"): ["expected"],
    ("models", "small", "quantize", "from"): ["local"],
    ("models", "small", "quantize", "method"): ["dynamic_float16"],
    ("datasets", "train", "path"): ["data/golden.jsonl"],
    ("suites", "variants", "models"): [["tuned"]],
    ("suites", "variants", "prompt"): ["qa2"],
    ("suites", "variants", "dataset"): ["gen"],
    ("suites", "variants", "retrieve"): ["notes"],
    ("suites", "variants", "metrics"): [["json_valid"]],
    ("deployments", "tuned", "model"): ["tuned"],
    ("deployments", "tuned", "prompt"): ["qa2"],
    ("models", "remote", "drift", "canaries"): ["dump"],
    ("models", "remote", "drift", "every"): ["6h"],
    ("deployments", "serve", "retrieve"): ["notes"],
    ("deployments", "serve", "model"): ["hub"],
    ("deployments", "serve", "prompt"): ["pick"],
    ("deployments", "serve", "requires"): [["answers", "codes"]],
    ("deployments", "serve", "target", "api_key"): ["${env:OTHER_SERVE_KEY}"],
    ("deployments", "serve", "target", "host"): ["::1"],
}


def _write_fixture(root: Path, hub: Path) -> None:
    def put(rel: str, data: str | bytes) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())

    for name, weights in (("a", b"weights-a"), ("b", b"weights-b")):
        put(f"models/{name}/config.json", '{"model_type": "gpt2"}')
        put(f"models/{name}/model.safetensors", weights)
    put("models/m.gguf", b"GGUF-1")
    put("models/m2.gguf", b"GGUF-2")
    put("schemas/common.json", json.dumps({"$defs": {"level": {"enum": ["low", "high"]}}}))
    put("schemas/level.json", json.dumps({"type": "string", "maxLength": 5}))
    put("schemas/level2.json", json.dumps({"type": "string", "maxLength": 6}))
    for kb in ("kb", "kb2"):
        put(f"{kb}/a.md", f"Alpha document of {kb}. " * 20)
        put(f"{kb}/b.md", f"Beta document of {kb}. " * 20)
        put(f"{kb}/skip.md", "skipped")
        put(f"{kb}/faq.jsonl", json.dumps({"text": "Q and A", "body": "Body"}) + "\n")
    put("embedders/e1/config.json", '{"embed": 1}')
    rows = [
        {"question": f"q{i}", "answer": f"a{i}", "body": f"body {i}", "doc": "a.md"}
        for i in range(4)
    ]
    put("data/golden.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    put("data/golden2.jsonl", "".join(json.dumps(r) + "\n" for r in rows[:3]))
    # Read as JSONL: two rows; as CSV: a header and one row. Both valid, with other rows.
    put("data/rows.dat", '{"question": "a"}\n{"question": "b"}\n')
    put("data/rows2.dat", '{"question": "c"}\n{"question": "d"}\n')
    for model, commit, data in (("tiny", "a" * 40, b"hub-1"), ("other", "b" * 40, b"hub-2")):
        base = hub / f"models--acme--{model}"
        (base / "refs").mkdir(parents=True)
        (base / "refs" / "main").write_text(commit)
        (base / "refs" / "v2").write_text("c" * 40)
        for c in (commit, "c" * 40):
            snap = base / "snapshots" / c
            snap.mkdir(parents=True, exist_ok=True)
            (snap / "config.json").write_text('{"model_type": "gpt2"}')
            (snap / "model.safetensors").write_bytes(data + c.encode())


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("rich")
    _write_fixture(base / "project", base / "hub")
    return base / "project"


@pytest.fixture(autouse=True)
def _hub_cache(rich: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(rich.parent / "hub"))


def _keys(root: Path, spec: dict[str, Any], cache: HashCache) -> dict[str, Any]:
    """Every job's key. (The facts the lock records change with any field; what matters is
    that some job reads the field, so the comparison is of job keys only.)"""
    (root / "llmspec.yaml").write_text(json.dumps(spec, indent=1))
    graph = compile_project(load_project(root), cache)
    return {j.id: j.key for j in graph.jobs.values()}


def _leaves(value: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """Leaves of the spec data; lists of scalars count as one leaf (a value of their own)."""
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(v, path + (k,))]
    if isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, path + (i,))]
    return [(path, value)]


def _field_of(path: tuple, data: dict[str, Any]) -> str:
    """`Class.field` of the spec language that a data path lands in."""
    tp: Any = Project
    cur: Any = data
    owner = "Project"
    for part in path:
        tp = _pick(tp, cur)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {f.alias or n: (n, f) for n, f in tp.model_fields.items()}
            name, f = fields[part]
            owner = f"{tp.__name__}.{name}"
            if tp is Project and part == "schemas":
                return owner  # a schema's content is data: any change is a change
            tp = f.annotation
        else:
            origin, args = typing.get_origin(tp), typing.get_args(tp)
            tp = args[1] if origin is dict else args[0] if origin in (tuple, list) else None
        cur = cur[part] if isinstance(cur, dict | list) else None
    return owner


def _pick(tp: Any, value: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            opts = [a for a in typing.get_args(tp) if a is not type(None)]
            opts = [typing.get_args(a)[0] if typing.get_origin(a) is typing.Annotated else a
                    for a in opts]  # fmt: skip
            models = [a for a in opts if isinstance(a, type) and issubclass(a, BaseModel)]
            for m in models:
                for tag in ("provider", "kind"):
                    if tag in m.model_fields and isinstance(value, dict):
                        f = m.model_fields[tag]
                        given = value.get(tag, None if f.is_required() else f.default)
                        if given in typing.get_args(f.annotation):
                            return m
            tp = models[0] if len(models) == 1 else opts[0] if len(opts) == 1 else tp
            if len(opts) != 1 and len(models) != 1:
                return tp
        else:
            return tp


def _candidates(path: tuple, value: Any) -> list[Any]:
    if path in ALTERNATIVES:
        return ALTERNATIVES[path]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1]
    if isinstance(value, float):
        return [round(value * 0.5, 4), value + 0.1]
    if isinstance(value, str):
        return [value + "x", value.replace(">=", "<=")]
    if isinstance(value, list):
        return [value[:-1], value + value[-1:]] if value else []
    return []  # None: a field left unset here (another entity sets it)


def _holds_specs(tp: Any) -> bool:
    """Whether a field's type is spec values (models, unions of them, mappings of them)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _holds_specs(typing.get_args(tp)[0])
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return True
    if origin is dict:
        return _holds_specs(typing.get_args(tp)[1])
    if origin in (typing.Union, types.UnionType):
        opts = [a for a in typing.get_args(tp) if a is not type(None)]
        return all(_holds_specs(a) for a in opts)
    return False


def _all_fields(tp: Any = Project, seen: set | None = None) -> set[str]:
    seen = set() if seen is None else seen
    out: set[str] = set()
    stack = [tp]
    while stack:
        t = stack.pop()
        origin, args = typing.get_origin(t), typing.get_args(t)
        if isinstance(t, type) and issubclass(t, BaseModel):
            if t in seen:
                continue
            seen.add(t)
            for name, f in t.model_fields.items():
                # a field holding spec values is reached through their own fields
                if not _holds_specs(f.annotation):
                    out.add(f"{t.__name__}.{name}")
                stack.append(f.annotation)
        elif args:
            stack.extend(a for a in args if a is not type(None) and not isinstance(a, str))
        del origin
    return out


def test_every_field_changes_the_plan_unless_output_neutral(rich: Path) -> None:
    cache = HashCache(None)
    base = _keys(rich, SPEC, cache)
    assert len(base) > 20, base
    changed: dict[str, list[tuple]] = {}
    unchanged: dict[str, list[tuple]] = {}
    untested: dict[str, list[tuple]] = {}
    for path, value in _leaves(SPEC):
        field = _field_of(path, SPEC)
        if field in STRUCTURAL:
            continue
        outcome = None
        for candidate in _candidates(path, value):
            if candidate == value:
                continue
            spec = copy.deepcopy(SPEC)
            target = spec
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = candidate
            try:
                keys = _keys(rich, spec, cache)
            except LlmspecError:
                continue  # not a valid change: try the next one
            outcome = keys != base
            if outcome:
                break
        bucket = untested if outcome is None else changed if outcome else unchanged
        bucket.setdefault(field, []).append(path)
    (rich / "llmspec.yaml").write_text(json.dumps(SPEC, indent=1))

    neutral = set(OUTPUT_NEUTRAL)
    assert not untested, f"no valid change found for: {untested}"
    moved_neutral = {f: p for f, p in changed.items() if f in neutral}
    assert not moved_neutral, f"output-neutral fields that change job keys: {moved_neutral}"
    silent = {f: p for f, p in unchanged.items() if f not in neutral}
    assert not silent, f"fields no job key covers (key them, or list them as neutral): {silent}"
    reached = set(changed) | set(unchanged)
    missing = _all_fields() - reached - set(STRUCTURAL)
    assert not missing, f"fields of the language the fixture does not set: {sorted(missing)}"


def test_neutral_fields_are_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "language.md").read_text()
    for field in OUTPUT_NEUTRAL:
        assert f"`{field}`" in docs, f"docs/language.md does not list {field}"
