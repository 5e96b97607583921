"""The `hfjob` command line: sandbox | run | check | export."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hfjobs_magic.sandbox import accounts as acc

if TYPE_CHECKING:
    from hfjobs_magic.sandbox import Sandbox


def _sandbox_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sandbox",
        help="serve a local Hub + Jobs API on loopback until interrupted",
        description="Serve a local stand-in for the Hugging Face Hub and Jobs API. Once it accepts requests "
        "it prints HF_ENDPOINT=... and HF_TOKEN=..., each on a line of its own: export them. Jobs run as "
        "local processes of your user, so tokens not given are random (kept in the data dir).",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: %(default)s, loopback only; any other needs --token)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default: %(default)s)")
    p.add_argument("--data-dir", help="where repos, job records and random tokens live; kept across restarts "
                   "(default: a temporary folder removed on exit)")
    p.add_argument("--user", default=acc.DEFAULT_USER, help="the user's name (default: %(default)s)")
    p.add_argument("--token", help="the user's write token (default: random, made once per data dir)")
    p.add_argument("--read-token", help="a read-only token of the same user (default: random, made once per data dir)")
    p.add_argument("--org", action="append", dest="orgs", metavar="NAME",
                   help=f"an org the user can write to; repeatable (default: {', '.join(acc.DEFAULT_ORGS)})")
    p.add_argument("--read-org", action="append", dest="read_orgs", metavar="NAME",
                   help=f"an org the user can only read; repeatable (default: {', '.join(acc.DEFAULT_READ_ORGS)})")
    p.set_defaults(func=_cmd_sandbox)


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from hfjobs_magic.sandbox import Sandbox
    from hfjobs_magic.sandbox.tokens import exposure_problem, exposure_warning

    if problem := exposure_problem(args.host, args.token):
        print(f"hfjob sandbox: {problem}", file=sys.stderr)
        return 2
    try:
        sandbox = Sandbox(
            host=args.host, port=args.port, data_dir=args.data_dir, user=args.user, token=args.token,
            read_token=args.read_token, orgs=args.orgs if args.orgs is not None else acc.DEFAULT_ORGS,
            read_orgs=args.read_orgs if args.read_orgs is not None else acc.DEFAULT_READ_ORGS, log_level="info",
        )
    except (OSError, ValueError) as err:  # an unwritable data dir, a damaged token file
        print(f"hfjob sandbox: {err}", file=sys.stderr)
        return 2
    try:
        sandbox.start()
    except OSError as err:  # the port is taken, the address is not this machine's
        sandbox.stop()
        print(f"hfjob sandbox: cannot listen on {args.host}:{args.port}: {err.strerror or err}", file=sys.stderr)
        return 2
    try:
        if warning := exposure_warning(args.host):
            print(warning, file=sys.stderr, flush=True)
        print("\n".join(start_lines(sandbox)), flush=True)
        _serve_until_stopped()
    finally:
        sandbox.stop()
    return 0


def _serve_until_stopped() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("Serving until Ctrl-C.", file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    print("Stopping the sandbox; running jobs are killed.", file=sys.stderr, flush=True)


def start_lines(sandbox: Sandbox) -> list[str]:
    """What `hfjob sandbox` prints once it serves: two lines a shell can export, then comments."""
    return [
        f"HF_ENDPOINT={sandbox.endpoint}",
        f"HF_TOKEN={sandbox.token}",
        f"# user {sandbox.user}; read-only token: {sandbox.read_token}",
        f"# second user {sandbox.other_user}, a namespace {sandbox.user} cannot write to: {sandbox.other_token}",
    ]


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="execute a notebook unattended; exit non-zero if a cell or job fails",
                       description="Execute NOTEBOOK with nbclient (job cells run headless: text output, "
                       "exceptions on failure), write the executed copy and print a summary of its jobs.")
    p.add_argument("notebook")
    p.add_argument("--sandbox", action="store_true",
                   help="start a local sandbox for the run and point the kernel at it (no account needed)")
    p.add_argument("--yes", action="store_true", help="consent to start jobs (as HFJOB_YES=1)")
    p.add_argument("-o", "--output", help="where to write the executed notebook (default: NAME.out.ipynb)")
    p.set_defaults(func=lambda a: commands().run_notebook(a.notebook, sandbox=a.sandbox, yes=a.yes,
                                                          output=a.output))


def _check_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="run the pre-submission checklist of every %%%%hfjob cell; submit nothing",
                       description="Exit 1 when any check fails. Made for CI and pre-commit.")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    p.add_argument("--json", action="store_true",
                   help='print [{"notebook", "cell", "checks": [{"id", "status", "message", "fix"}]}]')
    p.set_defaults(func=lambda a: commands().check_notebooks(a.notebooks, a.json))


def _export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write each %%%%hfjob cell as a runnable PEP 723 uv script")
    p.add_argument("notebook")
    p.add_argument("-o", "--output-dir", help="folder for the scripts (default: beside the notebook)")
    p.set_defaults(func=lambda a: commands().export_notebook(a.notebook, a.output_dir))


def commands():
    from hfjobs_magic import commands as module

    return module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hfjob",
        description="Run notebook cells on Hugging Face Jobs without losing their results.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{sandbox,run,check,export}")
    _sandbox_parser(sub)
    _run_parser(sub)
    _check_parser(sub)
    _export_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from IPython.core.error import UsageError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, FileNotFoundError) as err:
        print(f"hfjob {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
