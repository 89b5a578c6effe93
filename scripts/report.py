"""An experiment report a marketer can send: one self-contained HTML file, or its charts as PNGs.

    croupier-report --experiment demo --out report.html
    croupier-report --experiment demo --format png --out charts/

The report reads the running stack's Redis (CROUPIER_REDIS_URL, else the local stack's,
``run/stack.json``): the experiment, its time buckets, segments and event history. At the
top, what a manager asks: the winner so far and its lift over control, the conversions
gained or lost against an even split over the same visitors, the visitors and the dates;
then each chart with a sentence that says what it shows (docs/reports.md). The HTML file
carries its images inside itself and loads nothing from elsewhere.

Exit codes: 0 written; 1 no such experiment, no data yet, or Redis unreachable; 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from croupier.router.settings import Settings, SettingsError
from croupier.scripts.ope import default_archive_dir, default_redis_url
from croupier.scripts.progress import Progress
from croupier.scripts.report_data import ReportError, gather

TEMPLATES = Path(__file__).with_name("templates")


def render_html(report, made: datetime) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from croupier.scripts import charts

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    figures = [{"key": c.key, "title": c.title, "caption": c.caption, "src": charts.data_uri(c.figure)}
               for c in report.charts]
    return env.get_template("report.html").render(s=report.summary, charts=figures, events=report.events,
                                                  missing=report.missing,
                                                  made=made.strftime("%Y-%m-%d %H:%M UTC"))


def write_pngs(report, out: Path) -> list[Path]:
    from croupier.scripts import charts

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for n, chart in enumerate(report.charts, 1):
        path = out / f"{n:02d}-{chart.key}.png"
        path.write_bytes(charts.png(chart.figure))
        written.append(path)
    return written


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="croupier-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="demo", help="the experiment's id (default: demo)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the HTML file, or the folder for --format png (default: <experiment>-report.html "
                             "or <experiment>-report/)")
    parser.add_argument("--format", choices=("html", "png"), default="html")
    parser.add_argument("--redis-url", default=None, help="default: CROUPIER_REDIS_URL, else the local stack's")
    parser.add_argument("--archive", type=Path, default=None,
                        help="the Parquet archive (croupier-archive) read before the stream: default "
                             "CROUPIER_ARCHIVE_DIR, else the local stack's run/archive, when it exists")
    parser.add_argument("--no-archive", action="store_true", help="read the stream alone")
    parser.add_argument("--seed", type=int, default=None, help="seed of the posterior and strategy draws")
    parser.add_argument("--quiet", action="store_true", help="no progress on standard error")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = Path(f"{args.experiment}-report" + (".html" if args.format == "html" else ""))
    if args.format == "png" and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: --format png writes a folder of charts, and this is a file")
    if args.format == "html" and args.out.is_dir():
        parser.error(f"--out {args.out}: is a folder; give the HTML file's name (or use --format png)")
    if args.archive is not None and not args.archive.is_dir():
        parser.error(f"--archive {args.archive}: no such directory")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = Progress(quiet=args.quiet)
    redis_url = args.redis_url or default_redis_url()
    try:
        settings = Settings(redis_url=redis_url)
        archive = None if args.no_archive else args.archive or default_archive_dir()
        gathered = asyncio.run(gather(settings, args.experiment, progress,
                                      archive_dir=archive if archive is not None and archive.is_dir() else None))
        progress.step("computing the estimates and drawing the charts")
        from croupier.scripts.report_content import build  # matplotlib only once there is something to draw

        report = build(gathered, default_bucket_seconds=settings.bucket_seconds,
                       rng=np.random.default_rng(args.seed))
        if args.format == "png":
            progress.step(f"writing {len(report.charts)} charts to {args.out}/")
            written = write_pngs(report, args.out)
            for path in written:
                print(path)
        else:
            progress.step(f"writing {args.out}")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(render_html(report, datetime.fromtimestamp(time.time(), tz=timezone.utc)))
            print(args.out)
        for section, why in report.missing:
            progress.note(f"{section}: {why}")
    except ReportError as exc:
        print(f"croupier-report: {exc}", file=sys.stderr)
        return 1
    except (SettingsError, OSError) as exc:
        print(f"croupier-report: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from croupier.router.store import StoreUnavailable
        if isinstance(exc, StoreUnavailable):
            print(f"croupier-report: Redis is unreachable at {redis_url} ({exc}); is the stack running? "
                  f"(--redis-url or CROUPIER_REDIS_URL)", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
