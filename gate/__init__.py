"""perf-gate: a CI performance-regression gate for PyTorch and ONNX Runtime models."""

from gate._version import __version__
from gate.core.types import Comparison, Direction, GateResult, Metric, RunRecord, Sample, Verdict
from gate.errors import BaselineError, ConfigError, GateError, MeasurementError, PublishError

__all__ = [
    "BaselineError",
    "Comparison",
    "ConfigError",
    "Direction",
    "GateError",
    "GateResult",
    "MeasurementError",
    "Metric",
    "PublishError",
    "RunRecord",
    "Sample",
    "Verdict",
    "__version__",
]
