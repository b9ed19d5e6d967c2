"""cProfile rows are named so that the base's and the head's processes agree."""

from __future__ import annotations

from pathlib import Path

from gate.measure.worker.operators import function_name


def test_a_builtins_memory_address_is_not_part_of_its_name(tmp_path: Path) -> None:
    base = function_name(
        ("~", 0, "<built-in method __new__ of type object at 0x7f3a1c2b9e40>"), tmp_path
    )
    head = function_name(
        ("~", 0, "<built-in method __new__ of type object at 0x55d0c1a2f000>"), tmp_path
    )
    assert base == head == "<built-in method __new__ of type object>"
    assert function_name(("~", 0, "<method 'lower' of 'str' objects>"), tmp_path) == (
        "<method 'lower' of 'str' objects>"
    )


def test_project_functions_are_named_by_their_path_relative_to_the_root(tmp_path: Path) -> None:
    source = tmp_path / "bench" / "model.py"
    assert function_name((str(source), 12, "slow_step"), tmp_path) == "slow_step (bench/model.py)"
