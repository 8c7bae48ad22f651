"""A laboratory of real components for the demo, the tests and the benchmarks.

Nothing in `retire`'s own pipeline imports this package: it generates synthetic traffic and runs
real local servers (Prometheus, VictoriaMetrics) so that `retire` can be exercised end to end.
"""
