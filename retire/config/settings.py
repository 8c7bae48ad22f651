"""Settings: what a run needs, already validated, typed field by field for the type checker.

One field per entry of the option table, named by its key; its default is the table's and its
type is its parser's return type (`| None` where the default is None): tests/test_config.py
checks both, so the table stays the one place an option is declared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from retire.config.options import _DEFAULTS


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, already validated. Durations are seconds. One field per entry of
    OPTIONS, its default and type the table's (tests/test_config.py checks them); secrets stay
    out of repr."""

    prometheus: str | None = _DEFAULTS["prometheus"]
    model_dir: tuple[Path, ...] = _DEFAULTS["model_dir"]
    model_config: Path | None = _DEFAULTS["model_config"]
    preset: str = _DEFAULTS["preset"]
    model_base_path: Path | None = _DEFAULTS["model_base_path"]
    model_name: str | None = _DEFAULTS["model_name"]
    threshold: float = _DEFAULTS["threshold"]
    selector: str = _DEFAULTS["selector"]
    window: float = _DEFAULTS["window"]
    step: float = _DEFAULTS["step"]
    metric: str = _DEFAULTS["metric"]
    model_label: str = _DEFAULTS["model_label"]
    version_label: str = _DEFAULTS["version_label"]
    at: datetime | None = _DEFAULTS["at"]
    timeout: float = _DEFAULTS["timeout"]
    deadline: float = _DEFAULTS["deadline"]
    format: str | None = _DEFAULTS["format"]
    output: Path | None = _DEFAULTS["output"]
    coverage: str | None = _DEFAULTS["coverage"]
    max_gap: float = _DEFAULTS["max_gap"]
    keep_latest: int = _DEFAULTS["keep_latest"]
    min_age: float | None = _DEFAULTS["min_age"]  # None: the query window
    age_source: str = _DEFAULTS["age_source"]
    pin: tuple[tuple[str, str], ...] = _DEFAULTS["pin"]
    verbose: bool = _DEFAULTS["verbose"]
    header: tuple[str, ...] = field(default=_DEFAULTS["header"], repr=False)
    tenant: str | None = field(default=_DEFAULTS["tenant"], repr=False)
    bearer_token_file: Path | None = _DEFAULTS["bearer_token_file"]
    basic_auth_user: str | None = _DEFAULTS["basic_auth_user"]
    basic_auth_password: str | None = field(default=_DEFAULTS["basic_auth_password"], repr=False)
    basic_auth_password_file: Path | None = _DEFAULTS["basic_auth_password_file"]
    ca_file: Path | None = _DEFAULTS["ca_file"]
    client_cert: Path | None = _DEFAULTS["client_cert"]
    client_key: Path | None = _DEFAULTS["client_key"]
    insecure: bool = _DEFAULTS["insecure"]
    partial_response: str | None = _DEFAULTS["partial_response"]
    split_by_model: bool = _DEFAULTS["split_by_model"]
    # The model server's status API, asked what is loaded: one URL per replica.
    server: tuple[str, ...] = _DEFAULTS["server"]
    archive_dir: Path | None = _DEFAULTS["archive_dir"]  # offload's and unload's; its unload journal
    use_recording_rules: bool = _DEFAULTS["use_recording_rules"]
    rule_interval: float = _DEFAULTS["rule_interval"]
    rollup_interval: float = _DEFAULTS["rollup_interval"]
    mail_to: tuple[str, ...] = _DEFAULTS["mail_to"]
    mail_from: str | None = _DEFAULTS["mail_from"]
    mail_when: str = _DEFAULTS["mail_when"]
    mail_attach: tuple[str, ...] = _DEFAULTS["mail_attach"]
    smtp_host: str = _DEFAULTS["smtp_host"]
    smtp_port: int | None = _DEFAULTS["smtp_port"]  # None: by --smtp-ssl / --smtp-starttls
    smtp_starttls: bool = _DEFAULTS["smtp_starttls"]
    smtp_ssl: bool = _DEFAULTS["smtp_ssl"]
    smtp_user: str | None = _DEFAULTS["smtp_user"]
    smtp_password: str | None = field(default=_DEFAULTS["smtp_password"], repr=False)
    smtp_password_file: Path | None = _DEFAULTS["smtp_password_file"]
    smtp_ca_file: Path | None = _DEFAULTS["smtp_ca_file"]
    smtp_timeout: float = _DEFAULTS["smtp_timeout"]
    since_last: Path | None = _DEFAULTS["since_last"]
    quiet: bool = _DEFAULTS["quiet"]

    @property
    def effective_min_age(self) -> float:
        return self.window if self.min_age is None else self.min_age
