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
        assert runtime.describe_mode().startswith(f"quick mode ({name} is set)")
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


# ---------------------------------------------------------------------------------- CPU threads
def _cgroup_file(tmp_path, text):
    path = tmp_path / "self_cgroup"
    path.write_text(text)
    return path


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_on_a_parent_is_found(tmp_path):
    root = tmp_path / "cg"
    _write(root / "user.slice" / "cpu.max", "150000 100000\n")
    _write(root / "user.slice" / "job" / "cpu.max", "max 100000\n")  # no quota here, the parent has one
    proc = _cgroup_file(tmp_path, "0::/user.slice/job\n")
    assert runtime.cgroup_cpu_quota(root, proc) == pytest.approx(1.5)


def test_cgroup_v2_smallest_quota_wins_and_max_means_none(tmp_path):
    root = tmp_path / "cg"
    _write(root / "a" / "cpu.max", "400000 100000")
    _write(root / "a" / "b" / "cpu.max", "50000 100000")
    assert runtime.cgroup_cpu_quota(root, _cgroup_file(tmp_path, "0::/a/b")) == pytest.approx(0.5)
    _write(root / "a" / "cpu.max", "max 100000")
    _write(root / "a" / "b" / "cpu.max", "max 100000")
    assert runtime.cgroup_cpu_quota(root, _cgroup_file(tmp_path, "0::/a/b")) is None


@pytest.mark.parametrize("mount", ["cpu", "cpu,cpuacct"])
def test_cgroup_v1_quota(tmp_path, mount):
    root = tmp_path / "cg"
    _write(root / mount / "docker" / "abc" / "cpu.cfs_quota_us", "250000")
    _write(root / mount / "docker" / "abc" / "cpu.cfs_period_us", "100000")
    proc = _cgroup_file(tmp_path, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    assert runtime.cgroup_cpu_quota(root, proc) == pytest.approx(2.5)


def test_cgroup_v1_container_root_and_no_quota(tmp_path):
    """Inside a container the host path in /proc/self/cgroup is not mounted: the mount root counts."""
    root = tmp_path / "cg"
    _write(root / "cpu" / "cpu.cfs_quota_us", "100000")
    _write(root / "cpu" / "cpu.cfs_period_us", "100000")
    proc = _cgroup_file(tmp_path, "3:cpu:/docker/0123abcd\n")
    assert runtime.cgroup_cpu_quota(root, proc) == pytest.approx(1.0)
    _write(root / "cpu" / "cpu.cfs_quota_us", "-1")
    assert runtime.cgroup_cpu_quota(root, proc) is None


@pytest.mark.parametrize("text", ["", "garbage", "max", "abc 100000", "100000 0", "-5 100000"])
def test_malformed_or_missing_cgroup_files_mean_no_quota(tmp_path, text):
    root = tmp_path / "cg"
    _write(root / "cpu.max", text)
    _write(root / "cpu" / "cpu.cfs_quota_us", text)
    _write(root / "cpu" / "cpu.cfs_period_us", "x")
    assert runtime.cgroup_cpu_quota(root, _cgroup_file(tmp_path, "0::/\n")) is None
    assert runtime.cgroup_cpu_quota(tmp_path / "nowhere", tmp_path / "no_such_file") is None


def test_usable_cpus_affinity_and_quota(tmp_path, monkeypatch):
    root = tmp_path / "cg"
    proc = _cgroup_file(tmp_path, "0::/\n")
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 8)
    budget = runtime.usable_cpus(root, proc)
    assert budget.count == 4 and "affinity" in budget.reason
    _write(root / "cpu.max", "250000 100000")  # 2.5 CPUs: rounded down
    budget = runtime.usable_cpus(root, proc)
    assert budget.count == 2 and "quota 2.5" in budget.reason
    _write(root / "cpu.max", "20000 100000")  # 0.2 CPU: still one thread
    assert runtime.usable_cpus(root, proc).count == 1
    _write(root / "cpu.max", "800000 100000")  # a quota above the affinity changes nothing
    assert runtime.usable_cpus(root, proc) == runtime.CpuBudget(4, "4 of 8 CPUs (CPU affinity)")


@pytest.mark.parametrize("text, expected", [(None, "auto"), ("", "auto"), (" Auto ", "auto"),
                                            ("torch", "torch"), ("1", 1), ("3", 3)])
def test_thread_setting_values(monkeypatch, text, expected):
    monkeypatch.delenv(runtime.THREADS_VARIABLE, raising=False)
    if text is not None:
        monkeypatch.setenv(runtime.THREADS_VARIABLE, text)
    assert runtime.thread_setting() == expected


@pytest.mark.parametrize("text", ["0", "-2", "two", "1.5", "99999"])
def test_bad_thread_setting_says_what_is_accepted(text):
    accepted = r"PCONV_THREADS=.*whole number of threads from 1 to 1024.*'auto'.*'torch'"
    with pytest.raises(ValueError, match=accepted):
        runtime.thread_setting(text)


@pytest.mark.parametrize("cpus, others, threads", [(2, 0.0, 2), (2, 0.3, 2), (2, 0.67, 1), (2, 1.0, 1),
                                                   (2, 3.0, 1), (8, 1.0, 7), (8, 2.6, 5), (1, 0.0, 1)])
def test_governor_leaves_the_busy_cores_to_the_other_programs(cpus, others, threads):
    governor = runtime._ThreadGovernor(runtime.CpuBudget(cpus, "test"))
    assert governor.wanted(others) == threads


def test_governor_applies_a_new_sample_once(monkeypatch):
    before = torch.get_num_threads()
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    governor = runtime._ThreadGovernor(runtime.CpuBudget(2, "test"))
    governor.others, governor._samples = 1.0, 1  # another program keeps one core busy
    governor.apply()
    governor.apply()  # same sample: nothing to do
    assert calls == [1] and governor.threads == 1
    governor.others, governor._samples = 0.0, 2  # it stopped
    governor.apply()
    assert calls == [1, 2] and governor.threads == 2
    assert torch.get_num_threads() == before


def test_cpu_times_reads_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  9 9 9 9 9 9 9 9 0 0\n"
        "cpu0 100 50 20 1000 5 1 2 3 0 0\n"
        "cpu1 200 0 10 900 0 0 0 0 0 0\n"
        "intr 123\n"
    )
    ticks = runtime.os.sysconf("SC_CLK_TCK")
    total, normal = runtime._cpu_times({0}, stat)
    assert total == pytest.approx(176 / ticks) and normal == pytest.approx(126 / ticks)
    total, _ = runtime._cpu_times(None, stat)
    assert total == pytest.approx((176 + 210) / ticks)
    assert runtime._cpu_times({5}, stat) is None


def _run(code, **env):
    import os
    import subprocess
    import sys
    from pathlib import Path

    environment = {k: v for k, v in os.environ.items() if k != runtime.THREADS_VARIABLE}
    environment.update(env, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done


NO_SIDE_EFFECTS = """
import sys, threading
import torch
from torch.nn.modules import module as torch_module

def state():
    return (torch.get_num_threads(), list(sys.meta_path), dict(torch_module._global_forward_pre_hooks),
            dict(torch_module._global_forward_hooks), sorted(t.name for t in threading.enumerate()))

before = state()
import pconv_lib, pconv_lib.runtime, pconv_lib.model, pconv_lib.losses  # noqa: E401
after = state()
assert after == before, (before, after)
torch.set_num_threads(1)
pconv_lib.runtime.apply_thread_policy()  # the explicit call does change the count
print(before[0], torch.get_num_threads())
"""


def test_import_leaves_torch_import_hooks_module_hooks_and_threads_alone():
    """Importing the library changes nothing in the process; the policy is an explicit call."""
    done = _run(NO_SIDE_EFFECTS, PCONV_THREADS="2")
    assert done.stdout.split()[1] == "2"


def test_policy_follows_the_variable_only_when_called():
    code = ("import torch, pconv_lib.runtime as r\nprint(torch.get_num_threads())\n"
            "torch.set_num_threads(3)\nr.apply_thread_policy()\nprint(torch.get_num_threads())")
    torch_default = _run("import torch; print(torch.get_num_threads())").stdout.strip()
    assert _run(code, PCONV_THREADS="1").stdout.split() == [torch_default, "1"]


def test_policy_auto_uses_the_usable_cpus_and_torch_setting_leaves_torch_alone():
    code = ("import os, torch, pconv_lib.runtime as r\nr.apply_thread_policy()\n"
            "print(torch.get_num_threads(), r.usable_cpus().count)\n"
            "print(r.describe_threads())")
    threads, usable = _run(code).stdout.splitlines()[0].split()
    assert threads == usable
    torch_default = _run("import torch; print(torch.get_num_threads())").stdout.strip()
    done = _run(code, PCONV_THREADS="torch")
    assert done.stdout.split()[0] == torch_default and "PCONV_THREADS=torch" in done.stdout


def test_describe_threads_says_when_the_policy_was_not_applied():
    done = _run("import pconv_lib.runtime as r\nprint(r.describe_threads())\nimport sys\n"
                "print('torch' in sys.modules)", PCONV_THREADS="1")
    line, torch_loaded = done.stdout.splitlines()
    assert line.startswith("threads: 1 (PCONV_THREADS=1") and "not applied yet" in line
    assert torch_loaded == "False"


def test_governor_adapts_only_where_the_library_calls_it(monkeypatch):
    """follow_free_cores (called by PConvUNet and PConvLoss) applies a sample; nothing else does."""
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    governor = runtime._ThreadGovernor(runtime.CpuBudget(2, "test"))
    governor.others, governor._samples = 1.0, 1
    monkeypatch.setattr(runtime, "_governor", governor)
    torch.nn.Conv2d(1, 1, 1)(torch.zeros(1, 1, 2, 2))  # a module of the learner's own: untouched
    assert calls == []
    from pconv_lib.model import PConvUNet

    with torch.no_grad():
        PConvUNet(depth=3, width=0.125).eval()(torch.zeros(1, 3, 8, 8), torch.ones(1, 1, 8, 8))
    assert calls == [1]


def test_bad_variable_warns_in_one_line_and_keeps_the_default():
    done = _run("import warnings\nwarnings.simplefilter('always')\nimport pconv_lib.runtime as r\n"
                "print(r.apply_thread_policy())", PCONV_THREADS="lots")
    assert "PCONV_THREADS='lots' is not understood" in done.stderr and "using 'auto'" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout.startswith("threads: ")


def test_mode_line_names_the_thread_override(env):
    env.setattr(torch.cuda, "is_available", lambda: False)
    assert "PCONV_THREADS" in runtime.describe_mode() and "Threads:" in runtime.describe_mode()


def test_xdist_workers_run_one_torch_thread():
    """tests/conftest.py: under ``pytest -n N`` each worker uses one thread (and the policy applies)."""
    import os

    setting = runtime.thread_setting()
    if os.environ.get("PYTEST_XDIST_WORKER") and isinstance(setting, int):
        assert setting == 1 or "PCONV_THREADS" in os.environ  # conftest's 1 unless the caller chose
        assert torch.get_num_threads() == setting
    assert runtime._policy_line  # conftest applied the policy
