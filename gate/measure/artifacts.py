"""The preparation cache (``<report_dir>/cache``): artifacts named by the bytes they come from,
written atomically, and bounded.

An exported graph is named by the sha256 of its own bytes (``<model>-<20 hex>.onnx``), and what
is derived from a graph (its int8 quantization, the prepared inputs) by that graph's digest, so
the same graph finds its derived files again and a different graph can never meet them. Files
are written under a unique ``.partial`` name and renamed into place, so a reader never sees half
a file and two preparations never write the same file. Each family of files (one model's
exports, one graph's quantizations, one model's inputs at one batch size) keeps its ``KEEP``
most recently used members; an export that goes takes its derived files along, and partial
files a killed preparation left behind are removed once they are an hour old.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

KEEP = 3  # most recently used files kept per family
PARTIAL_AGE_S = 3600.0  # a partial file this old belongs to no preparation still running
GRAPH_DIGEST = 20  # hex digits of a graph's sha256 in its cache name


def file_digest(path: Path) -> str:
    """The sha256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def partial_file(cache_dir: Path, stem: str) -> Path:
    """A new, empty, uniquely named ``.partial`` file in ``cache_dir`` to write into (created
    with the umask's permissions, as the finished file should have)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    while True:
        path = cache_dir / f"{stem}.{os.getpid()}-{secrets.token_hex(4)}.partial"
        try:
            path.open("xb").close()
        except FileExistsError:
            continue
        return path


def publish(partial: Path, target: Path) -> Path:
    """Move the finished ``partial`` to ``target``. A ``target`` that already holds the same
    bytes is kept (and marked as used) and the partial dropped, so a file in use is never
    replaced by an identical one. Returns ``target``."""
    if target.is_file() and file_digest(target) == file_digest(partial):
        partial.unlink(missing_ok=True)
        touch(target)
    else:
        os.replace(partial, target)
    return target


def touch(path: Path) -> None:
    """Mark ``path`` as used now (the cache keeps the most recently used files)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def reuse(target: Path) -> bool:
    """Whether ``target`` exists; if so it is marked as used."""
    if not target.is_file():
        return False
    touch(target)
    return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def prune(cache_dir: Path, family: re.Pattern[str], keep: int = KEEP) -> list[Path]:
    """Delete the files of ``cache_dir`` whose names fully match ``family``, except the
    ``keep`` most recently used; stale partial files go too. Returns what was deleted."""
    if not cache_dir.is_dir():
        return []
    members = sorted(
        (p for p in cache_dir.iterdir() if family.fullmatch(p.name)), key=_mtime, reverse=True
    )
    gone = members[keep:]
    _remove(gone)
    _remove_stale_partials(cache_dir)
    return gone


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _remove_stale_partials(cache_dir: Path) -> None:
    cutoff = time.time() - PARTIAL_AGE_S
    _remove(p for p in cache_dir.glob("*.partial") if _mtime(p) < cutoff)


def export_family(model: str) -> re.Pattern[str]:
    """The names of ``model``'s exported graphs: ``<model>-<digest>.onnx``."""
    return re.compile(rf"{re.escape(model)}-[0-9a-f]{{{GRAPH_DIGEST}}}\.onnx")


def export_name(model: str, digest: str) -> str:
    return f"{model}-{digest[:GRAPH_DIGEST]}.onnx"


def quantized_name(source: Path, key: str) -> str:
    """``<source stem>-int8-<source path>-<key>.onnx``: the source's path keeps two given
    files of the same name apart, the key (of the source's bytes) tells graphs apart."""
    return f"{source.stem}-int8-{_path_tag(source)}-{key[:16]}.onnx"


def quantized_family(source: Path) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(source.stem)}-int8-{_path_tag(source)}-[0-9a-f]{{16}}\.onnx")


def inputs_name(model: str, batch_size: int, graph_digest: str, key: str) -> str:
    """``<model>-inputs-b<N>-<graph>-<key>.npz``: the inputs of ``model`` at batch size N for the
    graph of that digest, ``key`` a digest of the arrays themselves."""
    return f"{model}-inputs-b{batch_size}-{graph_digest[:12]}-{key[:16]}.npz"


def inputs_family(
    model: str, batch_size: int | None = None, graph_digest: str = ""
) -> re.Pattern[str]:
    """One model's prepared inputs: at ``batch_size`` (any when None), for the graph whose
    digest starts ``graph_digest`` (any when empty)."""
    batch = r"\d+" if batch_size is None else str(batch_size)
    graph = re.escape(graph_digest[:12]) if graph_digest else "[0-9a-f]{12}"
    return re.compile(rf"{re.escape(model)}-inputs-b{batch}-{graph}-[0-9a-f]{{16}}\.npz")


def calibration_family(model: str) -> re.Pattern[str]:
    """``model``'s calibration inputs: ``<model>-calibration-<digest>.npz``."""
    return re.compile(rf"{re.escape(model)}-calibration-[0-9a-f]{{16}}\.npz")


def prune_exports(cache_dir: Path, model: str, keep: int = KEEP) -> list[Path]:
    """Keep ``model``'s ``keep`` most recently used exports; the others go with their
    quantizations and prepared inputs. Returns the exports deleted."""
    gone = prune(cache_dir, export_family(model), keep)
    for export in gone:
        digest = export.stem[len(model) + 1 :]
        _remove(cache_dir.glob(f"{glob_escape(export.stem)}-int8-*.onnx"))
        family = inputs_family(model, None, digest)
        _remove(p for p in cache_dir.iterdir() if family.fullmatch(p.name))
    return gone


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters matched literally."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _path_tag(source: Path) -> str:
    return text_digest(str(source.resolve()))[:8]
