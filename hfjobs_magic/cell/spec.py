"""`%%hfjob` flags -> a validated, pure `JobSpec` (DESIGN.md section 2, first arrow).

The flags are declared once, in `job_arguments`, and shared by the cell magic and by
`parse_line` (for code outside a kernel: the CLI, tests). Every flag defaults to None so
that `build_spec` is the one place where a flag falls back to its configured default,
and the one post-parse step that checks rules across flags.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import keyword
import posixpath
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic_arguments import magic_arguments
from IPython.utils.process import arg_split

from hfjobs_magic.cell import DEFAULT_FLAVOR, DEFAULT_IMAGE
from hfjobs_magic.cell.flags import DECLARATIONS, REPO_TYPES, known_flags

TOKEN_SECRET = "HF_TOKEN"
PUSH_SCHEMES = ("s3", "gs")
BUCKET_URL = "hf://buckets/"
# With --outputs DIR into a bucket, DIR (when relative) is mounted under this folder and the cell runs there.
JOB_WORKDIR = "/hfjob"
VOLUME_HINT = "e.g. --volume hf://datasets/org/data:/data:ro or --volume hf://buckets/you/scratch:/scratch"
HELP_HINT = "see %%hfjob? for every flag"

_DURATION = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)[smhd]$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PYTHON_VERSION = re.compile(r"^3\.\d+(\.\d+)?$")

F = TypeVar("F", bound=Callable[..., Any])


class FlagError(UsageError):
    """A flag's value or combination is wrong; `flag` names it (None: no single flag), so that
    `hfjob check` reports it under the check that flag concerns."""

    def __init__(self, flag: str | None, message: str) -> None:
        super().__init__(message)
        self.flag = flag


def job_arguments(func: F) -> F:
    """Decorate a magic with every `%%hfjob` flag; put `@magic_arguments()` above it."""
    for declaration in reversed(DECLARATIONS):
        declaration(func)
    return func


@functools.cache
def _line_parser() -> Callable[..., Any]:
    """A function carrying the flags' parser, for parsing outside a kernel; built on first use, so
    loading the extension does not pay for a second parser."""

    @magic_arguments("%hfjob")
    @job_arguments
    def hfjob(line: str = "") -> None:
        """Run this cell as a uv script on Hugging Face Jobs hardware."""

    return hfjob


def parse_line(line: str) -> argparse.Namespace:
    """Parse a `%%hfjob` line outside a kernel, with the magic's own declarations."""
    return parse_args(_line_parser(), line)


def lone_surrogate(text: str) -> int | None:
    """Where `text` holds half of a surrogate pair (a broken paste), which no UTF-8 request can carry; None if
    nowhere."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return err.start
    return None


def parse_args(magic_func: Callable[..., Any], line: str) -> argparse.Namespace:
    """Parse `line` with the parser `@magic_arguments()` built on `magic_func`.

    The line is split like a shell command line (quotes group, then disappear), and
    every argparse complaint becomes a `UsageError` that says what to type instead.
    """
    if (at := lone_surrogate(line)) is not None:
        flag = ([None, *re.findall(r"--[a-z][a-z-]*", line[:at])])[-1]
        raise FlagError(flag, f"{flag or 'the %%hfjob line'}: character U+{ord(line[at]):04X} is half of a surrogate "
                              "pair and cannot travel to the job as UTF-8: remove it")
    try:
        argv = arg_split(line, posix=True, strict=True)
    except ValueError as exc:
        raise UsageError(f"cannot split the %%hfjob line: {exc}; close the quote") from None
    try:
        ns, extras = magic_func.parser.parse_known_args(argv)
    except UsageError as exc:
        named = re.match(r"argument (--[a-z-]+)", str(exc))  # argparse names the flag it could not take
        raise FlagError(named[1] if named else None, _rephrase(str(exc))) from None
    if extras:
        raise UsageError(_unknown_message(extras))
    return ns


def _rephrase(message: str) -> str:
    """Add a did-you-mean to argparse's invalid-choice message, and a pointer to help."""
    found = re.search(r"invalid choice: '([^']*)'", message)
    if found and (close := difflib.get_close_matches(found.group(1), REPO_TYPES, n=1)):
        message += f"; did you mean {close[0]}?"
    return f"{message} ({HELP_HINT})"


def _unknown_message(extras: list[str]) -> str:
    """Name the first unknown token and the flag it most likely meant."""
    token = extras[0]
    if not token.startswith("-"):
        return f"unexpected value {token!r}: every value needs its flag, e.g. --flavor a10g-large ({HELP_HINT})"
    name = token.split("=", 1)[0]
    close = difflib.get_close_matches(name, known_flags(), n=1)
    hint = f"did you mean {close[0]}?" if close else HELP_HINT
    return f"unknown flag {name}: {hint}"


@dataclass(frozen=True)
class Defaults:
    """What a flag falls back to: `%config HFJobMagics.<name>` or `[tool.hfjobs_magic]`."""

    flavor: str = DEFAULT_FLAVOR
    timeout: str | int | None = None
    image: str = DEFAULT_IMAGE
    python: str | None = None
    namespace: str | None = None
    push: str | None = None
    repo_type: str | None = None
    secrets: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    with_deps: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    sync_every: str | int | None = None
    card: bool = False
    allow_no_push: bool = False
    pin: bool = True
    pass_token: bool = True
    auto_confirm: bool = False


@dataclass(frozen=True)
class JobSpec:
    """Everything the rest of the path needs to know about one job, resolved and checked."""

    flavor: str = DEFAULT_FLAVOR
    timeout: str | None = None
    timeout_seconds: int | None = None
    push: str | None = None
    repo_type: str | None = None
    secrets: dict[str, str | None] = field(default_factory=lambda: {TOKEN_SECRET: None}, repr=False)
    env: dict[str, str] = field(default_factory=dict)
    with_deps: tuple[str, ...] = ()
    python: str | None = None
    image: str = DEFAULT_IMAGE
    namespace: str | None = None
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    vars: tuple[str, ...] = ()
    carry: bool = True
    returns: tuple[str, ...] = ()
    pull: str | None = None
    outputs: str | None = None
    sync_every_seconds: int | None = None
    card: bool = False
    allow_no_push: bool = False
    pin: bool = True
    volumes: tuple[Mount, ...] = ()
    yes: bool = False
    detach: bool = False
    dry_run: bool = False
    schedule: str | None = None
    cancel_if_idle_s: int | None = None

    @property
    def push_kind(self) -> str | None:
        """"hub", "bucket" (an HF bucket), "s3", "gs", or None when nothing is pushed."""
        if self.push is None:
            return None
        if self.push.startswith(BUCKET_URL):
            return "bucket"
        scheme = self.push.split("://", 1)[0]
        return scheme if "://" in self.push else "hub"

    @property
    def outputs_mount(self) -> Mount | None:
        """With --outputs into an HF bucket: the bucket volume the folder is, where the cell writes it."""
        if self.push_kind != "bucket" or not self.outputs or not self.push:
            return None
        bucket_id, prefix = bucket_parts(self.push)
        where = posixpath.normpath(posixpath.join(JOB_WORKDIR, self.outputs))
        return Mount("bucket", bucket_id, where, read_only=False, path=prefix or None)

    @property
    def job_volumes(self) -> tuple[Mount, ...]:
        """Every volume the job gets: the --volume flags, then the --outputs bucket."""
        return (*self.volumes, *((self.outputs_mount,) if self.outputs_mount else ()))

    @property
    def passes_token(self) -> bool:
        return TOKEN_SECRET in self.secrets

    @property
    def secret_names(self) -> tuple[str, ...]:
        """The names only: values never leave the spec (its repr hides them too)."""
        return tuple(self.secrets)


@dataclass(frozen=True)
class Mount:
    """One job volume: what `hf jobs run -v` parses and `huggingface_hub.Volume` sends."""

    type: str  # "bucket", "model", "dataset" or "space"
    source: str  # namespace/name
    mount_path: str
    read_only: bool
    path: str | None = None  # a folder inside the bucket or repo
    revision: str | None = None  # repos only

    def as_volume(self) -> dict[str, Any]:
        """Keyword arguments of `huggingface_hub.Volume`."""
        optional = {"path": self.path, "revision": self.revision}
        return {"type": self.type, "source": self.source, "mount_path": self.mount_path,
                "read_only": self.read_only, **{k: v for k, v in optional.items() if v}}

    @property
    def url(self) -> str:
        """`hf://datasets/org/ds@rev/sub`: the source as an hf:// URI."""
        revision = f"@{self.revision}" if self.revision else ""
        sub = f"/{self.path.strip('/')}" if self.path and self.path.strip("/") else ""
        return f"hf://{self.type}s/{self.source}{revision}{sub}"

    @property
    def text(self) -> str:
        """The `hf jobs` volume syntax, read and write mode spelled out."""
        return f"{self.url}:{self.mount_path}:{'ro' if self.read_only else 'rw'}"


def bucket_parts(url: str) -> tuple[str, str]:
    """`hf://buckets/ns/name/some/prefix/` -> ("ns/name", "some/prefix"); UsageError when it names no bucket."""
    parts = url[len(BUCKET_URL):].split("/") if url.startswith(BUCKET_URL) else []
    if len(parts) < 2 or not parts[0] or not parts[1] or any(p in (".", "..") for p in parts):
        raise FlagError("--push", f"--push {url!r}: expected hf://buckets/NAMESPACE/NAME[/PREFIX], "
                                  "e.g. --push hf://buckets/alice/results/run-1")
    return f"{parts[0]}/{parts[1]}", "/".join(p for p in parts[2:] if p)


def parse_volume(text: str) -> Mount:
    """`hf://[TYPE/]ID[@REV][/PATH]:/MOUNT[:ro|:rw]` with huggingface_hub's own parser, and the Hub's rules:
    buckets are read-write unless `:ro`, repos are read-only and cannot be `:rw`."""
    from huggingface_hub.errors import HfUriError
    from huggingface_hub.utils import parse_hf_mount

    if not text.startswith("hf://"):
        raise FlagError("--volume", f"--volume {text!r}: expected hf://[TYPE/]ID[/PATH]:/MOUNT[:ro|:rw] "
                                    f"({VOLUME_HINT}); a local folder must be in a bucket first: "
                                    "hf buckets sync ./folder hf://buckets/you/name")
    try:
        found = parse_hf_mount(text)
    except HfUriError as err:
        raise FlagError("--volume", f"--volume {text!r}: {err.msg} ({VOLUME_HINT})") from None
    kind = found.source.type
    if kind != "bucket" and found.read_only is False:
        raise FlagError("--volume", f"--volume {text!r}: a {kind} repo is mounted read-only; drop ':rw' "
                                    "(to write, mount a bucket: hf://buckets/NAMESPACE/NAME:/MOUNT)")
    mount = posixpath.normpath(found.mount_path)
    if mount == "/" or ".." in found.mount_path.split("/"):
        raise FlagError("--volume", f"--volume {text!r}: the mount path must be a folder below /, e.g. /data")
    return Mount(kind, found.source.id, mount, read_only=kind != "bucket" or bool(found.read_only),
                 path=found.source.path_in_repo.strip("/") or None, revision=found.source.revision or None)


def parse_timeout(value: str | int | float, *, flag: str = "--timeout") -> int:
    """Seconds from `300`, "300", "90s", "5m", "1.5h" or "2d", as huggingface_hub computes them."""
    if isinstance(value, bool):
        raise FlagError(flag, _duration_error(flag, value))
    if isinstance(value, (int, float)) or re.fullmatch(r"-?\d+", value):
        seconds = int(value)
    elif _DURATION.match(value):
        seconds = int(float(value[:-1]) * _UNIT_SECONDS[value[-1]])
    else:
        raise FlagError(flag, _duration_error(flag, value))
    if seconds <= 0:
        raise FlagError(flag, f"{flag} {value!r} must be at least one second, e.g. {flag} 30m")
    return seconds


def _duration_error(flag: str, value: object) -> str:
    return f"{flag} {value!r}: expected seconds or a number with s/m/h/d, e.g. 90m or 1.5h"


def build_spec(ns: argparse.Namespace, defaults: Defaults | None = None) -> JobSpec:
    """Resolve parsed flags against the defaults (flag wins) and check rules across flags."""
    d = defaults or Defaults()
    pick = _picker(ns, d)
    timeout = pick("timeout")
    push = pick("push")
    mounted = (push or "").startswith(BUCKET_URL)  # a bucket holds --outputs as written: nothing to sync
    sync_every = pick("sync_every") if ns.outputs and not mounted else ns.sync_every  # a default: with --outputs
    spec = JobSpec(
        flavor=pick("flavor") or DEFAULT_FLAVOR,
        timeout=None if timeout is None else str(timeout),
        timeout_seconds=None if timeout is None else parse_timeout(timeout),
        push=push,
        repo_type=None if mounted else pick("repo_type") or ("model" if push and "://" not in push else None),
        secrets=_secrets(d.secrets, ns.secrets, pass_token=not _flag(ns.no_token, not d.pass_token)),
        env=_pairs("--env", d.env, ns.env),
        with_deps=_dedupe((*d.with_deps, *(ns.with_deps or ()))),
        python=pick("python"),
        image=pick("image") or DEFAULT_IMAGE,
        namespace=pick("namespace"),
        name=ns.name,
        labels=_pairs("--label", d.labels, ns.label),
        vars=_var_names(ns.vars),
        carry=not ns.no_carry,
        returns=_var_names(ns.returns, "--return"),
        pull=ns.pull,
        outputs=ns.outputs,
        sync_every_seconds=None if sync_every is None else parse_timeout(sync_every, flag="--sync-every"),
        card=bool(ns.card) if not push else _flag(ns.card, d.card),
        allow_no_push=_flag(ns.allow_no_push, d.allow_no_push),
        pin=not _flag(ns.no_pin, not d.pin),
        volumes=tuple(parse_volume(text) for text in _dedupe((*d.volumes, *(ns.volumes or ())))),
        yes=_flag(ns.yes, d.auto_confirm),
        detach=bool(ns.detach),
        dry_run=bool(ns.dry_run),
        schedule=ns.schedule.strip() if ns.schedule and ns.schedule.strip() else None,
        cancel_if_idle_s=None if ns.cancel_if_idle is None else parse_timeout(ns.cancel_if_idle,
                                                                              flag="--cancel-if-idle"),
    )
    _check_rules(spec, ns)
    return spec


def _picker(ns: argparse.Namespace, defaults: Defaults) -> Callable[[str], Any]:
    """The one fallback: the flag when given, else the configured default."""

    def pick(name: str) -> Any:
        value = getattr(ns, name, None)
        return value if value is not None else getattr(defaults, name)

    return pick


def _flag(value: bool | None, default: bool) -> bool:
    return default if value is None else value


def _dedupe(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _split_pair(flag: str, item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        example = "LEARNING_RATE=3e-4" if flag == "--env" else "team=nlp"
        raise FlagError(flag, f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} {example}")
    return key.strip(), value


def _pairs(flag: str, defaults: Mapping[str, str], items: list[str] | None) -> dict[str, str]:
    """KEY=VALUE flags over their defaults, entry by entry (a flag wins for its key)."""
    pairs = dict(defaults)
    for item in items or ():
        key, value = _split_pair(flag, item)
        if flag == "--env" and not _ENV_NAME.match(key):
            raise FlagError("--env", f"--env {item!r}: {key!r} is not a valid variable name (letters, digits, _)")
        pairs[key] = value
    return pairs


def _secrets(defaults: tuple[str, ...], items: list[str] | None, *, pass_token: bool) -> dict[str, str | None]:
    """NAME -> literal value, or None for "read it from the local environment"."""
    secrets: dict[str, str | None] = {TOKEN_SECRET: None} if pass_token else {}
    for item in (*defaults, *(items or ())):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not _ENV_NAME.match(name):
            raise FlagError("--secrets",
                            f"--secrets {item!r}: expected NAME or NAME=VALUE, e.g. --secrets WANDB_API_KEY")
        if name == TOKEN_SECRET and not pass_token:
            raise FlagError("--secrets", "--secrets HF_TOKEN conflicts with --no-token: keep one of them")
        secrets[name] = value if sep else None
    return secrets


def return_names(value: str | None) -> tuple[str, ...]:
    """`--return a,b` -> ("a", "b"), checked."""
    return _var_names(value, "--return")


def _var_names(value: str | None, flag: str = "--vars") -> tuple[str, ...]:
    names = tuple(name.strip() for name in (value or "").split(",") if name.strip())
    for name in names:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise FlagError(flag, f"{flag} {value!r}: {name!r} is not a Python variable name; e.g. {flag} lr,epochs")
    return _dedupe(names)


def _check_rules(spec: JobSpec, ns: argparse.Namespace) -> None:
    """The rules that involve more than one flag, or a value argparse cannot check."""
    if spec.push and "://" in spec.push and spec.push_kind not in (*PUSH_SCHEMES, "bucket"):
        raise FlagError("--push", f"--push {spec.push!r}: expected a Hub repo id (user/name), "
                                  "hf://buckets/user/name[/prefix], s3://bucket/prefix or gs://bucket/prefix")
    if spec.outputs and not spec.push:
        raise FlagError("--outputs", "--outputs needs a place to push them: add --push user/repo "
                                     "(or hf://buckets/..., s3://..., gs://...)")
    if spec.sync_every_seconds and not spec.outputs:
        raise FlagError("--sync-every", "--sync-every pushes the --outputs folder: add --outputs DIR")
    if spec.pull and not spec.outputs:
        raise FlagError("--pull", "--pull downloads what --outputs pushed: add --outputs DIR --push TARGET")
    if spec.returns and not spec.passes_token:
        raise FlagError("--return", "--return uploads the values with the job's HF_TOKEN: drop --no-token")
    if (spec.returns or spec.pull) and spec.schedule:
        raise FlagError("--return" if spec.returns else "--pull",
                        "--return and --pull need the notebook to follow the job; a --schedule cell's runs are not "
                        "followed: drop one of them")
    if spec.returns and spec.detach:
        raise FlagError("--return", "--return sets variables when the job completes, --detach does not wait: "
                                    "keep one of them (or use %hfjob_attach JOB --return NAMES later)")
    _check_bucket_rules(spec, ns)
    if spec.card and not spec.push:
        raise FlagError("--card", "--card writes a card to the push target: add --push user/repo")
    if spec.schedule and spec.cancel_if_idle_s:
        raise FlagError("--cancel-if-idle", "--cancel-if-idle needs the notebook to follow the job; a --schedule "
                                            "cell's runs are not followed: drop one of them")
    if spec.schedule and spec.detach:
        raise FlagError("--detach", "--schedule already returns at once (nothing runs now): drop --detach")
    if spec.detach and spec.dry_run:
        raise FlagError("--detach", "--detach and --dry-run conflict: a dry run submits nothing to detach from")
    if spec.python and not _PYTHON_VERSION.match(spec.python):
        raise FlagError("--python", f"--python {spec.python!r}: expected a version like 3.11 or 3.12.4")
    if spec.name and "name" in spec.labels:
        raise FlagError("--name", "--name and --label name=... both name the job: keep one of them")
    if ns.name is not None and not ns.name.strip():
        raise FlagError("--name", "--name is empty: give the job a name or drop the flag")


def _check_bucket_rules(spec: JobSpec, ns: argparse.Namespace) -> None:
    """An HF bucket push target, the --outputs folder mounted from it, and the --volume mount paths."""
    if spec.push_kind == "bucket" and spec.push:
        bucket_parts(spec.push)
        if ns.repo_type:
            raise FlagError("--repo-type",
                            "--repo-type is for Hub repos; an hf://buckets/... target has no repo type: drop it")
    outputs = spec.outputs_mount
    if outputs is not None:
        if spec.sync_every_seconds:
            raise FlagError("--sync-every", "--sync-every is not needed with a bucket: --outputs is the bucket, "
                                            "mounted in the job, so every file is in it as soon as it is written; "
                                            "drop --sync-every")
        if outputs.mount_path == "/" or ".." in spec.outputs.split("/"):  # type: ignore[union-attr]
            raise FlagError("--outputs", f"--outputs {spec.outputs!r}: with a bucket, the folder is mounted in the "
                                         "job; name a folder below the working dir, e.g. --outputs out")
    paths = [v.mount_path for v in spec.job_volumes]
    for path in dict.fromkeys(p for p in paths if paths.count(p) > 1):
        clash = "--outputs and a --volume" if outputs and path == outputs.mount_path else "two --volume flags"
        raise FlagError("--volume", f"{clash} both mount at {path}: give each volume its own mount path")


def read_pyproject_defaults(folder: Path | str) -> dict[str, Any]:
    """`[tool.hfjobs_magic]` of `folder/pyproject.toml` as `Defaults` keyword arguments ({} if none).

    Keys may use dashes or underscores (`repo-type`, `repo_type`); `with` means `with_deps`.
    """
    path = Path(folder) / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        table = load_toml(path.read_text(encoding="utf-8")).get("tool", {}).get("hfjobs_magic", {})
    except ValueError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.hfjobs_magic] must be a table")
    return {name: _default_value(path, name, value) for name, value in _normalized(path, table).items()}


def _normalized(path: Path, table: dict[str, Any]) -> dict[str, Any]:
    known = [f.name for f in fields(Defaults)]
    result = {}
    for key, value in table.items():
        name = "with_deps" if key == "with" else key.replace("-", "_")
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(known)}"
            raise UsageError(f"{path}: unknown key {key!r} in [tool.hfjobs_magic]; {hint}")
        result[name] = value
    return result


def _default_value(path: Path, name: str, value: Any) -> Any:
    """Check a pyproject value's type against the `Defaults` field it sets."""
    default = getattr(Defaults(), name)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, tuple):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    elif isinstance(default, Mapping):
        ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    elif name in ("timeout", "sync_every"):
        ok = isinstance(value, (str, int)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise UsageError(f"{path}: [tool.hfjobs_magic] {name} has the wrong type ({type(value).__name__})")
    return value


def load_toml(text: str) -> dict[str, Any]:
    """tomllib on 3.11+, tomli before; raises ValueError on bad TOML."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    return tomllib.loads(text)
