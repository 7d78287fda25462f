from __future__ import annotations

import importlib.util

import pytest

from llmspec.errors import LlmspecError
from llmspec.providers import load_provider
from llmspec.spec import LlamaCppModel


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is not None, reason="llama-cpp-python is installed"
)
def test_missing_llama_cpp_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    spec = LlamaCppModel.model_validate({"provider": "llamacpp", "path": "m.gguf"})
    with pytest.raises(LlmspecError) as e:
        load_provider(spec, tmp_path)
    d = e.value.diagnostics[0]
    assert d.code == "E062" and "pip install llama-cpp-python" in d.hint
