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


def missing_dependency(exc: ImportError, command: str = "this command") -> str:
    """The import error, and for a module of an optional dependency the extra to install; for
    torch, not optional but left out of an install made for ONNX Runtime alone, that `command`
    needs it (the errors that already say so, the backends', as they are)."""
    top = (exc.name or "").split(".")[0]
    if top == "torch" and isinstance(exc, ModuleNotFoundError):
        if "needs PyTorch" in str(exc):
            return str(exc)
        return f"{exc}: {command} needs PyTorch (pip install torch; see README's install section)"
    extra = EXTRA_OF.get(top)
    if extra is None or top not in str(exc):
        return str(exc)
    return f"{exc} (an optional dependency: pip install 'depthart_ros[{extra}]')"


# the commands that run data-parallel under torchrun (`training.distributed`)
DISTRIBUTED_COMMANDS = ("train", "finetune")


def main(argv: list[str] | None = None) -> int:
    _open_missing_streams()
    with _StdoutWatch() as stdout:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, a usage error: their text flushed here as well
            if exc.code is None or isinstance(exc.code, int):
                exc.code = _finish("depthart", exc.code or 0, stdout)
            raise
        except OSError as exc:
            # Python 3.10's argparse lets out the failed write of its text, where 3.11 and later
            # swallow it and exit as they would have: --help on stdout (0; the watch has the
            # error), a usage error on stderr (2)
            raise SystemExit(_finish("depthart", 0 if exc is stdout.error else 2, stdout)) from None
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
        )
        if not getattr(args, "func", None):
            parser.print_help()
            return _finish("depthart", 2, stdout)
        return _finish(f"depthart {args.command}", _run(args, stdout), stdout)


class _StdoutWatch:
    """Notes the OSError of a failed write to sys.stdout where it happens: under PYTHONUNBUFFERED
    (Docker, CI, systemd) nothing is left in a buffer for `_finish`'s flush to fail on, argparse
    swallows the error of its --help text, and an OSError without a file name is not otherwise
    told apart from another one. The stream's `write` is wrapped by an attribute of its own
    (print, argparse and writelines call it); when main ends the stream gets back exactly the
    `write` attribute it had (a caller's own tee, an outer main's watch), or none; a stream that
    takes no attribute is not watched."""

    _NONE = object()  # the stream had no `write` attribute of its own

    def __init__(self) -> None:
        self.error: OSError | None = None
        self.told = False  # the error was reported as standard output's
        self._stream: object | None = None
        self._own: object = self._NONE
        self._watched: object | None = None

    def __enter__(self) -> _StdoutWatch:
        stream, write = sys.stdout, sys.stdout.write

        def watched(text: str) -> int:
            try:
                return write(text)
            except OSError as exc:
                self.error = exc
                raise

        own = getattr(stream, "__dict__", {}).get("write", self._NONE)
        with contextlib.suppress(AttributeError):
            stream.write = watched
            self._stream, self._own, self._watched = stream, own, watched
        return self

    def __exit__(self, *_exc: object) -> None:
        stream = self._stream
        if stream is None or getattr(stream, "__dict__", {}).get("write") is not self._watched:
            return  # not ours any more: whoever replaced it keeps it
        with contextlib.suppress(AttributeError):
            if self._own is self._NONE:
                del stream.write
            else:
                stream.write = self._own

    @property
    def watching(self) -> bool:
        """Whether stdout's writes are watched (its stream took the attribute)."""
        return self._stream is not None

    def failed(self, exc: OSError) -> bool:
        """Whether `exc` is standard output's (a full disk under `> file`): then stdout is
        silenced, so that the exit flush does not fail a second time."""
        if exc.filename is not None:
            return False
        if exc is self.error:
            _silence(sys.stdout)
            self.told = True
            return True
        return _stdout_fails()


def _run(args: argparse.Namespace, stdout: _StdoutWatch) -> int:
    """The subcommand, its errors one line each (no traceback) and an exit status."""
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
        why = missing_dependency(exc, f"depthart {args.command}")
        print(f"depthart {args.command}: error: {why}", file=sys.stderr)
        return 1
    except BrokenPipeError as exc:  # `depthart info CKPT | head`: the reader has all it wanted
        if stdout.watching and exc is not stdout.error and not _stdout_fails():
            # another pipe's (a child process's, a worker's): an error, not a reader that left
            print(f"depthart {args.command}: error: {exc}", file=sys.stderr)
            return 1
        _silence(sys.stdout)
        return 141  # 128 + SIGPIPE, as a shell tool ends
    # a full or read-only disk, no permission, an --out through a file: one line naming the path
    # and the cause (fileutil.WriteError from every writer; other OSErrors carry their filename)
    except OSError as exc:
        from depthart_core.fileutil import describe_os_error

        where = "standard output: " if stdout.failed(exc) else ""
        print(f"depthart {args.command}: error: {where}{describe_os_error(exc)}", file=sys.stderr)
        return 1
    except MemoryError as exc:  # an --size or --eval-size far beyond this machine
        print(f"depthart {args.command}: error: out of memory ({exc})", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C, or "stopped by SIGTERM" (interrupt_on_termination)
        print(f"depthart {args.command}: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130


def _finish(who: str, status: int, stdout: _StdoutWatch) -> int:
    """`status`, after flushing stdout and stderr while main can still act on a failure: a pipe
    or a file is block-buffered, so `depthart info | true` or `> /dev/full` failed only in the
    interpreter's exit flush, which printed "Exception ignored ... BrokenPipeError" and ended
    with status 120; unbuffered, a write that failed and was swallowed (argparse's --help) is
    the watch's. A closed pipe ends quietly with 141 (128 + SIGPIPE, as a shell tool ends), a
    full disk with one line and status 1; an error status already set is kept."""
    try:
        if stdout.error is not None and not stdout.told:
            stdout.told = True
            raise stdout.error
        sys.stdout.flush()
    except BrokenPipeError:
        _silence(sys.stdout)
        status = status or 141
    except OSError as exc:
        from depthart_core.fileutil import describe_os_error

        _silence(sys.stdout)
        print(f"{who}: error: standard output: {describe_os_error(exc)}", file=sys.stderr)
        status = status or 1
    try:
        sys.stderr.flush()
    except OSError:  # nowhere left to say it
        _silence(sys.stderr)
    return status


def _stdout_fails() -> bool:
    """Whether stdout cannot take its output (a full disk under `> file`): then silenced, so
    that the exit flush does not fail a second time."""
    try:
        sys.stdout.flush()
    except OSError:
        _silence(sys.stdout)
        return True
    return False


def _open_missing_streams() -> None:
    """A closed stdout or stderr (`2>&-`: Python makes it None) becomes /dev/null, so the work
    is done and only its messages are lost (tqdm and print(file=sys.stderr) raised
    AttributeError and the command stopped with nothing written). A closed descriptor 1 or 2 is
    taken by /dev/null too, so that no file opened later gets it (and a C library's messages)."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        if getattr(sys, name) is not None:
            continue
        null = os.open(os.devnull, os.O_WRONLY)
        if null != fd:
            try:
                os.fstat(fd)
            except OSError:  # closed: /dev/null takes its number
                os.dup2(null, fd)
                os.close(null)
                null = fd
        setattr(sys, name, open(null, "w", errors="replace"))  # kept for the process


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


def _silence(stream) -> None:
    """Point `stream`'s descriptor at /dev/null, so that the interpreter's final flush of a
    closed pipe or a full disk does not print "Exception ignored ... BrokenPipeError" (Python
    docs, "Note on SIGPIPE"); a stream without a descriptor (a test's capture) is left alone."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both of the first
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
