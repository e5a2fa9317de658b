"""Quick/full mode rule: CI/PCONV_QUICK -> quick; else PCONV_FULL -> full; else quick without CUDA."""

from __future__ import annotations

import pytest
import torch

from pconv_lib import runtime

ALL = ("CI", "PCONV_QUICK", "PCONV_FULL")


@pytest.fixture
def env(monkeypatch):
    for name in ALL:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("cuda", [False, True])
def test_ci_or_quick_flag_always_quick(env, cuda):
    env.setattr(torch.cuda, "is_available", lambda: cuda)
    for name in ("CI", "PCONV_QUICK"):
        env.setenv(name, "true")
        env.setenv("PCONV_FULL", "1")
        assert runtime.quick_mode()
        assert name in runtime.describe_mode() or "CI" in runtime.describe_mode()
        env.delenv(name)


def test_no_variable_cpu_is_quick_and_says_how_to_switch(env):
    env.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.quick_mode()
    line = runtime.describe_mode()
    assert line.startswith("quick mode (no CUDA GPU was found)") and "PCONV_FULL=1" in line


def test_no_variable_gpu_is_full(env):
    env.setattr(torch.cuda, "is_available", lambda: True)
    assert not runtime.quick_mode()
    assert runtime.describe_mode().startswith("full mode (a CUDA GPU was found)")


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_full_flag_forces_full_on_cpu(env, value):
    env.setattr(torch.cuda, "is_available", lambda: False)
    env.setenv("PCONV_FULL", value)
    assert not runtime.quick_mode()
    assert "PCONV_FULL" in runtime.describe_mode()


@pytest.mark.parametrize("value", ["0", "false", "", "no"])
def test_false_values_do_not_count(env, value):
    env.setattr(torch.cuda, "is_available", lambda: True)
    env.setenv("CI", value)
    env.setenv("PCONV_QUICK", value)
    assert not runtime.quick_mode()
