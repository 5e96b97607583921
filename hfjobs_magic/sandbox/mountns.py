"""Run inside a fresh mount namespace (`unshare --mount`): give a job its volumes, then exec it.

Standalone on purpose (stdlib only, run by file path with `python -I -S`): a job's
environment has no PYTHONPATH. Usage: `mountns.py PLAN_JSON -- ARGV...`, where the
plan is `{"root": dir, "workdir": dir, "binds": [[source, mount_path, read_only], ...], "hide": [dir, ...]}`.

The job must see `/data` even though the host has no `/data`, and nothing may be
created on the host's filesystem. So `root` becomes a tmpfs that mirrors `/`
(one recursive bind per top-level entry), the volumes are bound into it, and the
job is chrooted there. Where a mount path needs a new folder inside a mirrored
host folder, that folder is first shadowed by a tmpfs mirroring its entries the
same way. Last, the sandbox's data dir is covered by an empty tmpfs, so a job reaches
buckets and repos only through its own volumes. All of it lives in this namespace
only and dies with the job.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC = 1, 32, 4096, 16384
_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: str, fstype: str | None, flags: int) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def mirror(source: str, target: str) -> None:
    """Make `target` a tmpfs holding `source`'s entries, each bound from `source` (links copied)."""
    mount("tmpfs", target, "tmpfs", 0)
    for entry in os.scandir(source):
        dest = os.path.join(target, entry.name)
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), dest)
        elif entry.is_dir():
            os.mkdir(dest)
            mount(entry.path, dest, None, MS_BIND | MS_REC)
        else:
            open(dest, "wb").close()
            mount(entry.path, dest, None, MS_BIND)


class View:
    """The job's root being built: which folders are ours (tmpfs) and where the others come from."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.origins = {"/": "/"}  # job path -> host folder it shows
        self.owned = {"/"}  # job paths that are tmpfs folders of ours, safe to create entries in
        mirror("/", root)

    def origin(self, path: str) -> str:
        """The host folder shown at job path `path` (through the deepest mount above it)."""
        base = max((p for p in self.origins if path == p or path.startswith(p.rstrip("/") + "/")), key=len)
        return os.path.join(self.origins[base], os.path.relpath(path, base))

    def make_dir(self, path: str) -> None:
        """Create the job folder `path`, shadowing the folder above it if that one is not ours."""
        parent = os.path.dirname(path)
        if not os.path.isdir(self.root + parent):
            self.make_dir(parent)
        if parent not in self.owned:
            mirror(self.origin(parent), self.root + parent)
            self.origins[parent] = self.origin(parent)
            self.owned.add(parent)
        os.mkdir(self.root + path)
        self.owned.add(path)

    def bind(self, source: str, path: str, read_only: bool) -> None:
        if not os.path.isdir(self.root + path):
            self.make_dir(path)
        mount(source, self.root + path, None, MS_BIND | MS_REC)
        if read_only:
            mount("none", self.root + path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        self.origins[path] = source
        self.owned.discard(path)


def enter(plan: dict) -> None:
    """Build the job's root with its volumes and move into it."""
    view = View(plan["root"])
    for source, path, read_only in sorted(plan["binds"], key=lambda b: b[1].count("/")):
        view.bind(source, path, read_only)
    for path in plan.get("hide", []):
        if os.path.isdir(plan["root"] + path):
            mount("tmpfs", plan["root"] + path, "tmpfs", MS_RDONLY)
    os.chroot(plan["root"])
    os.chdir(plan["workdir"])


def main(argv: list[str]) -> int:
    plan, command = json.loads(argv[1]), argv[3:]
    try:
        enter(plan)
    except OSError as err:
        print(f"[sandbox] could not set up the job's volumes: {err}", file=sys.stderr, flush=True)
        return 126
    try:
        os.execvp(command[0], command)
    except OSError as err:
        print(f"[sandbox] could not start {command[0]!r}: {err.strerror or err}", file=sys.stderr, flush=True)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))
