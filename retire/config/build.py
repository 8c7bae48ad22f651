"""Settings turned into the narrow frozen types each layer below takes.

Nothing below `config` imports it (tests/test_layers.py): a source gets a `Connection` and
`QueryParams`, the mail a `SmtpSettings`, never the 50-odd `Settings`. Builders that read files
(secrets, CA bundles) do it here, at the start of a run, so a bad file is a usage error (exit 2)
before any query.
"""

from __future__ import annotations

import ssl

from retire import redact
from retire.advisor.report import Policy
from retire.config.settings import Settings
from retire.deadline import Deadline
from retire.delivery.deliver import Delivery
from retire.delivery.mail import Mailing, SmtpSettings
from retire.errors import ConfigError
from retire.servers import server
from retire.sources.prometheus.connection import _TOKEN_CHARS, Connection, read_secret
from retire.sources.prometheus.promql import LABEL_NAME_RE, METRIC_NAME_RE, parse_matchers, parse_selector
from retire.sources.prometheus.queries import (
    QueryParams,
    RuleSpec,
    assumed_scrape,
    resolution_for,
    rule_lookback,
    tolerated_gap,
)


def connection_from(settings: Settings) -> Connection:
    """Read credentials now (a mounted Kubernetes token rotates: it is re-read on every run).

    Header values and the tenant were checked by config; they are registered as secrets here
    too, for Settings built without config (a library user's). The secret files are checked here,
    and every message about them names the file, never the content.
    """
    headers = []
    for text in settings.header:
        name, _, value = text.partition(":")
        headers.append((name.strip(), value.strip()))
    if settings.tenant:
        headers.append(("X-Scope-OrgID", settings.tenant))
    for name, value in headers:
        redact.register(value, header=name)
    redact.register_url(settings.prometheus)
    token = None
    if settings.bearer_token_file:
        token = read_secret(settings.bearer_token_file, "--bearer-token-file")
        if not _TOKEN_CHARS.fullmatch(token):
            raise ConfigError(
                f"--bearer-token-file {settings.bearer_token_file} does not hold one token (visible "
                "ASCII characters, no spaces, on one line); check the file's content (not shown)"
            )
    basic = None
    if settings.basic_auth_user is not None:
        password = settings.basic_auth_password
        if settings.basic_auth_password_file is not None:
            password = read_secret(settings.basic_auth_password_file, "--basic-auth-password-file")
        if password is None:
            raise ConfigError(
                "--basic-auth-user needs a password: set RETIRE_BASIC_AUTH_PASSWORD or "
                "--basic-auth-password-file (never on the command line)"
            )
        redact.register_basic(settings.basic_auth_user, password)
        basic = (settings.basic_auth_user, password)
    for flag, path in (
        ("--ca-file", settings.ca_file),
        ("--client-cert", settings.client_cert),
        ("--client-key", settings.client_key),
    ):
        if path is None:
            continue
        try:
            found = path.is_file()
        except OSError as e:  # a name too long, a loop of links: the OS cannot look it up
            raise ConfigError(f"{flag} {path}: {e.strerror}") from None
        if not found:
            raise ConfigError(f"{flag} {path} does not exist")
    verify: str | bool = str(settings.ca_file) if settings.ca_file else True
    if settings.insecure:
        verify = False
    cert = None
    if settings.client_cert and settings.client_key:
        cert = (str(settings.client_cert), str(settings.client_key))
    return Connection(tuple(headers), token, basic, verify, cert, settings.partial_response)


def params_from(settings: Settings, scrape: float | None = None) -> QueryParams:
    """The query parameters of these settings. `scrape`: the scrape interval to make recording
    rules for (learned from the server); None: the assumed one (`assumed_scrape`)."""
    rules = None
    if settings.use_recording_rules:
        interval = settings.rule_interval
        if scrape is None:
            scrape = assumed_scrape(settings.step, interval)
        gap = tolerated_gap(settings.window, settings.max_gap, interval)
        lookback = rule_lookback(settings.step, scrape, gap)
        rules = RuleSpec(interval, settings.rollup_interval, lookback)
    if not METRIC_NAME_RE.fullmatch(settings.metric):
        raise ConfigError(f"--metric: {settings.metric!r} is not a valid Prometheus metric name")
    for flag, label in (("--model-label", settings.model_label), ("--version-label", settings.version_label)):
        if flag == "--version-label" and label == "":
            continue  # none: a counter per model (stock TF Serving), its evidence spread per model
        if not LABEL_NAME_RE.fullmatch(label):
            raise ConfigError(f"{flag}: {label!r} is not a valid Prometheus label name")
    coverage = parse_selector(settings.coverage, "--coverage") if settings.coverage else None
    return QueryParams(
        metric=settings.metric,
        model_label=settings.model_label,
        version_label=settings.version_label,
        selector=parse_matchers(settings.selector) if settings.selector else (),
        window=settings.window,
        step=settings.step,
        resolution=resolution_for(settings.window, settings.max_gap),
        coverage=coverage,
        rules=rules,
        canonical=server(settings.preset).canonical,
        failure_metric=server(settings.preset).failure_metric,
        per_step=settings.threshold > 0,
    )


def smtp_from(settings: Settings) -> SmtpSettings:
    """SMTP settings with the password read and the CA file checked (a config error, exit 2)."""
    password = settings.smtp_password
    if settings.smtp_password_file is not None:
        password = read_secret(settings.smtp_password_file, "--smtp-password-file")
    if settings.smtp_user and password is None:
        raise ConfigError("--smtp-user needs a password: set RETIRE_SMTP_PASSWORD or --smtp-password-file")
    if settings.smtp_user and password is not None:
        redact.register_basic(settings.smtp_user, password)  # AUTH PLAIN/LOGIN send it base64
        redact.register(f"\0{settings.smtp_user}\0{password}")
    port = settings.smtp_port or (465 if settings.smtp_ssl else 587 if settings.smtp_starttls else 25)
    ca = str(settings.smtp_ca_file) if settings.smtp_ca_file else None
    if settings.smtp_ca_file is not None:
        try:
            ssl.create_default_context(cafile=ca)
        except (OSError, ssl.SSLError, ValueError) as e:
            why = getattr(e, "strerror", None) or getattr(e, "reason", None) or "not a PEM CA bundle"
            raise ConfigError(f"--smtp-ca-file {settings.smtp_ca_file}: {why}") from None
    s = settings
    tls = (s.smtp_starttls, s.smtp_ssl)
    return SmtpSettings(s.smtp_host, port, *tls, s.smtp_user, password, ca, s.smtp_timeout)


def sender(settings: Settings) -> str:
    import socket

    return settings.mail_from or f"retire@{socket.gethostname()}"


def mailing(settings: Settings) -> Mailing:
    """The report's mailing (the SMTP password file and CA file are read and checked here)."""
    return Mailing(
        sender(settings),
        settings.mail_to,
        smtp_from(settings),
        settings.mail_when,
        settings.mail_attach,
        settings.prometheus,
    )


def delivery(settings: Settings, deadline: Deadline) -> Delivery:
    """Where `retire report` sends its report besides stdout, checked now: a bad SMTP password
    or CA file, or a --since-last file that is not a report, is a usage error before any query."""
    out = Delivery(mailing(settings) if settings.mail_to else None, settings.since_last, deadline)
    out.check()
    return out


def policy_from(settings: Settings) -> Policy:
    """The advisor's policy: the threshold, what is kept or pinned, and the preset's rules for
    version labels (which name no version, which could name one)."""
    srv = server(settings.preset)
    return Policy(
        threshold=settings.threshold,
        keep_latest=settings.keep_latest,
        min_age=settings.effective_min_age,
        age_source=settings.age_source,
        pins=settings.pin,
        unattributed=srv.unattributed,
        label_is_version=srv.label_is_version,
        per_model=not settings.version_label,
    )
