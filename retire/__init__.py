"""retire: which model versions can be unloaded safely, from the traffic evidence in Prometheus."""

__version__ = "0.1.0"
