"""Run Thrive's benchmarks against the real local stack.

    uv run python -m tests.bench.run            # every tests/bench/bench_*.py
    uv run python -m tests.bench.run ceiling    # bench_ceiling.py only (make bench BENCH=ceiling)
    uv run python -m tests.bench.run --list
    uv run python tests/bench/run.py [NAME]     # the same, as a script (what the Makefile runs)

Run from the repository root. The stack comes from `thrive_shared.devstack.ensure_up()`
(KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL override it). Each benchmark prints a table and writes
tests/bench/results/<name>.json. Exit status: 0 when every benchmark ran (whatever its targets
say), 1 when one crashed, 2 for an unknown benchmark name.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

if __package__ in (None, ""):  # run as a script: make the package importable, then rerun as one
    import runpy

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    runpy.run_module("tests.bench.run", run_name="__main__", alter_sys=True)
    sys.exit(0)  # not reached: the module exits itself

from .harness import BENCH_DIR, RESULTS_DIR, BenchContext, Result, machine_info

BENCH_TIMEOUT_S = float(os.environ.get("BENCH_TIMEOUT_S", "900"))


def discover() -> dict[str, Path]:
    """Benchmark name -> file, for every tests/bench/bench_<name>.py."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(BENCH_DIR.glob("bench_*.py"))}


def load(name: str) -> ModuleType:
    """Import bench_<name> and check it has `async def main(ctx) -> Result`."""
    module = importlib.import_module(f"{__package__}.bench_{name}")
    if not asyncio.iscoroutinefunction(getattr(module, "main", None)):
        raise TypeError(f"bench_{name}.py has no `async def main(ctx) -> Result`")
    return module


def endpoints() -> tuple[str, str]:
    """(kafka bootstrap, database url) of the running stack, starting it if needed."""
    from thrive_shared.devstack import ensure_up

    ep = ensure_up()
    return ep.kafka_bootstrap, ep.database_url


async def run_one(name: str, ctx: BenchContext) -> Result:
    """Run one benchmark, stamp it with machine and timing info, write and print it."""
    machine = machine_info()
    started = datetime.now(UTC)
    async with asyncio.timeout(BENCH_TIMEOUT_S):
        result = await load(name).main(ctx)
    if not isinstance(result, Result):
        raise TypeError(f"bench_{name}.main returned {type(result).__name__}, not a Result")
    result.name = name  # the file is named after the benchmark, whatever it called itself
    result.started_at = started
    result.finished_at = datetime.now(UTC)
    machine["loadavg_1m_end"] = machine_info()["loadavg_1m"]
    result.machine = machine
    path = result.write(ctx.results_dir)
    print(result.table())
    print(f"  -> {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return result


async def run_all(names: list[str], ctx: BenchContext) -> list[str]:
    """Run benchmarks in order; returns the names of those that crashed."""
    crashed = []
    for name in names:
        print(f"\n>> bench {name} (run {ctx.run_id})", flush=True)
        try:
            await run_one(name, ctx)
        except Exception:
            traceback.print_exc()
            print(f"!! bench {name} crashed", file=sys.stderr, flush=True)
            crashed.append(name)
    return crashed


def _loop_factory(kind: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    # Services run under uvicorn[standard], i.e. on uvloop: measure on the same loop by default.
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", None


def cli(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all, or $BENCH)")
    parser.add_argument("--list", action="store_true", help="list benchmarks and exit")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto")
    args = parser.parse_args(argv)

    available = discover()
    if args.list:
        print("\n".join(available))
        return 0
    names: list[str] = args.names or os.environ.get("BENCH", "").split() or list(available)
    names = [n.removeprefix("bench_").removesuffix(".py") for n in names]
    unknown = [n for n in names if n not in available]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(available)}",
            file=sys.stderr,
        )
        return 2

    kafka, database = endpoints()
    loop_name, factory = _loop_factory(args.loop)
    ctx = BenchContext(
        kafka_bootstrap=kafka, database_url=database, results_dir=args.results_dir, loop=loop_name
    )
    with asyncio.Runner(loop_factory=factory) as runner:
        crashed = runner.run(run_all(names, ctx))
    if crashed:
        print(f"\ncrashed: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
