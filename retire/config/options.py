"""The option table: every option of every command, declared once, in the order the help
shows them. The mail options, the table's tail, are in `mail_options.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retire.config.mail_options import MAIL_OPTIONS
from retire.config.option import ARCHIVE, CONNECTION, OUTPUT, QUERY, Option
from retire.config.parsers import (
    Parser,
    _bool,
    _choice,
    _count,
    _headers,
    _line,
    _number,
    _path,
    _paths,
    _pins,
    _secret,
    _server_urls,
    _str,
    _tenant,
    _url,
    parse_instant,
)
from retire.durations import parse_duration
from retire.formats import NAMES
from retire.servers import DEFAULT_PRESET, SERVERS

_DEFAULT = SERVERS[DEFAULT_PRESET]

OPTIONS: tuple[Option, ...] = (
    # Where the evidence comes from.
    Option(
        "prometheus",
        _url,
        "Prometheus base URL; a path prefix is fine (http://host/prometheus).",
        "http://prom:9090",
        env="RETIRE_PROMETHEUS_URL",
        group=CONNECTION,
    ),
    Option(
        "model_dir",
        _paths,
        "Model root: <root>/<model>/<version>/ (a model store for torchserve, the repository of "
        "model-settings.json files for mlserver). Repeatable "
        "(`:`-separated in the environment).",
        "/models",
        default=(),
        kind=list[Path],
        metavar="DIR",
    ),
    Option(
        "model_config",
        _path,
        "TF Serving --model_config_file: models, base paths, pinned versions.",
        "/etc/tfs/models.config",
        kind=Path,
    ),
    Option(
        "preset",
        _choice(*SERVERS),
        "Model server: its metric, labels and directory layout.",
        [*SERVERS][-1],
        default=DEFAULT_PRESET,
        group=QUERY,
        choices=tuple(SERVERS),
    ),
    Option(
        "model_base_path",
        _path,
        "One model's base path (with --model-name) instead of a root.",
        "/models/half_plus_two",
        kind=Path,
    ),
    Option("model_name", _line, "The model served from --model-base-path.", "half_plus_two"),
    # What counts as a call, and over which window.
    Option(
        "threshold",
        _number,
        "Busiest-hour req/s at or below which a version is idle.",
        "0.5",
        default=0.0,
        kind=float,
        default_text="0 (any call keeps a version)",
    ),
    Option(
        "selector",
        _str,
        'Extra label matchers for the metric, e.g. \'job="tfs",namespace="ml"\'.',
        'job="tfs"',
        default="",
        group=QUERY,
    ),
    Option(
        "window",
        parse_duration,
        "How far back to look.",
        "6h",
        default=86400.0,
        group=QUERY,
        default_text="24h",
    ),
    Option(
        "step", parse_duration, "Rate step of the busiest-hour query.", "30m", default=3600.0, group=QUERY
    ),
    Option(
        "metric",
        _line,
        "Call counter metric.",
        "my_calls_total",
        default=_DEFAULT.metric,
        group=QUERY,
        default_text=f"the preset's ({_DEFAULT.metric} for {DEFAULT_PRESET})",
    ),
    Option(
        "model_label",
        _line,
        "Label naming the model.",
        "model",
        default=_DEFAULT.model_label,
        group=QUERY,
        default_text=f"the preset's ({_DEFAULT.model_label} for {DEFAULT_PRESET})",
    ),
    Option(
        "version_label",
        _line,
        "Label naming the version; '' for a counter per model (stock TF Serving's).",
        "version",
        default=_DEFAULT.version_label,
        group=QUERY,
        default_text=f"the preset's ({_DEFAULT.version_label} for {DEFAULT_PRESET})",
    ),
    Option(
        "at",
        parse_instant,
        "Evaluate at this instant (RFC 3339 or Unix seconds) instead of now.",
        "2026-11-24T06:00:00Z",
    ),
    Option(
        "timeout",
        parse_duration,
        "Bound on each whole HTTP request to Prometheus or --server: connect, headers and body "
        "together, however slowly the server sends them.",
        "10s",
        default=30.0,
        group=CONNECTION,
    ),
    Option(
        "deadline",
        parse_duration,
        "Bound on the whole run: every request ends by it (each gets the smaller of --timeout and "
        "the time left) and none starts after it; offload moves nothing after it. Ten minutes "
        "leave a large fleet's queries room and still end a stuck cron job long before the next.",
        "5m",
        default=600.0,
        group=CONNECTION,
    ),
    Option(
        "coverage",
        _str,
        "Scrape targets that must have been up all window, e.g. 'up{job=\"tfs\"}'.",
        'up{job="tfs"}',
        group=QUERY,
    ),
    Option(
        "max_gap", parse_duration, "Longest tolerated hole in the data.", "5m", default=900.0, group=QUERY
    ),
    # What is protected whatever the traffic.
    Option("keep_latest", _count, "Never offer the newest N versions of a model.", "2", default=1, kind=int),
    Option(
        "min_age",
        parse_duration,
        "Protect versions whose directory changed more recently.",
        "2d",
        default_text="the window",
    ),
    Option(
        "age_source",
        _choice("mtime", "ctime"),
        "Which directory time is a version's age.",
        "ctime",
        default="mtime",
        choices=("mtime", "ctime"),
    ),
    Option(
        "pin",
        _pins,
        "MODEL:VERSION never to offload. Repeatable (comma-separated in the environment).",
        "half_plus_two:123",
        default=(),
        kind=list[str],
        metavar="MODEL:VERSION",
    ),
    # How to reach Prometheus.
    Option(
        "header",
        _headers,
        "Extra HTTP header 'Name: value' for the server. Repeatable (one per line in the environment).",
        "X-Scope-OrgID: ml",
        default=(),
        kind=list[str],
        metavar="'NAME: VALUE'",
        secret=True,
        group=CONNECTION,
    ),
    Option(
        "tenant",
        _tenant,
        "Tenant for Mimir/Cortex/Thanos (sent as X-Scope-OrgID).",
        "ml-team",
        secret=True,
        group=CONNECTION,
    ),
    Option(
        "bearer_token_file",
        _path,
        "Send the token in this file (re-read every run).",
        "/var/run/secrets/token",
        kind=Path,
        group=CONNECTION,
    ),
    Option(
        "basic_auth_user",
        _line,
        "Basic auth user; password from RETIRE_BASIC_AUTH_PASSWORD or a file.",
        "retire",
        group=CONNECTION,
    ),
    Option(
        "basic_auth_password",
        _secret,
        "Basic auth password (never a flag: the command line is visible to every user).",
        "example-password",
        kind=None,
        secret=True,
        group=CONNECTION,
    ),
    Option(
        "basic_auth_password_file",
        _path,
        "File holding the basic auth password.",
        "/run/secrets/prom-password",
        kind=Path,
        group=CONNECTION,
    ),
    Option(
        "ca_file",
        _path,
        "CA bundle to verify the server's TLS certificate.",
        "/etc/ssl/ca.pem",
        kind=Path,
        group=CONNECTION,
    ),
    Option(
        "client_cert",
        _path,
        "Client certificate for mutual TLS (with --client-key).",
        "/etc/ssl/client.pem",
        kind=Path,
        group=CONNECTION,
    ),
    Option(
        "client_key",
        _path,
        "Client private key for mutual TLS.",
        "/etc/ssl/client.key",
        kind=Path,
        group=CONNECTION,
    ),
    Option(
        "insecure",
        _bool,
        "Do not verify the server's TLS certificate (prints a warning).",
        "true",
        default=False,
        kind=bool,
        group=CONNECTION,
    ),
    Option(
        "partial_response",
        _choice("allow", "deny"),
        "Thanos: whether partial responses are allowed (partial data is never safe).",
        "deny",
        choices=("allow", "deny"),
    ),
    Option(
        "split_by_model",
        _bool,
        "Run the queries once per model (done automatically when one is too big).",
        "true",
        default=False,
        kind=bool,
    ),
    Option(
        "server",
        _server_urls,
        "Ask the model server which versions are loaded, through its status API by --preset: "
        + "; ".join(dict.fromkeys(s.status_api for s in SERVERS.values()))
        + ". Repeatable, once per replica (one per line or comma-separated in the environment).",
        "http://tfs:8501",
        default=(),
        kind=list[str],
        metavar="URL",
    ),
    Option(
        "archive_dir",
        _path,
        "The archive of `retire offload` and `retire unload` (outside every model root; holds "
        "their journals). Reports show the versions `retire unload` unloaded as `unloaded`.",
        "/archive",
        group=ARCHIVE,
        metavar="DIR",
    ),
    # Recording rules (README "Recording rules").
    Option(
        "use_recording_rules",
        _bool,
        "Read the series recorded by the rules of `retire rules` (same options) instead of raw ones.",
        "true",
        default=False,
        group=QUERY,
        kind=bool,
    ),
    Option(
        "rule_interval",
        parse_duration,
        "Evaluation interval of the rules' fine group.",
        "30s",
        default=60.0,
        group=QUERY,
    ),
    Option(
        "rollup_interval",
        parse_duration,
        "Evaluation interval of the rules' rollup group.",
        "2h",
        default=3600.0,
        group=QUERY,
    ),
    Option(
        "verbose",
        _bool,
        "Also print full reasons under a terminal's table, ignored directory entries, query timings.",
        "true",
        default=False,
        kind=bool,
        aliases=("-v",),
    ),
    # Output: each command attaches these itself, with its own formats.
    Option(
        "format",
        _choice(*NAMES),  # every command's --format choices, from the formats' registry
        "Output format.",
        "json",
        group=OUTPUT,
        aliases=("-f",),
        choices=NAMES,
    ),
    Option(
        "output",
        _path,
        "Write to this file (atomically) instead of stdout.",
        "report.txt",
        group=OUTPUT,
        kind=Path,
        aliases=("-o",),
    ),
    # Mail (README "Scheduled report"): mail_options.py.
    *MAIL_OPTIONS,
)
# Derived from OPTIONS, for the callers that want one aspect.
OPTION: dict[str, Option] = {o.key: o for o in OPTIONS}
_DEFAULTS: dict[str, Any] = {o.key: o.default for o in OPTIONS}
_PARSERS: dict[str, Parser] = {o.key: o.parse for o in OPTIONS}
ENV_VARS: dict[str, str] = {o.key: o.env_var for o in OPTIONS}
