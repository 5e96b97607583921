"""The Jupyter server extension behind the "HF Jobs" panel: `GET /hfjobs/jobs`, `POST /hfjobs/jobs/{id}/cancel`.

It calls the Hub with the server process's own login (`HF_TOKEN`/`HF_ENDPOINT`, else `hf auth login`),
through the one `remote.hub.HubClient`; no token ever goes into a response. Enabled by
`etc/jupyter/jupyter_server_config.d/hfjobs_magic.json`, which the `hfjobs-magic` wheel installs.

May import `remote`, the data of `jobs` (the local history) and `cell`'s pure `cell_hash`; never
`checks`, `views`, `sandbox` or the magics. `jupyter_server` is imported only when a server loads us.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "hfjobs_magic.server"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    from hfjobs_magic.server.handlers import register

    register(server_app)
