"""Suites: their references, prompt variants, metrics and their options, the columns their
prompts and metrics need, whether each model can honour each prompt's output, and their gates
(parsed once, here)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from llmspec.errors import did_you_mean
from llmspec.load import KeyPath

TEXT_METRICS = (
    "exact_match",
    "contains",
    "bleu",
    "chrf",
    "rouge_1",
    "rouge_2",
    "rouge_l",
    "semantic_similarity",
)


def variants(suite: Any) -> list[tuple[str, str, str]]:
    """(variant name, model, prompt) for each model x prompt of a suite (or of a
    `spec.SuiteTarget`): `model`, or `model/prompt` when the suite has several prompts."""
    prompts = suite.prompt_names
    return [(m if len(prompts) == 1 else f"{m}/{p}", m, p) for p in prompts for m in suite.models]


def check_suites(c: Any) -> None:
    from llmspec.resolve.redteam import check_redteam

    for name, s in c.p.suites.items():
        if s.kind == "redteam":
            check_redteam(c, name, s)
        else:
            _check_suite(c, name, s)


def _check_suite(c: Any, name: str, s: Any) -> None:
    base: KeyPath = ("suites", name)
    prompt_path = ("prompt",) if s.prompt is not None else ("prompts",)
    for i, p in enumerate(s.prompt_names):
        c.ref("prompts", p, base + (prompt_path if s.prompt is not None else (*prompt_path, i)))
    for i, m in enumerate(s.models):
        c.ref("models", m, base + ("models", i))
    c.ref("datasets", s.dataset, base + ("dataset",))
    if s.retrieve is not None:
        c.ref("knowledge", s.retrieve, base + ("retrieve",))
    metrics = _check_metrics(c, name, s)
    c.metrics[name] = metrics
    c.correct[name] = _check_correct(c, name, s, [m for m in metrics if m])

    cols = c.columns.get(s.dataset)
    dataset = c.p.datasets.get(s.dataset)
    expected = s.expected or (dataset.expected if dataset is not None else None)
    if cols is not None and dataset is not None:
        needs_ref = [(i, m) for i, m in enumerate(metrics) if m and m["needs_reference"]]
        if needs_ref and expected not in cols:
            i, m = needs_ref[0]
            where = (
                "set `expected:` on the suite or the dataset"
                if s.expected is None
                else ("`expected:` of the suite")
            )
            c.error(
                "E041",
                f"metric `{m['name']}` needs a reference answer, but dataset `{s.dataset}` "
                f"has no column `{expected}` in every row",
                base + (("expected",) if s.expected else ("metrics", i)),
                f"{where}; columns: {', '.join(sorted(cols)) or 'none'}",
            )
    for pi, pname in enumerate(s.prompt_names):
        prompt = c.p.prompts.get(pname)
        if prompt is None:
            continue
        where = base + (prompt_path if s.prompt is not None else (*prompt_path, pi))
        if prompt.output is not None:
            for i, m in enumerate(s.models):
                if m in c.p.models:
                    check_capability(c, name, i, m, pname, prompt.output)
        if cols is not None:
            _check_variables(c, s, pname, prompt, cols, where)
        echo_only = all(
            c.p.models[m].provider == "echo" for m in s.models if m in c.p.models
        )  # the rendered prompt comes back as text, whatever the prompt's output
        for i, m in enumerate(metrics):
            if m and not echo_only:
                _check_field(c, name, i, m, pname, prompt)
    c.gates[name] = check_gates(c, name, s, [m["name"] for m in metrics if m])


def _check_metrics(c: Any, name: str, s: Any) -> list[dict[str, Any] | None]:
    """Each metric entry parsed and its options checked; None where it is wrong."""
    from llmspec.metrics import METRICS, parse_metric

    out: list[dict[str, Any] | None] = []
    seen: set[str] = set()
    for i, entry in enumerate(s.metrics):
        path: KeyPath = ("suites", name, "metrics", i)
        if isinstance(entry, dict) and len(entry) != 1:
            c.error(
                "E013",
                "a metric with options is a mapping with one key: its name",
                path,
                "e.g. `{exact_match: {normalize: squad}}`",
            )
            out.append(None)
            continue
        reported, kind, raw = parse_metric(entry)
        if kind not in METRICS:
            c.error(
                "E020",
                f"unknown metric `{kind}`",
                path if isinstance(entry, str) else path + (kind,),
                did_you_mean(kind, METRICS),
                key=isinstance(entry, dict),
            )
            out.append(None)
            continue
        rec = METRICS[kind]
        try:
            opts = rec.options.model_validate(raw)
        except ValidationError as e:
            for err in e.errors():
                where = path + (kind, *err["loc"])
                if err["type"] == "extra_forbidden":
                    c.error(
                        "E010",
                        f"unknown option `{err['loc'][-1]}` of metric `{kind}`",
                        where,
                        did_you_mean(str(err["loc"][-1]), rec.options.model_fields),
                        key=True,
                    )
                else:
                    c.error("E013", f"option of metric `{kind}`: {err['msg']}", where)
            out.append(None)
            continue
        if reported in seen:
            c.error(
                "E022",
                f"metric `{reported}` is listed twice",
                path,
                "give one of them another `name:`",
            )
        seen.add(reported)
        spec = {
            "name": reported,
            "kind": kind,
            "version": rec.version,
            "options": opts.model_dump(mode="json", exclude={"name"}),
            "needs_reference": rec.needs_reference,
        }
        _check_needs(c, name, s, i, spec)
        out.append(spec)
    return out


ANSWER_METRICS = frozenset({"judge", *TEXT_METRICS})
"""Metrics that say whether an answer is right: `correct:` defaults to the suite's first."""
_CORRECT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_\-]*)\s*(>=|<=|==|!=|>|<)\s*([-+]?[0-9.]+)\s*$")


def _check_correct(c: Any, name: str, s: Any, metrics: list[dict[str, Any]]) -> Any:
    """The row condition failure attribution reads: `correct:`, or the first answer metric
    (== 1 for 0/1 metrics, >= 0.5 for the others); None without one."""
    if s.correct is None:
        for m in metrics:
            if m["kind"] in ANSWER_METRICS:
                binary = m["kind"] in ("exact_match", "contains")
                return {"metric": m["name"], "op": "==" if binary else ">=",
                        "value": 1.0 if binary else 0.5}  # fmt: skip
        return None
    where = ("suites", name, "correct")
    got = _CORRECT.match(s.correct)
    try:
        value = float(got.group(3)) if got else None
    except ValueError:
        value = None
    if got is None or value is None:
        c.error(
            "E042",
            f"`correct: {s.correct}` does not read as `METRIC OP NUMBER`",
            where,
            'e.g. `correct: "rouge_l >= 0.5"`',
        )
        return None
    names = [m["name"] for m in metrics]
    if got.group(1) not in names:
        c.error(
            "E020",
            f"`correct:` names metric `{got.group(1)}`, which suite `{name}` does not score",
            where,
            did_you_mean(got.group(1), names) or f"the suite's metrics: {', '.join(names)}",
        )
        return None
    return {"metric": got.group(1), "op": got.group(2), "value": value}


def _check_needs(c: Any, name: str, s: Any, i: int, spec: dict[str, Any]) -> None:
    from llmspec.metrics import METRICS
    from llmspec.providers import PROVIDERS

    path: KeyPath = ("suites", name, "metrics", i)
    rec = METRICS[spec["kind"]]
    _check_retrieval(c, name, s, i, spec)
    judge_model = spec["options"].get("judge") if spec["kind"] == "groundedness" else None
    if rec.needs == "judge" or judge_model:
        judge = judge_model or spec["options"]["model"]
        where = path + (spec["kind"], "judge" if judge_model else "model")
        if c.ref("models", judge, where):
            provider = c.p.models[judge].provider
            if not PROVIDERS[provider].capabilities.json_schema:
                c.error(
                    "E060",
                    f"judge model `{judge}` ({provider}) cannot return a "
                    "schema-constrained verdict",
                    where,
                    "use a transformers, llamacpp or openai model as a judge",
                )
    if rec.needs == "logprobs":
        for j, m in enumerate(s.models):
            if m in c.p.models and not PROVIDERS[c.p.models[m].provider].capabilities.logprobs:
                c.error(
                    "E063",
                    f"metric `{spec['name']}` needs the log-probabilities of the "
                    f"reference under model `{m}`, which its provider does not give",
                    ("suites", name, "models", j),
                    "score perplexity with transformers models",
                )
            elif m in c.p.models and c.p.models[m].provider != "transformers":
                c.error(
                    "E063",
                    f"metric `{spec['name']}` is computed for transformers models "
                    f"only, not `{m}` ({c.p.models[m].provider})",
                    ("suites", name, "models", j),
                )
    if rec.needs == "embedder" and not judge_model:
        embed = spec["options"]["embed"]
        if embed != "minilm":
            target = c.check_path(embed, path + (spec["kind"], "embed"), "embedding model")
            if target is not None and not target.is_dir():
                c.error(
                    "E020",
                    f"embedding model `{embed}` is not a folder",
                    path + (spec["kind"], "embed"),
                )
    if spec["kind"] == "cost":
        for j, m in enumerate(s.models):
            if m in c.p.models and c.p.models[m].price is None:
                c.warn(
                    "W012",
                    f"metric `cost` but model `{m}` has no `price`: its cost is unknown",
                    ("suites", name, "models", j),
                    "add `price: {input_per_1k: ..., output_per_1k: ...}` to the model",
                )


def _check_retrieval(c: Any, name: str, s: Any, i: int, spec: dict[str, Any]) -> None:
    """RAG metrics need what they score: retrieved chunks (`retrieve:`), a reference context
    per row (a generated set, or a dataset's `reference_context:`), question kinds."""
    from llmspec.metrics import METRICS

    rec = METRICS[spec["kind"]]
    path: KeyPath = ("suites", name, "metrics", i)
    d = c.p.datasets.get(s.dataset)
    has_refs = d is not None and (d.generate is not None or d.reference_context is not None)
    if rec.retrieval != "none" and s.retrieve is None:
        c.error(
            "E045",
            f"metric `{spec['name']}` scores retrieved chunks, but suite `{name}` does not "
            "retrieve",
            path,
            "add `retrieve: <knowledge source>` to the suite",
        )
    elif rec.retrieval == "reference" and d is not None and not has_refs:
        c.error(
            "E045",
            f"metric `{spec['name']}` compares retrieved chunks with each row's reference "
            f"context, which dataset `{s.dataset}` does not name",
            path,
            f"add `reference_context: COLUMN` to dataset `{s.dataset}` (a column of file "
            "names or chunk ids), or generate the set from the knowledge source",
        )
    if spec["kind"] == "abstention" and d is not None and d.path is not None:
        cols = c.columns.get(s.dataset)
        if cols is not None and "kind" not in cols and d.reference_context is None:
            c.error(
                "E045",
                f"metric `{spec['name']}` scores out-of-scope questions, but dataset "
                f"`{s.dataset}` says of none that it is: it has no `kind` column and no "
                "reference context",
                path,
                "mark rows with `kind: out_of_scope`, or give `reference_context` (an empty "
                "list: the knowledge base does not answer the question)",
            )


def _check_field(c: Any, name: str, i: int, m: dict[str, Any], pname: str, prompt: Any) -> None:
    """`field:` must name a part the prompt's output can have; a text metric on a structured
    output must say which part it scores."""
    path: KeyPath = ("suites", name, "metrics", i)
    field = m["options"].get("field")
    out = prompt.output
    schema = c.schemas.get(out.schema_) if out is not None and out.schema_ else None
    if field is not None:
        if schema is None:
            c.error(
                "E041",
                f"metric `{m['name']}` scores `field: {field}`, but prompt "
                f"`{pname}` does not produce JSON",
                path + (m["kind"], "field"),
                "give the prompt `output: {schema: ...}`, or drop `field:`",
            )
        elif not _field_exists(schema, field):
            c.error(
                "E041",
                f"metric `{m['name']}`: prompt `{pname}`'s schema has no field `{field}`",
                path + (m["kind"], "field"),
                did_you_mean(field.lstrip("/"), _top_fields(schema)),
            )
    elif m["kind"] in TEXT_METRICS and isinstance(schema, dict) and _is_object(schema):
        c.error(
            "E044",
            f"metric `{m['name']}` compares text, but prompt `{pname}` returns a JSON object",
            path,
            f"say which part to score: `{{{m['kind']}: {{field: "
            f"{next(iter(_top_fields(schema)), 'answer')}}}}}`",
        )


def _is_object(schema: dict[str, Any]) -> bool:
    t = schema.get("type")
    return t == "object" or (t is None and "properties" in schema)


def _top_fields(schema: Any) -> list[str]:
    return list((schema.get("properties") or {}) if isinstance(schema, dict) else [])


def _field_exists(schema: Any, field: str) -> bool:
    parts = field.lstrip("/").split("/") if field.startswith("/") else [field]
    node = schema
    for part in parts:
        if not isinstance(node, dict):
            return False
        props = node.get("properties") or {}
        if part in props:
            node = props[part]
        elif part.isdigit() and isinstance(node.get("items"), dict):
            node = node["items"]
        elif node.get("additionalProperties") not in (None, False) and not props:
            return True
        else:
            return False
    return True


def _check_variables(
    c: Any,
    s: Any,
    pname: str,
    prompt: Any,
    cols: frozenset[str],
    where: KeyPath,
    owner: str = "the suite",
) -> None:
    from jinja2 import TemplateSyntaxError

    from llmspec import templating

    available = set(cols) | ({"context"} if s.retrieve else set())
    for part in ("system", "template"):
        source = getattr(prompt, part)
        if source is None:
            continue
        try:
            used = templating.variables(source)
        except TemplateSyntaxError:
            continue  # reported at the prompt
        for var in sorted(used - available):
            hint = did_you_mean(var, available) if available else None
            if var == "context" and not s.retrieve:
                hint = f"add `retrieve: <knowledge source>` to {owner} to fill `context`"
            c.error(
                "E041",
                f"prompt `{pname}` uses `{var}`, which dataset `{s.dataset}` does not provide",
                where,
                hint,
                notes=(f"columns in every row: {', '.join(sorted(cols)) or 'none'}",),
            )


def check_gates(c: Any, name: str, s: Any, metrics: list[str]) -> tuple[Any, ...]:
    from llmspec.gates import GateError, bind, parse_gate
    from llmspec.spec import suite_target

    names = tuple(v for v, _, _ in variants(suite_target(c.p, s)))
    gates = []
    for i, text in enumerate(s.gates):
        try:
            gates.append(bind(parse_gate(text), tuple(metrics), names, name))
        except GateError as e:
            code = "E042" if str(e).startswith("cannot read") else "E020"
            c.error(code, str(e), ("suites", name, "gates", i), e.hint)
    return tuple(gates)


def _is_openai(base_url: str) -> bool:
    """Whether a base_url is OpenAI's own API (api.openai.com, or Azure OpenAI)."""
    from urllib.parse import urlsplit

    host = (urlsplit(base_url).hostname or "").lower()
    return host == "api.openai.com" or host.endswith((".openai.com", ".openai.azure.com"))


def check_capability(
    c: Any, suite: str, i: int, model: str, prompt: str, out: Any, where: KeyPath | None = None
) -> None:
    """Refuse a constraint the model's provider cannot honour (at `where`, default the
    suite's `models[i]`); warn when `max_tokens` looks too small for the smallest valid
    output."""
    from llmspec.providers import PROVIDERS

    m = c.p.models[model]
    kind = "json_schema" if out.schema_ is not None else "regex" if out.regex else "choice"
    caps = PROVIDERS[m.provider].capabilities
    if m.provider != "echo" and not caps.can(kind):
        what = {"json_schema": "a JSON Schema", "regex": "a regex", "choice": "a choice list"}
        c.error(
            "E060",
            f"model `{model}` ({m.provider}) cannot enforce {what[kind]} output, which prompt "
            f"`{prompt}` asks for",
            where or ("suites", suite, "models", i),
            "use a `transformers` model, or give the prompt a JSON schema output",
        )
        return
    schema = c.schemas.get(out.schema_) if out.schema_ else None
    if not isinstance(schema, dict):
        return
    if m.provider == "openai" and _is_openai(m.base_url):
        from llmspec.jsonschemas import strict_problem

        problem = strict_problem(schema)
        if problem is not None:
            c.warn(
                "W011",
                f"OpenAI's strict structured outputs reject schema `{out.schema_}` (prompt "
                f"`{prompt}`, model `{model}`): {problem}",
                where or ("suites", suite, "models", i),
                "add `additionalProperties: false` to every object and list all its properties "
                "in `required`; vLLM, llama.cpp's server and Ollama take the schema as it is",
            )
    from llmspec.schemasize import smallest_instance_chars, typical_instance_chars

    steered = out.on_budget == "close" and PROVIDERS[m.provider].engine == "llguidance"
    budget = m.params.max_tokens
    where = ("models", model, "params", "max_tokens")
    chars = smallest_instance_chars(schema)
    if chars is not None and budget * 4 < chars:
        c.warn(
            "W010",
            f"max_tokens {budget} of model `{model}` is likely too small for prompt "
            f"`{prompt}`: its smallest valid output is {chars} characters",
            where,
            "raise `params.max_tokens`; a cut-off output is recorded as truncated, not valid",
        )
        return
    typical = typical_instance_chars(schema)
    if typical is not None and budget * 4 < typical:
        fate = (
            "closed early with the shortest completion that fits (finish: budget)"
            if steered
            else "cut off and recorded as truncated"
        )
        c.warn(
            "W013",
            f"max_tokens {budget} of model `{model}` is likely too small for a typical output "
            f"of prompt `{prompt}` ({typical} characters): many outputs would be {fate}",
            where,
            f"raise `params.max_tokens` to at least {-(-typical // 4)} (about 4 characters a "
            "token)",
        )
