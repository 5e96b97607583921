"""Where a job pushes on the Hub, and whether it can: repo ids, namespaces, types, existence.

Pure: the Hub's answers (whoami, repo infos) come in as data from `lookups.gather`.
The `push_target` and `token` checks are built on these pieces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hfjobs_magic.cell.scan import BUCKET_URL, CellScan, Push, bucket_of
from hfjobs_magic.checks.lookups import Answer

if TYPE_CHECKING:
    from hfjobs_magic.cell.spec import JobSpec

TOKENS_URL = "https://huggingface.co/settings/tokens"
WRITE_ROLES = ("admin", "write", "contributor")
LOOKUP_TYPES = ("model", "dataset")  # always asked, so a push to the wrong type of an existing repo shows


@dataclass(frozen=True)
class Use:
    """One place that names a repo: `--push` or a call in the cell."""

    source: str  # "--push" or "ds.push_to_hub (line 4)"
    repo_type: str | None
    saves: bool
    creates: bool


@dataclass
class Target:
    """A repo the cell or --push names, with every place that uses it."""

    repo_id: str
    uses: list[Use] = field(default_factory=list)

    @property
    def namespace(self) -> str | None:
        return self.repo_id.split("/", 1)[0] if "/" in self.repo_id else None

    @property
    def types(self) -> list[str]:
        return list(dict.fromkeys(u.repo_type for u in self.uses if u.repo_type))

    def lookups(self) -> list[tuple[str, str]]:
        return [(self.repo_id, t) for t in dict.fromkeys([*self.types, *LOOKUP_TYPES])]


def where(push: Push, lines: Mapping[int, int] | None = None) -> str:
    """"ds.push_to_hub (line 4)", with the line as the user sees it in the cell."""
    return f"{push.call} (line {(lines or {}).get(push.line, push.line)})"


def collect_targets(spec: JobSpec, scan: CellScan, lines: Mapping[int, int] | None = None) -> list[Target]:
    """Every repo id known before the job runs, from `--push` and the cell's literal arguments."""
    targets: dict[str, Target] = {}
    if spec.push_kind == "hub" and spec.push:
        use = Use("--push", spec.repo_type or "model", saves=bool(spec.outputs), creates=True)
        targets.setdefault(spec.push, Target(spec.push)).uses.append(use)
    for push in scan.pushes:
        if push.kind == "hub" and push.repo_id:
            use = Use(where(push, lines), push.repo_type, push.saves, push.creates)
            targets.setdefault(push.repo_id, Target(push.repo_id)).uses.append(use)
    return list(targets.values())


def cell_push_targets(spec: JobSpec, scan: CellScan) -> list[tuple[str, str]]:
    """(repo_id, repo_type) of the repos the cell itself saves to, by literal id, other than `--push`; an HF
    bucket it writes is (`hf://buckets/ns/name`, "bucket").

    The watcher verifies them too, so "pushed" means confirmed for them as well.
    """
    found = []
    for target in collect_targets(spec, scan):
        saving = [u for u in target.uses if u.saves and u.source != "--push"]
        if saving and target.repo_id != spec.push:
            found.append((target.repo_id, next((u.repo_type for u in saving if u.repo_type), "model")))
    pushed_bucket = bucket_of(spec.push) if spec.push_kind == "bucket" else None
    buckets = {p.repo_id for p in scan.pushes if p.kind == "bucket" and p.saves and p.repo_id}
    return found + [(f"{BUCKET_URL}{bucket}", "bucket") for bucket in sorted(buckets - {pushed_bucket})]


def unchecked_pushes(scan: CellScan, lines: Mapping[int, int] | None = None) -> list[tuple[Push, str]]:
    """Hub pushes whose repo is only known when the job runs, with what to tell the user."""
    named_by_args = any(p.repo_id and p.repo_type == "model" and p.call.endswith(("Arguments", "Config"))
                        for p in scan.pushes)
    found = []
    for push in scan.pushes:
        if push.kind != "hub" or not push.dynamic or (push.implicit and named_by_args):
            continue
        if push.implicit:
            found.append((push, f"{where(push, lines)} pushes to a repo named after output_dir under your user"))
        else:
            found.append((push, f"the repo id of {where(push, lines)} is computed when the job runs"))
    return found


# -- the account behind the token ---------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """What whoami says about the token: who, which role, where it may write."""

    name: str
    role: str | None  # "read", "write", "fineGrained"
    writable: tuple[str, ...]
    read_only: tuple[str, ...]
    unknown_role: tuple[str, ...]
    scoped: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_whoami(cls, data: Mapping[str, Any]) -> Account:
        token = (data.get("auth") or {}).get("accessToken") or {}
        orgs = [o for o in data.get("orgs") or [] if o.get("name")]
        return cls(
            name=data["name"],
            role=token.get("role"),
            writable=(data["name"], *[o["name"] for o in orgs if o.get("roleInOrg") in WRITE_ROLES]),
            read_only=tuple(o["name"] for o in orgs if o.get("roleInOrg") == "read"),
            unknown_role=tuple(o["name"] for o in orgs if not o.get("roleInOrg")),
            scoped=tuple((token.get("fineGrained") or {}).get("scoped") or ()),
        )

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (*self.writable, *self.read_only, *self.unknown_role)

    def token_problem(self, namespace: str, repo_id: str | None = None) -> str | None:
        """Why the token itself cannot write there (read-only, or fine-grained without the right)."""
        if self.role == "read":
            return "your token is read-only"
        if self.role == "fineGrained" and not self._scope_allows(namespace, repo_id):
            return f"your fine-grained token has no write permission (repo.write) on {namespace}"
        return None

    def namespace_problem(self, namespace: str) -> str | None:
        """Why this user cannot write in `namespace` whatever the token, or None."""
        if namespace in self.writable or namespace in self.unknown_role:
            return None
        if namespace in self.read_only:
            return f"you can only read in the {namespace} organization"
        return f"{namespace} is neither you ({self.name}) nor an organization you belong to"

    def _scope_allows(self, namespace: str, repo_id: str | None) -> bool:
        for scope in self.scoped:
            entity = scope.get("entity") or {}
            if entity.get("name") in (namespace, repo_id) and "repo.write" in (scope.get("permissions") or ()):
                return True
        return False


# -- judging one target ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What one rule found; the worst of them becomes the check's result."""

    status: str  # "ok", "warn", "fail"
    message: str
    fix: str = ""


def id_verdict(target: Target, account: Account | None) -> Verdict | None:
    """huggingface_hub's own rules, plus: a namespace is required and uppercase is discouraged."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    you = account.name if account else "your-username"
    if target.namespace is None:
        return Verdict("fail", f"{target.repo_id!r} has no namespace",
                       f'Write it in full, e.g. "{you}/{target.repo_id}".')
    try:
        validate_repo_id(target.repo_id)
    except HFValidationError as err:
        return Verdict("fail", f"{target.repo_id!r} is not a valid repo id: {err}",
                       "Use letters, digits, '-', '_' and '.' (at most 96 characters), as namespace/name.")
    if target.repo_id != target.repo_id.lower():
        return Verdict("warn", f"{target.repo_id} has uppercase letters (allowed, but easy to mistype)",
                       f'Prefer "{target.repo_id.lower()}".')
    return None


def access_verdict(target: Target, account: Account | None, whoami: Answer) -> Verdict | None:
    """Whether this token may write in the target's namespace (None: it may)."""
    namespace = target.namespace or ""
    if account is None:
        why = whoami.failure or "no token"
        return Verdict("warn", f"could not verify write access to {namespace} ({why})",
                       "Log in (`hf auth login`) or check the connection, then Re-check.")
    problem = account.token_problem(namespace, target.repo_id) or account.namespace_problem(namespace)
    if problem is None:
        return None
    choices = ", ".join(account.writable)
    fix = (f"Create a write token at {TOKENS_URL} and log in with it (`hf auth login`)."
           if "token" in problem else f"Push to a namespace you can write to: {choices}.")
    return Verdict("fail", f"{problem}: the job cannot push to {target.repo_id}", fix)


def existence_verdict(target: Target, answers: Mapping[tuple[str, str], Answer]) -> Verdict:
    """Exists with the pushed type (a commit is added), will be created, or clashes with another type."""
    mine = {t: answers.get((target.repo_id, t), Answer(failure="not asked")) for _, t in target.lookups()}
    existing = [t for t, a in mine.items() if a.ok and a.value is not None]
    wanted = target.types[0] if target.types else None
    asked = mine[wanted] if wanted else next((a for a in mine.values() if not a.ok), Answer())
    if wanted in existing or (wanted is None and existing):
        kind = wanted or existing[0]
        return Verdict("ok", f"{kind} repo {target.repo_id} exists: a commit will be added")
    if not asked.ok:
        return Verdict("warn", f"could not check whether {target.repo_id} exists ({asked.failure})",
                       "Check the connection to the Hub, then Re-check.")
    if existing:
        return _type_clash(target, existing[0])
    if not any(u.creates for u in target.uses):
        return _not_created(target)
    kind = f"{wanted} repo" if wanted else "repo"
    return Verdict("ok", f"{kind} {target.repo_id} does not exist yet: it will be created on first push")


def _type_clash(target: Target, existing: str) -> Verdict:
    use = next(u for u in target.uses if u.repo_type and u.repo_type != existing)
    fix = (f"Pass --repo-type {existing}." if use.source == "--push" else
           f'Push to the {existing} repo (repo_type="{existing}") or choose a new name for the {use.repo_type} repo.')
    return Verdict("fail", f"{target.repo_id} is a {existing} repo, but {use.source} pushes to a {use.repo_type} repo "
                   f"of that name (a different repo, which does not exist)", fix)


def _not_created(target: Target) -> Verdict:
    kind = target.types[0] if target.types else "model"
    sources = ", ".join(u.source for u in target.uses)
    return Verdict("fail", f"{kind} repo {target.repo_id} does not exist, and {sources} does not create it",
                   f'Create it first in the cell: HfApi().create_repo("{target.repo_id}", repo_type="{kind}", '
                   "exist_ok=True).")


def type_conflict(target: Target) -> Verdict | None:
    """`--push` says one type and a call of the cell pushes another to the same repo id."""
    types = target.types
    if len(types) < 2:
        return None
    flagged = next((u for u in target.uses if u.source == "--push"), None)
    other = next(u for u in target.uses if u.repo_type and u.repo_type != types[0])
    first = next(u for u in target.uses if u.repo_type == types[0])
    fix = f"Pass --repo-type {other.repo_type}." if flagged is first else "Push it with one repo type."
    return Verdict("fail", f"{target.repo_id} is pushed as a {first.repo_type} repo by {first.source} and as a "
                   f"{other.repo_type} repo by {other.source}: those are two different repos", fix)


def judge(target: Target, account: Account | None, whoami: Answer,
          answers: Mapping[tuple[str, str], Answer]) -> Verdict:
    """The worst of: id, type conflict, access, existence."""
    verdicts = [id_verdict(target, account)]
    if verdicts[0] is None or verdicts[0].status != "fail":
        verdicts += [type_conflict(target), access_verdict(target, account, whoami),
                     existence_verdict(target, answers)]
    found = [v for v in verdicts if v is not None]
    return worst(found)


def worst(verdicts: list[Verdict]) -> Verdict:
    rank = {"ok": 0, "warn": 1, "fail": 2}
    top = max(verdicts, key=lambda v: rank[v.status])
    if top.status == "ok":
        return top
    bad = [v for v in verdicts if v.status != "ok"]
    return Verdict(top.status, "; ".join(v.message for v in bad), " ".join(dict.fromkeys(v.fix for v in bad if v.fix)))
