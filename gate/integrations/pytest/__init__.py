"""``pytest --perf-gate``: the plugin, the ``perf`` fixture's object and the options worker
rounds repeat."""
