"""The delta contract shared by the publisher (``tuf_repo``) and the client (``caio``).

A delta turns the **uncompressed** tar of one release (the base) into the
uncompressed tar of another (the result). It is made member by member, so
that applying it holds at most one member of each tar in memory, never a
whole release:

* ``COPY offset length``: bytes of the base, unchanged (whole members with
  their headers; runs of them are merged);
* ``PATCH offset length frame``: a member that changed: a zstd frame whose
  dictionary is that member's bytes in the base (zstd's ``--patch-from``);
* ``DATA frame``: bytes with no counterpart in the base (a new file, the end
  of the archive): a plain zstd frame.

The file is ``MAGIC``, then the operations, then ``END``. A delta is never
trusted for more than the bytes it produces: the applier checks the base it
is given and the result it makes against the digests and lengths signed in
the delta target's custom metadata (:class:`DeltaInfo`), bounds every
operation by those lengths, and a caller installs nothing unless the result
matches. Building is reproducible: the same tars give the same bytes (fixed
zstd parameters, one thread).

zstd through the ``zstandard`` package, chosen on the numbers in
``bench/RESULTS.md`` (16): patches within a few hundred bytes of bsdiff's,
built several times faster, applied in bounded memory.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import zstandard

MAGIC = b"CAIO-DELTA-1\n"
COPY, PATCH, DATA, END = b"C", b"P", b"D", b"E"
PATCH_LEVEL = 19  # small changed members: the smallest patch is worth the time
DATA_LEVEL = 10  # new content can be large: level 19 would take minutes per 100 MB
CHUNK = 1024 * 1024
_U64 = struct.Struct(">Q")


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class DeltaRefused(ValueError):
    """A delta, or the base it is applied to, is not what the signed metadata says."""


@dataclass(frozen=True)
class TarDigest:
    """The sha256 and length of an uncompressed release tar."""

    sha256: str
    length: int

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "length": self.length}

    @classmethod
    def from_json(cls, value: object) -> TarDigest:
        """Raises: DeltaRefused: not a digest and length."""
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("sha256"), str)
            or len(value["sha256"]) != 64
            or not isinstance(value.get("length"), int)
            or isinstance(value.get("length"), bool)
            or value["length"] < 0
        ):
            raise DeltaRefused(f"not a tar digest: {value!r}")
        return cls(value["sha256"], value["length"])

    @classmethod
    def of_file(cls, path: Path) -> TarDigest:
        """Of a file as it is (an uncompressed tar)."""
        with path.open("rb") as f:
            return cls._of_stream(f)

    @classmethod
    def of_artifact(cls, artifact: Path, limit: int | None = None) -> TarDigest:
        """Of a release artifact's uncompressed tar (the ``.tar.gz`` read through gzip).

        ``limit``: stop reading past this many bytes (an artifact from someone else may
        unpack to far more than it claims); the digest returned is then of no tar.
        """
        with gzip.open(artifact, "rb") as f:
            return cls._of_stream(f, limit)

    @classmethod
    def _of_stream(cls, stream: _Reader, limit: int | None = None) -> TarDigest:
        digest, length = hashlib.sha256(), 0
        while block := stream.read(CHUNK):
            digest.update(block)
            length += len(block)
            if limit is not None and length > limit:
                break
        return cls(digest.hexdigest(), length)


def unpack_artifact(artifact: Path, tar: Path) -> None:
    """Write the uncompressed tar of a release artifact (``.tar.gz``) to ``tar``."""
    with gzip.open(artifact, "rb") as src, tar.open("wb") as dst:
        shutil.copyfileobj(src, dst, CHUNK)


@dataclass(frozen=True)
class DeltaInfo:
    """What a delta target's signed custom metadata says: from which release, to
    which, and the tars it applies to and produces."""

    base_version: str
    result_version: str
    base: TarDigest
    result: TarDigest

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.base_version,
            "to": self.result_version,
            "base_tar": self.base.to_json(),
            "result_tar": self.result.to_json(),
        }

    @classmethod
    def from_json(cls, value: object) -> DeltaInfo:
        """Raises: DeltaRefused: a field is missing or malformed."""
        if not isinstance(value, dict):
            raise DeltaRefused("delta metadata is not an object")
        base, result = value.get("from"), value.get("to")
        if not isinstance(base, str) or not isinstance(result, str):
            raise DeltaRefused("delta metadata names no from and to versions")
        return cls(
            base,
            result,
            TarDigest.from_json(value.get("base_tar")),
            TarDigest.from_json(value.get("result_tar")),
        )


def delta_target_path(base_version: str, result_version: str) -> str:
    """The TUF target path of the delta from one release to another, beside the release."""
    return f"caio/{result_version}/caio-{result_version}.from-{base_version}.delta"


# --- building ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Piece:
    """One member's bytes in a tar: its headers, data and padding."""

    name: str
    start: int
    end: int


def _pieces(tar_path: Path) -> tuple[list[_Piece], int]:
    """The members of an uncompressed tar as byte ranges, and where the last one ends."""
    with tarfile.open(tar_path, mode="r:") as tar:
        members = tar.getmembers()
    starts = [m.offset for m in members]
    ends = [*starts[1:], None]
    pieces: list[_Piece] = []
    end_of_members = 0
    for member, start, nxt in zip(members, starts, ends, strict=True):
        stop = nxt if nxt is not None else member.offset_data + _padded(member.size)
        pieces.append(_Piece(member.name, start, stop))
        end_of_members = stop
    return pieces, end_of_members


def _padded(size: int) -> int:
    return (size + tarfile.BLOCKSIZE - 1) // tarfile.BLOCKSIZE * tarfile.BLOCKSIZE


def _read(f: BinaryIO, start: int, length: int) -> bytes:
    f.seek(start)
    data = f.read(length)
    if len(data) != length:
        raise DeltaRefused(f"the tar ends before byte {start + length}")
    return data


def _window_log(size: int) -> int:
    """The zstd window (log2) that covers ``size`` bytes (a frame's data and reference)."""
    return min(max(10, size.bit_length()), 30)


def _frame(data: bytes, level: int, reference: bytes | None = None) -> bytes:
    params = zstandard.ZstdCompressionParameters.from_level(
        level,
        window_log=_window_log(len(data) + len(reference or b"")),
        threads=0,
        write_checksum=True,
    )
    dictionary = (
        zstandard.ZstdCompressionDict(reference, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        if reference
        else None
    )
    compressor = zstandard.ZstdCompressor(compression_params=params, dict_data=dictionary)
    return compressor.compress(data)


GROUP_BYTES = 8 * 1024 * 1024  # members patched or stored together, up to this much


def _relative(name: str) -> str:
    """A member's name without the top directory (``caio-<version>/``), which differs."""
    return name.split("/", 1)[1] if "/" in name else ""


class _Writer:
    """Collects runs of members into operations and writes them."""

    def __init__(self, out: BinaryIO, base: BinaryIO, result: BinaryIO) -> None:
        self.out, self.base, self.result = out, base, result
        self.kind: bytes | None = None
        self.base_range = [0, 0]
        self.result_range = [0, 0]

    def add(self, kind: bytes, result: _Piece, base: _Piece | None) -> None:
        joins = (
            kind == self.kind
            and result.start == self.result_range[1]
            and (base is None or base.start == self.base_range[1])
            and (kind == COPY or result.end - self.result_range[0] <= GROUP_BYTES)
        )
        if not joins:
            self.flush()
            self.kind = kind
            self.result_range = [result.start, result.start]
            self.base_range = [base.start, base.start] if base is not None else [0, 0]
        self.result_range[1] = result.end
        if base is not None:
            self.base_range[1] = base.end

    def flush(self) -> None:
        kind, (b0, b1), (r0, r1) = self.kind, self.base_range, self.result_range
        self.kind = None
        if kind is None:
            return
        if kind == COPY:
            self.out.write(COPY + _U64.pack(b0) + _U64.pack(b1 - b0))
            return
        data = _read(self.result, r0, r1 - r0)
        if kind == PATCH:
            frame = _frame(data, PATCH_LEVEL, _read(self.base, b0, b1 - b0))
            self.out.write(PATCH + _U64.pack(b0) + _U64.pack(b1 - b0))
        else:
            frame = _frame(data, DATA_LEVEL)
            self.out.write(DATA)
        self.out.write(_U64.pack(len(frame)) + frame)


def build_delta(base_tar: Path, result_tar: Path, out: BinaryIO) -> None:
    """Write the delta that turns ``base_tar`` into ``result_tar`` (both uncompressed).

    A member whose bytes the base holds is copied; runs of members that the
    base holds under the same name (but other bytes) are patched against those
    members; the rest is stored. Runs are cut at ``GROUP_BYTES``, which bounds
    what applying holds in memory (a larger single member stays whole).

    Raises:
        tarfile.TarError: a tar cannot be read.
    """
    base_pieces, _ = _pieces(base_tar)
    result_pieces, end_of_members = _pieces(result_tar)
    with base_tar.open("rb") as base, result_tar.open("rb") as result:
        by_digest: dict[bytes, _Piece] = {}
        by_name: dict[str, _Piece] = {}
        for piece in base_pieces:
            data = _read(base, piece.start, piece.end - piece.start)
            by_digest.setdefault(hashlib.sha256(data).digest(), piece)
            by_name.setdefault(_relative(piece.name), piece)
        out.write(MAGIC)
        writer = _Writer(out, base, result)
        for piece in result_pieces:
            data = _read(result, piece.start, piece.end - piece.start)
            same = by_digest.get(hashlib.sha256(data).digest())
            if same is not None:
                writer.add(COPY, piece, same)
            elif (old := by_name.get(_relative(piece.name))) is not None:
                writer.add(PATCH, piece, old)
            else:
                writer.add(DATA, piece, None)
        writer.add(DATA, _Piece("", end_of_members, result_tar.stat().st_size), None)
        writer.flush()
    out.write(END)


# --- applying ---------------------------------------------------------------------------
def apply_delta(delta: BinaryIO, base_tar: Path, info: DeltaInfo, out: BinaryIO) -> TarDigest:
    """Write the result of ``delta`` over ``base_tar`` to ``out``; returns what it wrote.

    The base must match ``info.base`` (checked first, by digest); the result
    is refused as soon as it would pass ``info.result.length``, and its digest
    must equal ``info.result.sha256``. Memory: one member of each tar at most.

    Raises:
        DeltaRefused: the base is not the signed one, the delta is malformed or
            points outside the base, or the result is not the signed one.
    """
    if TarDigest.of_file(base_tar) != info.base:
        raise DeltaRefused(f"the kept base is not the {info.base_version} tar the delta applies to")
    digest, written = hashlib.sha256(), 0
    limit = info.result.length

    def emit(data: bytes) -> None:
        nonlocal written
        if written + len(data) > limit:
            raise DeltaRefused(f"the delta produces more than the signed {limit} bytes")
        digest.update(data)
        out.write(data)
        written += len(data)

    if delta.read(len(MAGIC)) != MAGIC:
        raise DeltaRefused("not a CAIO delta (bad magic)")
    # A frame never needs a window larger than what it makes and refers to together (see
    # _frame): a frame declaring more is refused before zstd reserves it.
    window = 1 << _window_log(info.result.length + info.base.length)
    with base_tar.open("rb") as base:
        for op in _operations(delta, info.base.length, limit):
            kind, start, length, frame = op
            if kind == COPY:
                base.seek(start)
                left = length
                while left:
                    block = base.read(min(CHUNK, left))
                    if not block:
                        raise DeltaRefused("the base ended early")
                    emit(block)
                    left -= len(block)
            else:
                reference = _read(base, start, length) if kind == PATCH else None
                for block in _decompressed(frame, reference, limit - written, window):
                    emit(block)
    produced = TarDigest(digest.hexdigest(), written)
    if produced != info.result:
        raise DeltaRefused(
            f"the delta produced {written} bytes with sha256 {produced.sha256}, "
            f"not the signed {info.result.length} bytes of {info.result_version}"
        )
    return produced


def _operations(
    delta: BinaryIO, base_length: int, result_length: int
) -> Iterator[tuple[bytes, int, int, bytes]]:
    while True:
        kind = delta.read(1)
        if kind == END:
            if delta.read(1):
                raise DeltaRefused("bytes after the end of the delta")
            return
        if kind in (COPY, PATCH):
            start, length = _u64(delta), _u64(delta)
            if start + length > base_length:
                raise DeltaRefused("the delta points outside the base")
            if kind == COPY:
                yield kind, start, length, b""
                continue
        elif kind != DATA:
            raise DeltaRefused(f"unknown delta operation {kind!r}")
        else:
            start = length = 0
        size = _u64(delta)
        if size > result_length + 1024:  # a frame is never much larger than what it makes
            raise DeltaRefused("a delta frame is larger than the release")
        frame = delta.read(size)
        if len(frame) != size:
            raise DeltaRefused("the delta is cut short")
        yield kind, start, length, frame


def _u64(delta: BinaryIO) -> int:
    raw = delta.read(_U64.size)
    if len(raw) != _U64.size:
        raise DeltaRefused("the delta is cut short")
    value: int = _U64.unpack(raw)[0]
    return value


def _decompressed(frame: bytes, reference: bytes | None, room: int, window: int) -> Iterator[bytes]:
    dictionary = (
        zstandard.ZstdCompressionDict(reference, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        if reference is not None
        else None
    )
    decompressor = zstandard.ZstdDecompressor(dict_data=dictionary, max_window_size=window)
    try:
        with decompressor.stream_reader(frame, read_across_frames=False) as reader:
            while block := reader.read(min(CHUNK, room + 1)):
                yield block
    except zstandard.ZstdError as e:
        raise DeltaRefused(f"a delta frame does not decompress: {e}") from e
