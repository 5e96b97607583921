"""The `%%hfjob` flags, declared once: `spec` builds the parser from them on first use, and their help
is plain text made here, cheaply enough to be the magic's docstring from the moment the extension loads
(argparse would format it in several milliseconds)."""

from __future__ import annotations

import textwrap
from typing import Any

from IPython.core.magic_arguments import argument, argument_group

from hfjobs_magic.cell import DEFAULT_IMAGE

REPO_TYPES = ("model", "dataset", "space")
HELP_COLUMN, HELP_WIDTH = 24, 100

DECLARATIONS: list[Any] = [  # in the order help lists them
    argument_group("hardware and environment"),
    argument("--flavor", help="hardware to run on, e.g. cpu-basic, t4-small, a10g-large (default: cpu-basic)"),
    argument("--timeout", metavar="DURATION",
             help="stop the job after this long: seconds or a number with s/m/h/d, e.g. 90m, 1.5h "
                  "(the server default is 30m)"),
    argument("--image", help=f"Docker image with uv in it (default: {DEFAULT_IMAGE})"),
    argument("--python", metavar="VERSION", help="Python version for the job, e.g. 3.11 (default: 3.10 or newer)"),
    argument("--namespace", help="user or org that runs (and pays for) the job (default: you)"),
    argument("--name", help="a name for the job, shown in the jobs list"),
    argument("--label", action="append", metavar="K=V", help="a label on the job; repeatable"),
    argument("--secrets", action="append", metavar="NAME[=VALUE]",
             help="a secret for the job, from your environment or given; repeatable (HF_TOKEN is passed unless "
                  "--no-token)"),
    argument("--env", action="append", metavar="K=V",
             help="an environment variable for the job (not secret); repeatable"),
    argument("--no-token", action="store_true", default=None, help="do not pass your HF_TOKEN to the job"),
    argument("--volume", dest="volumes", action="append", metavar="HF_URI:/MOUNT",
             help="mount hf://[TYPE/]ID[/PATH]:/MOUNT[:ro|:rw] in the job, as `hf jobs run -v` does: a bucket "
                  "(read-write unless :ro) or a model/dataset/space repo (read-only); repeatable"),
    argument_group("script"),
    argument("--with", dest="with_deps", action="append", metavar="DEP",
             help="an extra dependency (pip requirement), wins over the inferred one; repeatable"),
    argument("--vars", metavar="NAMES",
             help="notebook variables to send to the job, e.g. --vars lr,epochs (plain literal values only)"),
    argument("--no-pin", action="store_true", default=None,
             help="do not pin inferred dependencies to this kernel's versions"),
    argument("--no-carry", action="store_true", default=None,
             help="carry nothing from the notebook (by default the imports, functions, classes and values the "
                  "cell reads from earlier cells travel with it)"),
    argument_group("results"),
    argument("--push", metavar="TARGET",
             help="where results go: a Hub repo id (user/name), an HF bucket hf://buckets/user/name[/prefix] "
                  "(with --outputs: mounted, so every file is kept even if the job is killed), "
                  "s3://bucket/prefix or gs://bucket/prefix"),
    argument("--repo-type", choices=REPO_TYPES, help="type of the Hub repo given to --push (default: model)"),
    argument("--outputs", metavar="DIR",
             help="a folder in the job whose files are pushed to --push (a bucket: the folder is the bucket)"),
    argument("--sync-every", metavar="DURATION", help="also push --outputs this often while the job runs, e.g. 10m"),
    argument("--card", action="store_true", default=None, help="write a card describing the job to the --push repo"),
    argument("--allow-no-push", action="store_true", default=None,
             help="accept that nothing is pushed: the results are lost when the job ends"),
    argument("--return", dest="returns", metavar="NAMES",
             help="variables set in this kernel when the job completes, e.g. --return model_score,counts "
                  "(signed, through the private bucket NAMESPACE/jobs-artifacts)"),
    argument("--pull", metavar="DIR",
             help="after the job, download what it pushed from --outputs into DIR next to the notebook"),
    argument_group("operating"),
    argument("--schedule", metavar="CRON",
             help="make the cell a scheduled job instead of running it now: @hourly, @daily, @weekly, @monthly, "
                  "@yearly or five cron fields (UTC), e.g. '0 3 * * *'"),
    argument("--cancel-if-idle", metavar="DURATION",
             help="on a GPU flavor, cancel the job once its GPU has been idle (under 5 %%) this long, e.g. 15m"),
    argument_group("submission"),
    argument("--yes", action="store_true", default=None, help="submit as soon as every check passes, no click"),
    argument("--detach", action="store_true", default=None, help="return right after submission; do not follow"),
    argument("--dry-run", action="store_true", default=None, help="show the script and the checks; submit nothing"),
]


def known_flags() -> list[str]:
    """Every option `%%hfjob` accepts, in declaration order (for did-you-mean, completion and docs)."""
    return [d.args[0] for d in DECLARATIONS if isinstance(d, argument)]


def flags_text() -> str:
    """Every flag under its group, with its value's name and its help, as `%%hfjob?` shows them."""
    lines: list[str] = []
    for declaration in DECLARATIONS:
        if not isinstance(declaration, argument):
            lines += ["", f"{declaration.args[0]}:"]
            continue
        options = declaration.kwds
        name = declaration.args[0]
        if options.get("choices"):
            name += " {" + ",".join(options["choices"]) + "}"
        elif options.get("action") != "store_true":
            name += " " + options.get("metavar", name.lstrip("-").upper().replace("-", "_"))
        said = options.get("help", "").replace("%%", "%")  # argparse's escape
        head, indent = f"  {name}", " " * HELP_COLUMN
        if len(head) >= HELP_COLUMN - 1:  # a long name gets a line of its own, as argparse does it
            lines.append(head)
            head = ""
        lines.append(textwrap.fill(said, HELP_WIDTH, initial_indent=head.ljust(HELP_COLUMN), subsequent_indent=indent,
                                   break_on_hyphens=False, break_long_words=False))
    return "\n".join(lines).strip("\n")
