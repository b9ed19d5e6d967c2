"""The worker side: what runs inside a fresh process (``python -m gate.measure.worker.main``):
rounds, probes, evaluation (accuracy), profiles (operators), the timing loop, memory readings
and the model's inputs."""
