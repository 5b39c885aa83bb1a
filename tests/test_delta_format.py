"""The delta format (caio/core/delta.py): byte-identical results, and every bad input refused."""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from pathlib import Path

import pytest
import zstandard

from caio.core.delta import (
    COPY,
    DATA,
    END,
    MAGIC,
    DeltaInfo,
    DeltaRefused,
    TarDigest,
    apply_delta,
    build_delta,
)
from caio.core.settings import SOURCE_DIR
from tuf_repo import build_release


def release_tars(tmp_path: Path, change: str) -> tuple[Path, Path]:
    """Uncompressed tars of this source tree as 1.1.0 and, with ``change`` made, 1.1.1."""
    src = tmp_path / "src"
    shutil.copytree(SOURCE_DIR / "caio", src / "caio", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(SOURCE_DIR / "manifest.json", src / "manifest.json")
    old = build_release(src, "1.1.0", tmp_path / "dist")
    target = src / "caio" / "update" / "install.py"
    target.write_text(target.read_text().replace("preflight timed out", change))
    (src / "caio" / "new_module.py").write_text('"""A file the base does not have."""\n')
    new = build_release(src, "1.1.1", tmp_path / "dist")
    tars = []
    for artifact in (old, new):
        tar = artifact.with_suffix("")  # .tar
        tar.write_bytes(gzip.decompress(artifact.read_bytes()))
        tars.append(tar)
    return tars[0], tars[1]


def delta_of(base: Path, result: Path) -> bytes:
    out = io.BytesIO()
    build_delta(base, result, out)
    return out.getvalue()


def info_for(base: Path, result: Path) -> DeltaInfo:
    return DeltaInfo("1.1.0", "1.1.1", TarDigest.of_file(base), TarDigest.of_file(result))


def test_a_delta_rebuilds_the_release_tar_byte_for_byte_and_is_small(tmp_path: Path) -> None:
    base, result = release_tars(tmp_path, "the preflight timed out")
    delta = delta_of(base, result)
    out = io.BytesIO()
    produced = apply_delta(io.BytesIO(delta), base, info_for(base, result), out)
    assert out.getvalue() == result.read_bytes()
    assert produced == TarDigest.of_file(result)
    full = len(gzip.compress(result.read_bytes()))
    assert len(delta) < full / 20  # a one-line change costs a small fraction of the release
    assert delta_of(base, result) == delta  # reproducible: same tars, same bytes


def test_a_delta_for_another_base_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    base, result = release_tars(tmp_path, "x")
    delta = delta_of(base, result)
    other = tmp_path / "other.tar"
    other.write_bytes(base.read_bytes()[:-1024] + b"\0" * 1024 + b"x")
    out = io.BytesIO()
    with pytest.raises(DeltaRefused, match=r"not the 1\.1\.0 tar"):
        apply_delta(io.BytesIO(delta), other, info_for(base, result), out)
    assert out.getvalue() == b""


@pytest.mark.parametrize(
    "damage",
    ["flipped byte", "cut short", "bad magic", "trailing bytes", "unknown operation"],
)
def test_a_damaged_delta_is_refused(tmp_path: Path, damage: str) -> None:
    base, result = release_tars(tmp_path, "y")
    delta = bytearray(delta_of(base, result))
    if damage == "flipped byte":
        delta[len(delta) // 2] ^= 0xFF
    elif damage == "cut short":
        del delta[len(delta) // 2 :]
    elif damage == "bad magic":
        delta[0:1] = b"X"
    elif damage == "trailing bytes":
        delta += b"E"
    else:
        delta[len(MAGIC) : len(MAGIC) + 1] = b"Z"
    with pytest.raises(DeltaRefused):
        apply_delta(io.BytesIO(bytes(delta)), base, info_for(base, result), io.BytesIO())


def test_a_delta_that_makes_other_bytes_is_refused(tmp_path: Path) -> None:
    """Well-formed, but not the signed result: the digest decides, not the delta."""
    base, result = release_tars(tmp_path, "z")
    forged = MAGIC + COPY + (0).to_bytes(8, "big") + base.stat().st_size.to_bytes(8, "big") + b"E"
    info = info_for(base, result)
    with pytest.raises(DeltaRefused, match="not the signed"):
        apply_delta(io.BytesIO(forged), base, info, io.BytesIO())
    longer = DeltaInfo(info.base_version, info.result_version, info.base, TarDigest("0" * 64, 10))
    with pytest.raises(DeltaRefused, match="more than the signed 10 bytes"):
        apply_delta(io.BytesIO(forged), base, longer, io.BytesIO())


def test_a_delta_that_points_outside_its_base_is_refused(tmp_path: Path) -> None:
    base, result = release_tars(tmp_path, "w")
    size = base.stat().st_size
    outside = MAGIC + COPY + (size - 10).to_bytes(8, "big") + (20).to_bytes(8, "big") + b"E"
    with pytest.raises(DeltaRefused, match="outside the base"):
        apply_delta(io.BytesIO(outside), base, info_for(base, result), io.BytesIO())


def test_a_frame_asking_for_more_memory_than_the_release_needs_is_refused(
    tmp_path: Path,
) -> None:
    """A zstd frame declares the window its decoder reserves; a signed but hostile delta
    cannot make a host reserve 2 GB to apply a delta to a release of a few hundred KB."""
    base, result = release_tars(tmp_path, "v")
    data = result.read_bytes()
    params = zstandard.ZstdCompressionParameters(window_log=20, write_content_size=False)
    frame = bytearray(zstandard.ZstdCompressor(compression_params=params).compress(data))
    assert frame[4] == 0  # no single-segment flag: byte 5 is the window descriptor
    declared = frame[5]  # 1 MB, which the release's size allows
    frame[5] = 21 << 3  # 2^(10 + 21) = 2 GB
    assert zstandard.get_frame_parameters(bytes(frame)).window_size == 1 << 31
    stored = MAGIC + DATA + len(frame).to_bytes(8, "big") + bytes(frame) + END
    with pytest.raises(DeltaRefused, match="too much memory"):
        apply_delta(io.BytesIO(stored), base, info_for(base, result), io.BytesIO())
    frame[5] = declared  # the same frame as it was made: it applies
    honest = MAGIC + DATA + len(frame).to_bytes(8, "big") + bytes(frame) + END
    out = io.BytesIO()
    apply_delta(io.BytesIO(honest), base, info_for(base, result), out)
    assert out.getvalue() == data


def test_the_signed_delta_fields_are_read_strictly() -> None:
    good = {
        "from": "1.0.0",
        "to": "1.1.0",
        "base_tar": {"sha256": "a" * 64, "length": 10},
        "result_tar": {"sha256": "b" * 64, "length": 20},
    }
    assert DeltaInfo.from_json(good).to_json() == good
    bads: list[object] = [
        {**good, "from": 1},
        {**good, "base_tar": {"sha256": "a" * 63, "length": 10}},
        {**good, "result_tar": {"sha256": "b" * 64, "length": -1}},
        {**good, "result_tar": {"sha256": "b" * 64, "length": True}},
        [],
    ]
    for bad in bads:
        with pytest.raises(DeltaRefused):
            DeltaInfo.from_json(bad)


def test_members_are_patched_in_runs_that_bound_memory(tmp_path: Path) -> None:
    """A release of many files, a few changed: copies and patches, each run bounded."""
    old, new = tmp_path / "old.tar", tmp_path / "new.tar"
    blobs = [bytes([i]) * 50_000 for i in range(40)]
    for path, changed in ((old, set()), (new, {3, 30})):
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for i, blob in enumerate(blobs):
                data = blob[:-5] + b"edit!" if i in changed else blob
                info = tarfile.TarInfo(f"caio-x/f{i:02}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    delta = delta_of(old, new)
    assert len(delta) < 2_000
    out = io.BytesIO()
    apply_delta(io.BytesIO(delta), old, info_for(old, new), out)
    assert out.getvalue() == new.read_bytes()
