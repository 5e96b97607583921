"""S3 (moto in server mode) and GCS (gcp-storage-emulator) on loopback, for the push tests.

Both run as threads of the test process; jobs and kernels reach them over HTTP, with the
settings a user would have in their environment.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.nbrun import environ


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def s3_server(bucket: str) -> Iterator[dict[str, str]]:
    """A moto S3 server holding `bucket`; yields the AWS settings that point at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE0KEY0ID",
           "AWS_SECRET_ACCESS_KEY": "wJalrEXAMPLE0SECRET0KEY", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        with environ(**env):
            boto3.client("s3").create_bucket(Bucket=bucket)
        yield env
    finally:
        server.stop()


@contextmanager
def gcs_server(bucket: str, folder: Path) -> Iterator[dict[str, str]]:
    """A GCS emulator holding `bucket`; yields the settings that point at it, with a key file as users have one."""
    from gcp_storage_emulator.server import create_server

    logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)
    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket)
    server.start()
    key = folder / "gcs-key.json"
    key.write_text(json.dumps({"type": "service_account", "project_id": "hfjob-tests",
                               "private_key_id": "0123456789abcdef-not-a-real-key"}))
    try:
        yield {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}", "GOOGLE_APPLICATION_CREDENTIALS": str(key),
               "GOOGLE_CLOUD_PROJECT": "hfjob-tests"}
    finally:
        server.stop()
