"""Staging: what a run means to publish, written beside the published files but not over them.

Every publishing asset writes through a `StagedStore`: its writes land under
`_staging/run=<run id>/<key>` in the report target (the FinOps hubs copy under `.../_hubs/<key>`, so the
hub never sees a staged file), its reads see the run's staged bytes first and the published ones after,
so a later step of the same run builds on what earlier steps staged. Nothing is published until the
day's (or month's) publication decision commits the staged files (`commit`); a refused day's staged files
are discarded with the run's staging folder.

`commit` replaces the published files one by one (each replacement atomic, `object_store`), keeping the
bytes it replaces: when a write fails (disk full, permissions, a directory in the way), the files already
replaced are put back as they were and the error names the path that failed, so a day is replaced
whole or not at all.
"""

import contextlib
from dataclasses import dataclass, field

from chargeback_pipeline.storage.object_store import LocalObjectStore, ObjectStore

STAGING_ROOT = "_staging"
_DELETED = "_deleted"


def staging_prefix(run_id: str) -> str:
    return f"{STAGING_ROOT}/run={run_id}"


class PublicationWriteError(RuntimeError):
    """Publishing a staged file failed; the message names the path and what was restored."""


class StagedStore:
    """An `ObjectStore` whose writes and deletes are staged in `staging` under `prefix` (the run's folder);
    reads and look-ups see the staged state first, then `published`."""

    def __init__(self, published: ObjectStore, staging: ObjectStore, prefix: str):
        self.published, self.staging, self.prefix = published, staging, prefix.strip("/")

    def _staged(self, key: str) -> str:
        return f"{self.prefix}/{key}"

    def _deleted(self, key: str) -> str:
        return f"{self.prefix}/{_DELETED}/{key}"

    def write_bytes(self, key: str, data: bytes) -> bool:
        self.staging.delete(self._deleted(key))
        self.staging.write_bytes(self._staged(key), data)
        return not self.published.exists(key) or self.published.read_bytes(key) != data

    def read_bytes(self, key: str) -> bytes:
        if self.staging.exists(self._staged(key)):
            return self.staging.read_bytes(self._staged(key))
        if self.staging.exists(self._deleted(key)):
            raise FileNotFoundError(f"{self.url(key)} is deleted by this run")
        return self.published.read_bytes(key)

    def exists(self, key: str) -> bool:
        if self.staging.exists(self._staged(key)):
            return True
        return not self.staging.exists(self._deleted(key)) and self.published.exists(key)

    def list_keys(self, prefix: str) -> list[str]:
        strip = len(self.prefix) + 1
        staged = {k[strip:] for k in self.staging.list_keys(self._staged(prefix))}
        deleted = {k[strip + len(_DELETED) + 1 :] for k in self.staging.list_keys(self._deleted(prefix))}
        return sorted((set(self.published.list_keys(prefix)) - deleted) | staged)

    def delete(self, key: str) -> None:
        self.staging.delete(self._staged(key))
        self.staging.write_bytes(self._deleted(key), b"")

    def url(self, key: str) -> str:
        """The URL the file has once published (what the run's metadata shows)."""
        return self.published.url(key)

    def staged_changes(self) -> tuple[list[str], list[str]]:
        """The keys this run wrote, and the keys it deleted (without a later write)."""
        strip = len(self.prefix) + 1
        everything = [k[strip:] for k in self.staging.list_keys(self.prefix + "/")]
        deleted = [k[len(_DELETED) + 1 :] for k in everything if k.startswith(_DELETED + "/")]
        written = [k for k in everything if not k.startswith(_DELETED + "/")]
        return written, deleted

    def staged_bytes(self, key: str) -> bytes:
        return self.staging.read_bytes(self._staged(key))

    def discard(self, keys: list[str]) -> None:
        for key in keys:
            self.staging.delete(self._staged(key))
            self.staging.delete(self._deleted(key))
        if isinstance(self.staging, LocalObjectStore):  # a folder keeps its empty directories: remove them
            run_folder = self.staging.root / self.prefix
            for folder in sorted((p for p in run_folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    folder.rmdir()
            for folder in (run_folder, run_folder.parent, run_folder.parent.parent):
                if folder != self.staging.root and self.staging.root in folder.parents:
                    with contextlib.suppress(OSError):
                        folder.rmdir()


@dataclass
class Replacement:
    """The files of one publication: staged bytes to write (or None: delete) per (store, key)."""

    changes: list[tuple[ObjectStore, str, bytes | None]] = field(default_factory=list)

    def add(self, store: ObjectStore, key: str, data: bytes | None) -> None:
        self.changes.append((store, key, data))


def commit(replacement: Replacement, record_last: bool = False) -> int:
    """Apply every change, in order; on a failure put back what was already changed and raise
    `PublicationWriteError` naming the path. Returns how many files changed.

    `record_last`: the last change is the record of the others (the manifest): written only when one of
    them changed something, so re-publishing identical files touches nothing (byte-identical re-runs)."""
    done: list[tuple[ObjectStore, str, bytes | None]] = []  # (store, key, previous bytes or None)
    changed = 0
    for position, (store, key, data) in enumerate(replacement.changes):
        if record_last and position == len(replacement.changes) - 1 and changed == 0 and store.exists(key):
            break
        previous = store.read_bytes(key) if store.exists(key) else None
        if previous == data:
            continue
        try:
            if data is None:
                store.delete(key)
            else:
                store.write_bytes(key, data)
        except Exception as error:  # any failure (OSError, Blob error) is named and undone
            restore_failures = _restore(done)
            undone = (
                f"the {len(done)} file(s) already replaced were restored"
                if not restore_failures
                else f"restoring failed too, these may hold the new bytes: {'; '.join(restore_failures)}"
            )
            raise PublicationWriteError(
                f"could not write {store.url(key)}: {type(error).__name__}: {error}; nothing of this "
                f"publication is kept: {undone}"
            ) from error
        done.append((store, key, previous))
        changed += 1
    return changed


def _restore(done: list[tuple[ObjectStore, str, bytes | None]]) -> list[str]:
    failures = []
    for store, key, previous in reversed(done):
        try:
            if previous is None:
                store.delete(key)
            else:
                store.write_bytes(key, previous)
        except Exception as error:  # reported; the others are still restored
            failures.append(f"{store.url(key)} ({error})")
    return failures
