"""CPU threads on a shared or busy machine: the thread policy of ``pconv_lib.runtime`` against fixed choices.

Measures the median (min-max) time of four operations

* notebook size: ``PConvUNet(depth=4, width=0.25)``, batch 4 of 64x64 (notebook 04's quick
  training model and batch), ``forward`` (eval, no_grad) and ``forward+backward`` (train, loss
  ``mean|output|``); each timing is the mean of 5 calls;
* demo size: ``PConvUNet(depth=7, width=0.5)`` (the demo model), batch 1 of 256x256, the same two,
  one call per timing;

for several thread settings, each in its own worker process (``OMP_WAIT_POLICY`` is read once, when
torch loads), while the machine is idle and while one core is kept busy by a spinning process
(``python -c "while True: pass"`` at normal priority, as a browser or a video call would). The
settings (``--configs``):

* ``torch``: torch's defaults (``PCONV_THREADS=torch``): one thread per core, spin-waiting;
* ``1`` ... ``N``: a fixed count, as before the policy (``torch.set_num_threads(k)``, spin-waiting);
* ``passive``: N threads with ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep instead of spinning);
  ``passiveK``: K such threads (K > N: more threads than CPUs, so the operating system can balance
  the pieces of work between a free and a busy core);
* ``spinK``: N threads with ``GOMP_SPINCOUNT=K`` (spin K rounds, then sleep; torch's OpenMP is GNU's);
* ``policy``: nothing set, ``pconv_lib.runtime.apply_thread_policy()``: the library's policy (N
  threads that spin-wait, one fewer per core that other programs keep busy).

Interleaving: the workers stay alive; every repeat runs idle then busy (the order alternates), and
within a load every setting in turn (the order rotates), so slow drifts of the machine hit every
setting alike. Before each setting's turn everything pauses 1.1 s, so the policy sees the load
as it is (its sampler looks at the last 0.5 s, not at the previous worker's run). Repeat 0 is a
warm-up and is dropped; ``--repeats`` (default 7) are kept.

Targets (issue 17): with the policy, busy/idle <= 1.5 at both sizes, and its idle time no more than
10 % above the best fixed thread count's.

Load: the script prints ``/proc/loadavg`` before and after and the cores that *other* programs kept
busy during the idle phases (``/proc/stat`` minus this benchmark's processes): on a machine shared
with other people, "idle" is only as idle as that number.

Under a CPU limit: ``taskset -c 0 python bench/busy_cpu.py --loads idle`` (one CPU by affinity; the
policy picks 1 thread); a container quota (cgroup ``cpu.max``) is read the same way (tests cover it).

``--quick``: one repeat of ``1`` and ``policy`` at the notebook size (a smoke run).

Usage: ``python bench/busy_cpu.py [--quick] [--repeats 7] [--configs torch,1,N,passive,policy]
[--loads idle,busy] [--sizes notebook,demo]``.

Results (2-core AMD EPYC VM shared with other engineers' jobs, torch 2.14.1, 2026-11-30): see
``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {  # name: (depth, width, batch, pixels, calls per timing)
    "notebook": (4, 0.25, 4, 64, 5),
    "demo": (7, 0.5, 1, 256, 1),
}
KINDS = ("forward", "forward+backward")
PAUSE_S = 1.1


# ----------------------------------------------------------------------------------------- worker
def worker() -> None:
    """Read ``size kind`` lines on stdin, answer ``{"ms": ..., "threads": ...}`` lines on stdout."""
    import torch

    from pconv_lib.model import PConvUNet
    from pconv_lib.runtime import apply_thread_policy

    apply_thread_policy()  # the library's policy, unless PCONV_THREADS says not (``torch``: torch's own)

    if os.environ.get("BENCH_SET_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_SET_THREADS"]))
    torch.manual_seed(0)
    models = {}
    for name, (depth, width, batch, pixels, _) in SIZES.items():
        model = PConvUNet(depth=depth, width=width)
        image = torch.rand(batch, 3, pixels, pixels)
        mask = (torch.rand(batch, 1, pixels, pixels) > 0.3).float()
        models[name] = (model, image * mask, mask)

    def run(name: str, kind: str) -> None:
        model, image, mask = models[name]
        if kind == "forward":
            model.eval()
            with torch.no_grad():
                model(image, mask)
        else:
            model.train()
            output, _ = model(image, mask)
            output.abs().mean().backward()
            model.zero_grad(set_to_none=True)

    for name in SIZES:
        for kind in KINDS:
            run(name, kind)
            run(name, kind)
    print(json.dumps({"ready": True, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        name, kind = line.strip().split(" ", 1)
        calls = SIZES[name][4]
        start = time.perf_counter()
        for _ in range(calls):
            run(name, kind)
        ms = (time.perf_counter() - start) / calls * 1000
        print(json.dumps({"ms": ms, "threads": torch.get_num_threads()}), flush=True)


# ----------------------------------------------------------------------------------------- parent
def config_env(config: str, cpus: int) -> dict[str, str]:
    drop = ("PCONV_THREADS", "OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT", "MKL_NUM_THREADS",
            "BENCH_SET_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if config == "torch":
        env["PCONV_THREADS"] = "torch"
    elif config == "passive":
        env["PCONV_THREADS"] = str(cpus)
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif config.startswith("passive"):  # passiveK: K sleeping threads, K may exceed the CPUs
        env["PCONV_THREADS"] = "torch"
        env["BENCH_SET_THREADS"] = str(int(config[7:]))
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif config.startswith("spin"):
        env["PCONV_THREADS"] = str(cpus)
        env["GOMP_SPINCOUNT"] = config[4:]
    elif config != "policy":  # a fixed count, as torch does it today (threads spin while they wait)
        env["PCONV_THREADS"] = "torch"
        env["BENCH_SET_THREADS"] = str(int(config))
    return env


class Worker:
    def __init__(self, config: str, cpus: int) -> None:
        self.config = config
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], env=config_env(config, cpus),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.start_threads = json.loads(self.proc.stdout.readline())["threads"]

    def time(self, name: str, kind: str) -> tuple[float, int]:
        self.proc.stdin.write(f"{name} {kind}\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return answer["ms"], answer["threads"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _busy_seconds() -> float:
    cpus = os.sched_getaffinity(0)
    total = 0.0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu" and int(name[3:]) in cpus:
            v = [float(x) for x in values[:8]]
            total += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return total / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (float(fields[11]) + float(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats after one warm-up (default 7)")
    parser.add_argument("--configs", default=None,
                        help="thread settings, comma-separated: torch, a count (N = the usable CPUs), "
                             "passive, policy (default torch,1,N,passive,policy)")
    parser.add_argument("--loads", default="idle,busy", help="idle, busy or both")
    parser.add_argument("--sizes", default=None, help="notebook, demo or both (default both)")
    parser.add_argument("--quick", action="store_true",
                        help="one repeat of 1 and policy at the notebook size (a smoke run)")
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 7)
    args.configs = args.configs or ("1,policy" if args.quick else "torch,1,N,passive,policy")
    args.sizes = args.sizes or ("notebook" if args.quick else "notebook,demo")
    if args.worker:
        worker()
        return
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    cpus = len(os.sched_getaffinity(0))
    configs = [str(cpus) if c == "N" else c for c in args.configs.split(",")]
    configs = list(dict.fromkeys(configs))
    loads = args.loads.split(",")
    sizes = args.sizes.split(",")
    ops = [(s, k) for s in sizes for k in KINDS]
    print(f"python {sys.version.split()[0]}, {cpus} usable CPUs (affinity), loadavg before: "
          f"{Path('/proc/loadavg').read_text().split()[:3]}", flush=True)
    workers = {c: Worker(c, cpus) for c in configs}
    print("threads at start: " + ", ".join(f"{c}: {w.start_threads}" for c, w in workers.items()), flush=True)
    times: dict[tuple[str, str, str, str], list[float]] = {}
    threads_seen: dict[tuple[str, str], set[int]] = {}
    others_idle: list[float] = []
    spinner = None
    try:
        for rep in range(args.repeats + 1):
            order = loads if rep % 2 == 0 else loads[::-1]
            for load in order:
                if load == "busy":
                    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                rotated = configs[rep % len(configs):] + configs[:rep % len(configs)]
                pids = [w.proc.pid for w in workers.values()] + ([spinner.pid] if spinner else [])
                busy0, ours0, wall0 = _busy_seconds(), _cpu_seconds(pids), time.monotonic()
                for config in rotated:
                    time.sleep(PAUSE_S)
                    for name, kind in ops:
                        ms, threads = workers[config].time(name, kind)
                        if rep > 0:
                            times.setdefault((load, config, name, kind), []).append(ms)
                            threads_seen.setdefault((load, config), set()).add(threads)
                if load == "idle" and rep > 0:
                    wall = time.monotonic() - wall0
                    others_idle.append((_busy_seconds() - busy0 - (_cpu_seconds(pids) - ours0)) / wall)
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
                    spinner = None
            print(f"repeat {rep}/{args.repeats} done{' (warm-up, dropped)' if rep == 0 else ''}", flush=True)
    finally:
        if spinner is not None:
            spinner.kill()
        for w in workers.values():
            w.close()

    def fmt(values: list[float]) -> str:
        return f"{statistics.median(values):8.1f} ({min(values):.1f}-{max(values):.1f})"

    print(f"\nloadavg after: {Path('/proc/loadavg').read_text().split()[:3]}")
    if others_idle:
        print(f"other programs during the idle phases: {statistics.median(others_idle):.2f} cores busy "
              f"(median; {min(others_idle):.2f}-{max(others_idle):.2f})")
    print(f"{args.repeats} repeats after warm-up; ms per call, median (min-max)\n")
    head = f"{'operation':<28}{'setting':<9}{'threads':>9}"
    for load in loads:
        head += f"{load:>26}"
    if set(loads) == {"idle", "busy"}:
        head += f"{'busy/idle':>11}"
    print(head)
    fixed = [c for c in configs if c.isdigit()]
    for name, kind in ops:
        for config in configs:
            row = f"{name + ' ' + kind:<28}{config:<9}"
            seen = sorted(set().union(*(threads_seen.get((load, config), set()) for load in loads)))
            row += f"{','.join(map(str, seen)):>9}"
            for load in loads:
                row += f"{fmt(times[(load, config, name, kind)]):>26}"
            if set(loads) == {"idle", "busy"}:
                ratio = (statistics.median(times[("busy", config, name, kind)])
                         / statistics.median(times[("idle", config, name, kind)]))
                row += f"{ratio:>10.2f}x"
            print(row)
        if "policy" in configs and "idle" in loads and fixed:
            best = min(statistics.median(times[("idle", c, name, kind)]) for c in fixed)
            policy = statistics.median(times[("idle", "policy", name, kind)])
            line = f"  -> policy idle / best fixed count idle: {policy / best:.2f}x (target <= 1.10)"
            if "busy" in loads:
                busy = statistics.median(times[("busy", "policy", name, kind)])
                line += f"; policy busy / policy idle: {busy / policy:.2f}x (target <= 1.5)"
                line += f"; policy busy / best fixed idle: {busy / best:.2f}x"
            print(line)


if __name__ == "__main__":
    main()
