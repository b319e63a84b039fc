"""Both object stores behave the same: the local folder and Azure Blob (a real Azurite)."""

import threading
import uuid

import pytest
from azure.storage.blob import ContainerClient

from chargeback_pipeline.storage.object_store import BlobObjectStore, LocalObjectStore


@pytest.fixture(params=["local", "blob"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalObjectStore(tmp_path / "store")
    connection_string = request.getfixturevalue("azurite_connection_string")
    container = ContainerClient.from_connection_string(connection_string, f"test-{uuid.uuid4().hex[:12]}")
    return BlobObjectStore(container, prefix="reports")


def test_write_read_list_delete(store):
    assert store.write_bytes("daily/usage_date=2026-03-10/product_usage.csv", b"a,b\r\n1,2\r\n") is True
    store.write_bytes("daily/usage_date=2026-03-11/product_usage.csv", b"x")

    assert store.read_bytes("daily/usage_date=2026-03-10/product_usage.csv") == b"a,b\r\n1,2\r\n"
    assert store.list_keys("daily/") == [
        "daily/usage_date=2026-03-10/product_usage.csv",
        "daily/usage_date=2026-03-11/product_usage.csv",
    ]
    store.delete("daily/usage_date=2026-03-11/product_usage.csv")
    assert not store.exists("daily/usage_date=2026-03-11/product_usage.csv")


def test_same_bytes_are_not_rewritten_and_new_bytes_replace_whole(store):
    assert store.write_bytes("k.parquet", b"v1" * 1000) is True
    assert store.write_bytes("k.parquet", b"v1" * 1000) is False
    assert store.write_bytes("k.parquet", b"v2") is True
    assert store.read_bytes("k.parquet") == b"v2"


def test_local_store_never_shows_a_half_written_object(tmp_path):
    store = LocalObjectStore(tmp_path)
    big_a, big_b = b"a" * 5_000_000, b"b" * 5_000_000
    store.write_bytes("report.csv", big_a)
    seen = set()

    def read_repeatedly():
        for _ in range(200):
            data = store.read_bytes("report.csv")
            seen.add((len(data), data[:1] + data[-1:]))

    reader = threading.Thread(target=read_repeatedly)
    reader.start()
    for _ in range(20):
        store.write_bytes("report.csv", big_b)
        store.write_bytes("report.csv", big_a)
    reader.join()
    assert seen <= {(5_000_000, b"aa"), (5_000_000, b"bb")}
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]  # no temporary files left behind


def test_local_store_refuses_keys_that_escape_its_root(tmp_path):
    with pytest.raises(ValueError, match="escapes"):
        LocalObjectStore(tmp_path / "root").write_bytes("../outside.csv", b"x")
