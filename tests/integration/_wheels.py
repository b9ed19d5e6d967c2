"""Wheels made in the test, for offline installs: a pure-Python package written as a zip with
its METADATA, WHEEL and RECORD (the wheel format, PEP 427), no build backend needed."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

# A torch model whose forward calls the package ``tinypkg`` (``workmodel.py``), and its config:
# its latency moves with the installed tinypkg, so a pin change shows in its rows.
MODEL = """
import tinypkg
import torch


class Work(torch.nn.Module):
    def forward(self, x):
        tinypkg.compute()
        return x * 2


def build():
    return Work()


def inputs(batch_size):
    return torch.ones(batch_size, 4)
"""
MODEL_CONFIG = """
models:
  work:
    torch: workmodel:build
    input: workmodel:inputs
    variants: [torch]
    metrics: [latency]
"""


def wheel(
    folder: Path, name: str, version: str, source: str, requires: tuple[str, ...] = ()
) -> Path:
    """``folder/<name>-<version>-py3-none-any.whl``: the module ``name`` holding ``source``."""
    dist = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{name}/__init__.py": source,
        f"{dist}/METADATA": metadata,
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            data = text.encode()
            archive.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{member},sha256={digest.decode()},{len(data)}")
        record.append(f"{dist}/RECORD,,")
        archive.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path


def unpacked(archive: Path, into: Path) -> Path:
    """A wheel's files in ``into`` (a folder for ``PYTHONPATH``: the package is importable and
    ``importlib.metadata`` finds its version, as if installed there)."""
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(into)
    return into
