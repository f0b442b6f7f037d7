"""Sample a process tree every ~0.2 s: PSS of every process, CPU time, and what each is doing.

PSS (proportional set size) splits shared pages between the processes sharing them, so the sum
over a tree is the memory the tree really holds. It is read from /proc/<pid>/smaps_rollup.
Ray worker processes retitle themselves (`ray::IDLE`, `ray::ImplicitFunc.train`,
`ray::RayTrainWorker...`), so the title at each sample tells which kind of work consumed the CPU
time between two samples.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
GIB = 1024**3


def read_pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def read_stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds used, start time in clock ticks) from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[19])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def read_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    parts = [p for p in raw.decode(errors="replace").split("\0") if p]
    if len(parts) == 1 and " " in parts[0]:  # a retitled process (setproctitle) writes one string
        parts = parts[0].split()
    return parts


def describe(cmdline: list[str]) -> str:
    """A short, stable kind for a process: `ray::ImplicitFunc`, `raylet`, `dvc`, `python:tune.py`..."""
    if not cmdline:
        return "?"
    first = cmdline[0]
    if first.startswith("ray::"):
        return first.split("(")[0].split(".")[0].rstrip(":")
    name = os.path.basename(first)
    if name.startswith("python"):
        args = cmdline[1:]
        for i, a in enumerate(args):
            if a == "-m" and i + 1 < len(args):
                return _ray_helper(args[i + 1]) or f"python -m {args[i + 1]}"
            if a.endswith(".py"):
                return _ray_helper(a) or f"python:{os.path.basename(a)}"
            if a == "-c":
                return "python -c"
        return "python"
    return name  # raylet, gcs_server, git... (a raylet's arguments name other Ray scripts)


def _ray_helper(text: str) -> str:
    for key in (
        "dashboard/agent.py",
        "dashboard/dashboard.py",
        "log_monitor",
        "monitor.py",
        "runtime_env/agent",
        "ray_client_server",
        "ray_process_reaper",
    ):
        if key in text:
            return "ray:" + key.split("/")[-1].removesuffix(".py")
    return ""


@dataclass
class ProcInfo:
    pid: int
    parent_kind: str = ""
    kinds: list[str] = field(default_factory=list)
    first_t: float = 0.0
    last_t: float = 0.0
    cpu_s: float = 0.0
    peak_pss_kb: int = 0


@dataclass
class TreeStats:
    peak_pss_gib: float
    peak_t: float
    peak_by_kind_gib: dict[str, float]
    cpu_s_by_kind: dict[str, float]
    alive_by_kind: dict[str, list[float]]  # kind -> [first seen, last seen] (absolute times)
    processes_by_kind: dict[str, dict]  # kind -> how many processes, started by which kinds
    busy_by_kind: dict[str, list[list[float]]]  # kind -> intervals during which it used CPU
    samples: int
    mean_interval_s: float
    sampler_cpu_s: float
    timeline: list[list[float]]  # [t, total PSS GiB], one per sample
    kinds_timeline: list = field(default_factory=list)  # (t, {kind: PSS GiB}) per sample; not in to_dict (large)

    def peak_since(self, t: float) -> tuple[float, dict[str, float]]:
        """The largest total PSS of the samples at or after absolute time t, and its split by kind (GiB)."""
        later = [(sum(kinds.values()), kinds) for at, kinds in self.kinds_timeline if at >= t]
        return max(later, key=lambda s: s[0], default=(0.0, {}))

    def to_dict(self, t0: float) -> dict:
        """Times relative to t0, rounded for the results file."""
        rel = lambda t: round(t - t0, 2)  # noqa: E731
        return {
            "peak_pss_gib": round(self.peak_pss_gib, 3),
            "peak_at_s": rel(self.peak_t),
            "peak_by_kind_gib": {
                k: round(v, 3) for k, v in sorted(self.peak_by_kind_gib.items(), key=lambda kv: -kv[1])
            },
            "cpu_s_total": round(sum(self.cpu_s_by_kind.values()), 2),
            "cpu_s_by_kind": {k: round(v, 2) for k, v in sorted(self.cpu_s_by_kind.items(), key=lambda kv: -kv[1])},
            "alive_by_kind_s": {
                k: [rel(a), rel(b)] for k, (a, b) in sorted(self.alive_by_kind.items(), key=lambda kv: kv[1][0])
            },
            "processes_by_kind": self.processes_by_kind,
            "busy_by_kind_s": {k: [[rel(a), rel(b)] for a, b in v] for k, v in self.busy_by_kind.items()},
            "samples": self.samples,
            "mean_interval_s": round(self.mean_interval_s, 3),
            "sampler_cpu_s": round(self.sampler_cpu_s, 2),
            "timeline_pss_gib": [[rel(t), round(g, 3)] for t, g in self.timeline],
        }


class TreeSampler:
    """Samples the descendants of `root_pid` (and processes whose command line contains `match`)."""

    def __init__(self, root_pid: int, match: str = "", interval: float = 0.2) -> None:
        self.root_pid, self.match, self.interval = root_pid, match, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pss-sampler")
        self._procs: dict[int, ProcInfo] = {}
        self._last_cpu: dict[int, float] = {}
        self._cpu_by_kind: dict[str, float] = defaultdict(float)
        self._busy: dict[str, list[list[float]]] = defaultdict(list)
        self._timeline: list[tuple[float, int, dict[str, int]]] = []
        self._matched: dict[tuple[int, int], bool] = {}
        self._kind_of: dict[int, str] = {}
        self.started: dict[int, int] = {}  # every process of the tree seen: pid -> start time (clock ticks)

    def __enter__(self) -> TreeSampler:
        self._cpu0 = time.thread_time()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _tree(self) -> dict[int, tuple[int, float]]:
        """pid -> (parent pid, CPU seconds) of the root, its descendants and the matching processes.

        One pass over /proc/*/stat; a process's command line is read once to test `match`.
        """
        stats = {}
        for pid in all_pids():
            st = read_stat(pid)
            if st:
                stats[pid] = st
        children = defaultdict(list)
        for pid, (ppid, _, _) in stats.items():
            children[ppid].append(pid)
        tree, todo = set(), [self.root_pid] if self.root_pid in stats else []
        for pid, (_, _, started) in stats.items():
            if self.match and pid != os.getpid() and pid not in tree:
                key = (pid, started)
                if key not in self._matched:
                    self._matched[key] = self.match in " ".join(read_cmdline(pid))
                if self._matched[key]:
                    todo.append(pid)
        while todo:
            pid = todo.pop()
            if pid not in tree:
                tree.add(pid)
                todo.extend(children.get(pid, []))
        self.started.update({pid: stats[pid][2] for pid in tree})
        return {pid: stats[pid][:2] for pid in tree}

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.time()
            self._sample(started)
            self._stop.wait(max(0.0, self.interval - (time.time() - started)))
        self._sampler_cpu = time.thread_time() - self._cpu0

    def _sample(self, now: float) -> None:
        total, by_kind = 0, defaultdict(int)
        for pid, (ppid, cpu) in self._tree().items():
            kind = describe(read_cmdline(pid))
            self._kind_of[pid] = kind
            pss = read_pss_kb(pid)
            info = self._procs.get(pid)
            if info is None:
                info = self._procs[pid] = ProcInfo(pid, parent_kind=self._kind_of.get(ppid, "?"), first_t=now)
            if not info.kinds or info.kinds[-1] != kind:
                info.kinds.append(kind)
            info.last_t, info.cpu_s = now, cpu
            info.peak_pss_kb = max(info.peak_pss_kb, pss)
            delta = cpu - self._last_cpu.get(pid, 0.0)  # first sight: all CPU since the process was born
            self._last_cpu[pid] = cpu
            if delta > 0:
                self._cpu_by_kind[kind] += delta
                spans = self._busy[kind]
                if spans and now - spans[-1][1] <= 2.5 * self.interval:
                    spans[-1][1] = now
                else:
                    spans.append([now - min(delta, self.interval), now])
            total += pss
            by_kind[kind] += pss
        self._timeline.append((now, total, dict(by_kind)))

    def stats(self) -> TreeStats:
        if not self._timeline:
            return TreeStats(0.0, 0.0, {}, {}, {}, {}, {}, 0, 0.0, 0.0, [])
        peak_t, peak_kb, peak_kinds = max(self._timeline, key=lambda s: s[1])
        alive: dict[str, list[float]] = {}
        started: dict[str, dict] = {}
        for info in self._procs.values():
            first = started.setdefault(info.kinds[0], {"count": 0, "parents": {}})
            first["count"] += 1
            first["parents"][info.parent_kind] = first["parents"].get(info.parent_kind, 0) + 1
            for kind in info.kinds:
                a = alive.setdefault(kind, [info.first_t, info.last_t])
                a[0], a[1] = min(a[0], info.first_t), max(a[1], info.last_t)
        times = [s[0] for s in self._timeline]
        mean_interval = (times[-1] - times[0]) / max(len(times) - 1, 1)
        return TreeStats(
            peak_pss_gib=peak_kb * 1024 / GIB,
            peak_t=peak_t,
            peak_by_kind_gib={k: v * 1024 / GIB for k, v in peak_kinds.items()},
            cpu_s_by_kind=dict(self._cpu_by_kind),
            alive_by_kind=alive,
            processes_by_kind=started,
            busy_by_kind={k: v for k, v in self._busy.items()},
            samples=len(self._timeline),
            mean_interval_s=mean_interval,
            sampler_cpu_s=getattr(self, "_sampler_cpu", 0.0),
            timeline=[[t, kb * 1024 / GIB] for t, kb, _ in self._timeline],
            kinds_timeline=[(t, {k: v * 1024 / GIB for k, v in kinds.items()}) for t, _, kinds in self._timeline],
        )
