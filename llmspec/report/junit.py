"""The JUnit XML report: one test suite per llmspec suite, one test case per gate (and per
variant it applies to), so CI systems show each gate as a test."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

from llmspec.report import number


def render(results: Any) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>']
    total = sum(len(s.gates) or 1 for s in results.suites)
    failures = sum(1 for s in results.suites for g in s.gates if g.passed is False)
    failures += sum(1 for s in results.suites if not s.gates and s.status == "failed")
    out.append(
        f'<testsuites name={quoteattr(results.project)} tests="{total}" failures="{failures}">'
    )
    for s in results.suites:
        cases = s.gates
        fails = sum(1 for g in cases if g.passed is False)
        skipped = sum(1 for g in cases if g.passed is None)
        out.append(
            f'  <testsuite name={quoteattr(s.name)} tests="{len(cases) or 1}" '
            f'failures="{fails}" skipped="{skipped}">'
        )
        if not cases:
            name = quoteattr(f"{s.name}: {s.status}")
            body = "" if s.status == "passed" else f"<skipped message={quoteattr(s.status)}/>"
            out.append(f"    <testcase classname={quoteattr(s.name)} name={name}>{body}</testcase>")
        for g in cases:
            name = quoteattr(g.gate + (f" [{g.variant}]" if g.variant else ""))
            head = f"    <testcase classname={quoteattr(s.name)} name={name}>"
            if g.passed is False:
                msg = f"{g.gate}: value {number(g.value)}"
                if g.threshold is not None:
                    msg += f", threshold {number(g.threshold)}"
                out.append(f"{head}<failure message={quoteattr(msg)}/></testcase>")
            elif g.passed is None:
                reason = quoteattr(g.reason or "skipped")
                out.append(f"{head}<skipped message={reason}/></testcase>")
            else:
                out.append(f"{head}</testcase>")
        out.append("  </testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"
