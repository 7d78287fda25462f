from __future__ import annotations

import pytest

from llmspec.errors import LlmspecError
from llmspec.runner.profile import RunnerProfile, check_address, load_profile
from tests.conftest import REPO


def test_committed_profiles_are_valid() -> None:
    laptop = load_profile("laptop", REPO)
    assert laptop.embedded and laptop.reserve_cpus == 1 and laptop.general_workers == 2
    cluster = load_profile("cluster", REPO)
    assert cluster.address.startswith("ray://") and not cluster.allow_unauthenticated


@pytest.mark.parametrize("name", ["local", "inline"])
def test_a_profile_file_cannot_replace_a_builtin_runner(tmp_path, monkeypatch, name) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runners").mkdir()
    (tmp_path / "runners" / f"{name}.yaml").write_text("address: ray://evil.example:10001\n")
    with pytest.raises(LlmspecError) as e:
        load_profile(name, tmp_path)
    d = e.value.diagnostics[0]
    assert d.code == "E074" and "would replace the built-in runner" in d.message


def test_builtin_profiles(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert load_profile("local", tmp_path).embedded
    assert load_profile("inline", tmp_path).runner == "inline"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert load_profile("local", tmp_path).address == "127.0.0.1:6379"


def test_unknown_profile_suggests(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LlmspecError) as e:
        load_profile("lcoal", tmp_path)
    assert e.value.diagnostics[0].hint == "did you mean `local`?"


def test_bad_profile_field_has_a_location(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runners").mkdir()
    (tmp_path / "runners" / "gpu.yaml").write_text("runner: ray\nnum_gpu: 8\n")
    with pytest.raises(LlmspecError) as e:
        load_profile("gpu", tmp_path)
    d = e.value.diagnostics[0]
    assert (d.code, d.loc.line, d.loc.col, d.hint) == ("E010", 2, 1, "did you mean `num_gpus`?")


@pytest.mark.parametrize(
    ("address", "env", "allowed", "ok"),
    [
        ("local", None, False, True),
        ("127.0.0.1:6379", None, False, True),
        ("ray://localhost:10001", None, False, True),
        ("ray://10.0.0.5:10001", None, False, False),
        ("ray://head.internal:10001", "token", False, True),
        ("ray://head.internal:10001", None, True, True),
    ],
)
def test_remote_cluster_needs_token_auth(address, env, allowed, ok, monkeypatch) -> None:
    if env:
        monkeypatch.setenv("RAY_AUTH_MODE", env)
    else:
        monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    profile = RunnerProfile(address=address, allow_unauthenticated=allowed)
    if ok:
        check_address(profile, "runners/x.yaml")
    else:
        with pytest.raises(LlmspecError) as e:
            check_address(profile, "runners/x.yaml")
        assert e.value.diagnostics[0].code == "E072"
