"""A small stand-in for the GitHub Actions runner: runs a composite action.yml as a runner does.

It reads action.yml, resolves the inputs (given ``with:`` values, else the defaults), evaluates
``${{ }}`` expressions and ``if:`` conditions over the ``inputs``, ``github``, ``runner`` and
``steps`` contexts, and runs every ``run:`` step with its shell
(``bash --noprofile --norc -eo pipefail {0}``), its ``env:`` and ``working-directory``, with a
fresh ``GITHUB_OUTPUT`` and ``GITHUB_STEP_SUMMARY`` file per step, parsed afterwards as the runner
does. ``uses:`` steps are the two artifact actions, emulated on a local folder (upload copies the
path, relative to the workspace or absolute, under the artifact's name, and fails on an empty
path unless ``if-no-files-found: ignore``; download copies the artifacts whose names match
``pattern``), and actions/cache's ``restore`` and ``save``, emulated on a folder beside the
artifacts (restore: the entry of ``key``, else the newest whose key starts with a line of
``restore-keys``, with the outputs ``cache-hit`` and ``cache-matched-key``; save: a warning, not
a failure, for a missing path or a key that exists, as actions/cache does); anything else is
refused, so the test notices a new kind of step.

Expressions: literals, context paths, ``!``, ``==``/``!=`` (strings compare case-insensitively,
as GitHub does), ``&&``/``||`` (returning an operand, as GitHub does), parentheses and the
status functions. That is what action.yml uses; an expression outside it raises.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TOKEN = re.compile(
    r"\s*(?:(?P<op>\|\||&&|==|!=|!|\(|\)|,)|(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*))"
)
INTERPOLATION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
ARTIFACT_ACTIONS = ("actions/upload-artifact", "actions/download-artifact")
CACHE_ACTIONS = ("actions/cache/restore", "actions/cache/save")


def _truthy(value: Any) -> bool:
    return value not in (None, "", 0, False)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Expression:
    """Evaluates one GitHub Actions expression against ``context`` and the step ``status``."""

    def __init__(self, text: str, context: dict[str, Any], failed: bool) -> None:
        self.tokens = self._tokenize(text)
        self.position = 0
        self.context = context
        self.failed = failed
        self.status_used = False

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens, position = [], 0
        while position < len(text.rstrip()):
            match = TOKEN.match(text, position)
            if match is None:
                raise ValueError(f"cannot read the expression at {text[position:]!r}")
            kind = match.lastgroup or ""
            tokens.append((kind, match.group(kind)))
            position = match.end()
        return tokens

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        token = self._peek()
        if token is None or (expected is not None and token[1] != expected):
            raise ValueError(f"expected {expected!r} in the expression, found {token}")
        self.position += 1
        return token

    def evaluate(self) -> Any:
        value = self._or()
        if self._peek() is not None:
            raise ValueError(f"unexpected {self._peek()} in the expression")
        return value

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == ("op", "||"):
            self._take()
            right = self._and()
            value = value if _truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._compare()
        while self._peek() == ("op", "&&"):
            self._take()
            right = self._compare()
            value = right if _truthy(value) else value
        return value

    def _compare(self) -> Any:
        left = self._unary()
        token = self._peek()
        if token in (("op", "=="), ("op", "!=")):
            self._take()
            right = self._unary()
            equal = _text(left).lower() == _text(right).lower()
            return equal if token[1] == "==" else not equal
        return left

    def _unary(self) -> Any:
        if self._peek() == ("op", "!"):
            self._take()
            return not _truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self._take()
        if text == "(":
            value = self._or()
            self._take(")")
            return value
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self._peek() == ("op", "("):
            self._take("(")
            self._take(")")
            return self._status(text)
        return self._lookup(text)

    def _status(self, name: str) -> bool:
        self.status_used = True
        statuses = {
            "success": not self.failed,
            "failure": self.failed,
            "always": True,
            "cancelled": False,
        }
        if name not in statuses:
            raise ValueError(f"function {name}() is not supported here")
        return statuses[name]

    def _lookup(self, path: str) -> Any:
        value: Any = self.context
        for part in re.findall(r"[\w-]+|\[\d+\]", path):
            if isinstance(value, list) and part.startswith("["):
                index = int(part[1:-1])
                value = value[index] if index < len(value) else None
            elif isinstance(value, dict):
                value = value.get(part)
            else:
                return None
        return value


def interpolate(text: Any, context: dict[str, Any]) -> str:
    """A value with every ``${{ }}`` replaced by its expression's text."""
    return INTERPOLATION.sub(
        lambda m: _text(Expression(m.group(1), context, failed=False).evaluate()), str(text)
    )


def read_file_commands(path: Path) -> dict[str, str]:
    """``name=value`` lines and ``name<<DELIMITER`` blocks, as the runner reads them."""
    values: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    index = 0
    while index < len(lines):
        line = lines[index]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, index + 1)
            values[name] = "\n".join(lines[index + 1 : end])
            index = end + 1
            continue
        if "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        index += 1
    return values


@dataclass
class StepResult:
    name: str
    ran: bool
    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class ActionResult:
    """What a workflow would see: the action's outputs, its conclusion, the logs, the summary."""

    exit_code: int
    outputs: dict[str, str]
    steps: list[StepResult]
    summary: str

    @property
    def log(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.stdout}{s.stderr}" for s in self.steps if s.ran)

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.name == name)


@dataclass
class Runner:
    """One runner: the workspace, the environment of the job, and the artifact storage."""

    action_path: Path
    workspace: Path
    temp: Path
    artifacts: Path  # <run id>/<artifact name>/...
    environment: dict[str, str]
    github: dict[str, Any]

    @property
    def caches(self) -> Path:
        """actions/cache's entries, one folder per key (shared by the runs of a test)."""
        return self.artifacts.with_name(self.artifacts.name + "-caches")

    def run(self, inputs: dict[str, str] | None = None) -> ActionResult:
        action = yaml.safe_load((self.action_path / "action.yml").read_text(encoding="utf-8"))
        assert action["runs"]["using"] == "composite"
        context: dict[str, Any] = {
            "github": {**self.github, "action_path": str(self.action_path)},
            "runner": {"temp": str(self.temp), "os": "Linux"},
            "steps": {},
        }
        given = inputs or {}
        unknown = set(given) - set(action["inputs"])
        assert not unknown, f"inputs not declared in action.yml: {unknown}"
        context["inputs"] = {
            name: given[name] if name in given else interpolate(spec.get("default", ""), context)
            for name, spec in action["inputs"].items()
        }
        results: list[StepResult] = []
        summary: list[str] = []
        failed_code = 0
        for index, step in enumerate(action["runs"]["steps"]):
            name = step.get("name") or f"step {index}"
            condition = step.get("if")
            expression = Expression(condition or "success()", context, failed=bool(failed_code))
            wanted = _truthy(expression.evaluate())
            if condition and not expression.status_used:
                wanted = wanted and not failed_code  # an implicit success()
            if not wanted:
                results.append(StepResult(name, ran=False))
                continue
            result = (
                self._run_step(step, name, context, summary)
                if "run" in step
                else self._uses_step(step, name, context)
            )
            results.append(result)
            if "id" in step:
                context["steps"][step["id"]] = {
                    "outputs": result.outputs,
                    "outcome": "success" if result.exit_code == 0 else "failure",
                }
            if result.exit_code != 0 and not step.get("continue-on-error"):
                failed_code = result.exit_code
        outputs = {
            name: interpolate(spec["value"], context) for name, spec in action["outputs"].items()
        }
        return ActionResult(failed_code, outputs, results, "".join(summary))

    def _run_step(
        self, step: dict[str, Any], name: str, context: dict[str, Any], summary: list[str]
    ) -> StepResult:
        assert step["shell"] == "bash", "only bash steps are emulated"
        files = self.temp / "_runner_file_commands"
        files.mkdir(parents=True, exist_ok=True)
        output, step_summary = files / "output", files / "summary"
        for path in (output, step_summary):
            path.write_text("", encoding="utf-8")
        script = files / "step.sh"
        script.write_text(step["run"], encoding="utf-8")  # the script text is never interpolated
        env = {
            **self.environment,
            "GITHUB_ACTION_PATH": str(self.action_path),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(step_summary),
            **{key: interpolate(value, context) for key, value in step.get("env", {}).items()},
        }
        directory = self.workspace / interpolate(step.get("working-directory", "."), context)
        completed = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        summary.append(step_summary.read_text(encoding="utf-8"))
        return StepResult(
            name,
            ran=True,
            exit_code=completed.returncode,
            stdout=completed.stdout,
            stderr=completed.stderr,
            outputs=read_file_commands(output),
        )

    def _uses_step(self, step: dict[str, Any], name: str, context: dict[str, Any]) -> StepResult:
        action = step["uses"].split("@", 1)[0]
        assert action in ARTIFACT_ACTIONS + CACHE_ACTIONS, f"no emulation for {step['uses']}"
        given = {key: interpolate(value, context) for key, value in step.get("with", {}).items()}
        if action in CACHE_ACTIONS:
            return self._cache_step(action, given, name)
        if action == "actions/upload-artifact":
            source = self.workspace / given["path"]
            if not source.is_dir() or not any(source.iterdir()):
                if given.get("if-no-files-found") == "ignore":
                    return StepResult(name, ran=True, stdout=f"no files at {source}: ignored")
                return StepResult(name, ran=True, exit_code=1, stderr=f"no files at {source}")
            target = self.artifacts / str(self.github["run_id"]) / given["name"]
            shutil.copytree(source, target)
            return StepResult(name, ran=True, stdout=f"uploaded {given['name']}")
        run = self.artifacts / given.get("run-id", str(self.github["run_id"]))
        names = sorted(
            p.name
            for p in (run.iterdir() if run.is_dir() else [])
            if fnmatch.fnmatch(p.name, given.get("pattern", "*"))
        )
        if not names:
            return StepResult(name, ran=True, exit_code=1, stderr="no artifacts found")
        for artifact in names:
            shutil.copytree(run / artifact, Path(given["path"]) / artifact, dirs_exist_ok=True)
        return StepResult(name, ran=True, stdout=f"downloaded {', '.join(names)}")

    def _cache_step(self, action: str, given: dict[str, str], name: str) -> StepResult:
        path, key = Path(given["path"]), given["key"]
        assert path.is_absolute(), "the action caches absolute paths only"
        if action == "actions/cache/save":
            if (self.caches / key).exists():
                return StepResult(name, ran=True, stdout=f"cache entry {key} exists: not saved")
            if not path.is_dir():
                return StepResult(name, ran=True, stdout=f"no files at {path}: nothing saved")
            shutil.copytree(path, self.caches / key)
            return StepResult(name, ran=True, stdout=f"cache saved with key {key}")
        prefixes = [line.strip() for line in given.get("restore-keys", "").splitlines()]
        entries = sorted(
            (p for p in (self.caches.iterdir() if self.caches.is_dir() else []) if p.is_dir()),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        found = next((p for p in entries if p.name == key), None) or next(
            (p for prefix in prefixes if prefix for p in entries if p.name.startswith(prefix)),
            None,
        )
        if found is None:
            return StepResult(name, ran=True, stdout=f"no cache entry for {key}")
        shutil.copytree(found, path, dirs_exist_ok=True)
        outputs = {
            "cache-hit": _text(found.name == key),
            "cache-primary-key": key,
            "cache-matched-key": found.name,
        }
        return StepResult(name, ran=True, stdout=f"restored {found.name}", outputs=outputs)


def runner_environment(path: list[Path], home: Path, **variables: str) -> dict[str, str]:
    """The variables every step sees on a runner (plus ``variables``), nothing of this
    process's own environment but the locale."""
    environment = {
        "PATH": os.pathsep.join([*(str(p) for p in path), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "RUNNER_OS": "Linux",
        "RUNNER_ARCH": "X64",
    }
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # this machine's BLAS settings
        if name in os.environ:
            environment[name] = os.environ[name]
    environment.update(variables)
    return environment
