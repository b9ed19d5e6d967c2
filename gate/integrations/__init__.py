"""The entry points: the pytest plugin, the ``perf-gate`` command line and the GitHub side
(action, comments, summaries). They parse, call ``gate.pipeline`` and print."""
