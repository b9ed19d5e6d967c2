"""What a change does to the project's dependencies: the packages whose pinned versions (or
requirement lines) differ between the base revision and the working tree.

Paired timing (``ab``, ``duet``) measures the base revision with this interpreter's packages,
so a pull request that upgrades a runtime (``onnxruntime==1.31.0`` -> ``1.32.0``) is measured
with the new packages on both sides and cannot show what the upgrade did. This module finds
such changes so the report says so instead of a plain ``unchanged``.

Read, never executed: pip requirement and constraint files (``requirements*.txt``,
``constraints*.txt``; ``name==version`` pins and other requirement lines), ``pyproject.toml``
(``[project] dependencies`` and optional dependencies), and the lock files ``uv.lock``,
``poetry.lock`` and ``pylock.toml`` (each package's name and version). Files are looked for in
the project's folder and at the top of its repository; the base revision's copies come from
``git show``. A file that cannot be parsed on either side is left out of both: this is a
warning, never a verdict.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.store.git import BaseRevisionUnavailable, Git

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

REQUIREMENT_GLOBS = ("requirements*.txt", "constraints*.txt")
TOML_FILES = ("pyproject.toml", "uv.lock", "poetry.lock", "pylock.toml")
MAX_BYTES = 4 * 1024 * 1024  # a lock file larger than this is not read
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")


@dataclass(frozen=True)
class Change:
    """A package whose requirement differs: ``base``/``head`` is its version or requirement
    text on each side (None: absent there)."""

    name: str
    base: str | None
    head: str | None

    def __str__(self) -> str:
        return f"{self.name} {self.base or '(none)'} -> {self.head or '(none)'}"


def normalize(name: str) -> str:
    """A distribution's canonical name (PEP 503): case and runs of ``-_.`` folded."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement(line: str) -> tuple[str, str] | None:
    """(name, what follows it) of one requirement line; None for comments, options, URLs."""
    text = line.split("#", 1)[0].strip()
    if not text or text.startswith("-") or "://" in text.split(";")[0].split("@")[0]:
        return None
    match = _NAME.match(text)
    if match is None:
        return None
    spec = match.group(3).strip()
    pinned = re.match(r"^===?\s*([^\s;,]+)\s*(;.*)?$", spec)
    return normalize(match.group(1)), (pinned.group(1) if pinned else spec or "any")


def parse_requirements(text: str) -> dict[str, str]:
    """A pip requirements or constraints file: name -> pinned version or requirement text."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        parsed = _requirement(line)
        if parsed:
            found[parsed[0]] = parsed[1]
    return found


def _packages(entries: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            version = entry.get("version")
            found[normalize(entry["name"])] = str(version) if version is not None else "any"
    return found


def parse_toml(name: str, text: str) -> dict[str, str]:
    """pyproject.toml's dependency lines, or a lock file's packages: name -> version/spec.
    Raises ValueError when the text is not TOML."""
    data = tomllib.loads(text)
    if name != "pyproject.toml":  # uv.lock, poetry.lock: [[package]]; pylock.toml: [[packages]]
        return _packages(data.get("package") or data.get("packages"))
    project = data.get("project") if isinstance(data.get("project"), Mapping) else {}
    lines: list[str] = [d for d in project.get("dependencies") or [] if isinstance(d, str)]
    optional = project.get("optional-dependencies")
    if isinstance(optional, Mapping):
        lines += [d for group in optional.values() if isinstance(group, list) for d in group]
    return parse_requirements("\n".join(d for d in lines if isinstance(d, str)))


def _candidates(folder: Path, top: Path) -> list[Path]:
    """The dependency files of the project's folder and its repository's top, relative to
    ``top``."""
    found: list[Path] = []
    for where in dict.fromkeys([folder, top]):
        names = list(TOML_FILES)
        for pattern in REQUIREMENT_GLOBS:
            names += [p.name for p in sorted(where.glob(pattern))]
        found += [(where / n).relative_to(top) for n in names if (where / n).is_file()]
    return found


def _show(top: Path, commit: str, path: Path) -> str | None:
    """``path`` as ``commit`` has it; None where it is missing, too large or git fails."""
    try:
        text = Git(top).file_at(commit, path.as_posix())
    except BaseRevisionUnavailable:  # git could not run
        return None
    return text if text is not None and len(text) <= MAX_BYTES else None


def _parsed(path: Path, text: str | None) -> dict[str, str] | None:
    """The file's packages ({} where the file is absent); None when it cannot be parsed."""
    if text is None:
        return {}
    try:
        return parse_toml(path.name, text) if path.name in TOML_FILES else parse_requirements(text)
    except ValueError:  # not TOML (tomllib.TOMLDecodeError is a ValueError)
        return None


def _merge(parts: Iterable[dict[str, str]]) -> dict[str, str]:
    """Every file's view of a package, joined: a lock's exact version wins over a spec."""
    merged: dict[str, str] = {}
    for part in parts:
        for name, spec in part.items():
            if name not in merged or re.match(r"^[0-9]", spec):
                merged[name] = spec
    return merged


def dependency_changes(folder: Path, top: Path, commit: str) -> list[Change]:
    """The packages whose requirement differs between ``commit`` and the working tree, in the
    dependency files of ``folder`` (the config's) and of the repository's ``top``; sorted by
    name. Empty when nothing differs or nothing is found."""
    heads: list[dict[str, str]] = []
    bases: list[dict[str, str]] = []
    for path in _candidates(folder, top):
        try:
            text: str | None = (top / path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = None
        head_part, base_part = _parsed(path, text), _parsed(path, _show(top, commit, path))
        if head_part is None or base_part is None:  # unreadable on one side: left out of both
            continue
        heads.append(head_part)
        bases.append(base_part)
    head, base = _merge(heads), _merge(bases)
    names = sorted(set(head) | set(base))
    return [Change(n, base.get(n), head.get(n)) for n in names if base.get(n) != head.get(n)]


def changes_note(changes: list[Change], commit: str, limit: int = 6) -> str:
    """The report's note on dependency changes the paired timings cannot show."""
    listed = ", ".join(str(c) for c in changes[:limit])
    more = f" and {len(changes) - limit} more" if len(changes) > limit else ""
    return (
        f"dependencies differ from the base revision {commit[:12]} ({listed}{more}); the base "
        "side ran with this interpreter's packages, so paired timings do not show what the "
        "dependency change does (a stored baseline recorded with the old packages would)"
    )


_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!_-]*$")


@dataclass(frozen=True)
class BaseRequirements:
    """What the base revision's environment needs over this interpreter's packages."""

    specs: tuple[str, ...]  # requirement strings to install for the base side
    notes: tuple[str, ...]  # what an environment cannot show (a package the head added)
    head_mismatch: tuple[str, ...]  # head pins this interpreter does not have


def base_requirements(changes: Iterable[Change], installed: Mapping[str, str]) -> BaseRequirements:
    """The requirements that give the base side its own versions of ``changes``: an exact pin
    as ``name==version``, a range only when ``installed`` (this interpreter's versions, by
    canonical name) does not meet it (the same version would be resolved), a package the head
    removed at its base requirement. A package the head added stays visible to the base side
    (an environment reads this interpreter's packages): said in ``notes``."""
    from packaging.requirements import InvalidRequirement, Requirement

    specs: list[str] = []
    notes: list[str] = []
    mismatch: list[str] = []
    for change in changes:
        have = installed.get(change.name)
        if change.head and _VERSION.match(change.head) and have and have != change.head:
            mismatch.append(f"{change.name} {change.head} (this interpreter has {have})")
        base = change.base
        if base is None:
            notes.append(f"{change.name} (added by the head) is visible to the base side too")
            continue
        if base == "any":
            if have is None:
                specs.append(change.name)
            continue
        if _VERSION.match(base):
            if have != base:
                specs.append(f"{change.name}=={base}")
            continue
        text = f"{change.name} {base}" if base.startswith("@") else f"{change.name}{base}"
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            notes.append(f"{change.name}: the base's requirement {base!r} cannot be read")
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        if have is None or requirement.url or not requirement.specifier.contains(have, True):
            specs.append(str(requirement))
    return BaseRequirements(tuple(specs), tuple(notes), tuple(mismatch))


def installed_versions() -> dict[str, str]:
    """This interpreter's distributions: canonical name -> version (the first on the path)."""
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = normalize(dist.metadata["Name"] or "")
        if name and name not in found:
            found[name] = dist.version
    return found
