"""Replacing a stage's output folder: nothing of the previous output goes before the whole
new one is in place — locally (a rename swap) and on S3 (copy, then delete), moto's S3 here."""

from pathlib import Path

import boto3
import pytest

from core import storage


def test_a_local_swap_that_fails_puts_the_previous_output_back(tmp_path: Path) -> None:
    final, new = tmp_path / "stamps", tmp_path / "stamps.next"
    final.mkdir()
    (final / "part-0.parquet").write_text("old")
    with pytest.raises(FileNotFoundError):
        storage.replace_folder(str(new), str(final))  # no new folder: the second rename fails
    assert (final / "part-0.parquet").read_text() == "old"
    new.mkdir()
    (new / "part-1.parquet").write_text("new")
    storage.replace_folder(str(new), str(final))
    assert [p.name for p in final.iterdir()] == ["part-1.parquet"] and not new.exists()
    assert list(tmp_path.iterdir()) == [final]  # the previous output removed once replaced


def _put(s3, keys: dict[str, str]) -> None:
    for key, body in keys.items():
        s3.put_object(Bucket="halo-data", Key=key, Body=body.encode())


def _objects(s3, prefix: str) -> dict[str, str]:
    found = s3.list_objects_v2(Bucket="halo-data", Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket="halo-data", Key=o["Key"])["Body"].read().decode() for o in found}


def test_on_s3_the_previous_output_stays_until_the_new_one_is_copied(s3_env, monkeypatch) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="halo-data")
    old = {"ws/stamps/part-a.parquet": "old a", "ws/stamps/_SUCCESS": "", "ws/stamps/summary.json": "old"}
    new = {
        "ws/stamps.next/part-b.parquet": "new b",
        "ws/stamps.next/_SUCCESS": "",
        "ws/stamps.next/summary.json": "new",
    }
    _put(s3, {**old, **new})
    calls = []
    real = storage._client

    def failing_client():  # the copy fails on its second object
        client = real()
        copy = client.copy_object

        def copy_object(**kwargs):
            calls.append(kwargs["Key"])
            if len(calls) == 2:
                raise ConnectionError("network down")
            return copy(**kwargs)

        client.copy_object = copy_object
        return client

    monkeypatch.setattr(storage, "_client", failing_client)
    with pytest.raises(storage.BackendUnreachable, match="cannot move"):
        storage.replace_folder("s3://halo-data/ws/stamps.next", "s3://halo-data/ws/stamps")
    assert _objects(s3, "ws/stamps/")["ws/stamps/part-a.parquet"] == "old a"  # nothing lost
    assert set(_objects(s3, "ws/stamps.next/")) == set(new)  # the new output whole
    monkeypatch.setattr(storage, "_client", real)
    storage.replace_folder("s3://halo-data/ws/stamps.next", "s3://halo-data/ws/stamps")
    assert _objects(s3, "ws/stamps/") == {
        "ws/stamps/part-b.parquet": "new b",
        "ws/stamps/_SUCCESS": "",
        "ws/stamps/summary.json": "new",
    }
    assert _objects(s3, "ws/stamps.next/") == {}
