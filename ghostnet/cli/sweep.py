"""``ghostnet sweep``: many training runs from a sweep file, on Dask (docs/sweeps.md)."""
from __future__ import annotations

from pathlib import Path

from ghostnet.cli._common import add_parser

SUMMARY = "run a sweep of training runs (seeds, learners, beta, ...) on Dask, resumably"


def add(sub) -> None:
    p = add_parser(
        sub, "sweep", SUMMARY,
        "Runs every point of a sweep file (a base training config and the values to vary:\n"
        "[grid.model], [grid.train], [grid] seed, [[points]]; see docs/sweeps.md) in its own run\n"
        "directory under --out, on a local Dask cluster of single-threaded worker processes, a\n"
        "running Dask scheduler (--scheduler) or the batch scheduler of the file's [cluster]. Every\n"
        "point is validated before anything runs; a rerun skips finished points and resumes\n"
        "interrupted ones. Writes report.csv and report.md (mean +- sd over seeds) at the end.",
        "ghostnet sweep experiments/sweeps/table_784-500-10.toml --dry-run\n"
        "ghostnet sweep my_sweep.toml --out runs/my_sweep --workers 2\n"
        "ghostnet sweep --report runs/my_sweep\n"
        "ghostnet sweep --report runs/my_sweep runs/my_sweep_more_seeds --out runs/combined")
    p.add_argument("sweep", nargs="?", help="sweep file (TOML)")
    p.add_argument("--out", help="sweep directory; None: runs/<sweep file name>")
    p.add_argument("--workers", type=int,
                   help="worker processes of the local cluster; None: one per core; 0: run "
                        "the points one after another in this process, without Dask")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="submit to a running Dask scheduler, e.g. tcp://HOST:8786, instead")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS/Numba/torch threads of each point (0: every core of its machine)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="set a field in every point, e.g. train.epochs=2 or seed=0 (repeatable)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the points, their run directories and states; run nothing")
    p.add_argument("--report", metavar="DIR", nargs="+",
                   help="only write DIR/report.csv and report.md from a sweep directory; with "
                        "--out, one report over the points of every DIR (more seeds of the same "
                        "points, say) in OUT instead")
    p.add_argument("--versus", metavar="FIELD=VALUE", action="append", default=[],
                   help="with --report: each point's test error less that of the point with "
                        "FIELD=VALUE and the same seeds, e.g. name=backprop (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from ghostnet.learning import sweep as sw

    if args.report:
        if args.sweep:
            raise sw.SweepError("give a sweep file or --report DIR, not both")
        if args.out:
            dest = Path(args.out)
            rows = sw.combine_reports(args.report, dest, versus=args.versus)
        elif len(args.report) == 1:
            dest = Path(args.report[0])
            rows = sw.write_report(dest, versus=args.versus)
        else:
            raise sw.SweepError("--report with several sweep directories needs --out DIR "
                                "for the combined report")
        print((dest / "report.md").read_text(), end="")
        print(f"{len(rows)} points; {dest / 'report.csv'}")
        return 0
    if not args.sweep:
        raise sw.SweepError("give a sweep file (or --report DIR)")
    if args.versus:
        raise sw.SweepError("--versus goes with --report DIR")
    sweep = sw.load_sweep(args.sweep, sw.parse_overrides(args.set), threads=args.threads)
    out = Path(args.out or Path("runs") / Path(args.sweep).stem)
    if args.dry_run:
        sw._check_directory(sweep, out)
        width = max(len(p.dirname) for p in sweep.points)
        print(f"{len(sweep.points)} points of {sweep.path} (base {sweep.base_path}) in {out}/:")
        for p in sweep.points:
            state = sw._point_status(out / p.dirname) or "to run"
            print(f"{p.index + 1:4d}  {p.dirname:<{width}}  {state}")
        return 0
    try:
        results = sw.run_sweep(sweep, out, workers=args.workers, scheduler=args.scheduler,
                               threads=args.threads, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"\ninterrupted: rerun the same command to resume ({out})")
        return 130
    print((out / "report.md").read_text(), end="")
    failed = sum(r["status"] == "failed" for r in results)
    print(f"{len(results) - failed} of {len(results)} points finished; report in {out}/report.md")
    return 1 if failed else 0
