"""What perf-gate keeps: run-record JSON (records, outcomes), the DVC-backed baselines
(baseline_store, pull, dvc), git (base revisions, worktrees), promotion history, shards and
merges of matrix runs."""
