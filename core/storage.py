"""Files by local path or `s3://bucket/key`: listing and reading, one interface for the stages.

S3 goes through boto3 and honours the standard credential chain and `AWS_ENDPOINT_URL`."""

from __future__ import annotations

import fnmatch
import glob
import os
from pathlib import Path
from typing import Any

from core.errors import BackendUnreachable, UsageError


def is_s3(uri: str | Path) -> bool:
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise UsageError(f"{uri!r} names no bucket")
    return bucket, key


def _client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"mode": "adaptive", "max_attempts": 8}))


def list_files(location: str | Path, pattern: str = "*") -> list[str]:
    """Files under a folder (recursively) or S3 prefix whose names match `pattern`; a file
    or a glob names itself. Sorted, so runs are deterministic."""
    text = str(location)
    if is_s3(text):
        bucket, prefix = split_s3(text)
        try:
            pages = _client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        except Exception as err:  # botocore raises many kinds; all mean "cannot list"
            raise BackendUnreachable(f"cannot list {text}: {err}") from None
        return sorted(f"s3://{bucket}/{k}" for k in keys if fnmatch.fnmatch(k.rsplit("/", 1)[-1], pattern))
    path = Path(text)
    if path.is_file():
        return [str(path)]
    if path.is_dir():
        return sorted(str(p) for p in path.rglob(pattern) if p.is_file())
    matches = sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file())
    if not matches:
        raise UsageError(f"{text}: no such file or folder")
    return matches


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        try:
            return _client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as err:
            raise BackendUnreachable(f"cannot read {uri}: {err}") from None
    return Path(uri).read_bytes()


def read_text(uri: str | Path) -> str | None:
    """A text file's content, or None when it does not exist (locally or on S3)."""
    if is_s3(uri):
        bucket, key = split_s3(str(uri))
        s3 = _client()
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        except Exception as err:
            raise BackendUnreachable(f"cannot read {uri}: {err}") from None
        return body.decode("utf-8", "replace")
    try:
        return Path(uri).read_text(errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return None


def upload(local: Path, uri: str) -> None:
    bucket, key = split_s3(uri)
    try:
        _client().upload_file(str(local), bucket, key)
    except Exception as err:
        raise BackendUnreachable(f"cannot write {uri}: {err}") from None


HASHED_BYTES = 256 << 20  # a file up to this size is known by its whole content
TAIL_BYTES = 1 << 20  # a bigger one, and every parquet file, by its end (a parquet footer)


def content_digest(path: Path, whole: bool = True) -> str:
    """A digest of a file's content: all of it (`whole`, up to HASHED_BYTES), else its last
    TAIL_BYTES (a parquet file's footer: its row groups' sizes, offsets and statistics)."""
    import hashlib

    size = path.stat().st_size
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        if not whole or size > HASHED_BYTES:
            handle.seek(max(0, size - TAIL_BYTES))
            digest.update(b"tail")
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def signature(uri: str) -> tuple[str, int, str]:
    """What identifies a file's version for up-to-date checks, by content, so that a change
    that keeps a file's size and time is seen: the ETag on S3; locally a digest of the whole
    file up to HASHED_BYTES (a touch alone changes nothing), of a parquet file's footer, and of
    a bigger file's end with its time; a folder by its time."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        head = _client().head_object(Bucket=bucket, Key=key)
        return uri, int(head["ContentLength"]), str(head["ETag"])
    path = Path(uri)
    stat = path.stat()
    if path.is_dir():
        return uri, stat.st_size, str(stat.st_mtime_ns)
    if uri.endswith(".parquet"):
        return uri, stat.st_size, content_digest(path, whole=False)
    if stat.st_size <= HASHED_BYTES:
        return uri, stat.st_size, content_digest(path)
    return uri, stat.st_size, f"{stat.st_mtime_ns}:{content_digest(path)}"


def size(uri: str) -> int:
    """A file's size in bytes (local or S3)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        return int(_client().head_object(Bucket=bucket, Key=key)["ContentLength"])
    return Path(uri).stat().st_size


def arrow_fs(uri: str) -> tuple[Any, str]:
    """A pyarrow filesystem and path for `uri` (None for a local path), honouring
    `AWS_ENDPOINT_URL` for S3."""
    if not is_s3(uri):
        return None, uri
    import os

    from pyarrow import fs

    bucket, key = split_s3(uri)
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    filesystem = (
        fs.S3FileSystem(endpoint_override=endpoint, region=region)
        if endpoint
        else fs.S3FileSystem(region=region)
    )
    return filesystem, f"{bucket}/{key}"


def write_bytes(uri: str, body: bytes) -> None:
    """A whole file, locally (a temporary name, then a rename) or as one S3 object."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        try:
            _client().put_object(Bucket=bucket, Key=key, Body=body)
        except Exception as err:
            raise BackendUnreachable(f"cannot write {uri}: {err}") from None
        return
    from core.safe_io import atomic_write

    Path(uri).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(uri), body)


def replace_folder(new: str, final: str) -> None:
    """Make the complete folder `new` the folder `final`; nothing of the previous `final` is
    removed before every file of `new` is in place. Locally one rename swap, undone if the
    second rename fails. On S3 (no renames) `new`'s objects are copied in first (Spark's part
    names are unique per write), then the previous objects they did not overwrite are
    deleted, then `new`: stopped half-way, `final` holds the old output and some of the new,
    and `new` still the whole new one."""
    if not is_s3(final):
        import shutil

        old = Path(f"{final}.old-{os.getpid()}")
        had = Path(final).exists()
        if had:
            Path(final).rename(old)
        try:
            Path(new).rename(final)
        except BaseException:
            if had:
                old.rename(final)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    s3 = _client()
    new_bucket, new_prefix = split_s3(new.rstrip("/") + "/")
    bucket, prefix = split_s3(final.rstrip("/") + "/")

    def keys(bucket: str, prefix: str) -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def delete(bucket: str, doomed: list[str]) -> None:
        for start in range(0, len(doomed), 1000):
            chunk = [{"Key": key} for key in doomed[start : start + 1000]]
            s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk})

    try:
        previous, fresh = keys(bucket, prefix), keys(new_bucket, new_prefix)
        placed = {prefix + key[len(new_prefix) :] for key in fresh}
        for key in fresh:
            target = prefix + key[len(new_prefix) :]
            s3.copy_object(Bucket=bucket, Key=target, CopySource={"Bucket": new_bucket, "Key": key})
        delete(bucket, [key for key in previous if key not in placed])
        delete(new_bucket, fresh)
    except Exception as err:
        raise BackendUnreachable(f"cannot move {new} to {final}: {err}") from None


def read_parquet(uri: str | list[str], columns: list[str] | None = None) -> Any:
    """A parquet file, a folder of parts or a list of files (local or s3://) as one table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.errors import DamagedFile

    uris = [uri] if isinstance(uri, str) else uri
    filesystem, _ = arrow_fs(uris[0]) if uris else (None, "")
    paths = [arrow_fs(u)[1] for u in uris]
    try:
        source = paths[0] if isinstance(uri, str) else paths
        return pq.read_table(source, columns=columns, filesystem=filesystem)
    except pa.ArrowException as err:  # truncated, or not parquet: name it (pyarrow does not)
        where = uri if isinstance(uri, str) else f"{uris[0]} (one of {len(uris)})"
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise DamagedFile(f"{where}: not a readable parquet file ({first})") from None


def parquet_columns(uri: str) -> list[str]:
    """The column names of a parquet file or folder of parts (local or s3://)."""
    import pyarrow.dataset as ds

    filesystem, path = arrow_fs(uri)
    return ds.dataset(path, format="parquet", filesystem=filesystem).schema.names


def write_parquet(table: Any, uri: str, codec: str = "zstd") -> None:
    """An Arrow table as one parquet file (local: a temporary name, then a rename)."""
    import pyarrow.parquet as pq

    filesystem, path = arrow_fs(uri)
    if filesystem is not None:
        pq.write_table(table, path, compression=codec, filesystem=filesystem)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{path}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression=codec)
    os.replace(tmp, path)


def parquet_file(uri: str | Path) -> Any:
    """A `pyarrow.parquet.ParquetFile` of a local path or an s3:// URI."""
    import pyarrow.parquet as pq

    filesystem, path = arrow_fs(str(uri))
    return pq.ParquetFile(path, filesystem=filesystem) if filesystem is not None else pq.ParquetFile(path)
