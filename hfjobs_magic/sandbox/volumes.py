"""Job volumes: buckets (read-write or read-only) and repos (read-only) at the paths a job asks for.

A job is a local process, so each volume job gets a private mount namespace
(`unshare --mount`) in which `mountns.py` builds a root with the volumes bound
in and chroots the job there: the job sees `/data` at `/data`, concurrent jobs
each see only their own mounts, and nothing is created on the host. A bucket
is its plain folder on disk, so whatever a job writes is in the bucket the
moment it is written, however the job ends. A repo is materialised at its
revision (hard links into the repo store) under the sandbox's data dir.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

from hfjobs_magic.sandbox.accounts import Identity
from hfjobs_magic.sandbox.buckets import BucketStore
from hfjobs_magic.sandbox.repos import MAIN, BadPath, Commit, Repo, RepoStore, check_path

VOLUME_TYPES = ("bucket", "model", "dataset", "space")
MAX_VOLUMES = 20
HELPER = Path(__file__).with_name("mountns.py")


class VolumeError(ValueError):
    """A volume the sandbox refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_volumes(value: object) -> list[dict]:
    """The spec's `volumes` (see `Volume.to_dict`) -> normalised dicts, as JobInfo echoes them."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_VOLUMES:
        raise ValueError(f"'volumes' must be a list of at most {MAX_VOLUMES} objects")
    volumes = [_parse_volume(item) for item in value]
    paths = [v["mountPath"] for v in volumes]
    if len(set(paths)) != len(paths):
        raise ValueError("two volumes have the same 'mountPath'")
    return volumes


def _parse_volume(item: object) -> dict:
    if not isinstance(item, dict):
        raise ValueError("each volume must be an object")
    kind, source = item.get("type", "model"), item.get("source")
    mount = item.get("mountPath", item.get("mount_path"))
    read_only = item.get("readOnly", item.get("read_only"))
    if kind not in VOLUME_TYPES:
        raise ValueError(f"volume type must be one of {', '.join(VOLUME_TYPES)}, not {kind!r}")
    if not isinstance(source, str) or source.count("/") != 1 or "" in source.split("/"):
        raise ValueError(f"volume source must be 'namespace/name', not {source!r}")
    volume = {"type": kind, "source": source, "mountPath": _mount_path(mount),
              "readOnly": True if kind != "bucket" else bool(read_only)}
    for key in ("path", "revision"):
        if item.get(key) is not None:
            if not isinstance(item[key], str):
                raise ValueError(f"volume '{key}' must be a string")
            volume[key] = item[key]
    if volume.get("path"):
        try:
            check_path(volume["path"].strip("/"))
        except BadPath as err:
            raise ValueError(f"volume path: {err}") from err
    return volume


def _mount_path(value: object) -> str:
    """An absolute, plain mount path other than `/`."""
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise ValueError(f"'mountPath' must be an absolute path, not {value!r}")
    parts = PurePosixPath(value).parts[1:]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"'mountPath' must be a plain absolute path below '/', not {value!r}")
    return "/" + "/".join(parts)


@functools.cache
def namespace_support() -> tuple[list[str], str | None]:
    """(`unshare` command, None) where a job can get its own mount namespace, else ([], what is missing)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return [], "the 'unshare' command (util-linux) is not installed"
    command = [unshare, "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        command.append("--map-root-user")
    try:
        probe = subprocess.run([*command, "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        return [], f"'unshare' could not run: {err}"
    if probe.returncode != 0:
        why = probe.stderr.strip() or f"exit code {probe.returncode}"
        return [], f"this host cannot give a job its own mount namespace (not root, no user namespaces?): {why}"
    return command, None


class Volumes:
    """Checks a job's volumes when it is created, and mounts them when it starts.

    `root` is `data_dir/volumes`: jobs get their volumes, never the rest of the data dir.
    """

    def __init__(self, root: Path, buckets: BucketStore, repos: RepoStore) -> None:
        self.root, self.buckets, self.repos = root, buckets, repos
        shutil.rmtree(root, ignore_errors=True)  # what jobs of an earlier run left (they are all dead now)

    # -- at creation: may this caller mount these? ------------------------------------------
    def check(self, identity: Identity, volumes: list[dict]) -> list[dict]:
        """The volumes with `me/` sources named; VolumeError when one cannot be mounted by this caller."""
        if not volumes:
            return volumes
        if (missing := namespace_support()[1]) is not None:
            raise VolumeError(422, f"The sandbox cannot run jobs with volumes here: {missing}")
        volumes = [{**v, "source": _own(identity, v["source"])} for v in volumes]
        for volume in volumes:
            if volume["type"] == "bucket":
                self._check_bucket(identity, volume)
            else:
                self._check_repo(identity, volume)
        return volumes

    def _check_bucket(self, identity: Identity, volume: dict) -> None:
        bucket = self.buckets.get(volume["source"])
        if bucket is None or (bucket.private and not identity.member_of(bucket.namespace)):
            raise _not_found(volume)
        if not volume["readOnly"] and not identity.can_write(bucket.namespace):
            raise VolumeError(403, f"You cannot mount bucket '{bucket.bucket_id}' read-write: you cannot write to it")
        if (bucket.files / volume.get("path", "").strip("/")).is_file():
            raise VolumeError(400, f"Volume path '{volume['path']}' is a file in bucket '{bucket.bucket_id}'")

    def _check_repo(self, identity: Identity, volume: dict) -> None:
        repo = self.repos.get(volume["type"], volume["source"])
        if repo is not None and repo.private and not identity.member_of(repo.namespace):
            raise _not_found(volume)
        self._commit(volume)

    def _commit(self, volume: dict) -> tuple[Repo, Commit]:
        repo = self.repos.get(volume["type"], volume["source"])
        if repo is None:
            raise _not_found(volume)
        commit = repo.resolve(volume.get("revision") or MAIN)
        if commit is None:
            raise VolumeError(404, f"Revision '{volume.get('revision')}' not found in '{volume['source']}'")
        return repo, commit

    # -- at start: the command that runs the job inside its mounts ------------------------------
    def command(self, job_id: str, volumes: list[dict], workdir: Path, argv: list[str], beside: Path) -> list[str]:
        """`argv` wrapped so it runs in its own mount namespace with `volumes` mounted.

        A folder the host lacks above a mount path (`/hfjob` above `/hfjob/ckpt`) is `beside`'s, bound in:
        what the job writes next to its volumes lands there, and the lost-files report sees it.
        """
        unshare, missing = namespace_support()
        if missing is not None:
            raise VolumeError(422, missing)
        folder = self.root / job_id
        (folder / "root").mkdir(parents=True, exist_ok=True)
        binds = [[str(self._source(folder / f"volume-{i}", v)), v["mountPath"], v["readOnly"]]
                 for i, v in enumerate(volumes)]
        for holder, paths in holding_folders([v["mountPath"] for v in volumes]).items():
            for path in paths:  # the mount points, made ahead so that the volumes bind over them
                (beside / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
            binds.append([str(beside / holder.lstrip("/")), holder, False])
        plan = json.dumps({"root": str(folder / "root"), "workdir": str(workdir), "binds": binds,
                           "hide": [str(self.root.parent)]})
        return [*unshare, sys.executable, "-I", "-S", str(HELPER), plan, "--", *argv]

    def _source(self, staging: Path, volume: dict) -> Path:
        """The host folder a volume shows: the bucket's own folder, or a repo materialised in `staging`."""
        sub = volume.get("path", "").strip("/")
        if volume["type"] == "bucket":
            bucket = self.buckets.get(volume["source"])
            if bucket is None:
                raise _not_found(volume)
            try:
                source = bucket.local_path(sub) if sub else bucket.files
            except BadPath as err:  # a link a job left in the bucket
                raise VolumeError(400, str(err)) from err
            source.mkdir(parents=True, exist_ok=True)
            return source
        repo, commit = self._commit(volume)
        materialise(repo, commit, sub, staging)
        return staging

    def release(self, job_id: str) -> None:
        """Drop what a job's volumes needed on the host (materialised repos, its empty root)."""
        shutil.rmtree(self.root / job_id, ignore_errors=True)


def holding_folders(mount_paths: list[str]) -> dict[str, list[str]]:
    """The top-most folder above each mount path that the host lacks -> the mount paths it holds; none
    for a path right under `/` or under another mount path."""
    held: dict[str, list[str]] = {}
    for path in mount_paths:
        above = [str(p) for p in reversed(PurePosixPath(path).parents) if str(p) != "/"]
        top = next((folder for folder in above if not os.path.exists(folder)), None)
        if top is not None and not any(top == m or top.startswith(m.rstrip("/") + "/") for m in mount_paths):
            held.setdefault(top, []).append(path)
    return held


def _not_found(volume: dict) -> VolumeError:
    return VolumeError(404, f"Volume source {volume['type']} '{volume['source']}' not found")


def _own(identity: Identity, source: str) -> str:
    namespace, name = source.split("/")
    return f"{identity.name}/{name}" if namespace == "me" else source


def materialise(repo: Repo, commit: Commit, sub: str, dest: Path) -> None:
    """The files of `commit` under `sub`, as hard links (copies across filesystems) into `dest`."""
    prefix = f"{sub}/" if sub else ""
    dest.mkdir(parents=True, exist_ok=True)
    for path, blob in commit.tree.items():
        if not path.startswith(prefix):
            continue
        target = dest / path[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(repo.content_path(blob), target)
        except OSError:
            shutil.copyfile(repo.content_path(blob), target)
