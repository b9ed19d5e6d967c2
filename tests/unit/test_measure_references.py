"""gate.measure's reference resolution (``module:function`` from the config) and the thread
settings of the fingerprint and the worker environment: plain Python modules, no model."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from gate.errors import MeasurementError
from gate.measure import THREAD_ENV, BadReference, BenchmarkPlan, check_references, resolve_callable
from gate.measure.environment import THREAD_VARIABLES, fingerprint
from gate.measure.runner import worker_environment

MODULE = "pg_reference_targets"


@pytest.fixture
def targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / f"{MODULE}.py").write_text(
        textwrap.dedent(
            """
            VALUE = "text"
            ITEMS = [1, 2]

            def factory():
                return object()

            def inputs(batch_size, scale=1.0):
                return [batch_size * scale]

            def metric(predictions, targets):
                return 0.0

            def anything(*args):
                return args

            class Model:
                def __init__(self, width):
                    self.width = width

            class Namespace:
                @staticmethod
                def build():
                    return 1
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "pg_reference_broken.py").write_text(
        "import pg_reference_missing_dependency\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield MODULE
    for name in (MODULE, "pg_reference_broken"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("factory", ()),
        ("inputs", ("batch_size",)),
        ("metric", ("predictions", "targets")),
        ("anything", ("predictions", "targets")),
        ("Namespace.build", ()),
    ],
)
def test_callables_that_take_the_arguments_resolve(targets: str, name: str, arguments) -> None:
    found = resolve_callable(f"{targets}:{name}", "models.m.torch", arguments)
    assert callable(found)


@pytest.mark.parametrize(
    ("reference", "arguments", "problem"),
    [
        (
            "pg_reference_nowhere:factory",
            (),
            "cannot import module 'pg_reference_nowhere' (No module named "
            "'pg_reference_nowhere'); check the module path (relative to the config file's "
            "directory)",
        ),
        (
            "pg_reference_nowhere.sub:factory",
            (),
            "cannot import module 'pg_reference_nowhere.sub' (No module named "
            "'pg_reference_nowhere'); check the module path (relative to the config file's "
            "directory)",
        ),
        (f"{MODULE}:nosuch", (), f"module '{MODULE}' has no attribute 'nosuch'"),
        (
            f"{MODULE}:factroy",
            (),
            f"module '{MODULE}' has no attribute 'factroy'; did you mean 'factory'?",
        ),
        (f"{MODULE}:VALUE", (), f"'{MODULE}:VALUE' is a str, not a callable"),
        (f"{MODULE}:ITEMS", (), f"'{MODULE}:ITEMS' is a list, not a callable"),
        (
            f"{MODULE}:factory",
            ("batch_size",),
            f"'{MODULE}:factory' cannot be called as factory(batch_size) (too many positional "
            "arguments); perf-gate passes exactly these arguments",
        ),
        (
            f"{MODULE}:Model",
            (),
            f"'{MODULE}:Model' cannot be called as Model() (missing a required argument: "
            "'width'); perf-gate passes exactly these arguments",
        ),
    ],
)
def test_references_that_cannot_be_used_name_the_key_and_the_problem(
    targets: str, reference: str, arguments, problem: str
) -> None:
    with pytest.raises(BadReference) as caught:
        resolve_callable(reference, "models.m.torch", arguments)
    assert caught.value.key == "models.m.torch"
    assert caught.value.problem == problem
    assert caught.value.message == f"models.m.torch: {problem}"
    assert caught.value.slug == "import"


def test_without_a_key_the_reference_itself_is_named(targets: str) -> None:
    with pytest.raises(BadReference, match=rf"^'{MODULE}:nosuch': module"):
        resolve_callable(f"{MODULE}:nosuch")


def test_a_module_whose_own_import_fails_is_a_measurement_error(targets: str) -> None:
    with pytest.raises(MeasurementError) as caught:
        resolve_callable("pg_reference_broken:build", "models.m.torch")
    assert not isinstance(caught.value, BadReference)
    assert caught.value.message == (
        "models.m.torch: importing module 'pg_reference_broken' failed: No module named "
        "'pg_reference_missing_dependency'"
    )


def test_check_references_names_the_plans_keys(targets: str) -> None:
    plan = BenchmarkPlan(
        name="m[torch]",
        model="m",
        variant="torch",
        root=".",
        torch=f"{MODULE}:factory",
        input_callable=f"{MODULE}:factory",
    )
    with pytest.raises(BadReference) as caught:
        check_references(plan)
    assert caught.value.key == "models.m.input"
    check_references(BenchmarkPlan(**{**plan.to_dict(), "input_callable": f"{MODULE}:inputs"}))


# --- thread settings ----------------------------------------------------------------------------


def test_the_fingerprint_records_threads_and_the_thread_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    found = fingerprint(2)
    assert found["threads"] == 2
    assert found["thread_env"] == {
        "OMP_NUM_THREADS": "3",
        "MKL_NUM_THREADS": None,
        "OPENBLAS_NUM_THREADS": "1",
    }


def test_workers_get_every_variable_the_fingerprint_reads(tmp_path: Path) -> None:
    assert set(THREAD_VARIABLES) == set(THREAD_ENV)
    env = worker_environment(tmp_path, 3)
    assert {name: env[name] for name in THREAD_ENV} == dict.fromkeys(THREAD_ENV, "3")
