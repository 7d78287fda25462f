"""A fuzz campaign over what a pull request can change: spec files, datasets, schema files and
the lock. Every case must end in a located diagnostic or success: never an internal error,
never a hang.

    .venv/bin/python bench/fuzz.py [--cases N] [--seed S] [--smoke]

Each case mutates one input of a small valid project (a few random edits: lines dropped or
doubled, scalars swapped for hostile values, bytes flipped, nesting deepened, conflict markers)
and runs what CI runs on a pull request: load, validate, resolve, compile, plan, and the lock's
verification. Prints, per input, the cases, how many were refused with a diagnostic, how many
passed, the internal errors and the hangs (over 5 s), and the slowest case. Fixed seed: the
same run gives the same counts.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HANG_S = 5.0

SPEC = """\
version: 1
name: fuzz
models:
  m: {provider: echo, params: {seed: 1, max_tokens: 32}}
schemas:
  reply: {file: schemas/reply.json}
prompts:
  p:
    system: Be brief.
    template: "Q: {{ question }} {{ context | join(' ') }}"
    output: {schema: reply}
knowledge:
  kb: {source: {path: kb, include: ["**/*.md"]}, chunk: {size: 64, overlap: 8}, top_k: 2}
datasets:
  d: {path: d.jsonl, expected: answer, shard_rows: 2}
suites:
  s:
    prompts: [p]
    models: [m]
    dataset: d
    retrieve: kb
    metrics: [schema_valid, contains]
    gates: ["schema_valid >= 0", "m.contains.lcb95 >= 0"]
deployments:
  prod: {model: m, prompt: p, requires: [s], target: {kind: export, path: out/prod.json}}
"""
SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}
ROWS = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(4)]

HOSTILE = [
    "-1",
    "0",
    "1e309",
    "nan",
    "null",
    "~",
    "[]",
    "{}",
    "''",
    '"\\u0000"',
    "x" * 5000,
    "{{ 7**(10**8) }}",
    "{{ ''.__class__.__mro__ }}",
    "${env:",
    "${env:HOME}",
    "!!python/object",
    "&a [*a, *a, *a]",
    "*missing",
    "../../etc/passwd",
    "/etc/passwd",
    "\t",
    "yes",
    "NO",
    "2024-01-01",
    "0x1F",
    "'\\ud800'",
    "[[[[[[[[[[",
    "}}}}",
    ": :",
    "- - -",
    "? x",
    "|",
    ">",
    "%YAML 1.11",
    "<<<<<<< HEAD",
    "\U0001f600" * 50,
    "a" * 65,
    "rouge_l >= baseline - x",
]


def mutate_text(rng: random.Random, text: str, edits: int) -> str:
    lines = text.split("\n")
    for _ in range(edits):
        op = rng.randrange(7)
        i = rng.randrange(len(lines)) if lines else 0
        if op == 0 and lines:
            del lines[i]
        elif op == 1 and lines:
            lines.insert(i, lines[i])
        elif op == 2 and lines:
            words = lines[i].split(" ")
            j = rng.randrange(len(words))
            words[j] = rng.choice(HOSTILE)
            lines[i] = " ".join(words)
        elif op == 3:
            lines.insert(i, rng.choice(HOSTILE))
        elif op == 4 and lines:
            lines[i] = " " * rng.randrange(8) + lines[i].lstrip()
        elif op == 5 and lines:
            s = lines[i]
            k = rng.randrange(len(s) + 1)
            lines[i] = s[:k] + chr(rng.choice([0, 9, 0xFEFF, 0x2028, rng.randrange(32, 0x3000)]))
            lines[i] += s[k:]
        else:
            depth = rng.randrange(1, 200)
            lines.insert(i, "x: " + "[" * depth + "]" * rng.randrange(depth + 1))
    return "\n".join(lines)


def random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 6 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**64, 1.5, 1e308])
    if kind == 3:
        return rng.choice(["", "x", "a" * 1000, "\u0000", "type", "$ref", "#/$defs/x"])
    if kind == 4:
        return rng.choice(["string", "object", "array", "integer"])
    if kind in (5, 6):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = [
        "type",
        "properties",
        "required",
        "items",
        "$ref",
        "enum",
        "pattern",
        "minLength",
        "maxItems",
        "anyOf",
        "oneOf",
        "not",
        "$defs",
        "additionalProperties",
        "const",
    ]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def mutate_bytes(rng: random.Random, data: bytes, edits: int) -> bytes:
    b = bytearray(data)
    for _ in range(edits):
        op = rng.randrange(4)
        if op == 0 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1 and b:
            del b[rng.randrange(len(b))]
        elif op == 2:
            b[rng.randrange(len(b) + 1) : 0] = rng.choice(
                [b"\xff\xfe", b'{"a": ' * 200, b"\n<<<<<<< HEAD\n", b"\\ud800", b"\x00", b"]]"]
            )
        else:
            b = b[: rng.randrange(len(b) + 1)]
    return bytes(b)


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


def pipeline(root: Path) -> str:
    """What CI runs on a pull request; 'ok', or 'refused' when a diagnostic stopped it."""
    from llmspec.compile import compile_project
    from llmspec.errors import LlmspecError
    from llmspec.hashing import HashCache
    from llmspec.lock import lock_digest, read_lock
    from llmspec.plan import make_plan, render_text
    from llmspec.project import load_project
    from llmspec.verify import verify_lock

    try:
        rp = load_project(root)
        lock = read_lock(root)
        graph = compile_project(rp, HashCache(None), lock)
        plan = make_plan(graph, lock, set(), lock_digest(root))
        render_text(plan)
        if lock is not None:
            verify_lock(lock, "llmspec.lock", graph, None)
        return "ok"
    except LlmspecError as e:
        from llmspec.errors import render

        render(e.diagnostics, allowed_root=root)  # diagnostics must render too
        return "refused"


def base_project(root: Path) -> None:
    (root / "schemas").mkdir(parents=True)
    (root / "kb").mkdir()
    (root / "llmspec.yaml").write_text(SPEC)
    (root / "schemas" / "reply.json").write_text(json.dumps(SCHEMA))
    (root / "kb" / "a.md").write_text("Refunds take five days. " * 10)
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))


def make_lock(root: Path) -> bytes:
    from click.testing import CliRunner

    from llmspec.cli import main

    r = CliRunner().invoke(main, ["apply", str(root), "--runner", "inline", "--quiet"])
    assert r.exit_code == 0, r.output
    shutil.rmtree(root / ".llmspec")
    return (root / "llmspec.lock").read_bytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--smoke", action="store_true", help="200 cases")
    args = ap.parse_args()
    if args.smoke:
        args.cases = 200
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="llmspec-fuzz-"))
    template = work / "template"
    base_project(template)
    lock = make_lock(template)
    targets = ("spec", "dataset", "schema", "lock")
    counts = {t: {"cases": 0, "ok": 0, "refused": 0, "internal": 0, "hang": 0} for t in targets}
    slowest = (0.0, "")
    internal: list[str] = []
    signal.signal(signal.SIGALRM, _alarm)
    try:
        for n in range(args.cases):
            target = targets[n % len(targets)]
            root = work / f"case{n % 8}"
            if root.exists():
                shutil.rmtree(root)
            shutil.copytree(template, root)
            edits = rng.randrange(1, 4)
            if target == "spec":
                (root / "llmspec.yaml").write_text(
                    mutate_text(rng, SPEC, edits), "utf-8", errors="surrogatepass"
                )
            elif target == "dataset":
                data = (root / "d.jsonl").read_bytes()
                if rng.random() < 0.3:
                    data += (json.dumps(random_json(rng)) + "\n").encode()
                (root / "d.jsonl").write_bytes(mutate_bytes(rng, data, edits))
            elif target == "schema":
                value = SCHEMA if rng.random() < 0.3 else random_json(rng)
                text = json.dumps(value)
                if rng.random() < 0.5:
                    text = mutate_bytes(rng, text.encode(), edits).decode("utf-8", "replace")
                (root / "schemas" / "reply.json").write_text(text)
            else:
                (root / "llmspec.lock").write_bytes(mutate_bytes(rng, lock, edits))
            counts[target]["cases"] += 1
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, HANG_S)
            try:
                outcome = pipeline(root)
            except Hang:
                outcome = "hang"
            except Exception as e:  # noqa: BLE001 - what the campaign is looking for
                outcome = "internal"
                if len(internal) < 10:
                    tb = traceback.format_exc(limit=3).strip().splitlines()[-3:]
                    internal.append(
                        f"case {n} ({target}): {type(e).__name__}: {e}\n  " + "\n  ".join(tb)
                    )
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            took = time.perf_counter() - t0
            if took > slowest[0]:
                slowest = (took, f"case {n} ({target})")
            counts[target][outcome] += 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"fuzz campaign: {args.cases} cases, seed {args.seed}")
    print(f"{'input':<9} {'cases':>6} {'ok':>6} {'refused':>8} {'internal':>9} {'hangs':>6}")
    total = {"internal": 0, "hang": 0}
    for t, c in counts.items():
        print(
            f"{t:<9} {c['cases']:>6} {c['ok']:>6} {c['refused']:>8} {c['internal']:>9} "
            f"{c['hang']:>6}"
        )
        total["internal"] += c["internal"]
        total["hang"] += c["hang"]
    print(f"slowest: {slowest[0]:.2f} s ({slowest[1]})")
    print(f"internal errors: {total['internal']}, hangs over {HANG_S:g} s: {total['hang']}")
    for line in internal:
        print(line)
    sys.exit(1 if total["internal"] or total["hang"] else 0)


if __name__ == "__main__":
    main()
