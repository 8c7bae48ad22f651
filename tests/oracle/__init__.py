"""A ground-truth oracle for retire's verdicts: random seeded worlds whose calls are known exactly
(worlds.py), rendered as what a scraping Prometheus stores (render.py), backfilled into one real
Prometheus and judged mode by mode through retire's CLI (runner.py). Run it with
`python -m tests.oracle --worlds N --seed S` or `scripts/oracle.sh`."""
