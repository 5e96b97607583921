"""What a job cell does, read from its syntax tree: pushes, imports, file and env reads, GPU use.

Pure and cheap (ast, symtable, re; no imports of the libraries it looks for), so the
checklist can run it on every re-check. It reads code, it never runs it: a push is
recognised by the call's name and by where its receiver came from (`ds =
load_dataset(...)` makes `ds.push_to_hub` a dataset push), flow-insensitively.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from hfjobs_magic.mask import TOKEN_LITERAL, hide_token_literals

TOKEN_PATTERN = TOKEN_LITERAL

HUB_UPLOADS = {"upload_file", "upload_folder", "create_commit", "upload_large_folder"}
CREATES_REPO = {"push_to_hub", "upload_large_folder", "create_repo", "CommitScheduler"}
S3_WRITES = {"put_object", "upload_fileobj"}
GCS_WRITES = {"upload_from_filename", "upload_from_string", "upload_from_file"}
HTTP_WRITES = {"post", "put", "patch"}
WRITE_PREFIXES = ("to_", "save", "write", "dump", "sink", "upload", "push_to_hub", "mkdir", "makedirs", "touch")
BUCKET_URL = "hf://buckets/"
BUCKET_CALLS = {"batch_bucket_files", "sync_bucket", "create_bucket", "copy_files"}
STORAGE_SCHEMES = {BUCKET_URL: "bucket", "hf://": "hub", "s3://": "s3", "s3a://": "s3", "gs://": "gcs", "gcs://": "gcs"}

GPU_LIBRARIES = frozenset("""
    torch torchvision torchaudio tensorflow keras jax jaxlib flax transformers trl accelerate diffusers peft
    bitsandbytes vllm xformers flash_attn deepspeed unsloth sentence_transformers lightning pytorch_lightning
    timm ultralytics onnxruntime tensorrt triton cupy cudf cuml numba paddle mxnet optimum llama_cpp setfit
    open_clip whisper liger_kernel kernels xgboost lightgbm catboost
""".split())
GPU_ONLY_LIBRARIES = frozenset("vllm flash_attn bitsandbytes xformers unsloth cupy cudf cuml tensorrt".split())
# Keyword arguments whose string is not a file the call reads (output folders, names, options).
NOT_INPUT_KWARGS = frozenset("""
    output_dir logging_dir save_directory cache_dir local_dir path_in_repo repo_id hub_model_id commit_message
    revision repo_type split name run_name report_to device device_map torch_dtype dtype mode encoding sep
""".split())
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|API_?KEY|ACCESS_?KEY|CREDENTIAL", re.I)

# Where an object came from, by the module of the call that made it.
_ORIGINS = (
    ("datasets.", "dataset"), ("boto3.", "s3"), ("botocore.", "s3"), ("google.cloud.storage.", "gcs"),
    ("requests.", "http"), ("httpx.", "http"), ("huggingface_hub.", "hub"),
    ("transformers.", "model"), ("trl.", "model"), ("peft.", "model"), ("sentence_transformers.", "model"),
    ("diffusers.", "model"), ("timm.", "model"), ("setfit.", "model"),
)
_REPO_TYPE_OF = {"dataset": "dataset", "model": "model", "trainer": "model"}


@dataclass(frozen=True)
class Push:
    """One place the cell sends data out of the job (or names a Hub repo it will push to)."""

    line: int
    call: str  # as written, e.g. "ds.push_to_hub"
    kind: str  # "hub", "bucket" (an HF bucket), "s3", "gcs" or "http"
    repo_id: str | None = None  # the literal repo id (a bucket's id for "bucket"), when the call gives one
    dynamic: bool = False  # the repo id is computed when the job runs (or comes from the trainer)
    repo_type: str | None = None  # when the call says it or implies it (a Dataset, a Trainer, HfApi's default)
    saves: bool = True  # False for create_repo and a bare hub_model_id=
    creates: bool = False  # the call creates the repo when it is missing
    implicit: bool = False  # the library names the repo (Trainer: hub_model_id or output_dir)


@dataclass(frozen=True)
class Found:
    """A line of the cell and what on it matters."""

    line: int
    text: str


@dataclass(frozen=True)
class EnvRead:
    """An environment variable the cell reads: the job has only what the job spec passes."""

    name: str
    line: int
    required: bool  # os.environ["X"]: a KeyError in the job when X is not passed


@dataclass
class CellScan:
    """Everything the checks, the carry and push verification need from the code, read in one pass."""

    syntax_error: Found | None = None
    imports: dict[str, int] = field(default_factory=dict)  # top-level module -> first line
    pushes: list[Push] = field(default_factory=list)
    file_reads: list[Found] = field(default_factory=list)  # literal relative paths given to calls
    env_reads: list[EnvRead] = field(default_factory=list)
    env_writes: set[str] = field(default_factory=set)
    gpu_code: list[Found] = field(default_factory=list)

    @property
    def saves(self) -> list[Push]:
        return [p for p in self.pushes if p.saves]


def token_lines(text: str) -> list[int]:
    """1-based lines holding a Hugging Face token literal (comments included)."""
    return [n for n, line in enumerate(text.splitlines(), 1) if TOKEN_PATTERN.search(line)]


mask_tokens = hide_token_literals


def scan(source: str, constants: Mapping[str, str] | None = None) -> CellScan:
    """Everything the checks need from a cell's code; `constants` are known string values (--vars)."""
    try:
        tree = ast.parse(source)
        return _Scanner(tree, dict(constants or {})).run()
    except SyntaxError as err:
        return CellScan(syntax_error=Found(err.lineno or 0, err.msg))
    except (ValueError, RecursionError) as err:  # null bytes, absurdly deep nesting
        return CellScan(syntax_error=Found(0, type(err).__name__))


class _Scanner:
    """One pass over the tree; small methods, one per kind of finding."""

    def __init__(self, tree: ast.Module, constants: dict[str, str]) -> None:
        self.tree = tree
        self.aliases = _aliases(tree)
        self.constants = {**constants, **_string_constants(tree)}
        self.origins: dict[str, str] = {}
        self.out = CellScan()

    def run(self) -> CellScan:
        self._collect_origins()
        self.out.imports = _imports(self.tree)
        self.out.gpu_code = [Found(line, f"imports {name}") for name, line in self.out.imports.items()
                             if name in GPU_ONLY_LIBRARIES]
        skip_reads = _write_receivers(self.tree)
        written = _written_literals(self.tree)
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                self.out.pushes += self._pushes(node)
                if id(node) not in skip_reads:
                    self.out.file_reads += [f for f in _literal_paths(node) if f.text not in written]
                self._env_call(node)
            self._env_subscript(node)
            self._gpu_node(node)
        return self.out

    # -- where objects come from ---------------------------------------------------------
    def _collect_origins(self) -> None:
        assigns = [n for n in ast.walk(self.tree) if isinstance(n, (ast.Assign, ast.AnnAssign, ast.withitem))]
        for _ in range(2):  # twice, so `b = a.map(...)` works whatever the order
            for node in assigns:
                value = node.context_expr if isinstance(node, ast.withitem) else node.value
                targets = [node.optional_vars] if isinstance(node, ast.withitem) else _targets(node)
                origin = self.origin(value) if value is not None else None
                for target in targets:
                    if isinstance(target, ast.Name) and origin:
                        self.origins[target.id] = origin

    def origin(self, node: ast.AST) -> str | None:
        """"dataset", "model", "trainer", "s3", "gcs", "http", "hub" or None."""
        if isinstance(node, ast.Name):
            return self.origins.get(node.id) or _origin_of(self.aliases.get(node.id, ""))
        if isinstance(node, ast.Call):
            name = self.qualname(node.func)
            if name and name.rsplit(".", 1)[-1].endswith("Trainer"):
                return "trainer"
            return self.origin(node.func)
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            return self.origin(node.value)
        if isinstance(node, ast.Await):
            return self.origin(node.value)
        return None

    def qualname(self, node: ast.AST) -> str | None:
        """`D.from_dict` -> "datasets.Dataset.from_dict" through the cell's imports."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def literal(self, node: ast.AST | None) -> str | None:
        """A string known before the job runs: a constant, a constant name, or an f-string of those."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.constants.get(node.id)
        if isinstance(node, ast.JoinedStr):
            parts = [self.literal(v.value if isinstance(v, ast.FormattedValue) else v) for v in node.values]
            return None if None in parts else "".join(parts)  # type: ignore[arg-type]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.literal(node.left), self.literal(node.right)
            return None if left is None or right is None else left + right
        return None

    # -- pushes --------------------------------------------------------------------------
    def _pushes(self, call: ast.Call) -> list[Push]:
        name = _call_name(call)
        receiver = self.origin(call.func.value) if isinstance(call.func, ast.Attribute) else None
        found = [self._push_kwarg(call)] if _kw_true(call, "push_to_hub") else []
        if _has_kw(call, "hub_model_id") and not found:
            found.append(self._hub_push(call, "hub_model_id", "model", saves=False))
        if name == "push_to_hub":
            found.append(self._push_to_hub(call, receiver))
        elif name in HUB_UPLOADS | {"create_repo"} and not self._is_s3_upload(call, name, receiver):
            found.append(self._hub_upload(call, name))
        elif name in BUCKET_CALLS and (bucket := self._bucket_call(call, name)) is not None:
            found.append(bucket)
        elif name == "CommitScheduler":
            found.append(self._hub_push(call, "repo_id", _kw_literal(call, "repo_type") or "model", creates=True))
        elif kind := self._other_kind(call, name, receiver):
            found.append(Push(call.lineno, self.written(call), kind))
        found += self._scheme_writes(call, name)
        return found

    def written(self, call: ast.Call) -> str:
        """How the user wrote the callee, arguments elided: "ds.push_to_hub", "Dataset.from_dict(...).push_to_hub"."""
        return _short(call.func)

    def _is_trainer(self, node: ast.AST) -> bool:
        """`trainer` or `SFTTrainer(...)` itself (not `trainer.model`, which pushes like a model)."""
        if isinstance(node, ast.Name):
            return self.origins.get(node.id) == "trainer"
        return isinstance(node, ast.Call) and self.origin(node) == "trainer"

    def _push_to_hub(self, call: ast.Call, receiver: str | None) -> Push:
        if isinstance(call.func, ast.Attribute) and self._is_trainer(call.func.value):
            return Push(call.lineno, self.written(call), "hub", None, True, "model", creates=True, implicit=True)
        repo_type = _kw_literal(call, "repo_type") or _REPO_TYPE_OF.get(receiver or "")
        return self._push_with(call, _arg(call, 0, "repo_id"), repo_type, creates=True)

    def _hub_upload(self, call: ast.Call, name: str) -> Push:
        """HfApi methods (and their module-level twins): repo_type defaults to "model"."""
        node = _kwarg(call, "repo_id") or (call.args[0] if call.args and name != "upload_file" else None)
        repo_type = _kw_literal(call, "repo_type") if _has_kw(call, "repo_type") else "model"
        push = self._push_with(call, node, repo_type, creates=name in CREATES_REPO)
        return _replace(push, saves=False) if name == "create_repo" else push

    def _push_kwarg(self, call: ast.Call) -> Push:
        """`TrainingArguments(push_to_hub=True, hub_model_id=...)`, `save_pretrained(..., push_to_hub=True)`."""
        node = _kwarg(call, "hub_model_id") or _kwarg(call, "repo_id")
        push = self._push_with(call, node, "model", creates=True)
        return push if node is not None else _replace(push, implicit=True)

    def _hub_push(self, call: ast.Call, key: str, repo_type: str | None, **extra: bool) -> Push:
        return _replace(self._push_with(call, _kwarg(call, key), repo_type), **extra)

    def _push_with(self, call: ast.Call, node: ast.AST | None, repo_type: str | None, *,
                   creates: bool = False) -> Push:
        repo_id = self.literal(node)
        return Push(call.lineno, self.written(call), "hub", repo_id, repo_id is None, repo_type, creates=creates)

    def _bucket_call(self, call: ast.Call, name: str) -> Push | None:
        """HF bucket calls: batch adds and copies, syncs and copies into a bucket, and bucket creation."""
        if name in ("sync_bucket", "copy_files"):
            source = self.literal(_arg(call, 0, "source")) or ""
            node = _arg(call, 1, "dest" if name == "sync_bucket" else "destination")
            dest = self.literal(node)
            into_repo = dest is not None and not dest.startswith(BUCKET_URL)
            if into_repo or (source.startswith(BUCKET_URL) and dest is None):
                return None  # a copy into a repo, or a download from a bucket
            return Push(call.lineno, self.written(call), "bucket", bucket_of(dest), dest is None)
        bucket = self.literal(_arg(call, 0, "bucket_id"))
        repo_id = bucket_of(bucket) if bucket and bucket.startswith(BUCKET_URL) else bucket
        saves = name == "batch_bucket_files" and (_has_kw(call, "add") or _has_kw(call, "copy"))
        return Push(call.lineno, self.written(call), "bucket", repo_id, repo_id is None, saves=saves,
                    creates=name == "create_bucket")

    def _is_s3_upload(self, call: ast.Call, name: str, receiver: str | None) -> bool:
        """boto3's `upload_file(Filename, Bucket, Key)` shares its name with HfApi's keyword-only one."""
        if name != "upload_file" or receiver == "hub":
            return False
        return receiver == "s3" or (len(call.args) >= 2 and not _has_kw(call, "repo_id"))

    def _other_kind(self, call: ast.Call, name: str, receiver: str | None) -> str | None:
        qualname = self.qualname(call.func) or ""
        if name in S3_WRITES or (name == "upload_file" and self._is_s3_upload(call, name, receiver)):
            return "s3"
        if receiver == "s3" and name == "put":
            return "s3"
        if name in GCS_WRITES:
            return "gcs"
        is_http = receiver == "http" or _origin_of(qualname) == "http"
        if is_http and (name in HTTP_WRITES or (name == "request" and _first_upper(call) in {"POST", "PUT", "PATCH"})):
            return "http"
        return None

    def _scheme_writes(self, call: ast.Call, name: str) -> list[Push]:
        """`df.to_parquet("hf://datasets/alice/x/data.parquet")`, `"s3://..."`, `"gs://..."`."""
        if not name.startswith(WRITE_PREFIXES) or name in {"upload_file", "upload_folder", "push_to_hub"}:
            return []
        found = []
        for node in [*call.args, *(k.value for k in call.keywords)]:
            text = self.literal(node) or ""
            scheme = next((s for s in STORAGE_SCHEMES if text.startswith(s)), None)
            if scheme:
                kind = STORAGE_SCHEMES[scheme]
                repo_type, repo_id = hf_uri_repo(text) if kind == "hub" else (None, bucket_of(text))
                found.append(Push(call.lineno, self.written(call), kind, repo_id, False, repo_type))
        return found

    # -- environment and GPU ----------------------------------------------------------------
    def _env_call(self, call: ast.Call) -> None:
        qualname = self.qualname(call.func) or ""
        if qualname in {"os.getenv", "os.environ.get"} and call.args:
            name = self.literal(call.args[0])
            if name and len(call.args) < 2 and not call.keywords:
                self.out.env_reads.append(EnvRead(name, call.lineno, required=False))
        elif qualname in {"os.environ.setdefault", "os.putenv"} and call.args and (name := self.literal(call.args[0])):
            self.out.env_writes.add(name)

    def _env_subscript(self, node: ast.AST) -> None:
        if not (isinstance(node, ast.Subscript) and self.qualname(node.value) == "os.environ"):
            return
        name = self.literal(node.slice)
        if name and isinstance(node.ctx, ast.Load):
            self.out.env_reads.append(EnvRead(name, node.lineno, required=True))
        elif name:
            self.out.env_writes.add(name)

    def _gpu_node(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"cuda(:\d+)?", node.value):
            self.out.gpu_code.append(Found(node.lineno, f'"{node.value}"'))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "cuda":
            self.out.gpu_code.append(Found(node.lineno, ".cuda()"))


def bucket_of(url: str | None) -> str | None:
    """`hf://buckets/alice/b/some/path` -> "alice/b"; None when the URL names no bucket."""
    if not url or not url.startswith(BUCKET_URL):
        return None
    parts = url[len(BUCKET_URL):].split("/")
    return f"{parts[0]}/{parts[1]}" if len(parts) >= 2 and parts[0] and parts[1] else None


def hf_uri_repo(uri: str) -> tuple[str | None, str | None]:
    """`hf://datasets/alice/x/file` -> ("dataset", "alice/x"); (None, None) when it names no repo."""
    parts = uri[len("hf://"):].split("/")
    prefixes = {"datasets": "dataset", "spaces": "space", "models": "model"}
    repo_type = prefixes.get(parts[0], "model")
    if parts[0] in prefixes:
        parts = parts[1:]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return None, None
    return repo_type, f"{parts[0]}/{parts[1].split('@')[0]}"


# -- helpers on nodes ------------------------------------------------------------------------


def _short(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_short(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_short(node.func)}({'...' if node.args or node.keywords else ''})"
    if isinstance(node, ast.Subscript):
        return f"{_short(node.value)}[...]"
    return "..."


def _replace(push: Push, **changes: object) -> Push:
    from dataclasses import replace

    return replace(push, **changes)


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> the dotted name it was imported as."""
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                found[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names if a.name != "*"})
    return found


def _imports(tree: ast.Module) -> dict[str, int]:
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            found[top] = min(found.get(top, node.lineno), node.lineno)
    found.pop("__future__", None)
    return found


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level names bound exactly once, to a string constant (`REPO = "alice/x"`)."""
    counts: dict[str, int] = {}
    values: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            counts[node.id] = counts.get(node.id, 0) + 1
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            values[node.targets[0].id] = node.value.value
    return {k: v for k, v in values.items() if counts.get(k) == 1}


def _origin_of(qualname: str) -> str | None:
    if qualname.rsplit(".", 1)[-1] == "load_dataset":
        return "dataset"
    return next((origin for prefix, origin in _ORIGINS if f"{qualname}.".startswith(prefix)), None)


def _targets(node: ast.Assign | ast.AnnAssign) -> list[ast.AST]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    flat: list[ast.AST] = []
    for t in targets:
        flat += t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t]
    return flat


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _kwarg(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _has_kw(call: ast.Call, name: str) -> bool:
    return any(k.arg == name for k in call.keywords)


def _kw_true(call: ast.Call, name: str) -> bool:
    value = _kwarg(call, name)
    return isinstance(value, ast.Constant) and value.value is True


def _kw_literal(call: ast.Call, name: str) -> str | None:
    value = _kwarg(call, name)
    return value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else None


def _arg(call: ast.Call, index: int, name: str) -> ast.AST | None:
    return _kwarg(call, name) or (call.args[index] if len(call.args) > index else None)


def _first_upper(call: ast.Call) -> str:
    first = call.args[0] if call.args else None
    return first.value.upper() if isinstance(first, ast.Constant) and isinstance(first.value, str) else ""


def _is_write(call: ast.Call) -> bool:
    name = _call_name(call)
    if name == "open":
        mode = _arg(call, 1, "mode")
        return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and bool(set(mode.value) & set("wax"))
    return name.startswith(WRITE_PREFIXES) or name in HUB_UPLOADS | CREATES_REPO


def _write_receivers(tree: ast.Module) -> set[int]:
    """Calls whose literal paths are written, not read: `open(p, "w")`, `Path(p).write_text(...)`."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_write(node):
            skip.add(id(node))
            receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
            while isinstance(receiver, (ast.Call, ast.Attribute, ast.BinOp)):
                skip.add(id(receiver))
                receiver = receiver.func if isinstance(receiver, ast.Call) else getattr(receiver, "value", None)
    return skip


def _written_literals(tree: ast.Module) -> set[str]:
    """Literal paths the cell writes itself (so reading them later is fine)."""
    skip = _write_receivers(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and id(node) in skip:
            found |= {f.text for f in _literal_paths(node)}
    return found


def _literal_paths(call: ast.Call) -> list[Found]:
    """String constants given to a call (also inside lists and dicts) that look like relative paths."""
    values: list[ast.AST] = [*call.args, *(k.value for k in call.keywords if k.arg not in NOT_INPUT_KWARGS)]
    found = []
    while values:
        node = values.pop()
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            values += node.elts
        elif isinstance(node, ast.Dict):
            values += [v for v in node.values if v is not None]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _looks_relative(node.value):
            found.append(Found(node.lineno, node.value))
    return sorted(found, key=lambda f: f.line)


def _looks_relative(text: str) -> bool:
    if not text or len(text) > 255 or text.strip() != text or "\n" in text or "://" in text:
        return False
    return not text.startswith(("/", "~", "-")) and text not in {".", ".."}
