"""The `secrets` check's findings: how credentials reach the job, and that none travels as text.

A job has no credentials of its own: HF_TOKEN must arrive as a secret, S3 and GCS
writes need their keys among the secrets, and a token literal (in the cell, a flag, or
the generated script) is a leak to stop before it is sent. Messages name variables and
lines, never a value.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from hfjobs_magic.cell.scan import SECRET_NAME, TOKEN_PATTERN, token_lines
from hfjobs_magic.cell.spec import TOKEN_SECRET
from hfjobs_magic.checks.targets import TOKENS_URL, Verdict

if TYPE_CHECKING:
    from hfjobs_magic.checks.base import Facts

AWS_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
GCS_SECRET = re.compile(r"GOOGLE|GCP|GCS|STORAGE_EMULATOR_HOST")
ALWAYS_SET = frozenset({"PATH", "HOME", "PWD", "HOSTNAME", "LANG", "USER", "SHELL", "TERM", "TMPDIR"})


def secret_findings(f: Facts) -> list[Verdict]:
    """Every problem with how secrets reach the job; empty when all is well."""
    return [*_token_literals(f), *_token_delivery(f), *_flag_secrets(f), *_env_reads(f), *_cloud_credentials(f)]


def _token_literals(f: Facts) -> list[Verdict]:
    """A token written out anywhere is saved with the notebook and sent as plain text."""
    fix = (f"Delete it and revoke it at {TOKENS_URL} (it is saved in the notebook); the job gets your token as the "
           'HF_TOKEN secret: read os.environ["HF_TOKEN"].')
    found = []
    lines = [n + f.ctx.first_line - 1 for n in token_lines(f.ctx.cell)]
    if lines:
        found.append(Verdict("fail", f"a Hugging Face token literal on line {_lines(lines)} of the cell", fix))
    for key, value in f.spec.env.items():
        if TOKEN_PATTERN.search(value):
            found.append(Verdict("fail", f"--env {key} holds a token literal", "Drop it: HF_TOKEN is passed as a "
                                 "secret, read from your environment (--secrets HF_TOKEN)."))
    for name, value in f.spec.secrets.items():
        if value and TOKEN_PATTERN.search(value):
            found.append(Verdict("fail", f"--secrets {name} has a token literal written in the %%hfjob line",
                                 f"Pass --secrets {name} without a value: it is read from your environment."))
    script = f.ctx.script.text if f.ctx.script else ""
    if not found and TOKEN_PATTERN.search(script):
        found.append(Verdict("fail", "the generated script holds a token literal (sent with --vars?)",
                             "Never send a token with --vars; pass it with --secrets NAME."))
    return found


def _token_delivery(f: Facts) -> list[Verdict]:
    """HF_TOKEN must be a secret, and present, when the job pushes to the Hub."""
    found = []
    if TOKEN_SECRET in f.spec.env:
        found.append(Verdict("fail", "--env HF_TOKEN sends the token as a plain environment variable",
                             "Drop --env HF_TOKEN: HF_TOKEN is passed as a secret by default."))
    if not f.pushes_to_hub:
        return found
    if not f.spec.passes_token:
        found.append(Verdict("fail", "the job pushes to the Hub, but --no-token keeps HF_TOKEN from it",
                             "Drop --no-token (HF_TOKEN is then passed as a secret)."))
    elif f.spec.secrets.get(TOKEN_SECRET) is None and not (f.ctx.client and f.ctx.client.token):
        found.append(Verdict("fail", "HF_TOKEN cannot reach the job: there is no token here to send",
                             "Run `hf auth login` or set HF_TOKEN, then Re-check."))
    return found


def _flag_secrets(f: Facts) -> list[Verdict]:
    """Literal values in --secrets are saved with the notebook; bare names must be set locally."""
    found = []
    for name, value in f.spec.secrets.items():
        if value and not TOKEN_PATTERN.search(value):
            found.append(Verdict("warn", f"--secrets {name} has its value written in the %%hfjob line (saved with "
                                 "the notebook)", f"Set {name} in your environment and pass --secrets {name}."))
        elif value is None and name != TOKEN_SECRET and not os.environ.get(name):
            found.append(Verdict("fail", f"--secrets {name}: {name} is not set here, so the job would not get it",
                                 f"Set it before starting Jupyter (export {name}=...), or in the notebook with "
                                 f'os.environ["{name}"] = getpass.getpass(), then Re-check.'))
    for key in f.spec.env:
        if key != TOKEN_SECRET and SECRET_NAME.search(key):
            found.append(Verdict("warn", f"--env {key} looks like a secret but is sent as plain text",
                                 f"Pass it with --secrets {key} instead."))
    return found


def _env_reads(f: Facts) -> list[Verdict]:
    """os.environ["X"] in the cell raises KeyError in the job unless X is passed."""
    given = {*f.spec.secrets, *f.spec.env, *f.scan.env_writes, *ALWAYS_SET}
    found = []
    for read in f.scan.env_reads:
        if read.name in given:
            continue
        line = f.line(read.line)
        if read.required:
            found.append(Verdict("fail", f'line {line} reads os.environ["{read.name}"], which the job does not get '
                                 "(KeyError)", f"Add --secrets {read.name} (or --env {read.name}=... if it is "
                                 "not secret)."))
        elif SECRET_NAME.search(read.name):
            found.append(Verdict("warn", f"line {line} reads {read.name} from the environment, which the job does "
                                 "not get (it will be None)", f"Add --secrets {read.name}."))
    return found


def _cloud_credentials(f: Facts) -> list[Verdict]:
    """S3 and GCS writes need credentials, and the job has none of its own.

    For a `--push s3://` or `gs://` target the runner passes the credentials set here as secrets,
    so they must be set here; a cell writing to a bucket itself must name them with --secrets.
    """
    from hfjobs_magic.remote.storage import missing_credentials

    kinds = {p.kind: p for p in f.scan.saves if p.kind in ("s3", "gcs")}
    found = []
    if f.spec.push_kind in ("s3", "gs") and (missing := missing_credentials(f.spec.push_kind)):
        found.append(Verdict("fail", f"--push {f.spec.push} needs credentials the job does not have: "
                             f"{', '.join(missing)} not set here",
                             f"Set {', '.join(missing)} in this environment; hfjob passes them to the job as "
                             "secrets."))
    if "s3" in kinds:
        missing = [k for k in AWS_KEYS if k not in f.spec.secrets]
        if missing:
            found.append(Verdict("fail", f"{_what(f, kinds.get('s3'), 'S3')}, but the job has no AWS credentials "
                                 f"({', '.join(missing)} not among the secrets)",
                                 " ".join(f"--secrets {k}" for k in missing)
                                 + " (and AWS_SESSION_TOKEN, AWS_DEFAULT_REGION or AWS_ENDPOINT_URL if you use them)."))
    if "gcs" in kinds and not any(GCS_SECRET.search(n) for n in f.spec.secrets):
        found.append(Verdict("fail", f"{_what(f, kinds.get('gcs'), 'Google Cloud Storage')}, but the job has no "
                             "Google credentials among the secrets", "--secrets GOOGLE_APPLICATION_CREDENTIALS "
                             "(set locally to the service-account key's JSON contents, not its path)."))
    return found


def _what(f: Facts, push: object, place: str) -> str:
    line = getattr(push, "line", None)
    call = getattr(push, "call", None)
    return f"{call} (line {f.line(line)}) writes to {place}" if call and line else f"--push writes to {place}"


def _lines(lines: list[int]) -> str:
    return ", ".join(map(str, lines[:5])) + (" ..." if len(lines) > 5 else "")
