"""The ``namemodels`` command. Each subcommand lives in ``namemodels/commands/<name>.py`` and
exposes ``register(subparsers)``; handlers import torch lazily so that predictions start fast."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys
from typing import Any, NoReturn

from . import __version__
from .errors import UsageError

# Modules of the [train] extra: a command that needs one says how to install it. (OpenVINO and tract
# are not here: `export --verify` skips a runtime that is not installed and says so.)
TRAIN_EXTRA = {"torch", "triton", "onnx", "sklearn", "matplotlib", "tqdm", "safetensors"}
COMMANDS = ["predict", "train", "cv", "evaluate", "data", "bench", "study", "export", "web"]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``namemodels train: error: --hidden must be at least 1, got 0
    (see namemodels train --help)`` and exit code 2, as for every other bad input. Subcommand parsers
    inherit the class, and with it ``allow_abbrev=False``: an option must be spelt out (``--fold 5`` is an
    error in ``cv``, never taken as ``--folds 5``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument (\S+?)(?:/\S+)?: (must be .*)$", r"\1 \2", message)  # from namemodels.options
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="namemodels",
        description="Character-level recurrent models for names: predict the language of a surname or the sex "
        "of a first name, generate names, train, evaluate, export, benchmark and study the cells.",
        epilog="Run `namemodels COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"namemodels {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"namemodels.commands.{name}").register(sub)
    return parser


DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _flush_stdout() -> None:
    """Flush standard output; a failure is raised as an OSError naming it."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, "standard output") from None


def _drop_stdout() -> None:
    """If standard output still cannot be flushed, point it at os.devnull, so that the interpreter's
    own flush at exit does not fail again with a traceback."""
    try:
        sys.stdout.flush()
    except OSError:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, sys.stdout.fileno())
            os.close(null)
        except (OSError, ValueError):
            pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed: return its code
        return exc.code if isinstance(exc.code, int) else 2
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        _flush_stdout()  # a full disk under standard output fails here (reported below), not at exit
        return code
    except (UsageError, FileNotFoundError) as exc:
        print(f"namemodels {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in TRAIN_EXTRA:
            print(
                f"namemodels {args.command}: error: this command needs {exc.name}, which the base install "
                "leaves out (it runs predict, gender and generate only): pip install 'namemodels[train]'",
                file=sys.stderr,
            )
            return 2
        raise
    except BrokenPipeError:  # e.g. `namemodels data stats ... | head`
        sys.stderr.close()
        return 0
    except OSError as exc:  # a full disk (`> /dev/full`): one line, exit 2
        if exc.errno not in DISK_FULL:
            raise
        _drop_stdout()
        # predict, gender and generate name their --output file themselves: anything else is standard output
        where = exc.filename or (
            "standard output" if args.command in ("predict", "gender", "generate") else "its output"
        )
        print(
            f"namemodels {args.command}: error: cannot write {where}: {exc.strerror}; "
            "free some space or write elsewhere",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
