"""Fault suite, downloads: a coadd is checked against everything its source says of it (size,
S3 MD5, SHA-256 list, else the FITS structure), and a cached file that is empty or short is
fetched again rather than 'cached' forever. (Issue 11, item 11.)"""

from __future__ import annotations

import io
from pathlib import Path

import boto3

from jobs.stages import coadds
from jobs.stages.coadds import Cache, fetch_brick
from jobs.survey.layout import coadd_path

TEMPLATE = "/coadd/{brick3}/{brick}/legacysurvey-{brick}-{kind}-{band}.fits.fz"


def _mirror(mock_ws: Path, bucket: str) -> str:
    """A brick's coadds on (moto's) S3, without the checksum list."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    brick = sorted(p.name for p in (mock_ws / "survey" / "coadd").glob("*/*"))[0]
    for path in (mock_ws / "survey" / "coadd" / brick[:3] / brick).glob("*.fits.fz"):
        s3.upload_file(str(path), bucket, f"dr10/coadd/{brick[:3]}/{brick}/{path.name}")
    return brick


def test_a_transfer_cut_short_is_caught_by_the_objects_md5(
    mock_ws: Path, tmp_path: Path, s3_env, monkeypatch
) -> None:
    brick = _mirror(mock_ws, "mirror-md5")
    real = coadds._open_range

    def truncated(url: str, start: int, timeout: float):
        stream, _ = real(url, start, timeout)
        data = stream.read()
        half = data[: len(data) // 2]
        return io.BytesIO(half + b"\0" * (len(data) - len(half))), len(data)  # right size, wrong bytes

    monkeypatch.setattr(coadds, "_open_range", truncated)
    cache = Cache(str(tmp_path / "cache"))
    row = fetch_brick(brick, "s3://mirror-md5/dr10" + TEMPLATE, cache, tmp_path / "scratch", False, retries=1)
    assert not row["ok"] and "MD5 does not match" in row["reason"]
    assert cache.size(coadd_path(brick, "image", "g")) is None  # nothing half-true in the cache


def test_an_empty_or_short_cached_file_is_fetched_again(mock_ws: Path, tmp_path: Path, s3_env) -> None:
    brick = _mirror(mock_ws, "mirror-cache")
    cache = Cache(str(tmp_path / "cache"))
    source = "s3://mirror-cache/dr10" + TEMPLATE
    assert fetch_brick(brick, source, cache, tmp_path / "scratch", False)["fetched"] == 6
    empty, short = (tmp_path / "cache" / coadd_path(brick, "image", b) for b in ("g", "r"))
    whole = short.read_bytes()
    empty.write_bytes(b"")
    short.write_bytes(whole[: len(whole) // 2])
    row = fetch_brick(brick, source, cache, tmp_path / "scratch", False)
    assert row["ok"] and (row["fetched"], row["cached"]) == (2, 4)
    assert short.read_bytes() == whole and empty.stat().st_size > 0


def test_a_source_that_says_nothing_still_cannot_pass_a_truncated_fits(
    mock_ws: Path, tmp_path: Path, monkeypatch
) -> None:
    brick = sorted(p.name for p in (mock_ws / "survey" / "coadd").glob("*/*"))[0]
    real = coadds._open_range

    def unannounced(url: str, start: int, timeout: float):
        stream, _ = real(url, start, timeout)
        data = stream.read()
        return io.BytesIO(data[: len(data) // 2]), None  # an HTTP reply with no length, cut short

    monkeypatch.setattr(coadds, "_open_range", unannounced)
    monkeypatch.setattr(coadds, "source_meta", lambda url, timeout: (None, None))
    source = tmp_path / "source" / "coadd" / brick[:3] / brick
    source.mkdir(parents=True)
    for path in (mock_ws / "survey" / "coadd" / brick[:3] / brick).glob("*.fits.fz"):  # no sha256sum
        (source / path.name).write_bytes(path.read_bytes())
    template = str(tmp_path / "source") + TEMPLATE
    cache = Cache(str(tmp_path / "cache"))
    row = fetch_brick(brick, template, cache, tmp_path / "scratch", False, retries=1)
    assert not row["ok"] and "FITS file is incomplete" in row["reason"]
