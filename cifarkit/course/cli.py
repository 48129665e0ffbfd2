"""The `cifarkit` command line.

    python -m cifarkit data info                      # where the data lives and what is there
    python -m cifarkit data download                  # fetch and md5-check CIFAR-10
    python -m cifarkit data prepare --from DIR [--no-verify]
    python -m cifarkit run [--profile quick|full] [--only 01,05] [--out DIR] [-p NAME=VALUE ...]
                           [--workers N | --scheduler ADDRESS] [--time-limit SECONDS]
    python -m cifarkit run -p seed=0,1,2 -p data_source=synthetic,cifar10-unverified --workers 2   # a sweep
    python -m cifarkit slides RUN_DIR [--out slides]
    python -m cifarkit book RUN_DIR [--out DIR]      # the run as a static website (cifarkit.course.book)

Errors are one line on stderr with a non-zero exit status (no traceback): bad input raises
ValueError/OSError with a message naming the argument or the file, and `main` prints it on one line.
`-p` values are checked against the parameter schema (`cifarkit.course.params`) before any kernel starts; a
value with commas (outside brackets and quotes) is a sweep, one run folder per combination
(`cifarkit.course.sweep`). `--workers` / `--scheduler` run the notebooks on Dask (`cifarkit.course.engine`;
docs/cluster.md); without them, and without a sweep, `run` is the one-process runner it always was.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .params import SCHEMA


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not a usage dump
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cifarkit", description="CIFAR-10 course kit: data, headless notebook runs, slides.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = sub.add_parser("data", help="inspect, download or prepare CIFAR-10")
    data_sub = data.add_subparsers(dest="action", required=True, parser_class=_Parser)
    for p in (data_sub.add_parser("info", help="show the data root and what it holds"),
              data_sub.add_parser("download", help="download and md5-check CIFAR-10"),
              data_sub.add_parser("prepare", help="build the tensor cache from an existing copy")):
        p.add_argument("--root", help="data directory (default: $CIFARKIT_DATA or ~/.cache/cifarkit)")
    prepare = data_sub.choices["prepare"]
    prepare.add_argument("--from", dest="source", required=True,
                         help="folder holding cifar-10-batches-py/ (or that folder itself)")
    prepare.add_argument("--no-verify", action="store_true",
                         help="skip md5 checks (for a trusted but re-packed copy); the cache is marked unverified")

    run = sub.add_parser("run", help="execute the course notebooks headless with papermill")
    run.add_argument("--profile", choices=("quick", "full"), default="quick")
    run.add_argument("--only", help="comma-separated notebook prefixes, e.g. 01,05")
    run.add_argument("--out", help="run directory (default: runs/<timestamp>-<profile>/)")
    run.add_argument("--notebooks", default=None, help="folder of notebooks (default: the kit's notebooks/)")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                     help="set a notebook parameter (repeatable); checked against the parameter schema "
                          "(cifarkit/course/params.py) before any notebook runs: "
                          + "; ".join(f"{n}: {spec.accepts}" for n, spec in SCHEMA.items()
                                      if n != "profile").replace("%", "%%")
                          + ". A value with commas is a sweep, one run per combination: -p seed=0,1,2 "
                            "(a list parameter brackets each list: seeds=[0,1],[2])")
    engine = run.add_mutually_exclusive_group()
    engine.add_argument("--workers", type=_positive(int, "a whole number >= 1"), metavar="N",
                        help="run the notebooks on a Dask LocalCluster of N worker processes on this machine, "
                             "each notebook with its share of the cores (independent notebooks in parallel)")
    engine.add_argument("--scheduler", metavar="ADDRESS",
                        help="run them on the workers of a running Dask scheduler, e.g. tcp://10.0.0.5:8786; "
                             "the run folder must be on a file system every worker mounts (docs/cluster.md)")
    run.add_argument("--time-limit", type=_positive(float, "a number of seconds > 0"), metavar="SECONDS",
                     help="with --workers/--scheduler: stop a notebook that runs longer and report it failed "
                          "(default: 2 hours with --profile quick, 72 with full)")

    slides = sub.add_parser("slides", help="build reveal.js slide decks from an executed run")
    slides.add_argument("run_dir")
    slides.add_argument("--out", default="slides")

    book = sub.add_parser("book", help="build a static website of an executed run (no re-execution)")
    book.add_argument("run_dir", metavar="RUN_DIR")
    book.add_argument("--out", help="site folder (default: build/book/<run name>/)")
    return parser


def _positive(kind, what: str):
    """An argparse type: `kind` (int or float) of `text`, which must be > 0 and finite."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


def _data_command(args) -> int:
    from .. import data

    if args.action == "info":
        status = data.cifar10_status(args.root)
        print(f"data root: {status['root']}")
        print(f"release files: {status['release_dir'] or 'none'}")
        for name, size in status["caches"].items():
            print(f"cache: {name} ({size / 1e6:.0f} MB)")
        if status["verified_cache"]:
            print("load_data('auto') will use: CIFAR-10 (verified cache)")
        elif status["unverified_cache"]:
            print("load_data('auto') will use: CIFAR-10 (checksums not verified)")
        elif status["release_dir"]:
            print("load_data('auto') will md5-check the release files and use them if they pass")
        else:
            print("load_data('auto') will use: the SYNTHETIC stand-in (no CIFAR-10 copy found)")
        return 0
    if args.action == "download":
        for train in (True, False):
            x, _ = data.load_cifar10(args.root, train=train, download=True, verify=True)
            print(f"{'train' if train else 'test'}: {len(x)} images, verified")
        return 0
    source = Path(args.source)
    if not source.exists():
        raise FileNotFoundError(f"--from {source}: no such directory")
    status = data.prepare_cifar10(source, args.root, verify=not args.no_verify)
    print(f"prepared {', '.join(status['caches'])} in {status['root']}"
          f"{' (checksums NOT verified)' if args.no_verify else ''}")
    return 0


def main(argv=None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "data":
            return _data_command(args)
        if args.command == "run":
            from .runner import main_run
            return main_run(args)
        if args.command == "slides":
            from .slides import build_slides
            paths = build_slides(args.run_dir, args.out)
            print("\n".join(str(p) for p in paths))
            return 0
        if args.command == "book":
            from .book import build_book
            book = build_book(args.run_dir, args.out)
            for ref in book.external:
                sys.stderr.write(f"cifarkit: warning: loads a file from outside the site: {ref}\n")
            print(book.index)
            return 0
    except KeyboardInterrupt:
        sys.stderr.write("cifarkit: interrupted\n")
        return 130
    except (OSError, ValueError, RuntimeError) as e:
        sys.stderr.write(f"cifarkit: error: {one_line(e)}\n")
        return 1
    return 2


def one_line(exc: BaseException) -> str:
    """The exception's message on a single line (whitespace runs, newlines included, collapsed)."""
    return " ".join(str(exc).split()) or type(exc).__name__
