"""After the decision: which benchmarks to profile, both sides profiled, the profiles
diffed (diff, investigation). A diagnosis never changes a verdict."""
