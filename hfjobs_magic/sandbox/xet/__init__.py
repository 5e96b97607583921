"""A Xet CAS for the sandbox, written from the Xet Protocol Specification (hub-docs `docs/xet/`).

What other sandbox parts use:

- `XetStore` (one per sandbox, `SandboxState.xet`, on disk under `data_dir/xet`):
  - `token_answer(*, scope, write, cas_url) -> {"accessToken", "exp", "casUrl"}`: what a
    `xet-read-token` / `xet-write-token` route answers. `scope` names what the caller was
    checked against, e.g. `"model:ns/name"` or `"bucket:ns/name"`; the caller checks access first.
  - `ingest_file(path) -> (file_hash, size)`: chunk, hash and store a local file (dedupes).
  - `file_size(file_hash) -> int | None`: None when unknown.
  - `write_file(file_hash, dest)`: reconstruct the bytes into `dest`; KeyError when unknown.
  All block (disk, hashing): call them from a thread (`run_in_threadpool`), not the event loop.
  Data is shared by the whole sandbox: a file hash is readable with any CAS token, as on the Hub.
- `cas_url(request) -> str`: the CAS base URL for `casUrl`, as the caller reaches the sandbox.
- `ROUTES`: the CAS HTTP routes, mounted under `/cas`.
"""

from hfjobs_magic.sandbox.xet.routes import ROUTES, cas_url
from hfjobs_magic.sandbox.xet.store import XetStore

__all__ = ["ROUTES", "XetStore", "cas_url"]
