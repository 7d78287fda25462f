from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jinja2 import TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from llmspec.templating import RenderLimit, render_string, unsafe_constructs, variables

ROOT = Path(__file__).resolve().parents[2]


def test_data_is_inserted_as_text_never_rendered() -> None:
    row = {"question": "{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %}"}
    assert render_string("Q: {{ question }}", row) == f"Q: {row['question']}"


def test_sandbox_refuses_attribute_escapes() -> None:
    with pytest.raises(SecurityError):
        render_string("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})
    with pytest.raises(SecurityError):
        render_string("{{ xs.append(1) }}", {"xs": []})  # immutable sandbox: no mutation


def test_undefined_variables_are_errors() -> None:
    with pytest.raises(UndefinedError):
        render_string("{{ missing }}", {})


def test_variables_found_statically() -> None:
    src = "{% for c in context %}{{ c }}{% endfor %}{{ question }}{{ loop_var | default('') }}"
    assert variables(src) == {"context", "question", "loop_var"}
    with pytest.raises(TemplateSyntaxError):
        variables("{{ broken }")


# -- hostile templates: analysis never evaluates, renders are bounded --------------------------

HOSTILE = [
    "{{ 7**(10**8) }}",
    "{{ 7**(10**6) }}",
    "{{ 'x' | center(999999999) }}",
    "{% autoescape 'x' | center(999999999) %}{% endautoescape %}",
    "{% if (9**9**9) %}{% endif %}",
    "{{ ('x' ~ 'y') * 10**9 }}",
]


def test_analysis_never_evaluates_the_template() -> None:
    # jinja2 folds constants while generating code, which used to run these at validate time
    script = (
        "import sys\n"
        "from llmspec import templating\n"
        "for src in sys.argv[1:]:\n"
        "    templating.variables(src)\n"
        "    templating.unsafe_constructs(src)\n"
        "    templating.attribute_uses(src)\n"
        "print('done')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", script, *HOSTILE],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "done"


@pytest.mark.parametrize("src", HOSTILE)
def test_hostile_constants_have_no_variables(src: str) -> None:
    assert variables(src) == frozenset()


@pytest.mark.parametrize(
    "src",
    [
        "{{ " + "(" * 3000 + "x" + ")" * 3000 + " }}",
        "{{ x" + ".a" * 20000 + " }}",
        "".join(f"{{% for x{i} in y %}}" for i in range(25)) + "{% endfor %}" * 25,
    ],
)
def test_templates_nested_too_deep_are_syntax_errors(src: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        variables(src)
    with pytest.raises(TemplateSyntaxError):
        render_string(src, {"x": 1, "y": [1]})


@pytest.mark.parametrize(
    ("src", "limit"),
    [
        ("{{ 'x' * 10**9 }}", "size"),
        ("{{ [[]] * 10**9 }}", "size"),
        ("{{ 7**(10**8) }}", "integer"),
        (
            "{% set ns = namespace(x=3) %}{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}"
            "{% endfor %}",
            "integer",
        ),
        ("{{ 'x' | center(999999999) }}", "size"),
        ("{{ '%999999999s' | format(1) }}", "size"),
        ("{{ '%.999999999f' % 1.0 }}", "size"),
        ("{{ 'x'.ljust(999999999) }}", "size"),
        ("{{ ('x' * 4000000).replace('x', 'yyy') }}", "size"),
        ("{{ ('x' * 4000000) | replace('x', 'yyy') }}", "size"),
        ("{{ ('x\n' * 4000000) | indent('yy') }}", "size"),
        ("{{ 'yy'.join('x' * 4000000) }}", "size"),
        ("{{ [1] | batch(10**9, 'x') | list }}", "size"),
        ("{{ range(100000) | batch(1) | sum(start=[]) }}", "size"),
        # doubling a string: with `~`, with `+`, through a literal
        (
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
            "{% endfor %}",
            "size",
        ),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
            "{% endfor %}",
            "size",
        ),
        (
            "{% set ns = namespace(s=['x']) %}{% for i in range(64) %}"
            "{% set ns.s = [ns.s, ns.s] %}{% endfor %}",
            "size",
        ),
        # output, also when captured by `set` instead of written out
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxx{% endfor %}"
            "{% endfor %}",
            "size",
        ),
        (
            "{% set s %}{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxx"
            "{% endfor %}{% endfor %}{% endset %}",
            "size",
        ),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "depth"),
    ],
)
def test_renders_are_capped(src: str, limit: str) -> None:
    # a small size cap, so that the size is what stops the render even on a busy machine
    with pytest.raises(RenderLimit) as e:
        render_string(src, {}, max_chars=100_000)
    assert e.value.limit == limit
    assert f"{e.value.value:,}" in str(e.value) or limit == "depth"
    assert isinstance(e.value, TemplateError)  # what callers catch


def test_render_time_is_capped() -> None:
    src = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    t0 = time.monotonic()
    with pytest.raises(RenderLimit) as e:
        render_string(src, {}, max_seconds=0.2)
    assert e.value.limit == "time"
    assert "0.2 s" in str(e.value)
    assert time.monotonic() - t0 < 5


def test_output_cap_is_configurable_and_exact() -> None:
    assert render_string("{{ 'x' * 100 }}", {}, max_chars=100) == "x" * 100
    with pytest.raises(RenderLimit) as e:
        render_string("{{ q }}{{ q }}", {"q": "x" * 60}, max_chars=100)
    assert "100 characters" in str(e.value)


def test_str_format_is_refused_at_render() -> None:
    with pytest.raises(SecurityError):
        render_string("{{ '{0.__class__}'.format(q) }}", {"q": "x"})
    with pytest.raises(SecurityError):
        render_string("{{ ('{x}' | attr('format_map'))({'x': 1}) }}", {})
    # the `format` filter is `%` formatting and stays available
    assert render_string("{{ '%s-%d' | format('a', 3) }}", {}) == "a-3"


def test_python_errors_in_a_render_are_template_errors() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render_string("{{ a / b }}", {"a": 1, "b": 0})
    with pytest.raises(TemplateError, match="OverflowError"):
        render_string("{{ range(10**6) | list }}", {})


def test_ordinary_templates_render_as_before() -> None:
    src = (
        "Q: {{ q | upper }} {{ xs | join(', ') }} "
        "{% for x in xs %}{{ loop.index }}{{ x }}{% if not loop.last %},{% endif %}{% endfor %} "
        "{{ d.a }} {{ d['a'] }} {{ '%s-%d' | format('a', 3) }} {{ q ~ '!' }} {{ [1, 2] }} "
        "{{ xs | map('upper') | join }} {{ 'y'.join(xs) }} {{ 2 ** 10 }} {{ 'ab' * 2 }}"
        "{% set a, b = 1, 2 %}{{ a + b }}{% filter upper %}z{% endfilter %}"
        "{% macro m(v) %}<{{ v }}{{ caller() }}>{% endmacro %}{% call m(1) %}c{% endcall %}"
    )
    out = render_string(src, {"q": "hi", "xs": ["a", "b"], "d": {"a": 1}})
    assert out == "Q: HI a, b 1a,2b 1 1 a-3 hi! [1, 2] AB ayb 1024 abab3Z<1c>"


def test_unsafe_constructs_found_at_validate_time() -> None:
    src = "\n".join(
        [
            "{{ question }}",
            "{{ ''.__class__.__mro__[1] }}",
            "{{ x['__init__'] }}",
            "{{ x['__glo' ~ 'bals__'] }}",
            "{{ x | attr('__class__') }}",
            "{{ xs | map(attribute='__doc__') | list }}",
            "{{ '{0.__class__}'.format(x) }}",
            "{{ s.format_map(d) }}",
            "{{ '%s' | format(x) }} {{ row.format }} {{ row._id }}",
        ]
    )
    found = unsafe_constructs(src)
    assert [line for line, _ in found] == [2, 2, 3, 4, 5, 6, 7, 8]
    assert found[0] == (2, "attribute `__class__` reaches Python internals")
    assert "`['__init__']`" in found[2][1]
    assert "format" in found[6][1] and "format_map" in found[7][1]
    assert unsafe_constructs("Q: {{ q }} {{ row.format }} {{ '%s' | format(q) }}") == []
    with pytest.raises(TemplateSyntaxError):
        unsafe_constructs("{{ broken }")
