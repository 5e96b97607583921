"""The IPython magics: parse, wire the data path, nothing else (DESIGN.md sections 2 and 7)."""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Dict, Float, Int, List, Unicode

from hfjobs_magic.cell import DEFAULT_FLAVOR, DEFAULT_IMAGE
from hfjobs_magic.cell.flags import flags_text
from hfjobs_magic.mask import hide_token_literals

HEADLESS_ENV = "HFJOB_HEADLESS"
WARM_IMPORTS_WAIT_S = 20.0
FIRST_LINE = 2  # the cell's code starts under the %%hfjob line: messages number lines as the notebook shows them


def is_headless(shell: Any) -> bool:
    """True when no frontend can answer: nbclient/nbconvert/papermill, plain IPython, or HFJOB_HEADLESS=1."""
    if os.environ.get(HEADLESS_ENV) == "1":
        return True
    kernel = getattr(shell, "kernel", None)
    return kernel is None or not getattr(kernel, "_allow_stdin", False)


@magics_class
class HFJobMagics(Magics):
    """Run notebook cells on Hugging Face Jobs. Every option below is a `%config HFJobMagics.<name>` default."""

    flavor = Unicode(DEFAULT_FLAVOR, help="Hardware flavor when --flavor is not given.").tag(config=True)
    timeout = Unicode(None, allow_none=True, help="Timeout when --timeout is not given, e.g. '2h'.").tag(config=True)
    image = Unicode(DEFAULT_IMAGE, help="Docker image (with uv) when --image is not given.").tag(config=True)
    python = Unicode(None, allow_none=True, help="Python version for jobs, e.g. '3.12'.").tag(config=True)
    namespace = Unicode(None, allow_none=True, help="User or org that runs the jobs (default: you).").tag(config=True)
    push = Unicode(None, allow_none=True, help="Default push target (repo id, hf://buckets/, s3:// or gs://).").tag(config=True)
    repo_type = Unicode(None, allow_none=True, help="Repo type of the push target.").tag(config=True)
    secrets = List(Unicode(), help="Secret names always passed to jobs (HF_TOKEN is passed anyway).").tag(config=True)
    env = Dict(value_trait=Unicode(), help="Environment variables always set in jobs.").tag(config=True)
    labels = Dict(value_trait=Unicode(), help="Labels always put on jobs.").tag(config=True)
    with_deps = List(Unicode(), help="Extra dependencies always added to job scripts.").tag(config=True)
    volumes = List(Unicode(), help="Volumes always mounted in jobs, as --volume takes them.").tag(config=True)
    sync_every = Unicode(None, allow_none=True, help="Default --sync-every period.").tag(config=True)
    card = Bool(False, help="Write a job card to the push target by default.").tag(config=True)
    allow_no_push = Bool(False, help="Accept jobs that push nothing (their results are lost).").tag(config=True)
    pin = Bool(True, help="Pin inferred dependencies to this kernel's versions.").tag(config=True)
    pass_token = Bool(True, help="Pass your HF_TOKEN to jobs as a secret.").tag(config=True)
    auto_confirm = Bool(False, help="Submit without asking once every check passes (as --yes).").tag(config=True)
    cancel_on_interrupt = Bool(False, help="Cancel the job when an unattended wait is interrupted.").tag(config=True)
    max_cost_usd = Float(None, allow_none=True, help="Refuse jobs whose worst-case cost is above this.").tag(
        config=True)
    log_lines = Int(40, help="How many log lines the live view and the saved record keep.").tag(config=True)
    carry_max_bytes = Int(1 << 30, help="At most this many bytes of notebook values carried to a job.").tag(
        config=True)
    history_file = Unicode("", help="Where the local job history lives (default: ~/.local/state).").tag(config=True)
    idle_gpu_warn = Unicode("10m", help="Warn when a GPU job's GPU has been idle (under 5 %) this long.").tag(
        config=True)
    queue_wait_warn = Unicode("5m", help="Say so when a job has waited for hardware (SCHEDULING) this long.").tag(
        config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._client: Any = None
        self._client_lock = threading.Lock()  # the warm-up thread and a cell may both ask first
        self._imported: threading.Event | None = None  # set once the warm-up has imported what a job cell needs

    # -- wiring helpers (no work of their own) -----------------------------------------------
    def defaults(self) -> Any:
        """%config values, under them `[tool.hfjobs_magic]` from the notebook folder's pyproject.toml."""
        from hfjobs_magic.cell.spec import Defaults, read_pyproject_defaults

        configured = set(self.config.get("HFJobMagics", {}))
        names = [f.name for f in fields(Defaults)]
        values = {n: getattr(self, n) for n in names}
        values.update({k: v for k, v in read_pyproject_defaults(Path.cwd()).items() if k not in configured})
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()}
        return Defaults(**{k: v for k, v in values.items() if v is not None or k in ("timeout", "sync_every")})

    def client(self) -> Any:
        """One HubClient per endpoint and token; rebuilt when either changes (e.g. after a login)."""
        from hfjobs_magic.remote.hub import HubClient, resolve_endpoint, resolve_token

        endpoint, token = resolve_endpoint(), resolve_token()
        with self._client_lock:
            if self._client is None or (self._client.endpoint, self._client.token) != (endpoint, token):
                self._client = HubClient(endpoint, token)
            return self._client

    def warm_up(self) -> None:
        """What the first job cell needs (imports, whoami, the hardware list), fetched on a daemon thread
        while the user types it. Never raises: a look-up that fails here is made again, and said, by the
        cell's checks."""
        self._imported = threading.Event()
        threading.Thread(target=self._warm, args=(self._imported,), name="hfjob-warm-up", daemon=True).start()

    def _warm(self, imported: threading.Event) -> None:
        try:
            with collections_paused():
                self._warm_imports()
        except Exception:  # noqa: S110  nothing to report yet: the cell's checks ask again and say why
            pass
        finally:
            imported.set()

    def _warm_imports(self) -> None:
        client = self.client()
        _ = client.api  # the heaviest import first: the look-ups need it
        for fetch in (client.hardware, client.whoami) if client.token else (client.hardware,):
            # in flight while the rest is imported; the checks share their answers through the caches
            threading.Thread(target=_quietly, args=(fetch,), name="hfjob-warm-up", daemon=True).start()
        # The other imports of a job cell, in its order; not the watcher: a followed cell imports it while
        # its job starts, a --detach cell never does.
        import hfjobs_magic.cell.carry_kernel  # noqa: F401
        import hfjobs_magic.cell.script  # noqa: F401
        import hfjobs_magic.checks  # noqa: F401
        import hfjobs_magic.jobs.runner  # noqa: F401
        import hfjobs_magic.views.text  # noqa: F401
        from hfjobs_magic.cell.spec import load_toml, parse_line

        parse_line("")  # builds the flags' parser
        load_toml("")  # imports the parser of the notebook folder's pyproject.toml
        if not is_headless(self.shell):
            import hfjobs_magic.views.widgets  # noqa: F401

    def _wait_for_warm_imports(self) -> None:
        """A cell typed faster than the warm-up imports waits for them rather than importing alongside:
        two threads importing at once take longer than one after the other. Look-ups still in flight are
        shared through the client's caches instead."""
        if self._imported is not None:
            self._imported.wait(timeout=WARM_IMPORTS_WAIT_S)

    def runner(self) -> Any:
        from hfjobs_magic.cell.spec import parse_timeout
        from hfjobs_magic.jobs.history import History
        from hfjobs_magic.jobs.runner import Runner, RunSettings

        settings = RunSettings(headless=is_headless(self.shell),
                               cancel_on_interrupt=self.cancel_on_interrupt, log_lines=self.log_lines,
                               idle_gpu_warn_s=parse_timeout(self.idle_gpu_warn, flag="idle_gpu_warn"),
                               queue_wait_warn_s=parse_timeout(self.queue_wait_warn, flag="queue_wait_warn"))
        return Runner(self.client, History(Path(self.history_file) if self.history_file else None), settings,
                      deliver=self.shell.user_ns.update)

    def carrier(self) -> Any:
        """The names a cell reads -> what travels with it, from this kernel's namespace."""
        from hfjobs_magic.cell.carry_kernel import from_kernel

        files = getattr(getattr(self.shell, "compile", None), "_filename_map", {})
        return lambda names: from_kernel(names, self.shell.user_ns, cell_files=files, max_bytes=self.carry_max_bytes)

    def notebook(self) -> str | None:
        return self.shell.user_ns.get("__session__") or os.environ.get("JPY_SESSION_NAME") or None

    # -- the cell magic --------------------------------------------------------------------------
    @cell_magic
    def hfjob(self, line: str, cell: str) -> None:
        """Run this cell on Hugging Face Jobs hardware as a standalone uv script.

        The cell becomes a PEP 723 script (dependencies inferred from its imports),
        a checklist catches what would lose results or money, then the job is
        submitted and followed: status, logs, cost and verified pushes inline.

        Examples::

            %%hfjob --flavor a10g-large --timeout 2h --push alice/sft-results --repo-type dataset
            from datasets import Dataset
            Dataset.from_dict({"text": ["a", "b"]}).push_to_hub("alice/sft-results")

            %%hfjob --timeout 1h --outputs out --push alice/run --sync-every 10m
            # whatever the cell writes to out/ reaches alice/run, even if it fails or times out

            %%hfjob --dry-run          # show the script and the checks, submit nothing
            %%hfjob --yes --detach     # submit once the checks pass, return at once
        """
        self._wait_for_warm_imports()
        from hfjobs_magic.cell.returns import epilogue
        from hfjobs_magic.cell.script import build_script
        from hfjobs_magic.cell.spec import build_spec, parse_line
        from hfjobs_magic.cell.wrapping import cell_hash
        from hfjobs_magic.checks import CheckContext, run_checks
        from hfjobs_magic.checks.targets import cell_push_targets
        from hfjobs_magic.jobs.runner import JobRequest

        try:
            spec = build_spec(parse_line(line), self.defaults())
            script = build_script(cell, spec, variables=self.shell.user_ns, notebook=self.notebook(),
                                  first_line=FIRST_LINE, carrier=self.carrier(),
                                  epilogue=epilogue(spec.returns) if spec.returns else "")
        except UsageError as err:  # a value echoed back may be a token typed into a flag
            raise UsageError(hide_token_literals(str(err))) from None

        def checks() -> list:
            return run_checks(CheckContext(spec=spec, script=script, cell=cell, client=self.client(),
                                           variables=self.shell.user_ns, max_cost_usd=self.max_cost_usd,
                                           first_line=FIRST_LINE))

        targets = tuple(cell_push_targets(spec, script.scan))
        self.runner().run(JobRequest(spec, script, checks(), self.notebook(), cell_hash(cell), recheck=checks,
                                     cell_targets=targets))

    # -- line magics -------------------------------------------------------------------------------
    @magic_arguments()
    @argument("--scheduled", action="store_true", help="list scheduled jobs, with their next and last run")
    @line_magic
    def hfjob_ps(self, line: str) -> None:
        """List your recent jobs: id, stage, flavor, age, and the notebook cell each came from."""
        from hfjobs_magic.jobs.joblist import print_jobs
        from hfjobs_magic.jobs.schedules import print_scheduled

        if parse_argstring(self.hfjob_ps, line).scheduled:
            print_scheduled(self.client(), self.namespace)
            return
        print_jobs(self.client(), self.runner().history, self.namespace)

    @magic_arguments()
    @argument("id", help="the scheduled job's id (%%hfjob_ps --scheduled lists them)")
    @line_magic
    def hfjob_unschedule(self, line: str) -> None:
        """Delete a scheduled job: no more runs start (a run already started goes on)."""
        from hfjobs_magic.jobs.schedules import unschedule

        unschedule(self.client(), parse_argstring(self.hfjob_unschedule, line).id, self.namespace)

    @magic_arguments()
    @argument("job", help="job id (or a prefix of one from this machine's history)")
    @argument("--tail", type=int, help="only the last N lines")
    @line_magic
    def hfjob_logs(self, line: str) -> None:
        """Print a job's logs, secrets masked."""
        from hfjobs_magic.jobs.joblist import print_logs

        args = parse_argstring(self.hfjob_logs, line)
        print_logs(self.client(), self.runner().history, args.job, args.tail, self.namespace)

    @magic_arguments()
    @argument("job", help="job id (or a prefix of one from this machine's history)")
    @line_magic
    def hfjob_cancel(self, line: str) -> None:
        """Cancel a running job."""
        from hfjobs_magic.jobs.joblist import cancel

        args = parse_argstring(self.hfjob_cancel, line)
        cancel(self.client(), self.runner().history, args.job, self.namespace)

    @magic_arguments()
    @argument("job", help="job id (or a prefix of one from this machine's history)")
    @argument("--return", dest="returns", metavar="NAMES",
              help="set these values the job returned (--return on its cell) in this kernel, once it COMPLETED")
    @line_magic
    def hfjob_attach(self, line: str) -> None:
        """Show the live view of a running or finished job again (e.g. after a kernel restart)."""
        from hfjobs_magic.cell.spec import return_names

        args = parse_argstring(self.hfjob_attach, line)
        self.runner().attach(args.job, self.namespace, returns=return_names(args.returns))


# The flags' help is part of the docstring: `%%hfjob?`, help() and editors all show every flag.
HFJobMagics.hfjob.__doc__ = f"{inspect.cleandoc(HFJobMagics.hfjob.__doc__ or '')}\n\n{flags_text()}\n"


@contextlib.contextmanager
def collections_paused() -> Iterator[None]:
    """Imports make many objects that live for good, and the garbage collections they set off would walk the
    kernel's whole heap each time (about a fifth of the warm-up's time); paused meanwhile, unless the user
    paused them already."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _quietly(fetch: Callable[[], Any]) -> None:
    """A warm-up look-up: one that fails here is made again, and said, by the cell's checks."""
    with contextlib.suppress(Exception):
        fetch()


def register(ipython: Any) -> None:
    """Register the magics and flag completion on a shell; warm up once the `%load_ext` cell has run."""
    from hfjobs_magic.completion import install_completer

    magics = HFJobMagics(shell=ipython)
    ipython.register_magics(magics)
    install_completer(ipython)

    def warm_once(_result: Any = None) -> None:  # after the cell, so %load_ext itself stays light
        ipython.events.unregister("post_run_cell", warm_once)
        magics.warm_up()

    ipython.events.register("post_run_cell", warm_once)
