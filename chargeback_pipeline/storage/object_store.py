"""Byte storage for the lake and the published reports: a local folder or an Azure Blob container.

Every write replaces the object whole and atomically: locally through a temporary file and
`os.replace`, on Blob through a single Put Blob / Put Block List, which Azure commits atomically.
A reader therefore sees either the previous object or the new one, never half of one.

A write whose bytes equal the stored object's is skipped (and reported as unchanged), so re-running a
partition that gained no data touches no file: modification times and blob ETags stay as they were.
"""

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings

DIGEST_METADATA = "sha256"
CONTENT_TYPES = {".csv": "text/csv; charset=utf-8", ".parquet": "application/vnd.apache.parquet"}


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


class BlobObjectStore:
    def __init__(self, container: ContainerClient, prefix: str = ""):
        self.container = container
        self.prefix = prefix.strip("/")
        with contextlib.suppress(ResourceExistsError):
            container.create_container()

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def write_bytes(self, key: str, data: bytes) -> bool:
        digest = hashlib.sha256(data).hexdigest()
        blob = self.container.get_blob_client(self._name(key))
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
        return self.container.download_blob(self._name(key)).readall()

    def exists(self, key: str) -> bool:
        return self.container.get_blob_client(self._name(key)).exists()

    def list_keys(self, prefix: str) -> list[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        return sorted(b.name[strip:] for b in self.container.list_blobs(name_starts_with=self._name(prefix)))

    def delete(self, key: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.container.delete_blob(self._name(key))

    def url(self, key: str) -> str:
        return f"{self.container.url}/{self._name(key)}"
