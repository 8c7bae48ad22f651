"""examples/cronjob.yaml as it stands (#26): its container's command line and environment, the
SMTP password from its Secret, its volume paths, run the way the image runs them (ENTRYPOINT
`retire`, the image's PATH and HOME, nothing else in the environment). Only what names a site
is pointed at the lab: Prometheus, the SMTP server (STARTTLS with a test CA the image would not
need), which fleet (`--selector`, `--coverage`) and the evaluation instant; the `/models` and
`/state` mounts are directories here. Not reproduced: running as uid 10001 (the lab's files live
under root's 0700 temporary directories)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from tests import scenarios as sc
from tests.conftest import Lab
from tests.smtp_servers import Inbox, smtp

ROOT = Path(__file__).resolve().parents[2]
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # python:3.11-slim's


def _cronjob() -> tuple[dict[str, Any], dict[str, str]]:
    """The CronJob's container and the Secret's values, as Kubernetes reads the file."""
    docs = list(yaml.safe_load_all((ROOT / "examples" / "cronjob.yaml").read_text()))
    secret = next(d for d in docs if d["kind"] == "Secret")
    job = next(d for d in docs if d["kind"] == "CronJob")
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return container, {f"{secret['metadata']['name']}/{k}": v for k, v in secret["stringData"].items()}


def _env(container: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    env = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[f"{ref['name']}/{ref['key']}"]
    return env


@pytest.mark.prometheus
def test_the_cronjob_runs_as_written_and_mails_the_report(lab: Lab, tmp_path: Path) -> None:
    container, secrets = _cronjob()
    env = _env(container, secrets)
    mounts = {m["mountPath"]: tmp_path / m["name"] for m in container["volumeMounts"]}
    assert set(mounts) == {"/models", "/state"} and env["RETIRE_MODEL_DIR"] == "/models"
    mounts["/state"].mkdir()
    mounts["/models"].symlink_to(lab.models(sc.BASIC))
    password = secrets["retire-smtp/password"]

    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    home = tmp_path / "home"
    home.mkdir()
    inbox = Inbox()
    with smtp(inbox, tls=tls, logins={env["RETIRE_SMTP_USER"]: password}) as port:
        env.update(
            RETIRE_PROMETHEUS_URL=lab.url,
            RETIRE_MODEL_DIR=str(mounts["/models"]),
            RETIRE_SELECTOR='scenario="basic"',
            RETIRE_COVERAGE='up{scenario="basic"}',
            RETIRE_AT=str(lab.end),
            RETIRE_SMTP_HOST="127.0.0.1",
            RETIRE_SMTP_PORT=str(port),
            RETIRE_SMTP_CA_FILE=str(bundle),
            HOME=str(home),
            PATH=f"{Path(sys.executable).parent}:{IMAGE_PATH}",
        )
        args = [a.replace("=/state/", f"={mounts['/state']}/") for a in container["args"]]
        run = subprocess.run(
            ["env", "-i", *(f"{k}={v}" for k, v in env.items()), "retire", *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            env={"PATH": env["PATH"]},
        )
    assert run.returncode == 0, run.stderr
    assert password not in run.stdout + run.stderr
    ((sender, recipients, msg),) = inbox.messages
    assert (sender, recipients) == (env["RETIRE_MAIL_FROM"], ["ml-platform@example.com"])
    attached = sorted(part.get_filename() or "" for part in msg.iter_attachments())
    assert [name.rsplit(".", 1)[-1] for name in attached] == ["csv", "json"]
    assert "3 versions safe to offload" in msg["Subject"]
    assert (mounts["/state"] / "last.json").is_file()
    assert os.listdir(mounts["/state"]) == ["last.json"]
