"""The triage stream: a run's candidates with blind items mixed in, told apart by nothing shown."""

from pathlib import Path

import numpy as np
import pytest

from core.candidates import CandidateTable, TriageStream, blinds_path


@pytest.fixture
def stream_files(tmp_path: Path, make_candidates) -> tuple[Path, Path]:
    """100 candidates and 30 blind items beside them (20 simulated lenses, 10 non-lenses)."""
    path = make_candidates(tmp_path / "candidates.parquet", 100)
    truth = ["lens"] * 20 + ["not_lens"] * 10
    blinds = make_candidates(blinds_path(path), 30, brickname=["0001p000"] * 30, truth=truth)
    return path, blinds


def test_blind_items_join_the_stream_at_the_rate_half_each_truth(stream_files) -> None:
    path, blinds = stream_files
    stream = TriageStream(CandidateTable(path), CandidateTable(blinds), rate=0.1, seed="demo")
    assert len(stream) == 111 and stream.n_blind == 11  # 11 of 111 = 10 %
    assert sorted(stream.truth.values()).count("lens") == 6
    positions = np.flatnonzero(stream.source == 1)
    assert positions.max() > 50 and positions.min() < 50  # spread through the stream, not bunched at an end
    # numbered by position, no score shown; candidates keep their rank order
    assert not stream.scored and stream.ranks.tolist() == list(range(1, 112))
    real = [stream.row(int(p)) for p in np.flatnonzero(stream.source == 0)]
    assert [r["objid"] for r in real] == list(range(100)) and all(r["blind"] is None for r in real)
    blind = stream.row(int(positions[0]))
    assert blind["blind"] in ("lens", "not_lens") and set(blind) == set(real[0])  # the same fields
    key = stream.key(blind["brickname"], blind["objid"], blind["blind"])
    assert key == stream.keys[positions[0]] and stream.has(blind["brickname"], blind["objid"], blind["blind"])
    assert stream.key("1499p022", 5) == stream.keys[np.flatnonzero(stream.source == 0)[5]]
    # the stamps come from the table each item is in
    stamps = stream.stamps([int(positions[0]), 0])
    j = int(stream.index[positions[0]])
    assert np.array_equal(stamps[0], CandidateTable(blinds).stamps([j])[0])
    # every inspector of the run sees the same stream; another run another
    again = TriageStream(CandidateTable(path), CandidateTable(blinds), rate=0.1, seed="demo")
    other = TriageStream(CandidateTable(path), CandidateTable(blinds), rate=0.1, seed="other")
    assert np.array_equal(again.source, stream.source) and not np.array_equal(other.source, stream.source)


def test_without_blind_items_the_stream_is_the_ranked_candidates(stream_files) -> None:
    path, blinds = stream_files
    for stream in (
        TriageStream(CandidateTable(path), CandidateTable(blinds), rate=0.0),
        TriageStream(CandidateTable(path), None, rate=0.2),
    ):
        assert stream.scored and len(stream) == 100 and stream.n_blind == 0
        assert stream.ranks.tolist() == list(range(1, 101)) and stream.row(3)["score"] is not None


def test_a_short_pool_gives_what_it_has(stream_files) -> None:
    path, blinds = stream_files
    stream = TriageStream(CandidateTable(path), CandidateTable(blinds), rate=0.5)  # 100 wanted, 30 there
    assert stream.n_blind == 30 and sorted(stream.truth.values()).count("not_lens") == 10


def test_two_threads_reading_stamps_at_once_get_them_whole(stream_files) -> None:
    """The console reads a page's stamps in a worker while another shows the zoomed one: a
    parquet reader used by two threads at once failed ("did not find matching cache entry")
    and could crash the process."""
    import threading

    path, _ = stream_files
    table = CandidateTable(path)
    expected = table.stamps(list(range(100)))
    errors: list[BaseException] = []

    def reader(start: int) -> None:
        try:
            for i in range(100):
                rows = [(start + 7 * i + k) % 100 for k in range(12)]
                assert np.array_equal(table.stamps(rows), expected[rows])
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=reader, args=(s,)) for s in (0, 33, 66, 99)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
