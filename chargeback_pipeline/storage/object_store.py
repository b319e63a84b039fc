"""Byte storage for the lake and the published reports: a local folder or an Azure Blob container.

Every write replaces the object whole and atomically: locally through a temporary file and
`os.replace`, on Blob through a single Put Blob / Put Block List, which Azure commits atomically.
A reader therefore sees either the previous object or the new one, never half of one.

A write whose bytes equal the stored object's is skipped (and reported as unchanged), so re-running a
partition that gained no data touches no file: modification times and blob ETags stay as they were.

Local files get the mode the process umask gives a new file (0644 under the usual 022), like any file
the user creates, although they are written through a private temporary file.

`url()` is what the pipeline shows (materialization metadata, error messages, the CLI): a Blob URL never
carries the query string, so a SAS token in the connection string never leaves the process. Blob errors
are raised as `ObjectStoreError`, naming the action and that URL, with any secret redacted.
"""

import contextlib
import functools
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings

DIGEST_METADATA = "sha256"
CONTENT_TYPES = {
    ".csv": "text/csv; charset=utf-8",
    ".parquet": "application/vnd.apache.parquet",
    # So a browser opening the blob shows the statement (and its plots) instead of downloading them.
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".json": "application/json",
}
# The parts of a Blob connection string or URL that are secrets: a SAS token's signature, an account key,
# a whole SharedAccessSignature setting.
_SECRETS = re.compile(r"(?i)(?P<name>\bsig=|\bAccountKey=|\bSharedAccessSignature=)(?P<value>[^;&\s'\"<>]+)")
_UMASK_LOCK = threading.Lock()


def redact(text: str) -> str:
    """`text` with every SAS signature, account key and SharedAccessSignature value replaced by `***`."""
    return _SECRETS.sub(lambda match: f"{match['name']}***", text)


def without_query(url: str) -> str:
    """The URL without query string and fragment (where a SAS token travels)."""
    return urlunsplit(urlsplit(url)._replace(query="", fragment=""))


@functools.cache
def process_umask() -> int:
    """The process umask, read once. Linux shows it in /proc (no race); elsewhere it is set and restored
    under a lock, the only way POSIX offers."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:
        umask = os.umask(0o077)
        os.umask(umask)
    return umask


class ObjectStore(Protocol):
    def write_bytes(self, key: str, data: bytes) -> bool:
        """Store `data` under `key` atomically; False when the stored bytes were already `data`."""

    def read_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list_keys(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...

    def url(self, key: str) -> str: ...


class LocalObjectStore:
    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"object key escapes the store root: {key!r}")
        return path

    def write_bytes(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            # mkstemp creates the file 0600 whatever the umask; give it a new file's usual mode.
            os.fchmod(handle, 0o666 & ~process_umask())
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return True

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")
        )

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url(self, key: str) -> str:
        return str(self._path(key))


class ObjectStoreError(RuntimeError):
    """A Blob Storage operation failed. The message names the blob by its URL without query string and
    holds no secret, so it can go to the run's event log and the console as it is."""


def _reason(error: AzureError) -> str:
    """The service's reason in one line: its message's first line and error code, without the XML body."""
    lines = str(getattr(error, "message", None) or error).strip().splitlines()
    reason = " ".join(lines[0].split()) if lines else type(error).__name__
    code = getattr(error, "error_code", None)
    code = getattr(code, "value", code)  # StorageErrorCode or str
    if code and str(code) not in reason:
        reason += f" ({code})"
    return redact(reason)


class BlobObjectStore:
    def __init__(self, container: ContainerClient, prefix: str = ""):
        self.container = container
        self.prefix = prefix.strip("/")
        with self._failing_as("create the container", ""):
            try:
                container.create_container()
            except ResourceExistsError:
                pass
            except HttpResponseError as error:
                # Valid credentials that may not create containers (a SAS scoped to the container, a role
                # assigned on the container): it must exist already; the first read or write says if not.
                if error.status_code != 403 or error.error_code != "AuthorizationPermissionMismatch":
                    raise

    @contextlib.contextmanager
    def _failing_as(self, action: str, key: str) -> Iterator[None]:
        """Azure SDK errors as `ObjectStoreError` naming the action and the blob, with no secret in it."""
        try:
            yield
        except AzureError as error:
            where = self.url(key) if key else without_query(self.container.url)
            raise ObjectStoreError(f"could not {action} {where}: {_reason(error)}") from None

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def write_bytes(self, key: str, data: bytes) -> bool:
        digest = hashlib.sha256(data).hexdigest()
        blob = self.container.get_blob_client(self._name(key))
        with self._failing_as("write", key):
            with contextlib.suppress(ResourceNotFoundError):
                if blob.get_blob_properties().metadata.get(DIGEST_METADATA) == digest:
                    return False
            blob.upload_blob(
                data,
                overwrite=True,
                metadata={DIGEST_METADATA: digest},
                content_settings=ContentSettings(
                    content_type=CONTENT_TYPES.get(Path(key).suffix, "application/octet-stream")
                ),
            )
        return True

    def read_bytes(self, key: str) -> bytes:
        with self._failing_as("read", key):
            return self.container.download_blob(self._name(key)).readall()

    def exists(self, key: str) -> bool:
        with self._failing_as("look for", key):
            return self.container.get_blob_client(self._name(key)).exists()

    def list_keys(self, prefix: str) -> list[str]:
        """The keys in the folder `prefix` (or `prefix` itself, a key), as LocalObjectStore lists them: a
        folder, not a string prefix, so `exports/aoai` never lists `exports/aoai-sandbox/...`."""
        strip = len(self.prefix) + 1 if self.prefix else 0
        folder = prefix.strip("/")
        with self._failing_as("list", prefix):
            names = [b.name for b in self.container.list_blobs(name_starts_with=self._name(folder))]
        if folder:
            key = self._name(folder)
            names = [name for name in names if name == key or name.startswith(f"{key}/")]
        return sorted(name[strip:] for name in names)

    def delete(self, key: str) -> None:
        with self._failing_as("delete", key), contextlib.suppress(ResourceNotFoundError):
            self.container.delete_blob(self._name(key))

    def url(self, key: str) -> str:
        """The blob's URL without the SAS token the client may carry (safe to show and to record)."""
        return f"{without_query(self.container.url)}/{self._name(key)}"
