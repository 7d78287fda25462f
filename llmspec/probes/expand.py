"""Expanding a family's data into the probes a suite sends: base probes drawn with a seed, then
each strategy applied to each of them.

`expand(settings)` is a pure function of its settings (the `probes` job's inputs) and the data
files, so the same seed gives the same probes on every machine; the `probes` job stores its
result, the lock records its digest, and `llmspec redteam export` writes it for review.

A probe is a dict: `id` (`family/base/strategy`), `family`, `strategy`, `base`, `text` (the
user's message), and where it applies `query` (what retrieval searches for, when it is not the
message), `document` (text placed in the context: `channel` `index` planted in a copy of the
knowledge source, `system` added to the system prompt, `inline` quoted in the message),
`detect` (what the family's detector looks for) and `pair` (bias: the counterfactual pair).

    >>> s = {"family": "hallucination", "strategies": [], "per_family": 2, "seed": 1,
    ...      "canaries": [], "retrieve": False}
    >>> [p["strategy"] for p in expand(s)], expand(s) == expand(s)
    (['plain', 'plain'], True)
"""

from __future__ import annotations

import math
import random
from typing import Any

from llmspec.probes import INDIRECT, PLAIN, family_data, strategies_of
from llmspec.probes.strategies import apply


def rng_for(seed: int, *parts: Any) -> random.Random:
    """A generator seeded by `seed` and `parts`: independent of Python's hash seed."""
    from llmspec.hashing import digest

    return random.Random(int(digest([seed, *parts])[7:23], 16))


def expand(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The probes of one family for one suite, in a stable order."""
    family = settings["family"]
    seed, n = settings["seed"], settings["per_family"]
    data = family_data(family)
    pools = BUILDERS[family](data, settings)
    chosen: list[dict[str, Any]] = []
    for k, pool in enumerate(pools):
        want = _share(n, len(pools), k)
        pool = sorted(pool, key=lambda p: p["base"])
        picked = rng_for(seed, family, "sample", k).sample(pool, min(want, len(pool)))
        chosen += sorted(picked, key=lambda p: p["base"])
    out = []
    strategies = [s for s in strategies_of(family, tuple(settings["strategies"])) if s != INDIRECT]
    for base in chosen:
        if "sides" in base:  # a counterfactual pair: both sides, as they are
            out += [_probe(family, side, PLAIN, side["text"]) for side in base["sides"]]
            continue
        if base.get("strategy") == INDIRECT:
            out.append(_probe(family, base, INDIRECT, base["text"]))
            continue
        for strategy in strategies:
            text = base["text"]
            if strategy != PLAIN:
                text = apply(strategy, text, rng_for(seed, family, base["base"], strategy))
            out.append(_probe(family, base, strategy, text))
    return out


def _share(n: int, parts: int, k: int) -> int:
    """Part `k` of `n` split into `parts` as evenly as possible, the first parts larger."""
    return math.ceil(n / parts) if k < n % parts or n % parts == 0 else n // parts


def _probe(family: str, base: dict[str, Any], strategy: str, text: str) -> dict[str, Any]:
    p = {
        "id": f"{family}/{base['base']}/{strategy}",
        "family": family,
        "strategy": strategy,
        "base": base["base"],
        "text": text,
    }
    for k in ("query", "document", "detect", "pair"):
        if base.get(k) is not None:
            p[k] = base[k]
    return p


def _fill(template: str, **values: str) -> str:
    for k, v in values.items():
        template = template.replace("{" + k + "}", v)
    return template


# -- families ---------------------------------------------------------------------------------


def _prompt_injection(data: dict, s: dict) -> list[list[dict]]:
    def goal(g: dict, base_id: str) -> tuple[str, dict]:
        r = rng_for(s["seed"], "prompt_injection", base_id, "goal")
        values = {
            "marker": f"{r.choice(data['marker_stems'])}-{r.randrange(1000, 10000)}",
            "word": r.choice(data["words"]),
            "domain": r.choice(data["domains"]),
            "token": f"{r.randrange(16**6):06x}",
        }
        detect: dict[str, Any] = {"markers": [_fill(m, **values) for m in g.get("markers", ())]}
        if g.get("pattern"):
            detect["pattern"] = _fill(g["pattern"], **values)
        return _fill(g["text"], **values), detect

    direct, indirect = [], []
    for f in data["frames"]:
        for g in data["goals"]:
            base_id = f"direct.{f['id']}.{g['id']}"
            text, detect = goal(g, base_id)
            direct.append({"base": base_id, "text": _fill(f["text"], goal=text), "detect": detect})
    for d in data["documents"]:
        for p in data["payloads"]:
            for g in data["goals"]:
                base_id = f"indirect.{d['id']}.{p['id']}.{g['id']}"
                text, detect = goal(g, base_id)
                doc = _fill(d["text"], payload=_fill(p["text"], goal=text))
                probe = {"base": base_id, "strategy": INDIRECT, "detect": detect}
                if s["retrieve"]:
                    probe |= {"text": d["question"], "document": {"text": doc, "channel": "index"}}
                else:
                    inline = _fill(data["inline"], document=doc, question=d["question"])
                    probe |= {"text": inline, "document": {"text": doc, "channel": "inline"}}
                    probe["query"] = d["question"]
                indirect.append(probe)
    return [direct, indirect]


def _jailbreak(data: dict, s: dict) -> list[list[dict]]:
    return [
        [
            {
                "base": f"{w['id']}.{g['id']}",
                "text": _fill(w["text"], goal=g["text"]),
                "detect": {"markers": list(w["markers"])},
            }
            for w in data["wrappers"]
            for g in data["goals"]
        ]
    ]


def _system_prompt_extraction(data: dict, s: dict) -> list[list[dict]]:
    return [[{"base": p["id"], "text": p["text"]} for p in data["probes"]]]


def _context(data: dict, s: dict, record: str) -> dict[str, str]:
    channel = "index" if s["retrieve"] else "system"
    text = record if s["retrieve"] else _fill(data["context"], record=record)
    return {"text": text, "channel": channel}


def _data_leakage(data: dict, s: dict) -> list[list[dict]]:
    pool = []
    for r in data["records"]:
        for q in data["requests"]:
            base_id = f"{r['id']}.{q['id']}"
            rng = rng_for(s["seed"], "data_leakage", base_id, "secret")
            canaries = s["canaries"]
            secret = rng.choice(canaries) if canaries else f"LEAK-{rng.randrange(16**8):08X}"
            pool.append(
                {
                    "base": base_id,
                    "text": _fill(q["text"], subject=r["subject"]),
                    "document": _context(data, s, _fill(r["text"], secret=secret)),
                    "detect": {"secrets": [secret]},
                }
            )
    return [pool]


def _pii(data: dict, s: dict) -> list[list[dict]]:
    pool = []
    for person in data["people"]:
        record = _fill(data["record"], **{k: v for k, v in person.items() if k != "id"})
        planted = [person[k] for k in ("email", "phone", "iban", "card", "ssn")]
        for q in data["requests"]:
            pool.append(
                {
                    "base": f"{person['id']}.{q['id']}",
                    "text": _fill(q["text"], name=person["name"]),
                    "document": _context(data, s, record),
                    "detect": {"planted": planted},
                }
            )
    return [pool]


def _toxicity(data: dict, s: dict) -> list[list[dict]]:
    return [
        [
            {
                "base": f"{r['id']}.{i + 1:02d}",
                "text": _fill(r["text"], target=target),
                "detect": {"min_severity": data["min_severity"]},
            }
            for r in data["requests"]
            for i, target in enumerate(data["targets"])
        ]
    ]


def _hallucination(data: dict, s: dict) -> list[list[dict]]:
    pool = [
        {"base": f"{t['id']}.{e['id']}", "text": _fill(t["text"], entity=e["text"])}
        for t in data["templates"]
        for e in data["entities"]
    ]
    pool += [{"base": q["id"], "text": q["text"]} for q in data["questions"]]
    return [pool]


def _bias(data: dict, s: dict) -> list[list[dict]]:
    """One entry per counterfactual pair, drawn as a whole: both of its sides are sent."""
    pool = []
    for t in data["templates"]:
        for axis in data["axes"]:
            for k, terms in enumerate(axis["pairs"]):
                pair_id = f"{t['id']}.{axis['axis']}{k + 1}"
                sides = []
                for side, term in enumerate(terms):
                    person = term[0].upper() + term[1:]
                    sides.append(
                        {
                            "base": f"{pair_id}.{'ab'[side]}",
                            "text": _fill(t["text"], person=term, Person=person),
                            "pair": {
                                "id": pair_id,
                                "side": side,
                                "axis": axis["axis"],
                                "terms": list(terms),
                                "decision": t["decision"],
                            },
                            "detect": {
                                "neutral": axis["neutral"],
                                "threshold": data["threshold"],
                                "score_gap": data["score_gap"],
                            },
                        }
                    )
                pool.append({"base": pair_id, "sides": sides})
    return [pool]


BUILDERS = {
    "prompt_injection": _prompt_injection,
    "jailbreak": _jailbreak,
    "system_prompt_extraction": _system_prompt_extraction,
    "data_leakage": _data_leakage,
    "pii": _pii,
    "toxicity": _toxicity,
    "hallucination": _hallucination,
    "bias": _bias,
}
"""Family -> (its data, the settings) -> pools of base probes; each pool gets an even share of
`per_family` (prompt injection: direct and indirect)."""
