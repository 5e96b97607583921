"""The panel's two routes, as authenticated Jupyter server API handlers.

The Hub is called with the server process's own login, in a worker thread (the calls block).
Every answer is JSON; a failure is one line, `{"error": "..."}`, in the words `remote.hub` uses
for the magics. Bodies go through the token masker before they leave, as a last guard.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from hfjobs_magic.errors import HfJobHubError
from hfjobs_magic.jobs.history import History
from hfjobs_magic.mask import SecretMasker
from hfjobs_magic.remote.hub import HubClient, hub_errors, resolve_endpoint, resolve_token, status_of
from hfjobs_magic.server.listing import list_rows

JOB_ID = r"[A-Za-z0-9_-]{1,100}"
ROOT_SETTING = "hfjobs_root_dir"


class Login:
    """The server's HubClient, made again when HF_TOKEN/HF_ENDPOINT or the stored login change."""

    def __init__(self) -> None:
        self._key: tuple[str, str | None] | None = None
        self._client: HubClient | None = None

    def client(self) -> HubClient:
        key = (resolve_endpoint(), resolve_token())
        if self._client is None or key != self._key:
            self._key, self._client = key, HubClient(endpoint=key[0], token=key[1])
        return self._client


LOGIN = Login()


class JobsHandler(APIHandler):
    """Shared by both routes: run a Hub call off the event loop and answer with JSON or one error line."""

    async def answer(self, doing: str, work: Callable[[HubClient], Any], not_found: str | None = None) -> None:
        client = LOGIN.client()

        def call() -> tuple[int, Any]:
            try:
                return 200, work(client)
            except Exception as err:
                status = 404 if not_found and status_of(err) == 404 else 502
                try:
                    with hub_errors(client, doing, not_found=not_found):
                        raise  # said in plain words, or a bug that shows as a 500
                except HfJobHubError as said:
                    return status, {"error": str(said)}

        status, body = await asyncio.to_thread(call)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(SecretMasker([client.token or ""]).mask(json.dumps(body)))


class ListHandler(JobsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        root = Path(self.settings[ROOT_SETTING])
        await self.answer("cannot list your jobs", lambda client: {"jobs": list_rows(client, History(), root)})


class CancelHandler(JobsHandler):
    @tornado.web.authenticated
    async def post(self, job_id: str) -> None:
        def cancel(client: HubClient) -> dict[str, str]:
            client.cancel(job_id, client.username())
            return {"id": job_id, "requested": "cancel"}

        not_found = f"there is no job {job_id} among your jobs"
        await self.answer(f"cannot cancel job {job_id}", cancel, not_found=not_found)


def register(server_app: Any) -> None:
    web_app = server_app.web_app
    base = web_app.settings["base_url"]
    web_app.settings[ROOT_SETTING] = str(Path(server_app.root_dir).expanduser())
    web_app.add_handlers(".*$", [
        (url_path_join(base, "hfjobs", "jobs"), ListHandler),
        (url_path_join(base, "hfjobs", "jobs", f"({JOB_ID})", "cancel"), CancelHandler),
    ])
    server_app.log.info("hfjobs_magic: the HF Jobs panel's routes are at %shfjobs/jobs", base)
