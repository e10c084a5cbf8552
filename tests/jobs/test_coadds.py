"""coadds: fetched over loopback HTTP (resumed after a dropped connection, verified against
the brick's checksums), and from S3, with failing bricks recorded while the others go on."""

import hashlib
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.layout import coadd_cache_dir
from jobs.stages import coadds, manifest, select
from jobs.stages.coadds import Cache, fetch_brick, parse_checksums
from jobs.survey.layout import coadd_path

TEMPLATE = "/coadd/{brick3}/{brick}/legacysurvey-{brick}-{kind}-{band}.fits.fz"


class Mirror:
    """A loopback HTTP server over a survey folder, with Range support and injected faults."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.drop_once: set[str] = set()  # paths whose first transfer breaks off half-way
        self.requests: list[tuple[str, str | None]] = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                range_header = self.headers.get("Range")
                mirror.requests.append((self.path, range_header))
                path = mirror.root / self.path.lstrip("/")
                if ".." in self.path or not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = int(range_header.removeprefix("bytes=").split("-")[0]) if range_header else 0
                body = data[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in mirror.drop_once:
                    mirror.drop_once.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def mirror(mock_ws: Path, tmp_path: Path):
    root = tmp_path / "mirror"
    shutil.copytree(mock_ws / "survey", root)
    m = Mirror(root)
    m.thread.start()
    yield m
    m.server.shutdown()


def test_a_brick_is_fetched_verified_and_resumed_after_a_dropped_connection(
    mirror: Mirror, tmp_path: Path
) -> None:
    brick = sorted(p.name for p in (mirror.root / "coadd").glob("*/*"))[0]
    dropped = "/" + coadd_path(brick, "image", "r")
    mirror.drop_once.add(dropped)
    cache = Cache(str(tmp_path / "cache"))
    row = fetch_brick(brick, mirror.url + TEMPLATE, cache, tmp_path / "scratch", force=False)
    assert row["ok"] and row["fetched"] == 6 and row["verified_sha256"] and row["attempts"] == 2
    assert (dropped, None) in mirror.requests
    assert any(
        path == dropped and rng and rng != "bytes=0-" for path, rng in mirror.requests
    )  # resumed by Range
    sums = parse_checksums(
        (mirror.root / coadd_path(brick, "image", "g"))
        .with_name(f"legacysurvey-{brick}.sha256sum")
        .read_bytes()
    )
    for name, digest in sums.items():
        got = tmp_path / "cache" / coadd_path(brick, "image", "g").rsplit("/", 1)[0] / name
        assert hashlib.sha256(got.read_bytes()).hexdigest() == digest
    assert not list((tmp_path / "cache").rglob("*.part"))
    again = fetch_brick(brick, mirror.url + TEMPLATE, cache, tmp_path / "scratch", force=False)
    assert again["ok"] and again["fetched"] == 0 and again["cached"] == 6


def test_a_corrupt_file_and_a_missing_brick_fail_alone(mirror: Mirror, tmp_path: Path, mock_ws: Path) -> None:
    bricks = sorted(p.name for p in (mirror.root / "coadd").glob("*/*"))
    corrupt = mirror.root / coadd_path(bricks[0], "invvar", "z")
    data = bytearray(corrupt.read_bytes())
    data[-10] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    shutil.rmtree(mirror.root / "coadd" / bricks[1][:3] / bricks[1])
    cache = Cache(str(tmp_path / "cache"))
    rows = {
        b: fetch_brick(b, mirror.url + TEMPLATE, cache, tmp_path / "s", force=False, retries=2)
        for b in bricks
    }
    assert not rows[bricks[0]]["ok"] and "SHA-256 does not match" in rows[bricks[0]]["reason"]
    assert not rows[bricks[1]]["ok"] and "Not Found" in rows[bricks[1]]["reason"]
    assert rows[bricks[2]]["ok"] and rows[bricks[2]]["fetched"] == 6
    assert not (tmp_path / "cache" / coadd_path(bricks[0], "invvar", "z")).exists()


def test_the_stage_records_failed_bricks_and_fetches_the_rest(
    mirror: Mirror, mock_ws: Path, tmp_path: Path, capsys
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(mock_ws / "survey", ws / "survey")
    (ws / "halo.toml").write_text("[grids.grid_small]\nn_total_per_split = 60\n")
    select.run(ws, "v3_color_relaxed")
    manifest.run(ws, "v3_color_relaxed", grid="grid_small")
    bricks = coadds.bricks_of_manifest(
        manifest.manifest_dir(ws, "v3_color_relaxed", "grid_small") / "manifest.parquet"
    )
    shutil.rmtree(mirror.root / "coadd" / bricks[0][:3] / bricks[0])
    with pytest.raises(
        coadds.stage_runtime.StageError, match=f"1 of {len(bricks)} bricks could not be fetched: {bricks[0]}"
    ):
        coadds.run(ws, "v3_color_relaxed", grid="grid_small", source=mirror.url + TEMPLATE, workers=4)
    for brick in bricks[1:]:
        assert (Path(str(coadd_cache_dir(ws))) / coadd_path(brick, "image", "g")).exists()
    capsys.readouterr()
    with pytest.raises(coadds.stage_runtime.StageError):  # a rerun keeps what it has and says so
        coadds.run(ws, "v3_color_relaxed", grid="grid_small", source=mirror.url + TEMPLATE, workers=4)
    assert f"coadds: {6 * (len(bricks) - 1)} files already in " in capsys.readouterr().out


def test_coadds_from_s3_into_an_s3_cache(mock_ws: Path, tmp_path: Path, s3_env: str) -> None:
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="mirror")
    s3.create_bucket(Bucket="cache")
    brick = sorted(p.name for p in (mock_ws / "survey" / "coadd").glob("*/*"))[0]
    for path in (mock_ws / "survey" / "coadd" / brick[:3] / brick).iterdir():
        s3.upload_file(str(path), "mirror", f"dr10/coadd/{brick[:3]}/{brick}/{path.name}")
    cache = Cache("s3://cache/halo")
    row = fetch_brick(brick, "s3://mirror/dr10" + TEMPLATE, cache, tmp_path / "scratch", force=False)
    assert row["ok"] and row["fetched"] == 6 and row["verified_sha256"]
    key = f"halo/{coadd_path(brick, 'image', 'r')}"
    assert (
        s3.head_object(Bucket="cache", Key=key)["ContentLength"]
        == (mock_ws / "survey" / coadd_path(brick, "image", "r")).stat().st_size
    )
    assert (
        fetch_brick(brick, "s3://mirror/dr10" + TEMPLATE, cache, tmp_path / "scratch", force=False)["cached"]
        == 6
    )
