"""Real deployments: tenants, headers, auth, TLS and Thanos-style partial responses, against small
real HTTP(S) servers that answer as those systems document; splitting by model against a real
Prometheus with a sample limit."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from retire.lab.servers import Prometheus, backfill
from retire.lab.synth import write_openmetrics
from tests import fake_servers as fs
from tests import scenarios as sc
from tests.conftest import Lab, run_cli, statuses

SECRET = "tok-5ecr3t-value"


@pytest.fixture
def models(tmp_path: Path) -> Path:
    (tmp_path / "models" / "m" / "1").mkdir(parents=True)
    return tmp_path / "models"


def _report(url: str, models: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    run = run_cli(
        "report", "--prometheus", url, "--model-dir", str(models), "--format", "json", *extra, env=env
    )
    return run.exit_code, run.stdout, run.stderr


def test_mimir_tenant_and_prefix(models: Path) -> None:
    log: list = []
    with fs.serve(fs.full_answer, prefix="/prometheus", require={"X-Scope-OrgID": "ml"}, log=log) as url:
        code, _, err = _report(url, models)
        assert code == 3 and "refused the credentials (HTTP 401)" in err and "--tenant" in err
        code, _, err = _report(url, models, "--tenant", "ml")
        assert code == 0, err
        code, _, err = _report(url, models, "--header", "X-Scope-OrgID: ml")
        assert code == 0, err


def test_thanos_partial_response_parameter_and_warning(models: Path) -> None:
    log: list = []
    with fs.serve(fs.with_warnings, log=log) as url:
        code, out, _ = _report(
            url, models, "--partial-response", "deny", "--keep-latest", "0", "--min-age", "0"
        )
    assert {form.get("partial_response") for _, form, _ in log} == {"false"}  # Thanos
    assert {form.get("deny_partial_response") for _, form, _ in log} == {"1"}  # VictoriaMetrics cluster
    assert code == 4  # the warning on a 200 answer still makes would-be-safe rows unknown
    assert '"unknown"' in out


def test_bearer_token_file_is_reread_and_never_printed(models: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(SECRET + "\n")
    with fs.serve(fs.full_answer, require={"Authorization": f"Bearer {SECRET}"}) as url:
        code, out, err = _report(url, models, "--bearer-token-file", str(token), "-v")
        assert code == 0, err
        token.write_text("rotated-token-value\n")  # as Kubernetes rotates a mounted token
        code, out, err = _report(url, models, "--bearer-token-file", str(token))
        assert code == 3 and "refused the credentials" in err
    assert SECRET not in out + err


def test_basic_auth_password_from_env_and_file(models: Path, tmp_path: Path) -> None:
    expected = "Basic " + base64.b64encode(f"svc:{SECRET}".encode()).decode()
    with fs.serve(fs.full_answer, require={"Authorization": expected}) as url:
        code, out, err = _report(
            url, models, "--basic-auth-user", "svc", env={"RETIRE_BASIC_AUTH_PASSWORD": SECRET}
        )
        assert code == 0, err
        pw = tmp_path / "pw"
        pw.write_text(SECRET)
        code, out2, err2 = _report(
            url, models, "--basic-auth-user", "svc", "--basic-auth-password-file", str(pw)
        )
        assert code == 0, err2
        code, _, err3 = _report(url, models, "--basic-auth-user", "svc")
        assert code == 2 and "RETIRE_BASIC_AUTH_PASSWORD" in err3
    assert SECRET not in out + err + out2 + err2 + err3


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with fs.serve(fs.full_answer, tls=ctx) as url:
        yield url, bundle


def test_tls_needs_the_ca(models: Path, tls_server: tuple[str, Path]) -> None:
    url, bundle = tls_server
    code, _, err = _report(url, models)
    assert code == 3 and "not trusted" in err and "--ca-file" in err
    code, _, err = _report(url, models, "--ca-file", str(bundle))
    assert code == 0, err


def test_https_to_a_plain_http_server_suggests_http(models: Path) -> None:
    """Not the client-certificate hint: the one thing to change is the scheme (#26)."""
    with fs.serve(fs.full_answer) as url:
        code, _, err = _report(url.replace("http://", "https://"), models)
    assert code == 3 and err.count("\n") == 1
    assert "plain HTTP" in err and f"try --prometheus {url}" in err and "--client-cert" not in err


def test_insecure_warns_loudly(models: Path, tls_server: tuple[str, Path]) -> None:
    url, _ = tls_server
    code, _, err = _report(url, models, "--insecure")
    assert code == 0
    assert "WARNING: --insecure" in err


def test_mutual_tls(models: Path, ca: trustme.CA, tmp_path: Path) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    bundle, cert, key = tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key"
    ca.cert_pem.write_to_path(str(bundle))
    client = ca.issue_cert("retire-client")
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    with fs.serve(fs.full_answer, tls=ctx) as url:
        code, _, err = _report(url, models, "--ca-file", str(bundle))
        assert code == 3, err
        code, _, err = _report(
            url, models, "--ca-file", str(bundle), "--client-cert", str(cert), "--client-key", str(key)
        )
        assert code == 0, err


@pytest.fixture(scope="module")
def limited_prometheus(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[str]:
    """A real Prometheus that refuses queries holding more than 9,000 samples (HTTP 422)."""
    root = tmp_path_factory.mktemp("limited")
    om = root / "history.om"
    write_openmetrics(om, [sc.BASIC], end=sc.END, history=sc.HISTORY, interval=60)
    backfill(om, root / "tsdb")
    with Prometheus(root / "tsdb", root / "prom", "--query.max-samples=9000") as server:
        yield server.url


@pytest.mark.prometheus
def test_sample_limit_splits_by_model_automatically(limited_prometheus: str, lab: Lab) -> None:
    # Without --coverage, the metric_presence range query is the biggest one (about 10,400 samples).
    args = lab.args(sc.BASIC, "--format", "json", coverage=False)
    args[args.index("--prometheus") + 1] = limited_prometheus
    run = run_cli("report", *args)
    assert run.exit_code == 0, run.stderr
    doc = run.json()
    assert statuses(doc) == sc.BASIC_EXPECTED
    notes = doc["header"]["notes"]  # type: ignore[index]
    assert any("split by model after" in n and "HTTP 422" in n for n in notes), notes
    forced = run_cli("report", *args, "--split-by-model")
    assert statuses(forced.json()) == sc.BASIC_EXPECTED


@pytest.mark.prometheus
def test_too_big_even_per_model_is_an_actionable_error(tmp_path: Path, lab: Lab) -> None:
    om = tmp_path / "history.om"
    write_openmetrics(om, [sc.BASIC], end=sc.END, history=sc.HISTORY, interval=60)
    backfill(om, tmp_path / "tsdb")
    with Prometheus(tmp_path / "tsdb", tmp_path / "prom", "--query.max-samples=500") as server:
        args = lab.args(sc.BASIC)
        args[args.index("--prometheus") + 1] = server.url
        run = run_cli("report", *args)
    assert run.exit_code == 3
    line = run.stderr.strip()
    assert line.startswith("retire: error:") and "too big" in line
    assert "--window" in line and "--selector" in line
