"""`depthart` command line: one thin module per subcommand.

Each module in COMMANDS defines `add_parser(subparsers)` (registering its subcommand and setting
`func`) and keeps its logic in importable library code. Modules import heavy dependencies inside
their `run` function so `depthart --help` stays fast. Other packages extend a subcommand through
an entry-point group, never through an import from here: `depthart replay --live` is
`depthart_ros.replay.cli` in the `depthart.replay` group (see `depthart_core.cli.replay`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterator

from depthart_core.signals import interrupt_on_termination

COMMANDS = (
    "predict",
    "info",
    "synth",
    "train",
    "finetune",
    "eval",
    "export",
    "bench",
    "parity",
    "synth_bag",
    "replay",
    "convert",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depthart",
        description="DepthART monocular depth: predict, train, evaluate, export, bench, replay.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"depthart_core.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"depthart_core.cli.{name}":
                continue  # subcommand not shipped in this build
            raise
        module.add_parser(sub)
    return parser


# optional dependencies -> the setup.py extra that installs them
EXTRA_OF = {
    "h5py": "train",
    "matplotlib": "train",
    "scipy": "train",
    "skimage": "train",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "onnxscript": "onnx",
    "rosbags": "ros",
    "rclpy": "ros",
    "tensorrt": "tensorrt",
    "transformers": "bench",
}


def missing_dependency(exc: ImportError) -> str:
    """The import error, and for a module of an optional dependency the extra to install."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None or top not in str(exc):
        return str(exc)
    return f"{exc} (an optional dependency: pip install 'depthart_ros[{extra}]')"


# the commands that run data-parallel under torchrun (`training.distributed`)
DISTRIBUTED_COMMANDS = ("train", "finetune")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        # SIGTERM / SIGHUP (timeout, systemd, a CI cancel, a closed terminal) stop a command as
        # Ctrl-C does: finished work kept, half-written files removed, one line, status 130
        # (a handler of a program calling main() as a library keeps its signal); not on a
        # torchrun rank of the commands torchrun runs, which torchrun's SIGTERM must end even
        # inside a collective, as before (a WORLD_SIZE left in the shell changes no other one)
        ranked = args.command in DISTRIBUTED_COMMANDS and os.environ.get(
            "WORLD_SIZE", "1"
        ).strip() not in ("", "0", "1")
        stopping = contextlib.nullcontext() if ranked else interrupt_on_termination(True)
        with stopping, _printable_names():
            return int(args.func(args) or 0)
    # FloatingPointError: training stopped on a non-finite loss (the message names the kept
    # checkpoint), a one-line error like any other bad input, not a traceback
    except (ValueError, FileNotFoundError, TypeError, RuntimeError, FloatingPointError) as exc:
        print(f"depthart {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:  # an optional dependency this command needs: one line, its extra
        print(f"depthart {args.command}: error: {missing_dependency(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `depthart info CKPT | head`: the reader has all it wanted
        _silence_stdout()
        return 141  # 128 + SIGPIPE, as a shell tool ends
    # a full or read-only disk, no permission, an --out through a file: one line naming the path
    # and the cause (fileutil.WriteError from every writer; other OSErrors carry their filename)
    except OSError as exc:
        from depthart_core.fileutil import describe_os_error

        print(f"depthart {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except MemoryError as exc:  # an --size or --eval-size far beyond this machine
        print(f"depthart {args.command}: error: out of memory ({exc})", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C, or "stopped by SIGTERM" (interrupt_on_termination)
        print(f"depthart {args.command}: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _printable_names() -> Iterator[None]:
    """A file name that is not valid UTF-8 (Latin-1 from an old archive) prints escaped, not as
    an UnicodeEncodeError that ended a batch midway, on a stream that was strict (a UTF-8 locale
    prints it as its own bytes already: surrogateescape, left alone); put back after."""
    strict = [
        s
        for s in (sys.stdout, sys.stderr)
        if getattr(s, "errors", "") == "strict" and hasattr(s, "reconfigure")
    ]
    for stream in strict:
        stream.reconfigure(errors="backslashreplace")
    try:
        yield
    finally:
        for stream in strict:
            stream.reconfigure(errors="strict")


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of a closed pipe does not
    print "Exception ignored ... BrokenPipeError" (Python docs, "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
