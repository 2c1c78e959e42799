"""``python -m bench``: measure callbridge on this machine; a table, then one JSON line.

Exit status: 0 when every target is met, 1 when one is missed, 2 when something could not be
measured (a service missing, a worker that failed its requests).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

from bench import figures, machine
from bench.rig import POSTGRES_URL, BenchError, Rig
from worker import __version__

GROUPS = ("throughput", "latency", "big", "idle")
UNIT_DECIMALS = {"msg/s": 0, "req/s": 1, "×": 2, "s": 2, "MB": 0, "ms": 1}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = figures.QUICK if args.quick else figures.Sizes()
    runs = args.runs or (1 if args.quick else 3)
    measured: list[dict[str, float]] = []
    started = time.monotonic()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="callbridge-bench-") as workdir,
            Rig(pathlib.Path(workdir), profile_dir=args.profile) as rig,
        ):
            about = machine.describe(rig.broker_url, POSTGRES_URL)
            for run in range(1, runs + 1):
                print(f"run {run}/{runs} ...", file=sys.stderr, flush=True)
                measured.append(figures.measure_run(rig, sizes, args.only))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    result = figures.medians(measured)
    print(_table(result, measured, about, runs, time.monotonic() - started))
    print(json.dumps(_json_line(result, measured, about, args.quick), ensure_ascii=False))
    missed = [f.key for f in figures.FIGURES if f.key in result and f.met(result[f.key]) is False]
    return 1 if missed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure callbridge against the real RabbitMQ and PostgreSQL on this "
        "machine, with the sandbox as the platform.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller bursts and one run: a smoke test (~1 min)"
    )
    parser.add_argument("--runs", type=int, help="runs to take the median of (default 3)")
    parser.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        default=[],
        help="measure only this group of figures (repeatable)",
    )
    parser.add_argument(
        "--profile",
        type=pathlib.Path,
        metavar="DIR",
        help="record every worker with py-spy into DIR (collapsed stacks; slows the figures)",
    )
    return parser


def _table(
    result: dict[str, float],
    measured: list[dict[str, float]],
    about: dict,
    runs: int,
    seconds: float,
) -> str:
    lines = [
        f"callbridge {__version__} bench: median of {runs} run(s), {seconds:.0f} s",
        f"on {machine.summary(about)}",
        "",
        f"{'figure':<62} {'median':>13}  {'target':>9}  {'met':<4} runs",
    ]
    for figure in figures.FIGURES:
        if figure.key not in result:
            continue
        value = _number(result[figure.key], figure.unit)
        target = "" if figure.target is None else f"{figure.sign} {figure.target:g}"
        met = {True: "yes", False: "NO", None: ""}[figure.met(result[figure.key])]
        each = ", ".join(_number(run[figure.key], figure.unit, with_unit=False) for run in measured)
        lines.append(f"{figure.title:<62} {value:>13}  {target:>9}  {met:<4} {each}")
    return "\n".join(lines)


def _number(value: float, unit: str, *, with_unit: bool = True) -> str:
    text = f"{value:,.{UNIT_DECIMALS[unit]}f}"
    return f"{text} {unit}" if with_unit else text


def _json_line(
    result: dict[str, float], measured: list[dict[str, float]], about: dict, quick: bool
) -> dict:
    return {
        "bench": "callbridge",
        "version": __version__,
        "quick": quick,
        "runs": len(measured),
        "machine": about,
        "figures": {key: round(value, 3) for key, value in result.items()},
        "per_run": {key: [round(run[key], 3) for run in measured] for key in result},
        "targets": {
            f.key: {"target": f.target, "at_most": f.at_most, "met": f.met(result[f.key])}
            for f in figures.FIGURES
            if f.key in result and f.target is not None
        },
    }


if __name__ == "__main__":
    sys.exit(main())
