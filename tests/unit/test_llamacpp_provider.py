from __future__ import annotations

import importlib.util

import pytest

from llmspec.errors import LlmspecError
from llmspec.providers import load_provider

HAVE_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None


@pytest.mark.skipif(HAVE_LLAMA_CPP, reason="llama-cpp-python is installed")
def test_missing_llama_cpp_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    settings = {"provider": "llamacpp", "path": "m.gguf", "weights": str(tmp_path / "m.gguf")}
    with pytest.raises(LlmspecError) as e:
        load_provider(settings)
    d = e.value.diagnostics[0]
    assert d.code == "E062" and "pip install llama-cpp-python" in d.hint


@pytest.mark.llamacpp
@pytest.mark.skipif(not HAVE_LLAMA_CPP, reason="llama-cpp-python is not installed")
def test_a_file_llama_cpp_cannot_load_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF not really")
    settings = {"provider": "llamacpp", "path": "m.gguf", "weights": str(tmp_path / "m.gguf")}
    with pytest.raises(LlmspecError) as e:
        load_provider(settings)
    d = e.value.diagnostics[0]
    assert d.code == "E064" and "m.gguf" in d.message and "GGUF" in d.hint
