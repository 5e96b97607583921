"""S3 and GCS push targets, seen from the kernel: what landed there (for the watcher), whether
the bucket can be reached (for the checklist), and which local settings the job needs.

boto3 and google-cloud-storage are imported only when such a target is used: they are not
dependencies of hfjobs-magic. The Hub is not handled here (`hub.HubClient` is its one caller).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMES = ("s3", "gs")
# Credentials travel as secrets; settings as plain env, since a secret's value is masked in every
# log line, and an endpoint such as http://127.0.0.1:9000 would mask unrelated text.
SECRETS = {"s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
           "gs": ("GOOGLE_APPLICATION_CREDENTIALS",)}
SETTINGS = {"s3": ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION"),
            "gs": ("STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT")}
KEY_FILE = "GOOGLE_APPLICATION_CREDENTIALS"
PROBE_KEY = ".hfjob-probe"


@dataclass(frozen=True)
class Location:
    """An S3 or GCS push target, split."""

    scheme: str  # "s3" or "gs"
    bucket: str
    prefix: str  # without slashes at either end; "" for the whole bucket

    @classmethod
    def parse(cls, url: str) -> Location:
        scheme, sep, rest = url.partition("://")
        bucket, _, prefix = rest.partition("/")
        if not sep or scheme not in SCHEMES or not bucket:
            raise ValueError(f"{url!r} is not s3://bucket/prefix or gs://bucket/prefix")
        return cls(scheme, bucket, prefix.strip("/"))

    @property
    def list_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""


# -- what the job gets ----------------------------------------------------------------------


def job_secrets(kind: str | None, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The target's credentials set here, as the job needs them (a key file's contents, not its path)."""
    return {name: secret_value(name, environ[name]) for name in SECRETS.get(kind or "", ()) if environ.get(name)}


def job_env(kind: str | None, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The target's settings set here (endpoint, region, emulator host), for the job's environment."""
    return {name: environ[name] for name in SETTINGS.get(kind or "", ()) if environ.get(name)}


def secret_value(name: str, value: str) -> str:
    """GOOGLE_APPLICATION_CREDENTIALS names a key file here; the job has no such file, so it gets the contents."""
    if name == KEY_FILE and not value.lstrip().startswith("{") and Path(value).expanduser().is_file():
        return Path(value).expanduser().read_text(encoding="utf-8")
    return value


def masked_values(name: str, value: str) -> list[str]:
    """What of a secret must never show in a log: for a Google key, its secret fields, not the whole JSON
    (whose project id and e-mail would hide every bucket and line that mentions the project)."""
    if name != KEY_FILE or not value.lstrip().startswith("{"):
        return [value]
    try:
        key = json.loads(value)
    except ValueError:
        return [value]
    return [str(v) for k, v in key.items() if k in ("private_key", "private_key_id", "client_secret", "refresh_token")]


def missing_credentials(kind: str | None, environ: Mapping[str, str] = os.environ) -> list[str]:
    """What must be set here for the job to reach the target; [] when it can."""
    if kind == "s3":
        return [n for n in SECRETS["s3"][:2] if not environ.get(n)]
    if kind == "gs" and not (environ.get(KEY_FILE) or environ.get("STORAGE_EMULATOR_HOST")):
        return [KEY_FILE]
    return []


# -- what landed ------------------------------------------------------------------------------


def objects_since(url: str, since: datetime | None) -> list[dict[str, str]]:
    """Objects under the prefix written at or after `since`, oldest first, as commit-like entries."""
    where = Location.parse(url)
    found = _s3_objects(where) if where.scheme == "s3" else _gcs_objects(where)
    # S3 keeps whole seconds: an object written in the job's first second must still count.
    floor = since.replace(microsecond=0) if since else None
    fresh = sorted((o for o in found if floor is None or o[2] >= floor), key=lambda o: (o[2], o[0]))
    return [{"oid": oid, "title": key, "date": _iso(when)} for key, oid, when in fresh]


def download_prefix(url: str, folder: str) -> list[str]:
    """Every object under the prefix, into `folder` by its path below the prefix (`--pull`); the paths written."""
    where = Location.parse(url)
    keys = [key for key, _, _ in (_s3_objects(where) if where.scheme == "s3" else _gcs_objects(where))]
    written = []
    for key in keys:
        relative = key[len(where.list_prefix):]
        target = os.path.realpath(os.path.join(folder, relative))
        if not relative or not target.startswith(os.path.realpath(folder) + os.sep):
            continue  # a key naming a folder, or leading out of it
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if where.scheme == "s3":
            s3_client().download_file(where.bucket, key, target)
        else:
            gcs_client().bucket(where.bucket).blob(key).download_to_filename(target)
        written.append(relative)
    return written


def _s3_objects(where: Location) -> list[tuple[str, str, datetime]]:
    pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=where.bucket, Prefix=where.list_prefix)
    return [(o["Key"], o["ETag"].strip('"'), o["LastModified"]) for page in pages for o in page.get("Contents", [])]


def _gcs_objects(where: Location) -> list[tuple[str, str, datetime]]:
    blobs = gcs_client().list_blobs(where.bucket, prefix=where.list_prefix)
    return [(b.name, str(b.generation), b.updated) for b in blobs]


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# -- the clients, with the credentials the job will get -------------------------------------------


def s3_client() -> Any:
    import boto3

    return boto3.client("s3")


def gcs_client() -> Any:
    """Anonymous on an emulator; else the key (a file path, or its JSON contents) or the default login."""
    from google.cloud import storage

    key = os.environ.get(KEY_FILE, "")
    if not os.environ.get("STORAGE_EMULATOR_HOST") and key.lstrip().startswith("{"):
        return storage.Client.from_service_account_info(json.loads(key))
    return storage.Client()


# -- the checklist's probe ---------------------------------------------------------------------------


def probe_target(url: str, *, write: bool = False) -> tuple[bool, str]:
    """Can the job reach this bucket with the credentials it will get? (ok, what was found).

    Checks the credentials are set here, the bucket answers, and listing the prefix is
    allowed; with `write`, also puts and deletes a small object under the prefix.
    """
    try:
        where = Location.parse(url)
    except ValueError as err:
        return False, str(err)
    missing = missing_credentials(where.scheme)
    if missing:
        return False, f"{', '.join(missing)} not set here, so the job could not reach {url}"
    try:
        (_probe_s3 if where.scheme == "s3" else _probe_gcs)(where, write)
    except Exception as err:
        return False, f"{url}: {_describe(err)}"
    return True, f"{url} is reachable{' and writable' if write else ''} with your credentials"


def _probe_s3(where: Location, write: bool) -> None:
    client = s3_client()
    client.head_bucket(Bucket=where.bucket)
    client.list_objects_v2(Bucket=where.bucket, Prefix=where.list_prefix, MaxKeys=1)
    if write:
        key = where.list_prefix + PROBE_KEY
        client.put_object(Bucket=where.bucket, Key=key, Body=b"")
        client.delete_object(Bucket=where.bucket, Key=key)


def _probe_gcs(where: Location, write: bool) -> None:
    bucket = gcs_client().bucket(where.bucket)
    bucket.reload()
    list(bucket.list_blobs(prefix=where.list_prefix, max_results=1))
    if write:
        blob = bucket.blob(where.list_prefix + PROBE_KEY)
        blob.upload_from_string(b"")
        blob.delete()


def _describe(err: BaseException) -> str:
    """A client error in a few words: what the storage's status means, or the error's first line."""
    meaning = {401: "the credentials were rejected", 403: "access denied (the credentials may not use this bucket)",
               404: "no such bucket"}
    status = _status(err)
    if status in meaning:
        return f"{meaning[status]} (HTTP {status})"
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def _status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    if isinstance(response, dict):  # botocore's ClientError
        return response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = getattr(err, "code", None)  # google.api_core's errors
    return int(code) if isinstance(code, int) else None
