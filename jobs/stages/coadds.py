"""`coadds` (seed Phase 4b): fetch and cache the grz coadds of the bricks a manifest needs.

The source is a URL template with `{brick}`, `{brick3}` (its first three characters), `{kind}`
(image, invvar) and `{band}` (g, r, z): a local folder (the mock survey, the default), an
HTTP(S) mirror of DR10's coadd tree, or `s3://`. For DR10's mirror:

    https://portal.nersc.gov/cfs/cosmo/data/legacysurvey/dr10/south/coadd/{brick3}/{brick}/legacysurvey-{brick}-{kind}-{band}.fits.fz

The cache (a local folder or `s3://` prefix) keeps DR10's relative layout. Downloads run
concurrently and resume: each file goes to `<name>.part`, continued with an HTTP Range request
after a dropped connection, checked (size, and the SHA-256 from the brick's
`legacysurvey-<brick>.sha256sum` where the source has one), then renamed into place. A brick
that keeps failing is retried, then recorded as failed; the others go on.

    python -m jobs.stages.coadds --workspace DIR --variant V [--grid G] [--source TEMPLATE] [--cache DIR]
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import storage
from core.errors import file_system_said
from core.layout import coadd_cache_dir, coadd_scratch_dir, manifest_file, survey_dir
from jobs.runtime import stage as stage_runtime
from jobs.survey.layout import BANDS, check_brickname, coadd_path

WORKERS = stage_runtime.declared_default("coadds", "workers")

KINDS = ("image", "invvar")
RETRIES = 3
CHUNK = 1 << 20


def default_source(workspace: Path) -> str:
    return str(survey_dir(workspace) / "coadd/{brick3}/{brick}/legacysurvey-{brick}-{kind}-{band}.fits.fz")


def source_url(template: str, brick: str, kind: str, band: str) -> str:
    return template.format(brick=check_brickname(brick), brick3=brick[:3], kind=kind, band=band)


def checksum_url(template: str, brick: str) -> str:
    return source_url(template, brick, "image", "g").rsplit("/", 1)[0] + f"/legacysurvey-{brick}.sha256sum"


class FetchError(Exception):
    """One file could not be fetched or verified."""


# -- reading a source --------------------------------------------------------------------


def _open_range(url: str, start: int, timeout: float) -> tuple[Any, int | None]:
    """A byte stream of `url` from `start`, and the file's total size if known."""
    if url.startswith(("http://", "https://")):
        request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) only, checked above
        total = None
        if response.status == 206 and "Content-Range" in response.headers:
            total = int(response.headers["Content-Range"].rsplit("/", 1)[1])
        elif response.status == 200:
            if start:  # the server ignored the range: start over
                raise FetchError("server does not resume; restarting")
            total = int(response.headers["Content-Length"]) if "Content-Length" in response.headers else None
        return response, total
    if storage.is_s3(url):
        import boto3

        bucket, key = storage.split_s3(url)
        kwargs = {"Range": f"bytes={start}-"} if start else {}
        obj = boto3.client("s3").get_object(Bucket=bucket, Key=key, **kwargs)
        total = int(obj["ContentRange"].rsplit("/", 1)[1]) if start else int(obj["ContentLength"])
        return obj["Body"], total
    path = Path(url.removeprefix("file://"))
    handle = path.open("rb")
    handle.seek(start)
    return handle, path.stat().st_size


def source_meta(url: str, timeout: float) -> tuple[int | None, str | None]:
    """What the source says of a file before it is fetched: its size, and its MD5 where the
    source gives one (an S3 single-part object's ETag); (None, None) if it will not say."""
    try:
        if url.startswith(("http://", "https://")):
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
                length = response.headers.get("Content-Length")
                return (int(length) if length else None), None
        if storage.is_s3(url):
            import boto3

            bucket, key = storage.split_s3(url)
            head = boto3.client("s3").head_object(Bucket=bucket, Key=key)
            etag = str(head.get("ETag", "")).strip('"')
            return int(head["ContentLength"]), (etag.lower() if len(etag) == 32 and "-" not in etag else None)
        return Path(url.removeprefix("file://")).stat().st_size, None
    except Exception:  # noqa: BLE001 - unreachable or unknown: the caller decides what that means
        return None, None


def fits_complete(path: Path) -> bool:
    """Whether a FITS file holds every byte its headers announce (a whole number of 2,880-
    byte blocks, and every HDU's data within the file): what a truncated download lacks."""
    import warnings

    from astropy.io import fits

    size = path.stat().st_size
    if size == 0 or size % 2880:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdus:
                return all(h._data_offset + h._data_size <= size for h in hdus)  # noqa: SLF001
    except Exception:  # noqa: BLE001 - astropy raises and warns many kinds for a short file
        return False


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_small(url: str, timeout: float) -> bytes | None:
    """A small file (the checksum list), or None if the source has none."""
    try:
        stream, _ = _open_range(url, 0, timeout)
        with stream if hasattr(stream, "__enter__") else _closing(stream) as body:
            return body.read()
    except (OSError, urllib.error.URLError, FetchError):
        return None
    except Exception:  # botocore's NoSuchKey and friends
        return None


class _closing:
    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __enter__(self) -> Any:
        return self.stream

    def __exit__(self, *exc: object) -> None:
        self.stream.close()


def parse_checksums(text: bytes | None) -> dict[str, str]:
    """`sha256sum` output (`<hex>  <name>` or `<hex> *<name>`) as name -> hex digest."""
    sums: dict[str, str] = {}
    for line in (text or b"").decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 64:
            sums[parts[1].lstrip("*").rsplit("/", 1)[-1]] = parts[0].lower()
    return sums


# -- the cache ---------------------------------------------------------------------------


@dataclass
class Cache:
    """Where fetched coadds live: a local folder or an `s3://` prefix, in DR10's layout."""

    root: str

    def local_path(self, rel: str) -> Path | None:
        return None if storage.is_s3(self.root) else Path(self.root) / rel

    def url(self, rel: str) -> str:
        return f"{self.root.rstrip('/')}/{rel}"

    def size(self, rel: str) -> int | None:
        try:
            return storage.size(self.url(rel))
        except Exception:  # absent (local or S3)
            return None

    def put(self, rel: str, tmp: Path) -> None:
        local = self.local_path(rel)
        if local is not None:
            os.replace(tmp, local)
            return
        import boto3

        bucket, key = storage.split_s3(self.url(rel))
        boto3.client("s3").upload_file(str(tmp), bucket, key)
        tmp.unlink()

    def staging(self, rel: str, scratch: Path) -> Path:
        local = self.local_path(rel)
        path = (local if local is not None else scratch / rel).with_name(Path(rel).name + ".part")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_file(url: str, rel: str, cache: Cache, scratch: Path, sha256: str | None, timeout: float) -> int:
    """Fetch one file into the cache, resuming a `.part` left by an earlier try; return the
    bytes transferred. Verified against every check the source allows — its size, its MD5
    (an S3 single-part ETag), the brick's SHA-256 list — and, where it allows none, against
    the FITS structure itself. Raises FetchError when the transfer or a check fails."""
    expected_size, md5 = source_meta(url, timeout)
    part = cache.staging(rel, scratch)
    start = part.stat().st_size if part.exists() else 0
    try:
        stream, total = _open_range(url, start, timeout)
    except FetchError:
        part.unlink(missing_ok=True)
        start = 0
        stream, total = _open_range(url, 0, timeout)
    except (OSError, urllib.error.URLError, http.client.HTTPException) as err:
        code = f"HTTP {err.code} " if isinstance(err, urllib.error.HTTPError) else ""
        raise FetchError(f"{url}: {code}{getattr(err, 'reason', err)}") from None
    except Exception as err:  # botocore errors
        raise FetchError(f"{url}: {err}") from None
    moved = 0
    try:
        with open(part, "ab" if start else "wb") as out, _closing(stream) as body:
            while chunk := body.read(CHUNK):
                try:
                    out.write(chunk)
                except OSError as err:  # this side's disk, not the transfer: nothing to resume
                    out.close()
                    part.unlink(missing_ok=True)
                    raise FetchError(f"{part}: could not be written ({file_system_said(err)})") from None
                moved += len(chunk)
    except (OSError, urllib.error.URLError, http.client.HTTPException) as err:
        raise FetchError(f"{url}: transfer broke off after {start + moved} bytes ({err!r})") from None
    size = part.stat().st_size
    for announced in (total, expected_size):
        if announced is not None and size != announced:
            if size > announced:
                part.unlink()
            raise FetchError(f"{url}: got {size} of {announced} bytes")
    if md5 is not None and _md5(part) != md5:
        part.unlink()
        raise FetchError(f"{url}: MD5 does not match the object's ETag")
    if sha256 is not None and _sha256(part) != sha256:
        part.unlink()
        raise FetchError(f"{url}: SHA-256 does not match the source's checksum")
    if total is None and expected_size is None and md5 is None and sha256 is None and not fits_complete(part):
        part.unlink()
        raise FetchError(f"{url}: the source gives no size or checksum and the FITS file is incomplete")
    cache.put(rel, part)
    return moved


def _cached_ok(cache: Cache, rel: str, url: str, timeout: float) -> bool:
    """Whether a cached file can be kept: not empty, the source's size if it says one, else
    a complete FITS file (a truncated file is fetched again, never 'cached' forever)."""
    known = cache.size(rel)
    if not known:
        return False
    expected, _ = source_meta(url, timeout)
    if expected is not None:
        return known == expected
    local = cache.local_path(rel)
    return local is None or fits_complete(local)


def fetch_brick(
    brick: str,
    template: str,
    cache: Cache,
    scratch: Path,
    force: bool,
    timeout: float = 60.0,
    retries: int = RETRIES,
) -> dict[str, Any]:
    """All six coadd files of a brick, retried as a whole; a summary row for the brick."""
    sums = parse_checksums(_read_small(checksum_url(template, brick), timeout))
    fetched = cached = moved = 0
    last_error = ""
    fetched_now: set[str] = set()  # a retry goes on from these (--force or not), not from older files
    for attempt in range(retries):
        try:
            for kind in KINDS:
                for band in BANDS:
                    rel = coadd_path(brick, kind, band)
                    name = rel.rsplit("/", 1)[1]
                    url = source_url(template, brick, kind, band)
                    if rel in fetched_now:
                        continue
                    if not force and _cached_ok(cache, rel, url, timeout):
                        cached += 1
                        continue
                    moved += fetch_file(url, rel, cache, scratch, sums.get(name), timeout)
                    fetched += 1
                    fetched_now.add(rel)
            return {
                "brick": brick,
                "ok": True,
                "fetched": fetched,
                "cached": cached,
                "bytes": moved,
                "verified_sha256": bool(sums),
                "attempts": attempt + 1,
            }
        except FetchError as err:
            last_error = str(err)
            time.sleep(0.2 * 2**attempt)
    return {
        "brick": brick,
        "ok": False,
        "reason": last_error,
        "attempts": retries,
        "fetched": fetched,
        "bytes": moved,
    }


def bricks_of_manifest(path: Path) -> list[str]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not path.exists():
        raise stage_runtime.StageError(f"{path}: no manifest; run `halo stage manifest` first")
    column = pq.read_table(path, columns=["brickname"]).column("brickname")
    return sorted(pc.unique(column).to_pylist())


class _Progress:
    def __init__(self, total: int) -> None:
        self.total, self.done, self.lock = total, 0, threading.Lock()
        self.tty = sys.stderr.isatty()

    def step(self, row: dict[str, Any]) -> None:
        with self.lock:
            self.done += 1
            status = "ok" if row["ok"] else f"FAILED: {row['reason']}"
            if self.tty:
                bar = "#" * int(30 * self.done / self.total)
                print(f"\r[{bar:<30}] {self.done}/{self.total} bricks", end="", file=sys.stderr, flush=True)
                if self.done == self.total:
                    print(file=sys.stderr)
            print(f"brick {row['brick']} {status} ({self.done}/{self.total})", flush=True)


def run(
    workspace: Path,
    variant: str,
    *,
    grid: str | None = None,
    source: str | None = None,
    cache: str | None = None,
    workers: int = WORKERS,
    force: bool = False,
) -> dict[str, Any]:
    """Fetch the coadds of the manifest's bricks into the cache (`cache`, or the workspace's),
    each file checked against the source's size; `force` fetches every file again."""
    _, grid = stage_runtime.resolve(workspace, variant, grid)
    bricks = bricks_of_manifest(manifest_file(workspace, variant, grid))
    template = source or default_source(workspace)
    cached = Cache(cache or str(coadd_cache_dir(workspace)))
    scratch = coadd_scratch_dir(workspace)
    rows: list[dict[str, Any]] = []
    progress = _Progress(len(bricks))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(fetch_brick, b, template, cached, scratch, force) for b in bricks]
        for future in as_completed(futures):
            rows.append(future.result())
            progress.step(rows[-1])
    shutil.rmtree(scratch, ignore_errors=True)
    failed = [r for r in rows if not r["ok"]]
    summary = {
        "outputs": [cached.root],
        "bricks": len(bricks),
        "failed_bricks": failed,
        "files_fetched": sum(r["fetched"] for r in rows),
        "files_cached": sum(r.get("cached", 0) for r in rows),
        "bytes": sum(r["bytes"] for r in rows),
        "source": template,
    }
    print(
        f"coadds: {summary['files_cached']} files already in {cached.root} "
        f"(each checked against the source's size), {summary['files_fetched']} fetched"
        + ("" if force else " (--force fetches every file again)"),
        flush=True,
    )
    if failed:
        print(summary, flush=True)
        raise stage_runtime.StageError(
            f"{len(failed)} of {len(bricks)} bricks could not be fetched: "
            + "; ".join(f"{r['brick']}: {r['reason']}" for r in failed[:3])
        )
    return summary


main = stage_runtime.entry("coadds", run)


if __name__ == "__main__":
    raise SystemExit(main())
