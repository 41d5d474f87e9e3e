"""Benchmark harness: timing, percentiles, a concurrency driver, JSON results, the raw ceiling.

A benchmark is a module `tests/bench/bench_<name>.py` exposing `async def main(ctx) -> Result`.
It measures figures, takes its baseline from the same run (usually `await ceiling(ctx)`),
reports ratios and targets, and returns the Result; run.py writes and prints it. Targets are
reported as pass/fail, never raised as failures: speed is read, not asserted.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_ROOT = BENCH_DIR.parents[1]


# ---------------------------------------------------------------------------------------------
# Timing


def now_ns() -> int:
    """Monotonic high-resolution clock for measurements (perf_counter_ns)."""
    return time.perf_counter_ns()


class Stopwatch:
    """Times a block: `with Stopwatch() as sw: ...; sw.seconds`."""

    def __init__(self) -> None:
        self.start_ns = 0
        self.end_ns: int | None = None

    def __enter__(self) -> Stopwatch:
        self.start_ns = now_ns()
        self.end_ns = None
        return self

    def __exit__(self, *exc: object) -> None:
        self.end_ns = now_ns()

    @property
    def elapsed_ns(self) -> int:
        """Nanoseconds from enter to exit (or to now while still running)."""
        return (self.end_ns if self.end_ns is not None else now_ns()) - self.start_ns

    @property
    def seconds(self) -> float:
        """Elapsed seconds."""
        return self.elapsed_ns / 1e9


def per_second(count: float, seconds: float) -> float:
    """A rate; zero elapsed time yields inf rather than a crash."""
    return count / seconds if seconds > 0 else math.inf


def percentile(sorted_samples: Sequence[int | float], pct: float) -> float:
    """Nearest-rank percentile of already sorted samples (pct in 0..100)."""
    if not sorted_samples:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_samples)))
    return float(sorted_samples[min(rank, len(sorted_samples)) - 1])


def percentiles(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50/p90/p99/max of latencies given in ns, returned in milliseconds."""
    ordered = sorted(samples_ns)
    out = {f"p{p}": percentile(ordered, p) / 1e6 for p in (50, 90, 99)}
    out["max"] = (ordered[-1] / 1e6) if ordered else math.nan
    return out


def cpu_calibration(*, rounds: int = 3, loops: int = 300_000) -> float:
    """Pure-Python ops/s of a fixed workload (best of rounds): how fast this core is right now.

    Measured at the start and end of a run, it shows whether neighbours on a shared machine
    were stealing the CPU while the figures were taken.
    """
    best = math.inf
    for _ in range(rounds):
        buckets: dict[int, int] = {}
        start = now_ns()
        for i in range(loops):
            key = i & 1023
            buckets[key] = buckets.get(key, 0) + (i ^ key)
        best = min(best, (now_ns() - start) / 1e9)
    return per_second(loops, best)


# ---------------------------------------------------------------------------------------------
# Concurrency driver


@dataclass
class LoadReport:
    """What `drive` saw: successful latencies, errors, and the wall time they took."""

    clients: int
    ops: int
    errors: int
    elapsed_s: float
    latencies_ns: list[int]
    error_samples: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Successful operations per second over the whole run."""
        return per_second(self.ops, self.elapsed_s)

    def percentiles(self) -> dict[str, float]:
        """Latency p50/p90/p99/max in milliseconds."""
        return percentiles(self.latencies_ns)


async def drive(
    op: Callable[[int, int], Awaitable[object]],
    *,
    clients: int,
    duration_s: float | None = None,
    count: int | None = None,
    warmup_s: float = 0.0,
) -> LoadReport:
    """Run `await op(client, seq)` from N concurrent clients for a duration or a total count.

    Each call's latency is recorded; an exception counts as an error (a few are kept as
    samples) and the client carries on. A warm-up phase, if asked for, is run and discarded.
    """
    if (duration_s is None) == (count is None):
        raise ValueError("give exactly one of duration_s or count")
    if clients < 1:
        raise ValueError("clients must be at least 1")
    if warmup_s > 0:
        await drive(op, clients=clients, duration_s=warmup_s)

    latencies: list[int] = []
    samples: list[str] = []
    errors = 0
    issued = 0
    deadline = now_ns() + int(duration_s * 1e9) if duration_s is not None else None

    def next_seq() -> int | None:
        nonlocal issued
        if count is not None and issued >= count:
            return None
        if deadline is not None and now_ns() >= deadline:
            return None
        issued += 1
        return issued - 1

    async def client(cid: int) -> None:
        nonlocal errors
        while (seq := next_seq()) is not None:
            start = now_ns()
            try:
                await op(cid, seq)
            except Exception as exc:
                errors += 1
                if len(samples) < 5:
                    samples.append(f"{type(exc).__name__}: {exc}")
            else:
                latencies.append(now_ns() - start)

    with Stopwatch() as sw:
        await asyncio.gather(*(client(c) for c in range(clients)))
    return LoadReport(
        clients=clients,
        ops=len(latencies),
        errors=errors,
        elapsed_s=sw.seconds,
        latencies_ns=latencies,
        error_samples=samples,
    )


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Figure:
    """One measured number with its unit."""

    value: float
    unit: str
    note: str = ""


@dataclass(frozen=True)
class Ratio:
    """figure / baseline figure, both measured in the same run."""

    value: float
    figure: str
    of: str


@dataclass(frozen=True)
class Target:
    """A goal for a figure or ratio; reported as pass/fail, never asserted."""

    name: str
    op: Literal[">=", "<="]
    threshold: float
    why: str = ""

    def check(self, value: float | None) -> bool:
        """Whether `value` meets the target (a missing value never does)."""
        if value is None or math.isnan(value):
            return False
        return value >= self.threshold if self.op == ">=" else value <= self.threshold


@dataclass
class Result:
    """A benchmark's outcome: parameters, figures, same-run baseline, ratios and targets."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    baseline: dict[str, Figure] = field(default_factory=dict)
    ratios: dict[str, Ratio] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    machine: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: float, unit: str, note: str = "") -> Figure:
        """Record a figure."""
        fig = Figure(value=float(value), unit=unit, note=note)
        self.figures[name] = fig
        return fig

    def add_latencies(self, prefix: str, samples_ns: Sequence[int]) -> None:
        """Record p50/p90/p99/max (ms) of a latency sample as `<prefix>_p50_ms` etc."""
        for key, value in percentiles(samples_ns).items():
            self.add(f"{prefix}_{key}_ms", value, "ms")

    def add_load(self, prefix: str, report: LoadReport, *, unit: str = "ops/s") -> None:
        """Record a LoadReport: throughput, latency percentiles and errors."""
        self.add(f"{prefix}_throughput", report.throughput, unit, f"{report.clients} clients")
        self.add_latencies(prefix, report.latencies_ns)
        self.add(f"{prefix}_errors", report.errors, "count")
        self.notes.extend(f"{prefix} error: {s}" for s in report.error_samples)

    def set_baseline(self, figures: dict[str, Figure]) -> None:
        """Use figures measured in this same run (e.g. `await ceiling(ctx)`) as the baseline."""
        self.baseline.update(figures)

    def add_ratio(self, name: str, *, figure: str, of: str) -> Ratio:
        """Record figures[figure] / baseline[of]."""
        num, den = self.figures[figure].value, self.baseline[of].value
        ratio = Ratio(value=num / den if den else math.nan, figure=figure, of=of)
        self.ratios[name] = ratio
        return ratio

    def add_target(
        self, name: str, op: Literal[">=", "<="], threshold: float, why: str = ""
    ) -> None:
        """Add a reported goal for a figure or ratio named `name`."""
        self.targets.append(Target(name=name, op=op, threshold=threshold, why=why))

    def value_of(self, name: str) -> float | None:
        """A figure's or ratio's value by name."""
        if name in self.figures:
            return self.figures[name].value
        if name in self.ratios:
            return self.ratios[name].value
        return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document written to tests/bench/results/<name>.json."""
        finished = self.finished_at or datetime.now(UTC)
        return {
            "name": self.name,
            "started_at": self.started_at.isoformat(),
            "finished_at": finished.isoformat(),
            "duration_s": round((finished - self.started_at).total_seconds(), 3),
            "git_commit": git_commit(),
            "machine": self.machine or machine_info(),
            "parameters": self.parameters,
            "figures": {k: asdict(v) for k, v in self.figures.items()},
            "baseline": {k: asdict(v) for k, v in self.baseline.items()},
            "ratios": {k: asdict(v) for k, v in self.ratios.items()},
            "targets": [
                {
                    **asdict(t),
                    "value": self.value_of(t.name),
                    "passed": t.check(self.value_of(t.name)),
                }
                for t in self.targets
            ],
            "notes": self.notes,
        }

    def write(self, results_dir: Path = RESULTS_DIR) -> Path:
        """Write the JSON result atomically; returns its path."""
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"{self.name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n")
        tmp.replace(path)
        return path

    def table(self) -> str:
        """A compact human-readable summary."""
        doc = self.to_dict()
        m = doc["machine"]
        commit = (doc["git_commit"] or {}).get("sha", "?")[:10]
        lines = [
            f"== {self.name}: {m['cpu_count']} cores, {m['memory_gib']} GiB, "
            f"Python {m['python']}, commit {commit}, {doc['duration_s']:.1f} s"
        ]
        width = max([len(k) for k in [*self.figures, *self.baseline, *self.ratios]] + [10])

        def rows(title: str, items: dict[str, Figure]) -> None:
            if items:
                lines.append(f"-- {title}")
                for k, f in items.items():
                    note = f"  ({f.note})" if f.note else ""
                    lines.append(f"  {k:<{width}} {fmt(f.value):>14} {f.unit:<9}{note}".rstrip())

        rows("figures", self.figures)
        rows("baseline (same run)", self.baseline)
        if self.ratios:
            lines.append("-- ratios")
            for k, r in self.ratios.items():
                lines.append(f"  {k:<{width}} {fmt(r.value):>14} x  ({r.figure} / {r.of})")
        if doc["targets"]:
            lines.append("-- targets (reported, not asserted)")
            for t in doc["targets"]:
                mark = "PASS" if t["passed"] else "FAIL"
                got = "missing" if t["value"] is None else fmt(t["value"])
                lines.append(f"  {mark} {t['name']} {t['op']} {fmt(t['threshold'])} (got {got})")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def fmt(value: float) -> str:
    """Human-friendly number: thousands separators for big ones, 3 significant digits else."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _json_default(obj: object) -> object:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def git_commit() -> dict[str, Any] | None:
    """HEAD's sha and whether the tracked tree differs from it."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"sha": sha, "dirty": bool(dirty)}


def machine_info() -> dict[str, Any]:
    """Cores, memory, Python and OS of this machine, plus its load right now."""
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        mem = 0
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "memory_bytes": mem,
        "memory_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


# ---------------------------------------------------------------------------------------------
# Context: the stack's endpoints and isolation helpers


@dataclass
class BenchContext:
    """What a benchmark gets: the stack's endpoints and helpers for fresh topics and databases."""

    kafka_bootstrap: str
    database_url: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    results_dir: Path = RESULTS_DIR
    loop: str = "asyncio"

    def unique(self, prefix: str) -> str:
        """A name nobody else on this shared stack is using."""
        return f"{prefix}-{self.run_id}-{uuid.uuid4().hex[:6]}"

    @asynccontextmanager
    async def fresh_topic(self, prefix: str, *, partitions: int = 3) -> AsyncIterator[str]:
        """Create a uniquely named topic for the benchmark, delete it afterwards."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        name = self.unique(prefix)
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.kafka_bootstrap, client_id="thrive-bench"
        )
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(name=name, num_partitions=partitions, replication_factor=1)]
            )
            yield name
        finally:
            try:
                await admin.delete_topics([name])
            finally:
                await admin.close()

    @asynccontextmanager
    async def fresh_database(self, prefix: str) -> AsyncIterator[str]:
        """Create an empty database for the benchmark, drop it afterwards; yields its URL."""
        import asyncpg

        name = re.sub(r"[^a-z0-9_]", "_", self.unique(prefix).lower())[:63]
        admin = await asyncpg.connect(self.database_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        parts = urlsplit(self.database_url)
        try:
            yield urlunsplit(parts._replace(path=f"/{name}"))
        finally:
            admin = await asyncpg.connect(self.database_url)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


# ---------------------------------------------------------------------------------------------
# The raw ceiling, shared by every benchmark in a run


@dataclass
class Measurement:
    """Figures plus the parameters and notes that explain them."""

    figures: dict[str, Figure]
    parameters: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


_ceiling: Measurement | None = None
_ceiling_lock: asyncio.Lock | None = None


async def ceiling_measurement(ctx: BenchContext) -> Measurement:
    """Measure this machine's raw pipeline ceiling once per process (see bench_ceiling)."""
    global _ceiling, _ceiling_lock
    if _ceiling is not None:
        return _ceiling
    if _ceiling_lock is None:
        _ceiling_lock = asyncio.Lock()
    async with _ceiling_lock:
        if _ceiling is None:
            from . import bench_ceiling

            _ceiling = await bench_ceiling.measure(ctx)
    return _ceiling


async def ceiling(ctx: BenchContext) -> dict[str, Figure]:
    """This run's raw ceiling figures, for other benchmarks' baselines and ratios."""
    return dict((await ceiling_measurement(ctx)).figures)
