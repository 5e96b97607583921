"""Which distributions a cell needs: its imports -> PEP 508 requirements.

This kernel's installed files say best what the cell really used, and which version it
was tested with; a short curated table covers import names that differ from their
distribution, and well-known packages this kernel may lack.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
from collections.abc import Iterable
from functools import cache, lru_cache

# Import names whose distribution is named differently, or well known enough to resolve when
# this kernel lacks them. Curated on purpose: guessing a distribution from an import name is
# how typosquatted packages get installed.
IMPORT_TO_DISTRIBUTION = {
    "attr": "attrs", "Bio": "biopython", "bs4": "beautifulsoup4", "Crypto": "pycryptodome",
    "cv2": "opencv-python", "dateutil": "python-dateutil", "docx": "python-docx", "dotenv": "python-dotenv",
    "faiss": "faiss-cpu", "fitz": "pymupdf", "git": "gitpython", "google": "google-cloud-storage",
    "google.auth": "google-auth", "google.genai": "google-genai", "google.generativeai": "google-generativeai",
    "google.protobuf": "protobuf", "googleapiclient": "google-api-python-client", "jwt": "pyjwt",
    "magic": "python-magic", "mpl_toolkits": "matplotlib", "MySQLdb": "mysqlclient", "OpenSSL": "pyopenssl",
    "PIL": "pillow", "pkg_resources": "setuptools", "pptx": "python-pptx", "psycopg2": "psycopg2-binary",
    "serial": "pyserial", "skimage": "scikit-image", "sklearn": "scikit-learn", "umap": "umap-learn",
    "yaml": "pyyaml", "zmq": "pyzmq",
}
SAME_NAME = frozenset([
    "accelerate", "anthropic", "bitsandbytes", "boto3", "botocore", "datasets", "deepspeed", "diffusers",
    "duckdb", "einops", "evaluate", "fastapi", "flash_attn", "fsspec", "gcsfs", "gradio", "hf_transfer",
    "hf_xet", "httpx", "huggingface_hub", "jax", "jinja2", "joblib", "kernels", "keras", "librosa", "lightgbm",
    "lightning", "liger_kernel", "lxml", "matplotlib", "networkx", "nltk", "numpy", "openai", "openpyxl",
    "optax", "pandas", "peft", "plotly", "polars", "pyarrow", "pydantic", "pytorch_lightning", "regex",
    "requests", "rich", "s3fs", "safetensors", "scipy", "seaborn", "sentence_transformers", "sentencepiece",
    "soundfile", "spacy", "statsmodels", "sympy", "tensorflow", "tiktoken", "timm", "tokenizers", "torch",
    "torchaudio", "torchvision", "tqdm", "trackio", "transformers", "trl", "unsloth", "vllm", "wandb",
    "xformers", "xgboost",
])

# Namespace packages: only a known sub-package names a distribution.
NAMESPACES = frozenset({"google"})
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?=$|[\[<>=!~;@(,\s])")


def find_imports(tree: ast.AST) -> list[str]:
    """Dotted module paths imported anywhere in the code (absolute imports only)."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from google.cloud import storage` names a module one level down.
            found += [f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*"] or [node.module]
    return sorted({m for m in found if m.split(".")[0] != "__future__"})


def infer_dependencies(
    modules: Iterable[str], *, pin: bool = True, known: set[str] | None = None
) -> tuple[list[str], list[str]]:
    """(requirements, unresolved top-level modules) for the non-stdlib imports.

    A module is unresolved when no distribution is known for it and no declared
    requirement (`known`, canonical names) carries its name.
    """
    requirements: dict[str, str] = {}
    unresolved: set[str] = set()
    for module in modules:
        top = module.split(".")[0]
        if top in sys.stdlib_module_names:
            continue
        dist = distribution_for(module)
        if dist is None:
            if canonical_name(top) not in (known or set()):
                unresolved.add(top)
            continue
        version = installed_version(dist) if pin else None
        requirements.setdefault(dist, f"{dist}=={version}" if version else dist)
    return [requirements[name] for name in sorted(requirements)], sorted(unresolved)


def distribution_for(module: str) -> str | None:
    """The canonical distribution name that provides `module`, or None if unknown.

    This kernel's installed files come first (they say what the cell really used),
    then the curated table; the `google` namespace is resolved by its sub-packages.
    """
    parts = module.split(".")
    owner = _installed_owner(parts)
    if owner:
        return owner
    for depth in range(len(parts), 0, -1):
        prefix = ".".join(parts[:depth])
        if prefix in IMPORT_TO_DISTRIBUTION:
            return IMPORT_TO_DISTRIBUTION[prefix]
        if depth == 3 and parts[:2] == ["google", "cloud"]:
            return canonical_name(f"google-cloud-{parts[2]}")
        if depth == 2 and parts[0] in NAMESPACES:
            return None  # `google.colab` is not google-cloud-storage
    return canonical_name(parts[0]) if parts[0] in SAME_NAME else None


def _installed_owner(parts: list[str]) -> str | None:
    """The installed distribution holding the deepest part of the module path."""
    candidates = _packages_distributions().get(parts[0], [])
    for depth in range(len(parts), 0, -1):
        owners = {canonical_name(d) for d in candidates if _provides(d, parts[:depth])}
        if len(owners) == 1:
            return owners.pop()
    if len(candidates) == 1 and _files(candidates[0]) is None:
        return canonical_name(candidates[0])
    return None


def _provides(dist: str, parts: list[str]) -> bool:
    """Whether `dist` installs the (sub)module `parts`; a namespace folder alone does not count."""
    files = _files(dist) or frozenset()
    stem = "/".join(parts)
    if f"{stem}/__init__.py" in files or f"{stem}.py" in files:
        return True
    return any(f.startswith(stem + ".") and f.endswith((".so", ".pyd")) for f in files)


@lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    return {top: list(dict.fromkeys(dists)) for top, dists in metadata.packages_distributions().items()}


@cache
def _files(dist: str) -> frozenset[str] | None:
    try:
        files = metadata.distribution(dist).files
    except metadata.PackageNotFoundError:
        return None
    return None if files is None else frozenset(str(f.as_posix()) for f in files)


def installed_version(dist: str) -> str | None:
    """This kernel's version of `dist`, without a local label (`2.3.0+cu121` -> `2.3.0`)."""
    try:
        return metadata.version(dist).split("+", 1)[0]
    except metadata.PackageNotFoundError:
        return None


def canonical_name(name: str) -> str:
    """PEP 503 normalization: `PyYAML` -> `pyyaml`, `huggingface_hub` -> `huggingface-hub`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str | None:
    """The canonical distribution name of a PEP 508 requirement (None for a bare URL)."""
    found = _REQUIREMENT_NAME.match(requirement)
    return canonical_name(found.group(1)) if found else None


def merge_dependencies(base: Iterable[str], extra: Iterable[str], *, replace: bool = True) -> list[str]:
    """`base` plus `extra`; an extra naming a distribution already in `base` replaces it
    (or, with `replace=False`, is skipped: the declared requirement wins)."""
    merged = {requirement_name(r) or r: r for r in base}
    for requirement in extra:
        key = requirement_name(requirement) or requirement
        if replace or key not in merged:
            merged[key] = requirement
    return list(merged.values())
