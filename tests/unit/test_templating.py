from __future__ import annotations

import pytest
from jinja2 import TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from llmspec.templating import render_string, variables


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
