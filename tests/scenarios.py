"""The traffic scenarios the end-to-end tests run against one real Prometheus.

All are backfilled together; each carries a `scenario` label, and its tests select it with
`--selector 'scenario="NAME"'` (and `--coverage 'up{scenario="NAME"}'`). Times are seconds relative
to END, which sits 30 min 17 s past an hour boundary, so "the last partial hour" is real.
"""

from __future__ import annotations

import math
import time

from retire.lab.synth import HOUR, Outage, Scenario, Traffic, VersionDir

MIN = 60.0
DAY = 24 * HOUR
HISTORY = 32 * HOUR

# Between 30 and 90 minutes ago, at :30:17 past the hour.
END = float((math.floor(time.time() / HOUR) - 1) * HOUR + 1817)
# An hour boundary 4 h 30 min before END, relative to END.
BOUNDARY = -(END % HOUR) - 4 * HOUR


def _scenario(name: str, **kw: object) -> Scenario:
    return Scenario(name=name, labels={"scenario": name}, **kw)  # type: ignore[arg-type]


BASIC = _scenario(
    "basic",
    traffic=(
        Traffic("alpha", "1", qps=1.0),
        Traffic("alpha", "3", qps=0.4, stop=-30 * HOUR),  # callers left 30 h ago
        Traffic("alpha", "5", qps=0.2, start=-5 * HOUR),  # only in the last 5 h
        Traffic("alpha", "7", qps=0.5),  # on disk as 0007/
        Traffic("alpha", "9", qps=0.3),  # no directory
        Traffic("beta", "1", qps=0.05),
        Traffic("beta", "3", qps=2.0),
    ),
    disk=(
        VersionDir("alpha", "1", age=30 * DAY),
        VersionDir("alpha", "2", age=30 * DAY, size=2_000_000),  # never called: no series
        VersionDir("alpha", "3", age=30 * DAY, size=3_000_000),
        VersionDir("alpha", "5", age=3 * DAY),
        VersionDir("alpha", "0007", age=2 * DAY),
        VersionDir("alpha", "8", age=1 * DAY + 1 * HOUR, size=8_000_000),  # newest, idle
        VersionDir("alpha", "tmp-upload", age=1 * HOUR),
        VersionDir("alpha", "README", is_file=True),
        VersionDir("beta", "1", age=20 * DAY, size=1_500_000),
        VersionDir("beta", "2", age=20 * DAY, size=2_500_000),
        VersionDir("beta", "3", age=10 * DAY),
    ),
)
BASIC_EXPECTED = {
    ("alpha", "1"): "in-use",
    ("alpha", "2"): "safe",
    ("alpha", "3"): "safe",
    ("alpha", "5"): "in-use",
    ("alpha", "7"): "in-use",
    ("alpha", "8"): "protected",
    ("alpha", "9"): "not-on-disk",
    ("beta", "1"): "in-use",
    ("beta", "2"): "safe",
    ("beta", "3"): "in-use",
}

# Each pitfall of the seed query, one version each; "idle" is the control that must stay safe.
PITFALLS = _scenario(
    "pitfalls",
    traffic=(
        Traffic("m", "1", calls=(-3 * HOUR,)),  # a single first call, series born in the window
        Traffic("m", "2", qps=1.0, start=-20 * MIN),  # only in the last partial hour
        Traffic("m", "4", qps=0.5, restarts=(-6 * HOUR,)),  # pod restart: counter reset
        Traffic("m", "5", "tfs-0", qps=1.0),  # two replicas
        Traffic("m", "5", "tfs-1", qps=1.0),
        Traffic("m", "6", "tfs-0", qps=0.5, stop=-12 * HOUR),  # moved between pods mid-window
        Traffic("m", "6", "tfs-1", qps=0.5, start=-12 * HOUR),
        Traffic("m", "8", calls=(-40 * HOUR,)),  # called once long ago: flat all window
    ),
    disk=(
        *(VersionDir("m", str(v), age=10 * DAY) for v in (1, 2, 4, 5, 6, 8, 9)),
        VersionDir("m", "10", age=2 * HOUR),  # young and newest
    ),
)
PITFALLS_EXPECTED = {
    ("m", "1"): "in-use",
    ("m", "2"): "in-use",
    ("m", "4"): "in-use",
    ("m", "5"): "in-use",
    ("m", "6"): "in-use",
    ("m", "8"): "safe",
    ("m", "9"): "safe",
    ("m", "10"): "protected",
}

# Scrapes at :30 past each minute, so the sample before an hour boundary is in one hourly rate
# window and the sample after it in the next: a call between them is invisible to the seed query.
BETWEEN = _scenario(
    "between",
    scrape_offset=30.0,
    traffic=(
        Traffic("w", "1", calls=(-40 * HOUR, BOUNDARY + 1)),
        Traffic("w", "2", calls=(-40 * HOUR,)),
    ),
    disk=(VersionDir("w", "1", age=10 * DAY), VersionDir("w", "2", age=10 * DAY), VersionDir("w", "3")),
)
BETWEEN_EXPECTED = {("w", "1"): "in-use", ("w", "2"): "safe", ("w", "3"): "protected"}

# Pod tfs-1 is down (scrapes fail) for 3 h; an idle version lives there.
POD_GAP = _scenario(
    "podgap",
    traffic=(
        Traffic("g", "1", "tfs-0", qps=1.0),
        Traffic("g", "2", "tfs-1", calls=(-40 * HOUR,)),
    ),
    outages=(Outage(-10 * HOUR, -7 * HOUR, pod="tfs-1"),),
    disk=(VersionDir("g", "1", age=10 * DAY), VersionDir("g", "2", age=10 * DAY), VersionDir("g", "3")),
)

# Nothing at all is stored for 3 h (Prometheus down, as this scenario's selector sees it).
HOLE = _scenario(
    "hole",
    traffic=(
        Traffic("h", "1", qps=1.0),
        Traffic("h", "2", calls=(-40 * HOUR,)),
    ),
    outages=(Outage(-10 * HOUR, -7 * HOUR),),
    disk=(VersionDir("h", "1", age=10 * DAY), VersionDir("h", "2", age=10 * DAY), VersionDir("h", "3")),
)


# A TF Serving model config file pins versions (specific policy, version labels) and keeps the
# latest 3 of another model. Written next to the model roots by the test (tests/data has a copy
# of the same shape with absolute paths).
CONFIG = _scenario(
    "config",
    traffic=(Traffic("cfg_a", "5", qps=1.0),),
    disk=(
        *(VersionDir("cfg_a", str(v), age=10 * DAY) for v in (1, 2, 3, 4, 5)),
        *(VersionDir("cfg_b", str(v), age=10 * DAY) for v in (1, 2, 3, 4)),
    ),
)
CONFIG_FILE = """
model_config_list {
  config {
    name: "cfg_a"  base_path: "cfg_a"  model_platform: "tensorflow"
    model_version_policy { specific { versions: 2 versions: 3 } }
    version_labels { key: "stable" value: 3 }
    version_labels { key: "canary" value: 4 }
  }
  config { name: "cfg_b" base_path: "cfg_b" model_version_policy { latest { num_versions: 3 } } }
}
"""
CONFIG_EXPECTED = {
    ("cfg_a", "1"): "safe",
    ("cfg_a", "2"): "protected",
    ("cfg_a", "3"): "protected",
    ("cfg_a", "4"): "protected",
    ("cfg_a", "5"): "in-use",
    ("cfg_b", "1"): "safe",
    ("cfg_b", "2"): "protected",
    ("cfg_b", "3"): "protected",
    ("cfg_b", "4"): "protected",
}

# Triton: counters exist from load at 0 and vanish on unload; repository with config.pbtxt.
TRITON = _scenario(
    "triton",
    metric="nv_inference_request_success",
    model_label="model",
    version_label="version",
    traffic=(
        Traffic("detector", "1", zero_init=True),  # loaded, never called: flat 0
        Traffic("detector", "2", qps=3.0, zero_init=True),
        Traffic("detector", "3", zero_init=True),  # newest, loaded, idle
        Traffic("ranker", "7", qps=0.5, zero_init=True),
    ),
    disk=(
        VersionDir(
            "detector",
            "config.pbtxt",
            is_file=True,
            content='name: "detector"\nplatform: "onnxruntime_onnx"\nversion_policy: { latest: { num_versions: 2 } }\n',
        ),
        *(VersionDir("detector", str(v), age=10 * DAY) for v in (1, 2, 3)),
        VersionDir(
            "ranker",
            "config.pbtxt",
            is_file=True,
            content='name: "ranker"\nversion_policy: { specific: { versions: [5, 7] } }\n',
        ),
        *(VersionDir("ranker", str(v), age=10 * DAY) for v in (5, 6, 7)),
        VersionDir("ranker", "8", age=10 * DAY),  # on disk, not loaded: no series
    ),
)
TRITON_EXPECTED = {
    ("detector", "1"): "safe",
    ("detector", "2"): "in-use",
    ("detector", "3"): "protected",
    ("ranker", "5"): "protected",
    ("ranker", "6"): "safe",
    ("ranker", "7"): "in-use",
    ("ranker", "8"): "protected",  # the newest on disk (--keep-latest 1 applies: no latest policy)
}

# TorchServe: a model store of .mar archives; calls naming no version are labelled "default".
TORCHSERVE = _scenario(
    "torchserve",
    metric="ts_inference_requests_total",
    traffic=(
        Traffic("bert", "1.0", calls=(-40 * HOUR,)),  # flat all window
        Traffic("bert", "2.0", qps=1.0),
        Traffic("resnet", "default", qps=0.2),  # requests without a version
    ),
    disk=(
        VersionDir("", "bert_v1.mar", age=10 * DAY, manifest=("bert", "1.0")),
        VersionDir("", "bert_v2.mar", age=10 * DAY, manifest=("bert", "2.0")),
        VersionDir("", "bert_v10.mar", age=10 * DAY, manifest=("bert", "10.0")),
        VersionDir("", "resnet_a.mar", age=10 * DAY, manifest=("resnet", "1.0")),
        VersionDir("", "resnet_b.mar", age=10 * DAY, manifest=("resnet", "2.0")),
        VersionDir("", "notes.txt", is_file=True),
    ),
)
TORCHSERVE_EXPECTED = {
    ("bert", "1.0"): "safe",
    ("bert", "2.0"): "in-use",
    ("bert", "10.0"): "protected",  # natural order: 10.0 is the newest
    ("resnet", "1.0"): "unknown",  # "default" calls may have reached it
    ("resnet", "2.0"): "protected",
    ("resnet", "default"): "not-on-disk",
}

ALL = (BASIC, PITFALLS, BETWEEN, POD_GAP, HOLE, CONFIG, TRITON, TORCHSERVE)


# --- Disguises of absence (tests/e2e/test_absence.py): data where "no series" must not read as "no
# calls". In the Prometheus lab only (VictoriaMetrics' comparison runs on ALL).

# gpt is served by pod tfs-0 (and gpt/3 by tfs-1 only), bert by tfs-1 only: a --selector on the
# model label or on the pod leaves some of them out of the query's reach.
SCOPE = _scenario(
    "scope",
    traffic=(
        Traffic("gpt", "1", "tfs-0", qps=1.0),
        Traffic("gpt", "2", "tfs-0", calls=(-40 * HOUR,)),  # flat all window on tfs-0...
        Traffic("gpt", "2", "tfs-1", qps=0.1),  # ... and called on tfs-1
        Traffic("gpt", "3", "tfs-1", qps=0.5),
        Traffic("bert", "1", "tfs-1", qps=3.5),  # about 300,000 calls a day
    ),
    disk=(
        *(VersionDir("gpt", str(v), age=10 * DAY) for v in (1, 2, 3, 4)),
        *(VersionDir("bert", str(v), age=10 * DAY) for v in (1, 2, 3)),
    ),
)
SCOPE_EXPECTED = {
    ("gpt", "1"): "in-use",
    ("gpt", "2"): "in-use",
    ("gpt", "3"): "in-use",
    ("gpt", "4"): "protected",
    ("bert", "1"): "in-use",
    ("bert", "2"): "safe",  # never called: no series anywhere
    ("bert", "3"): "protected",
}

# Served as "delta-prod" from directory delta/ (a TF Serving model config maps the name); kappa
# is served under its directory's name; zeta is a whole idle model (never called).
NAMES = _scenario(
    "names",
    traffic=(
        Traffic("delta-prod", "1", qps=1.0),
        Traffic("delta-prod", "2", qps=0.2),
        Traffic("kappa", "1", calls=(-40 * HOUR,)),
    ),
    disk=(
        *(VersionDir("delta", str(v), age=10 * DAY) for v in (1, 2, 3)),
        *(VersionDir("kappa", str(v), age=10 * DAY) for v in (1, 2)),
        *(VersionDir("zeta", str(v), age=10 * DAY) for v in (1, 2)),
    ),
)
NAMES_CONFIG = """
model_config_list {
  config { name: "delta-prod" base_path: "delta" }
  config { name: "kappa" base_path: "kappa" }
  config { name: "zeta" base_path: "zeta" }
}
"""

# Two series of q/1 whose label sets would read the same if joined into text by hand:
# {instance="p", j="x"} (flat all window) and {instance='p",j="x'} (born in the window with one
# call, which no rate sees). q/2's counter reads +Inf all window.
IDENTITY = _scenario(
    "identity",
    traffic=(
        Traffic("q", "1", "p", calls=(-40 * HOUR,), labels=(("j", "x"),)),
        Traffic("q", "1", 'p",j="x', calls=(-3 * HOUR,)),
        Traffic("q", "2", "p", constant=math.inf, labels=(("j", "x"),)),
        Traffic("q", "3", "p", calls=(-40 * HOUR,), labels=(("j", "x"),)),
    ),
    disk=(*(VersionDir("q", str(v), age=10 * DAY) for v in (1, 2, 3, 4)),),
)
IDENTITY_EXPECTED = {("q", "1"): "in-use", ("q", "2"): "unknown", ("q", "3"): "safe", ("q", "4"): "protected"}

# Triton ignores version directories with leading zeros: t0/03 is never served, so t0/2 is the
# newest version Triton loads (latest 1 by default). spec0's config.pbtxt pins version 1.
TRITON0 = _scenario(
    "triton0",
    metric="nv_inference_request_success",
    model_label="model",
    version_label="version",
    traffic=(
        Traffic("t0", "2", zero_init=True),  # loaded (the newest Triton serves), idle
        Traffic("spec0", "1", zero_init=True),  # loaded by the specific policy, idle
    ),
    disk=(
        VersionDir("t0", "config.pbtxt", is_file=True, content='name: "t0"\nbackend: "python"\n'),
        *(VersionDir("t0", v, age=10 * DAY) for v in ("1", "2", "03")),
        VersionDir(
            "spec0",
            "config.pbtxt",
            is_file=True,
            content='name: "spec0"\nversion_policy: { specific: { versions: [1] } }\n',
        ),
        *(VersionDir("spec0", v, age=10 * DAY) for v in ("1", "2")),
    ),
)
TRITON0_EXPECTED = {
    ("t0", "1"): "safe",
    ("t0", "2"): "protected",
    ("spec0", "1"): "protected",
    ("spec0", "2"): "protected",
}

# Counter resets (issue #16): a Triton reload recreates a version's counter at 0. r/1 is idle and
# reloaded 6 h ago (one scrape between the last sample and the reset: tolerated); r/2 is busy and
# reloaded. In RELOAD_BLIND, rb/1 is idle, but its pod had no samples for an hour before its
# reload (calls then are lost with the reset: unknown, and so is every would-be-safe version, as
# the pod's own hole is longer than --max-gap). Run without --coverage.
RELOAD = _scenario(
    "reload",
    traffic=(
        Traffic("r", "1", "tfs-0", zero_init=True, calls=(-40 * HOUR,), restarts=(-6 * HOUR,)),
        Traffic("r", "2", "tfs-0", qps=0.5, zero_init=True, restarts=(-6 * HOUR,)),
    ),
    disk=(*(VersionDir("r", str(v), age=10 * DAY) for v in (1, 2, 3)),),
)
RELOAD_BLIND = _scenario(
    "reloadblind",
    traffic=(
        Traffic("rb", "1", "tfs-1", zero_init=True, calls=(-40 * HOUR,), restarts=(-6 * HOUR,)),
        Traffic("rb", "2", "tfs-0", qps=0.5),
    ),
    outages=(Outage(-7 * HOUR, -6 * HOUR, pod="tfs-1"),),
    disk=(*(VersionDir("rb", str(v), age=10 * DAY) for v in (1, 2, 3)),),
)
RELOAD_EXPECTED = {("r", "1"): "safe", ("r", "2"): "in-use", ("r", "3"): "protected"}

# Found by attacking the change (issue #12):
# - the metric vanishes 10 h before the end while its targets stay up (a relabel drops it);
VANISH = _scenario(
    "vanish",
    traffic=(
        Traffic("v", "1", calls=(-40 * HOUR,), vanish=-10 * HOUR),
        Traffic("v", "2", qps=1.0, vanish=-10 * HOUR),
    ),
    disk=(*(VersionDir("v", str(v), age=10 * DAY) for v in (1, 2, 3)),),
)
# - a version served under a label no directory can have ("v1" for directory 1);
LABELS = _scenario(
    "labels",
    traffic=(Traffic("lam", "v1", qps=1.0),),
    disk=(*(VersionDir("lam", str(v), age=10 * DAY) for v in (1, 2)),),
)
# - TorchServe versions written with leading zeros in the manifests and the labels alike.
TORCHSERVE0 = _scenario(
    "torchserve0",
    metric="ts_inference_requests_total",
    traffic=(Traffic("eps", "01", qps=1.0), Traffic("eps", "02", calls=(-40 * HOUR,))),
    disk=(
        VersionDir("", "eps1.mar", age=10 * DAY, manifest=("eps", "01")),
        VersionDir("", "eps2.mar", age=10 * DAY, manifest=("eps", "02")),
        VersionDir("", "eps3.mar", age=10 * DAY, manifest=("eps", "03")),
    ),
)

# - (round 2) a cron job's 50 calls at the top of an hour, between two hourly rate windows, then a
#   reload back to 0 two hours later: the counter ends where it started, and no rate saw the calls.
CRON = _scenario(
    "cron",
    scrape_offset=30.0,
    traffic=(
        Traffic("c", "1", zero_init=True, calls=(BOUNDARY + 1,) * 50, restarts=(BOUNDARY + 2 * HOUR,)),
        Traffic("c", "2", zero_init=True, restarts=(BOUNDARY + 2 * HOUR,)),  # idle, reloaded: 0 to 0
    ),
    disk=(*(VersionDir("c", str(v), age=10 * DAY) for v in (1, 2, 3)),),
)

# - (issue #15) busy series of the metric with no version label (an exporter that leaves it off
#   for requests that name none) next to u's flat versioned series; ok is a model without such series;
NO_VERSION = _scenario(
    "noversion",
    traffic=(
        Traffic("u", "1", calls=(-40 * HOUR,)),
        Traffic("u", "", "tfs-1", qps=1.0),
        Traffic("ok", "1", calls=(-40 * HOUR,)),
    ),
    disk=(*(VersionDir(m, str(v), age=10 * DAY) for m in ("u", "ok") for v in (1, 2)),),
)
# - and busy series with no model label (a relabel rule that drops it for some pods).
NO_MODEL = _scenario(
    "nomodel",
    traffic=(Traffic("n", "1", calls=(-40 * HOUR,)), Traffic("", "1", "tfs-1", qps=1.0)),
    disk=(*(VersionDir("n", str(v), age=10 * DAY) for v in (1, 2)),),
)

ABSENCE = (
    SCOPE,
    NAMES,
    IDENTITY,
    TRITON0,
    RELOAD,
    RELOAD_BLIND,
    VANISH,
    LABELS,
    TORCHSERVE0,
    CRON,
    NO_VERSION,
    NO_MODEL,
)

# --- Every mode proves its reach (issue #21, tests/e2e/test_reach.py). Scrapes at :30 past the
# minute, so a rate window of one minute holds one scrape and hourly rate windows skip the
# increase across each hour boundary.

# - (1) every sample, the counter's and `up`'s, stops 10 minutes before the end (ingestion lag);
LAG = _scenario(
    "lag",
    scrape_offset=30.0,
    traffic=(Traffic("x", "1", qps=1.0), Traffic("x", "2", calls=(-40 * HOUR,))),
    outages=(Outage(-10 * MIN, 1.0),),
    disk=(*(VersionDir("x", str(v), age=10 * DAY) for v in (1, 2, 3)),),
)
# - (1) one of two pods is down at the end (`up` = 0 for its last 10 minutes);
END_DOWN = _scenario(
    "enddown",
    scrape_offset=30.0,
    traffic=(Traffic("y", "1", "tfs-0", qps=1.0), Traffic("y", "2", "tfs-0", calls=(-40 * HOUR,))),
    extra_pods=("tfs-1",),
    outages=(Outage(-10 * MIN, 1.0, pod="tfs-1"),),
    disk=(*(VersionDir("y", str(v), age=10 * DAY) for v in (1, 2, 3)),),
)
# - (1, control) a pod replaced 5 hours ago: its `up` series ends on a good scrape while its
#   successor is scraped on; z/2, flat on the old pod, is idle.
CHURN = _scenario(
    "churn",
    scrape_offset=30.0,
    traffic=(
        Traffic("z", "1", "tfs-0", qps=1.0, stop=-5 * HOUR),
        Traffic("z", "2", "tfs-0", calls=(-40 * HOUR,)),
        Traffic("z", "1", "tfs-1", qps=1.0, start=-5 * HOUR),
    ),
    outages=(
        Outage(-5 * HOUR, 1.0, pod="tfs-0", gone=True),
        Outage(-40 * HOUR, -5 * HOUR, pod="tfs-1", gone=True),
    ),
    disk=(*(VersionDir("z", str(v), age=10 * DAY) for v in (1, 2, 3)),),
)
# - (3) bursts a rate cannot see: b/1's 10,000 calls in one scrape create its series (rate 0),
#   b/2's 100 calls 10 s before an hour boundary fall between two hourly rate windows; b/3 is
#   steady at 5 req/s (a one-minute rate window holds one scrape: no rate at all); b/4 is idle.
BURST = _scenario(
    "burst",
    scrape_offset=30.0,
    traffic=(
        Traffic("b", "1", calls=(-5 * HOUR,) * 10_000),
        Traffic("b", "2", calls=(-40 * HOUR, *(BOUNDARY - 10,) * 100)),
        Traffic("b", "3", qps=5.0),
        Traffic("b", "4", calls=(-40 * HOUR,)),
    ),
    disk=(*(VersionDir("b", str(v), age=10 * DAY) for v in (1, 2, 3, 4, 5)),),
)

# - (found by the oracle, seed 100029) r/1 was called once 30 h ago; its server restarted 10 h
#   ago (a TF Serving counter is gone until the next call) and one call 5 h ago created it anew
#   at 1: it ends where it started, with no drop for resets() to see.
RECREATE = _scenario(
    "recreate",
    traffic=(
        Traffic("rc", "1", calls=(-30 * HOUR, -5 * HOUR), restarts=(-10 * HOUR,)),
        Traffic("rc", "2", calls=(-30 * HOUR,), restarts=(-10 * HOUR,)),
        Traffic("rc", "3", qps=0.1),
    ),
    disk=(*(VersionDir("rc", str(v), age=10 * DAY) for v in (1, 2, 3, 4)),),
)


# - Series lacking a label whose counters were flat all window hide no call (#21's price): the
#   model's version 1 is safe beside a flat series with no version label and one with no model label (control);
#   each variant below has one more fact that may hide a call, and version 1 is unknown.
def _unlabelled(name: str, *extra: Traffic, outages: tuple[Outage, ...] = ()) -> Scenario:
    """Model `name` (a name of its own: another scenario's series of it would be outside the
    selector), with version 1 flat and version 2 the newest."""
    return _scenario(
        name,
        traffic=(
            Traffic(name, "1", "tfs-0", calls=(-40 * HOUR,)),
            Traffic(name, "", "tfs-0", calls=(-40 * HOUR,)),
            Traffic("", "1", "tfs-0", calls=(-40 * HOUR,)),
            *extra,
        ),
        outages=outages,
        disk=(*(VersionDir(name, str(v), age=10 * DAY) for v in (1, 2)),),
    )


UNL_FLAT = _unlabelled("unlflat")
# ... its only pod with a flat series lacking the version label is down for the last 10 minutes;
UNL_DOWN = _unlabelled(
    "unldown",
    Traffic("unldown", "", "tfs-1", calls=(-40 * HOUR,)),
    outages=(Outage(-10 * MIN, 1.0, pod="tfs-1"),),
)
# ... a series lacking the version label is created in the window by a call 3 hours ago;
UNL_BORN = _unlabelled("unlborn", Traffic("unlborn", "", "tfs-1", calls=(-3 * HOUR,)))
# ... one lacking the model label is created anew after a restart, at the value it had (as RECREATE);
UNL_RECREATE = _unlabelled(
    "unlrecreate", Traffic("", "1", "tfs-1", calls=(-30 * HOUR, -5 * HOUR), restarts=(-10 * HOUR,))
)
# ... one lacking the version label drops at a restart and climbs back to where it started;
UNL_RESET = _unlabelled(
    "unlreset",
    Traffic(
        "unlreset", "", "tfs-1", calls=(-40 * HOUR, -39 * HOUR, -5 * HOUR, -4 * HOUR), restarts=(-6 * HOUR,)
    ),
)
# ... one lacking the version label ends 2 hours before the end while its pod is scraped on (a
#   restart may have created it anew at its old value first: tests/attacks_21c).
UNL_VANISH = _unlabelled(
    "unlvanish", Traffic("unlvanish", "", "tfs-1", calls=(-40 * HOUR,), vanish=-2 * HOUR)
)
# ... as UNL_DOWN, but that pod is another job's, with no series that has both labels: only the
#   series lacking a label bring its target into the checks (without --coverage).
UNL_JOB = _unlabelled("unljob")
UNL_JOB_CANARY = Scenario(
    name="unljob-canary",
    labels={"scenario": "unljob"},
    job="canary",
    traffic=(Traffic("unljob", "", "canary-0", calls=(-40 * HOUR,)),),
    outages=(Outage(-10 * MIN, 1.0, pod="canary-0"),),
)
UNLABELLED = (UNL_FLAT, UNL_DOWN, UNL_BORN, UNL_RECREATE, UNL_RESET, UNL_VANISH, UNL_JOB, UNL_JOB_CANARY)


# - A hole in the middle of the window hides no call of a counter still there after it, unless
#   the server restarted inside it. Without --coverage each target's holes are read from its `up`
#   (they were not before: tests/attacks_21c). h/1 was called once 40 h ago on tfs-0 and tfs-1;
#   tfs-1's scrapes fail from -6 h to -5 h, it restarts at -5.5 h and one call creates h/1's
#   counter anew at 1, the value it had: no sample differs.
MID_HOLE = _scenario(
    "midhole",
    traffic=(
        Traffic("h", "1", "tfs-0", calls=(-40 * HOUR,)),
        Traffic("h", "1", "tfs-1", calls=(-40 * HOUR, -5.4 * HOUR), restarts=(-5.5 * HOUR,)),
        Traffic("h", "2", "tfs-0", qps=0.1),
    ),
    outages=(Outage(-6 * HOUR, -5 * HOUR, pod="tfs-1"),),
    disk=(*(VersionDir("h", str(v), age=10 * DAY) for v in (1, 2, 3)),),
)
# ... tfs-1, scraped before the window, has nothing stored (no `up` either) from 25.5 h to 20 h
#   ago, across the window's start: hs/1's only call in the window (-23.5 h) created its series
#   there, and a restart at -23 h wiped it. Not a pod born at -20 h: it was scraped before.
HOLE_START = _scenario(
    "holestart",
    traffic=(
        Traffic("hs", "1", "tfs-0", calls=(-40 * HOUR,)),
        Traffic("hs", "1", "tfs-1", calls=(-23.5 * HOUR,), restarts=(-23 * HOUR,)),
        Traffic("hs", "2", "tfs-1", qps=0.1),
        Traffic("hs", "2", "tfs-0", qps=0.1),
    ),
    outages=(Outage(-25.5 * HOUR, -20 * HOUR, pod="tfs-1", gone=True),),
    disk=(*(VersionDir("hs", str(v), age=10 * DAY) for v in (1, 2, 3)),),
)
# ... (control) tfs-1's scrapes fail for 10 minutes (under --max-gap), with no restart: hc/1 is idle.
HOLE_SHORT = _scenario(
    "holeshort",
    traffic=(
        Traffic("hc", "1", "tfs-0", calls=(-40 * HOUR,)),
        Traffic("hc", "1", "tfs-1", calls=(-40 * HOUR,)),
        Traffic("hc", "2", "tfs-0", qps=0.1),
    ),
    outages=(Outage(-6 * HOUR, -6 * HOUR + 10 * MIN, pod="tfs-1"),),
    disk=(*(VersionDir("hc", str(v), age=10 * DAY) for v in (1, 2, 3)),),
)
HOLES = (MID_HOLE, HOLE_START, HOLE_SHORT)

REACH = (LAG, END_DOWN, CHURN, BURST, RECREATE, *UNLABELLED, *HOLES)


# --- Stock TF Serving (tests/e2e/test_stock_tfserving.py): request_count{model_name, status},
# no version label; the evidence is per model.

STOCK_METRIC = ":tensorflow:serving:request_count"
_OK = (("status", "OK"),)
STOCK = _scenario(
    "tfstock",
    metric=STOCK_METRIC,
    traffic=(
        Traffic("busy", "", qps=0.5, labels=_OK),
        Traffic("busy", "", "tfs-1", calls=(-3 * HOUR,), labels=(("status", "INVALID_ARGUMENT"),)),
        Traffic("quiet", "", calls=(-40 * HOUR,), labels=_OK),  # flat all window
        Traffic("broken", "", qps=0.1, labels=(("status", "NOT_FOUND"),)),  # only errors
        Traffic("late", "", calls=(-2 * MIN,), labels=_OK),  # one call in the window's last minutes
    ),
    disk=(
        *(VersionDir("busy", str(v), age=10 * DAY) for v in (1, 2, 3)),
        *(VersionDir("quiet", str(v), age=10 * DAY) for v in (1, 2, 3)),
        *(VersionDir("unused", str(v), age=10 * DAY) for v in (1, 2)),  # no series at all
        *(VersionDir("broken", str(v), age=10 * DAY) for v in (1, 2)),
        *(VersionDir("late", str(v), age=10 * DAY) for v in (1, 2)),
    ),
)
STOCK_EXPECTED = {
    **{("busy", v): "in-use" for v in "123"},
    ("quiet", "1"): "safe",
    ("quiet", "2"): "safe",
    ("quiet", "3"): "protected",
    ("unused", "1"): "safe",
    ("unused", "2"): "protected",
    ("broken", "1"): "in-use",
    ("broken", "2"): "in-use",
    ("late", "1"): "in-use",
    ("late", "2"): "in-use",
}
# A model served under another name than its directory's: every silent model may be it.
STOCK_RENAMED = _scenario(
    "tfstock_renamed",
    metric=STOCK_METRIC,
    traffic=(
        Traffic("ranker_v2", "", qps=0.3, labels=_OK),
        Traffic("still", "", calls=(-40 * HOUR,), labels=_OK),
    ),
    disk=(
        *(VersionDir("ranker", str(v), age=10 * DAY) for v in (1, 2)),
        *(VersionDir("still", str(v), age=10 * DAY) for v in (1, 2)),
    ),
)
STOCK_RENAMED_EXPECTED = {
    ("ranker", "1"): "unknown",  # its calls may be under ranker_v2
    ("ranker", "2"): "protected",
    ("ranker_v2", ""): "not-on-disk",
    ("still", "1"): "safe",  # it has series: not silent
    ("still", "2"): "protected",
}
STOCK_ALL = (STOCK, STOCK_RENAMED)


# --- Failed calls counted apart (Triton's nv_inference_request_failure): one scenario label, two
# metrics (two Scenario records; the failures' one has no disk of its own and its own job, so
# the two write no duplicate `up` series).

_FAIL = {"model_label": "model", "version_label": "version", "labels": {"scenario": "tritonfail"}}
TRITON_FAIL = Scenario(
    name="tritonfail",
    metric="nv_inference_request_success",
    traffic=(
        *(Traffic("scorer", str(v), zero_init=True) for v in (1, 2, 3, 5)),
        Traffic("scorer", "4", qps=0.5, zero_init=True),
    ),
    disk=tuple(VersionDir("scorer", str(v), age=10 * DAY) for v in (1, 2, 3, 4, 5)),
    **_FAIL,  # type: ignore[arg-type]
)
TRITON_FAIL_FAILURES = Scenario(
    name="tritonfail-failures",
    metric="nv_inference_request_failure",
    job="tfs-failures",
    traffic=(
        Traffic("scorer", "1", qps=0.01, zero_init=True),  # every call fails
        Traffic("scorer", "2", zero_init=True),  # created at load, never a failure
        Traffic("scorer", "3", calls=(-2 * HOUR,)),  # created by its first failure, in the window
        Traffic("scorer", "5", calls=(-40 * HOUR,)),  # failed before the window only
    ),
    **_FAIL,  # type: ignore[arg-type]
)
TRITON_FAIL_EXPECTED = {
    ("scorer", "1"): "unknown",
    ("scorer", "2"): "safe",
    ("scorer", "3"): "unknown",
    ("scorer", "4"): "in-use",
    ("scorer", "5"): "safe",
}
FAILURES = (TRITON_FAIL, TRITON_FAIL_FAILURES)
