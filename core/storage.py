"""Files by local path or `s3://bucket/key`: listing and reading, one interface for the stages.

S3 goes through boto3 and honours the standard credential chain and `AWS_ENDPOINT_URL`."""

from __future__ import annotations

import fnmatch
import glob
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


def signature(uri: str) -> tuple[str, int, str]:
    """What identifies a file's version for up-to-date checks: size and mtime (or ETag)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        head = _client().head_object(Bucket=bucket, Key=key)
        return uri, int(head["ContentLength"]), str(head["ETag"])
    stat = Path(uri).stat()
    return uri, stat.st_size, str(stat.st_mtime_ns)


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
