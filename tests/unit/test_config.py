"""gate.config: loading perf-gate.yaml / [tool.perf-gate], defaults, and every validation error."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.config import (
    DEFAULT_THRESHOLDS,
    GateConfig,
    InputSpec,
    MeasureSettings,
    load_config,
    parse_threshold,
)
from gate.core.types import Budget, Threshold
from gate.errors import ConfigError

# measure.memory_limit "auto": 75% of this machine's physical memory
AUTO_LIMIT = int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.75)

DROP = object()  # marks a key to remove from the default config


def model(**changes: Any) -> dict[str, Any]:
    """A valid model spec with ``changes`` applied (``key=DROP`` removes the key)."""
    spec: dict[str, Any] = {
        "torch": "pkg.models:build",
        "input": {"shape": [3, 8], "dtype": "float32"},
    }
    for key, value in changes.items():
        if value is DROP:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


@pytest.fixture
def make_config(tmp_path: Path):
    """``make_config(**overrides)`` writes perf-gate.yaml (a valid config with top-level keys
    replaced by ``overrides``) and returns its path; ``text=`` writes raw text instead.
    An empty ``model.onnx`` exists next to it for configs that reference one."""
    (tmp_path / "model.onnx").write_bytes(b"")

    def make(text: str | None = None, *, name: str = "perf-gate.yaml", **overrides: Any) -> Path:
        data: dict[str, Any] = {"models": {"m": model()}}
        for key, value in overrides.items():
            if value is DROP:
                data.pop(key, None)
            else:
                data[key] = value
        path = tmp_path / name
        path.write_text(
            text if text is not None else yaml.safe_dump(data, sort_keys=False), encoding="utf-8"
        )
        return path

    return make


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


# --------------------------------------------------------------------------------------------
# loading valid configs


README_CONFIG = """\
baseline: baselines/main.json
models:
  digits-mlp:
    torch: model:build                 # callable -> torch.nn.Module
    input: model:example_batch         # callable(batch_size) -> tensor
    variants: [torch, torch-int8, onnxruntime, onnxruntime-int8]
    metrics: [latency, throughput, memory, cold_start]
    batch_sizes: [1, 32]
policy:
  alpha: 0.01
  thresholds: {latency: 5%, throughput: 5%, memory: 10%, cold_start: 25%, accuracy: 0.5pt}
  budgets:
    "digits-mlp[onnxruntime]": {latency.p99: 2ms, memory.peak: 600MB}
measure: {rounds: 5, warmup: 20, min_calls: 200, min_time: 0.5s, threads: 1, seed: 7}
"""


def test_load_yaml_config(make_config, tmp_path: Path) -> None:
    path = make_config(README_CONFIG)
    config = load_config(path)

    assert isinstance(config, GateConfig)
    assert config.path == path
    assert config.label == "perf-gate.yaml"
    assert config.root == tmp_path
    assert config.baseline == tmp_path / "baselines" / "main.json"
    assert config.report_dir == tmp_path / ".perf-gate"

    (spec,) = config.models
    assert spec.name == "digits-mlp"
    assert spec.torch == "model:build"
    assert spec.onnx is None
    assert spec.input == InputSpec(callable="model:example_batch")
    assert spec.variants == ("torch", "torch-int8", "onnxruntime", "onnxruntime-int8")
    assert spec.metrics == ("latency", "throughput", "memory", "cold_start")
    assert spec.batch_sizes == (1, 32)
    assert spec.threads is None
    assert spec.benchmark_names() == [
        "digits-mlp[torch]",
        "digits-mlp[torch-int8]",
        "digits-mlp[onnxruntime]",
        "digits-mlp[onnxruntime-int8]",
    ]

    policy = config.policy
    assert policy.alpha == 0.01
    assert policy.thresholds["latency"] == Threshold(value=0.05, relative=True)
    assert policy.thresholds["memory"] == Threshold(value=0.10, relative=True)
    assert policy.thresholds["cold_start"] == Threshold(value=0.25, relative=True)
    assert policy.thresholds["accuracy"] == Threshold(value=0.005, relative=False)
    assert policy.thresholds["default"] == Threshold(value=0.05, relative=True)
    assert policy.budgets == (
        Budget(pattern="digits-mlp[onnxruntime]", metric="latency.p99", limit_text="2ms"),
        Budget(pattern="digits-mlp[onnxruntime]", metric="memory.peak", limit_text="600MB"),
    )
    assert policy.budgets[0].limit("s") == pytest.approx(0.002)
    assert policy.budgets[1].limit("B") == 600e6

    assert config.measure == MeasureSettings(
        rounds=5,
        warmup=20,
        min_calls=200,
        min_time=0.5,
        threads=1,
        probes=3,
        seed=7,
        memory_limit=AUTO_LIMIT,
    )
    assert re.fullmatch(r"[0-9a-f]{16}", config.digest)


def test_relative_config_path_resolves_against_root(make_config, tmp_path: Path) -> None:
    make_config()
    config = load_config(Path("perf-gate.yaml"), root=tmp_path)
    assert config.path == tmp_path / "perf-gate.yaml"
    assert [m.name for m in config.models] == ["m"]


def test_onnx_model_paths_are_relative_to_the_config(make_config, tmp_path: Path) -> None:
    path = make_config(models={"m": model(torch=DROP, onnx="model.onnx", threads=2)})
    (spec,) = load_config(path).models
    assert spec.onnx == tmp_path / "model.onnx"
    assert spec.torch is None
    assert spec.variants == ("onnxruntime",)  # torch variants are not the default without torch
    assert spec.threads == 2
    assert spec.input == InputSpec(shape=(3, 8), dtype="float32")


def test_model_defaults(make_config) -> None:
    (spec,) = load_config(make_config()).models
    assert spec.variants == ("torch", "onnxruntime")
    assert spec.metrics == ("latency", "throughput")
    assert spec.batch_sizes == (1,)


def test_single_string_is_accepted_as_a_one_item_list(make_config) -> None:
    path = make_config(models={"m": model(variants="torch-bf16", metrics="memory")})
    (spec,) = load_config(path).models
    assert spec.variants == ("torch-bf16",)
    assert spec.metrics == ("memory",)


def test_input_dtype_defaults_to_float32(make_config) -> None:
    path = make_config(models={"m": model(input={"shape": [1, 28, 28]})})
    (spec,) = load_config(path).models
    assert spec.input == InputSpec(shape=(1, 28, 28), dtype="float32")


def test_empty_yaml_file_gives_defaults(make_config, tmp_path: Path) -> None:
    config = load_config(make_config(""))
    assert config.path == tmp_path / "perf-gate.yaml"
    assert config.models == ()
    assert config.measure == MeasureSettings(memory_limit=AUTO_LIMIT)


def test_digest_depends_on_content(make_config) -> None:
    first = load_config(make_config(measure={"rounds": 5})).digest
    again = load_config(make_config(measure={"rounds": 5})).digest
    other = load_config(make_config(measure={"rounds": 6})).digest
    assert first == again
    assert first != other


def test_defaults_when_no_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.path is None
    assert config.label == "defaults"
    assert config.root == tmp_path.resolve()
    assert config.baseline == tmp_path.resolve() / "baselines" / "main.json"
    assert config.report_dir == tmp_path.resolve() / ".perf-gate"
    assert config.models == ()
    assert config.policy.alpha == 0.01
    assert config.policy.budgets == ()
    assert set(config.policy.thresholds) == set(DEFAULT_THRESHOLDS)
    assert config.policy.thresholds["latency"] == Threshold(value=0.05)
    assert config.policy.thresholds["memory"] == Threshold(value=0.02)
    assert config.policy.thresholds["cold_start"] == Threshold(value=0.25)
    assert config.policy.timing_mode == "auto"
    assert config.policy.base_environment == "auto"
    assert (config.policy.min_rounds, config.policy.max_rounds) == (8, 24)
    assert config.policy.memory_floor == 8 * 2**20
    assert config.measure == MeasureSettings(memory_limit=AUTO_LIMIT)
    assert config.measure.rounds == 5
    assert config.measure.min_time == 0.5


def test_yml_extension_is_found(tmp_path: Path) -> None:
    (tmp_path / "perf-gate.yml").write_text("measure: {rounds: 9}\n", encoding="utf-8")
    config = load_config(root=tmp_path)
    assert config.path == tmp_path / "perf-gate.yml"
    assert config.measure.rounds == 9


PYPROJECT = """\
[project]
name = "demo"

[tool.perf-gate]
baseline = "perf/base.json"

[tool.perf-gate.models.m]
torch = "pkg.models:build"
input = { shape = [4], dtype = "int64" }
variants = ["torch"]

[tool.perf-gate.policy]
alpha = 0.05
thresholds = { latency = "2ms" }

[tool.perf-gate.measure]
rounds = 3
min_time = "100ms"
"""


def test_load_from_pyproject_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    config = load_config(root=tmp_path)
    assert config.path == tmp_path / "pyproject.toml"
    assert config.label == "pyproject.toml"
    assert config.baseline == tmp_path / "perf" / "base.json"
    (spec,) = config.models
    assert spec.input == InputSpec(shape=(4,), dtype="int64")
    assert spec.variants == ("torch",)
    assert config.policy.alpha == 0.05
    assert config.policy.thresholds["latency"] == Threshold(value=0.002, relative=False)
    assert config.measure.rounds == 3
    assert config.measure.min_time == pytest.approx(0.1)


def test_perf_gate_yaml_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (tmp_path / "perf-gate.yaml").write_text("measure: {rounds: 8}\n", encoding="utf-8")
    config = load_config(root=tmp_path)
    assert config.path == tmp_path / "perf-gate.yaml"
    assert config.measure.rounds == 8


def test_pyproject_without_table_is_ignored_when_searching(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    config = load_config(root=tmp_path)
    assert config.path is None
    assert config.models == ()


def test_pyproject_errors_name_pyproject(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.perf-gate]\nmeasure = { rounds = 1 }\n", encoding="utf-8")
    error = config_error(path)
    assert str(error).startswith("pyproject.toml: tool.perf-gate.measure.rounds: ")


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys; a second ``policy:`` would silently drop the
    first one's thresholds."""
    path = tmp_path / "perf-gate.yaml"
    path.write_text(
        "policy: {thresholds: {latency: 1%}}\nmodels: {}\npolicy: {alpha: 0.05}\n",
        encoding="utf-8",
    )
    error = config_error(path)
    assert str(error).startswith("perf-gate.yaml: line 3: key 'policy' appears twice"), error
    assert error.slug == "config-syntax"
    nested = tmp_path / "nested.yaml"
    nested.write_text("measure:\n  rounds: 5\n  rounds: 6\n", encoding="utf-8")
    assert "line 3: key 'rounds' appears twice" in str(config_error(nested))


def test_a_directory_stands_for_the_config_in_it(tmp_path: Path) -> None:
    (tmp_path / "perf-gate.yaml").write_text("measure: {rounds: 7}\n", encoding="utf-8")
    assert load_config(tmp_path).measure.rounds == 7
    empty = tmp_path / "empty"
    empty.mkdir()
    error = config_error(empty)
    assert "no perf-gate.yaml and no pyproject.toml with [tool.perf-gate]" in str(error)
    assert error.slug == "config-not-found"


def test_a_misspelt_budget_metric_is_named(make_config) -> None:
    path = make_config(policy={"budgets": {"m[torch]": {"latncy.p99": "2ms"}}})
    message = str(config_error(path))
    assert "'latncy.p99' is not a built-in metric" in message
    assert "did you mean 'latency.p99'?" in message


def test_memory_inference_takes_a_budget(make_config) -> None:
    path = make_config(policy={"budgets": {"m[torch]": {"memory.inference": "50MB"}}})
    (budget,) = load_config(path).policy.budgets
    assert budget.metric == "memory.inference"


def test_explicit_pyproject_without_table(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n', encoding="utf-8")
    error = config_error(path)
    assert str(error).startswith("pyproject.toml: no [tool.perf-gate] table")
    assert error.slug == "config-not-found"


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.perf-gate\nbaseline = 1\n", encoding="utf-8")
    error = config_error(path)
    assert str(error).startswith("pyproject.toml: invalid TOML")
    assert error.slug == "config-syntax"


def test_pyproject_table_that_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool]\nperf-gate = "yes"\n', encoding="utf-8")
    error = config_error(path)
    assert str(error) == "pyproject.toml: expected a mapping at the top level, got a string"


def test_explicit_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    error = config_error(missing)
    assert str(error).startswith(f"{missing}: config file not found")
    assert error.slug == "config-not-found"
    assert error.exit_code == 2


# --------------------------------------------------------------------------------------------
# syntax and top-level errors (raw text)


def test_invalid_yaml_names_line_and_column(make_config) -> None:
    text = (
        "baseline: baselines/main.json\n"
        "models:\n"
        "  m:\n"
        "    torch: pkg.models:build\n"
        "    input: {shape: [8]}\n"
        "  bad: x: y\n"
    )
    error = config_error(make_config(text))
    assert str(error) == (
        "perf-gate.yaml: invalid YAML at line 6, column 9: mapping values are not allowed here"
    )
    assert error.slug == "config-syntax"
    assert error.exit_code == 2


def test_invalid_yaml_tab_indentation(make_config) -> None:
    error = config_error(make_config("models:\n\tm: 1\n"))
    assert str(error).startswith("perf-gate.yaml: invalid YAML at line 2, column 1: ")
    assert "'\\t'" in str(error)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- a\n- b\n", "a list"), ("just text\n", "a string"), ("42\n", "int"), ("1.5\n", "float")],
)
def test_top_level_must_be_a_mapping(make_config, text: str, kind: str) -> None:
    error = config_error(make_config(text))
    assert str(error) == f"perf-gate.yaml: expected a mapping at the top level, got {kind}"


def test_file_that_is_not_utf8(make_config) -> None:
    path = make_config()
    path.write_bytes(b"models: \xff\xfe\n")
    error = config_error(path)
    assert str(error).startswith("perf-gate.yaml: cannot read the file: ")


# --------------------------------------------------------------------------------------------
# every validation error names the file and the key path


def models(**changes: Any) -> dict[str, Any]:
    return {"models": {"m": model(**changes)}}


BAD_CONFIGS: list[Any] = [
    # top level
    pytest.param({"modles": {}}, "modles", "unknown key; expected one of baseline", id="top-key"),
    pytest.param({"baseline": 3}, "baseline", "expected a path, got 3", id="baseline-int"),
    pytest.param({"baseline": "  "}, "baseline", "expected a path", id="baseline-blank"),
    pytest.param({"report_dir": ["a"]}, "report_dir", "expected a path", id="report-dir-list"),
    pytest.param({"models": ["m"]}, "models", "expected a mapping, got a list", id="models-list"),
    # a model
    pytest.param(
        {"models": {"bad name": model()}}, "models.bad name", "model names may use", id="name-space"
    ),
    pytest.param({"models": {"-m": model()}}, "models.-m", "model names may use", id="name-dash"),
    pytest.param(
        {"models": {"m": "pkg:build"}},
        "models.m",
        "expected a mapping, got a string",
        id="model-str",
    ),
    pytest.param(
        {"models": {"m": None}}, "models.m", "expected a mapping, got nothing", id="model-null"
    ),
    pytest.param(
        models(variant=["torch"]),
        "models.m.variant",
        "unknown key; expected one of torch",
        id="model-key",
    ),
    pytest.param(
        models(torch=DROP), "models.m", "needs 'torch: module:function' or 'onnx:", id="no-model"
    ),
    pytest.param(
        models(torch="pkg.models.build"),
        "models.m.torch",
        "expected 'module:function', got 'pkg.models.build'",
        id="torch-no-colon",
    ),
    pytest.param(models(torch="a:b:c"), "models.m.torch", "expected 'module:", id="torch-colons"),
    pytest.param(models(torch="1pkg:f"), "models.m.torch", "expected 'module:", id="torch-digit"),
    pytest.param(models(torch=5), "models.m.torch", "expected 'module:function'", id="torch-int"),
    pytest.param(
        models(torch=DROP, onnx="missing.onnx"),
        "models.m.onnx",
        "file 'missing.onnx' not found",
        id="onnx-missing",
    ),
    pytest.param(models(torch=DROP, onnx=3), "models.m.onnx", "expected a path", id="onnx-int"),
    # variants and metrics
    pytest.param(
        models(variants=["torch", "torch-int4"]),
        "models.m.variants[1]",
        "unknown value 'torch-int4'; expected one of torch, torch-bf16",
        id="variant-unknown",
    ),
    pytest.param(
        models(variants=[]),
        "models.m.variants",
        "expected a non-empty list, got a list",
        id="variants-empty",
    ),
    pytest.param(
        models(variants={"torch": 1}),
        "models.m.variants",
        "expected a non-empty list, got a mapping",
        id="variants-mapping",
    ),
    pytest.param(
        models(variants=["torch", "onnxruntime", "torch"]),
        "models.m.variants",
        "lists a value twice",
        id="variant-duplicate",
    ),
    pytest.param(
        models(torch=DROP, onnx="model.onnx", variants=["onnxruntime", "torch-int8"]),
        "models.m.variants[1]",
        "variant 'torch-int8' needs a torch model",
        id="torch-only-variant",
    ),
    pytest.param(
        models(torch=DROP, onnx="model.onnx", variants=["torch"]),
        "models.m.variants[0]",
        "variant 'torch' needs a torch model",
        id="torch-variant-onnx",
    ),
    pytest.param(
        models(metrics=["latency", "energy"]),
        "models.m.metrics[1]",
        "unknown value 'energy'",
        id="metric-unknown",
    ),
    pytest.param(
        models(metrics=["memory", "memory"]),
        "models.m.metrics",
        "lists a value twice",
        id="metric-duplicate",
    ),
    # batch sizes and threads
    pytest.param(
        models(batch_sizes=4),
        "models.m.batch_sizes",
        "expected a list of integers, got 4",
        id="batch-int",
    ),
    pytest.param(
        models(batch_sizes=[]),
        "models.m.batch_sizes",
        "expected a list of integers",
        id="batch-empty",
    ),
    pytest.param(
        models(batch_sizes=[1, 0]),
        "models.m.batch_sizes[1]",
        "expected an integer >= 1, got 0",
        id="batch-zero",
    ),
    pytest.param(
        models(batch_sizes=[-4]),
        "models.m.batch_sizes[0]",
        "expected an integer >= 1, got -4",
        id="batch-negative",
    ),
    pytest.param(
        models(batch_sizes=["8"]),
        "models.m.batch_sizes[0]",
        "expected an integer >= 1, got '8'",
        id="batch-str",
    ),
    pytest.param(
        models(batch_sizes=[1.5]),
        "models.m.batch_sizes[0]",
        "expected an integer",
        id="batch-float",
    ),
    pytest.param(
        models(batch_sizes=[True]), "models.m.batch_sizes[0]", "got True", id="batch-bool"
    ),
    pytest.param(models(threads=0), "models.m.threads", "expected an integer >= 1", id="threads"),
    # input
    pytest.param(models(input=DROP), "models.m.input", "is required", id="input-missing"),
    pytest.param(
        models(input="make_batch"),
        "models.m.input",
        "expected 'module:function', got 'make_batch'",
        id="input-callable",
    ),
    pytest.param(
        models(input=[1, 8]), "models.m.input", "expected a mapping, got a list", id="input-list"
    ),
    pytest.param(
        models(input={"shape": [8], "device": "cuda"}),
        "models.m.input.device",
        "unknown key",
        id="input-key",
    ),
    pytest.param(
        models(input={"dtype": "float32"}),
        "models.m.input.shape",
        "expected a list of positive integers, got None",
        id="shape-missing",
    ),
    pytest.param(
        models(input={"shape": []}),
        "models.m.input.shape",
        "expected a list of positive",
        id="shape-empty",
    ),
    pytest.param(
        models(input={"shape": 8}),
        "models.m.input.shape",
        "expected a list of positive",
        id="shape-int",
    ),
    pytest.param(
        models(input={"shape": [1, 0]}),
        "models.m.input.shape[1]",
        "expected an integer >= 1",
        id="shape-zero",
    ),
    pytest.param(
        models(input={"shape": [-1, 8]}), "models.m.input.shape[0]", "got -1", id="shape-negative"
    ),
    pytest.param(
        models(input={"shape": ["n", 8]}), "models.m.input.shape[0]", "got 'n'", id="shape-str"
    ),
    pytest.param(
        models(input={"shape": [8], "dtype": "float8"}),
        "models.m.input.dtype",
        "unknown dtype 'float8'; expected one of float32",
        id="dtype",
    ),
    # policy
    pytest.param({"policy": [1]}, "policy", "expected a mapping, got a list", id="policy-list"),
    pytest.param({"policy": {"alfa": 0.01}}, "policy.alfa", "unknown key", id="policy-key"),
    *[
        pytest.param(
            {"policy": {"alpha": alpha}},
            "policy.alpha",
            "expected a number between 0 and 0.5",
            id=f"alpha-{alpha!r}",
        )
        for alpha in (0, 0.5, 1, -0.01, "0.01", True, None)
    ],
    pytest.param(
        {"policy": {"thresholds": ["5%"]}},
        "policy.thresholds",
        "expected a mapping",
        id="thresholds-list",
    ),
    *[
        pytest.param(
            {"policy": {"thresholds": {"latency": text}}},
            "policy.thresholds.latency",
            fragment,
            id=f"threshold-{text!r}",
        )
        for text, fragment in (
            ("five percent", "cannot read 'five percent'"),
            (
                "5 apples",
                "expected a duration like '2ms' or '0.5s', got '5 apples' (or a percentage",
            ),
            ("-5%", "cannot read"),
            ("5%%", "expected a percentage like '5%'"),
            (True, "expected a quantity"),
            (None, "cannot read"),
        )
    ],
    pytest.param(
        {"policy": {"budgets": ["m"]}}, "policy.budgets", "expected a mapping", id="budgets-list"
    ),
    pytest.param(
        {"policy": {"budgets": {"m[torch]": "2ms"}}},
        "policy.budgets.m[torch]",
        "expected a mapping, got a string",
        id="budget-not-mapping",
    ),
    pytest.param(
        {"policy": {"budgets": {"m[onnxruntime]": {"latency.p99": "2"}}}},
        "policy.budgets.m[onnxruntime].latency.p99",
        "expected a duration like '2ms'",
        id="budget-bare-latency",
    ),
    pytest.param(
        {"policy": {"budgets": {"m[onnxruntime]": {"latency.p99": 0.002}}}},
        "policy.budgets.m[onnxruntime].latency.p99",
        "expected a duration",
        id="budget-float-latency",
    ),
    pytest.param(
        {"policy": {"budgets": {"m*": {"memory.peak": 600}}}},
        "policy.budgets.m*.memory.peak",
        "expected a size like '300MB'",
        id="budget-bare-memory",
    ),
    pytest.param(
        {"policy": {"budgets": {"m": {"latency.p99": "2MB"}}}},
        "policy.budgets.m.latency.p99",
        "expected a duration",
        id="budget-wrong-unit",
    ),
    pytest.param(
        {"policy": {"budgets": {"m": {"throughput@32": "fast"}}}},
        "policy.budgets.m.throughput@32",
        "cannot read 'fast'",
        id="budget-throughput-text",
    ),
    pytest.param(
        {"policy": {"budgets": {"m": {"throughput": "1000/s"}}}},
        "policy.budgets.m.throughput",
        "throughput budgets name a batch size",
        id="budget-throughput-no-batch",
    ),
    pytest.param(
        {"policy": {"budgets": {"m": {"latency.p95": "2ms"}}}},
        "policy.budgets.m.latency.p95",
        "unknown metric; expected one of latency, latency.median",
        id="budget-unknown-statistic",
    ),
    pytest.param(
        {"policy": {"thresholds": {"latency": "10MB"}}},
        "policy.thresholds.latency",
        "expected a duration",
        id="threshold-wrong-unit",
    ),
    pytest.param(
        {"policy": {"budgets": {"m": {"mae": "5ms"}}}},
        "policy.budgets.m.mae",
        "expected a number in the metric unit",
        id="budget-unitless",
    ),
    # measure
    pytest.param({"measure": [5]}, "measure", "expected a mapping", id="measure-list"),
    pytest.param({"measure": {"round": 5}}, "measure.round", "unknown key", id="measure-key"),
    pytest.param(
        {"measure": {"rounds": 1}},
        "measure.rounds",
        "expected an integer >= 2, got 1",
        id="rounds-1",
    ),
    pytest.param(
        {"measure": {"rounds": 0}},
        "measure.rounds",
        "expected an integer >= 2, got 0",
        id="rounds-0",
    ),
    pytest.param({"measure": {"rounds": "5"}}, "measure.rounds", "got '5'", id="rounds-str"),
    pytest.param({"measure": {"rounds": 5.0}}, "measure.rounds", "got 5.0", id="rounds-float"),
    pytest.param({"measure": {"warmup": -1}}, "measure.warmup", ">= 0, got -1", id="warmup"),
    pytest.param({"measure": {"min_calls": 0}}, "measure.min_calls", ">= 1", id="min-calls"),
    pytest.param({"measure": {"threads": 0}}, "measure.threads", ">= 1", id="measure-threads"),
    pytest.param({"measure": {"probes": 0}}, "measure.probes", ">= 1", id="probes"),
    pytest.param({"measure": {"seed": -1}}, "measure.seed", ">= 0, got -1", id="seed-negative"),
    pytest.param({"measure": {"seed": "abc"}}, "measure.seed", "got 'abc'", id="seed-str"),
    *[
        pytest.param(
            {"measure": {"min_time": value}}, "measure.min_time", fragment, id=f"min-time-{value!r}"
        )
        for value, fragment in (
            ("0.5", "expected a duration like '2ms' or '0.5s', got '0.5'"),
            (1, "expected a duration"),
            ("500MB", "expected a duration"),
            ("fast", "cannot read 'fast'"),
            ("-1s", "cannot read"),
            (None, "cannot read"),
        )
    ],
]


@pytest.mark.parametrize(("overrides", "key", "fragment"), BAD_CONFIGS)
def test_every_validation_error_names_file_and_key(
    make_config, overrides: dict[str, Any], key: str, fragment: str
) -> None:
    error = config_error(make_config(**overrides))
    message = str(error)
    prefix = f"perf-gate.yaml: {key}: "
    assert message.startswith(prefix), message
    assert fragment in message[len(prefix) :], message
    assert error.exit_code == 2
    assert error.slug == "config"


def test_error_in_yml_names_that_file(make_config) -> None:
    path = make_config(name="perf-gate.yml", measure={"rounds": 1})
    assert str(config_error(path)).startswith("perf-gate.yml: measure.rounds: ")


def test_config_error_one_line(make_config) -> None:
    error = config_error(make_config(models={"m": model(variants=["torch", "torch-int4"])}))
    assert error.exit_code == 2
    line = error.one_line()
    assert line.startswith("perf-gate: error: perf-gate.yaml: models.m.variants[1]: unknown value")
    assert line.endswith("(perf-gate explain config)")
    assert "\n" not in line


def test_one_line_collapses_whitespace_and_uses_slug() -> None:
    error = ConfigError("first line\n   second\tline", slug="config-syntax")
    assert error.one_line() == (
        "perf-gate: error: first line second line (perf-gate explain config-syntax)"
    )
    assert str(error) == "first line\n   second\tline"
    assert ConfigError("x").slug == "config"


# --------------------------------------------------------------------------------------------
# parse_threshold


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5%", Threshold(value=0.05, relative=True)),
        (" 12.5 % ", Threshold(value=0.125, relative=True)),
        ("0%", Threshold(value=0.0, relative=True)),
        ("2ms", Threshold(value=0.002, relative=False)),
        ("1.5s", Threshold(value=1.5, relative=False)),
        ("10MB", Threshold(value=10e6, relative=False)),
        ("1KiB", Threshold(value=1024.0, relative=False)),
        ("0.5", Threshold(value=0.5, relative=False)),
        (0.5, Threshold(value=0.5, relative=False)),
        (3, Threshold(value=3.0, relative=False)),
    ],
)
def test_parse_threshold(text: object, expected: Threshold) -> None:
    result = parse_threshold(text)
    assert result.relative is expected.relative
    assert result.value == pytest.approx(expected.value, rel=1e-12, abs=0)


@pytest.mark.parametrize("text", ["five", "5 apples", "-5%", "5%%", "", True, None, [5]])
def test_parse_threshold_rejects(text: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_threshold(text)


def test_threshold_describe() -> None:
    assert parse_threshold("5%").describe() == "5%"
    assert parse_threshold("2ms").describe() == "0.002"


def test_the_base_environment_is_auto_current_or_an_existing_path(make_config) -> None:
    for value in ("auto", "current"):
        path = make_config(policy={"base_environment": value})
        assert load_config(path).policy.base_environment == value
    (path.parent / "base-venv").mkdir()
    path = make_config(policy={"base_environment": "base-venv"})
    assert load_config(path).policy.base_environment == str(path.parent / "base-venv")
    path = make_config(policy={"base_environment": "no-such-venv"})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = caught.value.message
    assert message.startswith("perf-gate.yaml: policy.base_environment: 'no-such-venv' does not")
    assert "expected auto, current, or the path of a Python interpreter" in message
    for bad in (5, "", None, ["auto"]):
        with pytest.raises(ConfigError, match=r"policy.base_environment: expected auto, current"):
            load_config(make_config(policy={"base_environment": bad}))


def test_budgets_may_name_perf_load_metrics(make_config) -> None:
    budgets = {"test_serve.py::*": {"latency.p99@200qps": "20ms", "load.achieved@200qps": "190/s"}}
    config = load_config(make_config(policy={"budgets": budgets}))
    assert [(b.metric, b.limit_text) for b in config.policy.budgets] == [
        ("latency.p99@200qps", "20ms"),
        ("load.achieved@200qps", "190/s"),
    ]
    assert config.policy.budgets[0].limit("s") == pytest.approx(0.02)
    with pytest.raises(ConfigError, match="unknown metric"):
        load_config(make_config(policy={"budgets": {"x": {"latency.p98": "2ms"}}}))
