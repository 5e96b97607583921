"""What a cell becomes, before anything talks to the Hub: flags (declared in flags) -> `JobSpec` (spec), what the code
does (scan, names), what it carries from the notebook (carry, carry_kernel), the PEP 723 script
(script, prologue, deps), the `--outputs` wrapper shipped in the job (wrapping, persist) and
`--return`'s signed epilogue (returns).

Pure: imports only the standard library, IPython/huggingface_hub helpers and `hfjobs_magic.mask`;
never `checks`, `remote`, `jobs` or `views`.
"""

# Here, not in spec: the magics' %config defaults need them when the extension loads, the flags' parser later.
DEFAULT_IMAGE = "ghcr.io/astral-sh/uv:python3.12-bookworm"
DEFAULT_FLAVOR = "cpu-basic"
