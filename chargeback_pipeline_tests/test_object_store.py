"""Both object stores behave the same: the local folder and Azure Blob (a real Azurite). Local files get
the umask's mode; Blob URLs and errors never carry a SAS token."""

import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas

from chargeback_pipeline.storage.object_store import BlobObjectStore, LocalObjectStore, ObjectStoreError
from chargeback_pipeline_tests.conftest import AZURITE_ACCOUNT_KEY


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


def test_a_listing_is_of_a_folder_not_of_a_string_prefix(store):
    # A cost export rooted at `exports/aoai` must not read the runs of `exports/aoai-sandbox` (on Blob, a
    # listing is by name prefix: the store makes it a folder's, as the local folder lists).
    for key in ("exports/aoai/run-1/manifest.json", "exports/aoai-sandbox/run-9/manifest.json", "exports/aoai.txt"):
        store.write_bytes(key, b"x")
    expected = ["exports/aoai/run-1/manifest.json"]
    assert store.list_keys("exports/aoai") == store.list_keys("exports/aoai/") == expected
    assert store.list_keys("exports/aoai.txt") == ["exports/aoai.txt"]  # a key lists itself
    assert store.list_keys("exports/aoa") == [] and len(store.list_keys("")) == 3


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


UMASK_PROBE = """
import os, sys
os.umask(int(sys.argv[1], 8))
from chargeback_pipeline.storage.object_store import LocalObjectStore
store = LocalObjectStore(sys.argv[2])
store.write_bytes("daily/report.csv", b"x")
print(oct(os.stat(store.url("daily/report.csv")).st_mode & 0o777))
"""


@pytest.mark.parametrize(("umask", "mode"), [("022", "0o644"), ("027", "0o640"), ("077", "0o600"), ("002", "0o664")])
def test_local_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    done = subprocess.run(
        [sys.executable, "-c", UMASK_PROBE, umask, str(tmp_path / "store")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == mode


def test_blob_urls_never_carry_the_sas_token_and_a_container_sas_is_enough(azurite_connection_string):
    endpoint = dict(p.split("=", 1) for p in azurite_connection_string.strip(";").split(";"))["BlobEndpoint"]
    name = f"test-{uuid.uuid4().hex[:12]}"
    ContainerClient.from_connection_string(azurite_connection_string, name).create_container()
    sas = generate_container_sas(
        "devstoreaccount1",
        name,
        account_key=AZURITE_ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, write=True, list=True, delete=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    container = ContainerClient.from_connection_string(f"BlobEndpoint={endpoint};SharedAccessSignature={sas}", name)
    assert "sig=" in container.url  # the SDK's own URL carries the token

    store = BlobObjectStore(container, prefix="reports")  # may not create the container: it exists

    assert store.write_bytes("daily/usage_date=2026-03-10/product_usage.csv", b"a") is True
    assert store.url("daily/usage_date=2026-03-10/product_usage.csv") == (
        f"{endpoint}/{name}/reports/daily/usage_date=2026-03-10/product_usage.csv"
    )


def test_blob_errors_name_the_blob_and_hold_no_secret(azurite_connection_string):
    endpoint = dict(p.split("=", 1) for p in azurite_connection_string.strip(";").split(";"))["BlobEndpoint"]
    name = f"test-{uuid.uuid4().hex[:12]}"
    store = BlobObjectStore(ContainerClient.from_connection_string(azurite_connection_string, name))
    forged = generate_container_sas(
        "devstoreaccount1",
        name,
        account_key="Zm9yZ2VkLWtleS1mb3ItdGhlLXRlc3Q=",
        permission=ContainerSasPermissions(read=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    store.container = ContainerClient.from_connection_string(
        f"BlobEndpoint={endpoint};SharedAccessSignature={forged}", name
    )

    with pytest.raises(ObjectStoreError) as raised:
        store.read_bytes("daily/report.csv")

    assert str(raised.value) == (
        f"could not read {endpoint}/{name}/daily/report.csv: Server failed to authenticate the request. Make sure "
        "the value of the Authorization header is formed correctly including the signature. (AuthorizationFailure)"
    )
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # no SDK error chained to it
