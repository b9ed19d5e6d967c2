"""GitHub: the REST client, the Actions environment, ``perf-gate ci`` (check, promote,
post-comment), the fork-safe poster and the comment/summary flows."""
