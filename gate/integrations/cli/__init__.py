"""The ``perf-gate`` command (``main``) and its subcommands; each parses, calls one flow
and prints one line or a table."""
