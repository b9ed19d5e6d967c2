"""Progress lines name the benchmarks they are about."""

from __future__ import annotations

from gate.measure.runner import names_of


def test_a_few_names_are_all_shown() -> None:
    assert names_of(["a[torch]", "b[onnxruntime]"]) == "a[torch], b[onnxruntime]"


def test_many_names_show_the_first_and_how_many_more() -> None:
    names = [f"m{i}[torch]" for i in range(7)]
    assert names_of(names) == "m0[torch], m1[torch], m2[torch], m3[torch] and 3 more"
    assert names_of(names, limit=7) == ", ".join(names)
