"""Hostile input and secrets (issue 14): no traceback, no leaked secret, no injection into what
people and scripts read. Network cases run against real hostile servers on 127.0.0.1
(tests/hostile_servers.py); each numbered case of the issue has a test named after it."""

from __future__ import annotations

import base64
import json
import os
import shlex
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from retire.lab.servers import free_port
from tests import hostile_servers as hs
from tests.conftest import run_cli
from tests.smtp_servers import Inbox, smtp

ROOT = Path(__file__).resolve().parents[2]

# Fake secrets, distinctive so a grep of any output finds them. None of them is real.
TOKEN = "tok-AbC123xyz789"
SHORT_TOKEN = "Q7"
PASSWORD = "pw-Secret-42"
HEADER_VALUE = "hdr-Value-99zz"
SMTP_PASSWORD = "smtp-Pw-77qq"
USER = "svc-retire"


def forms(secret: str) -> list[str]:
    """A secret as it may come back: as is, base64 (Basic credentials), URL-encoded."""
    raw = secret.encode()
    return [secret, base64.b64encode(raw).decode().rstrip("="), quote(secret, safe="")]


def assert_no_secret(
    *texts: str, secrets: tuple[str, ...] = (TOKEN, PASSWORD, HEADER_VALUE, SMTP_PASSWORD)
) -> None:
    every = [f for s in secrets for f in forms(s)]
    every += forms(f"{USER}:{PASSWORD}")
    for text in texts:
        for form in every:
            assert form not in text, f"a secret leaked (form {every.index(form)})"


def one_line(stderr: str, code: int, *needles: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("retire: error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def models(tmp_path: Path) -> Path:
    for v in ("1", "2"):
        (tmp_path / "models" / "m" / v).mkdir(parents=True)
        (tmp_path / "models" / "m" / v / "saved_model.pb").write_bytes(b"x" * 10)
    return tmp_path / "models"


def report(url: str, models: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    run = run_cli(
        "report",
        "--prometheus",
        url,
        "--model-dir",
        str(models),
        "--keep-latest",
        "0",
        "--min-age",
        "0",
        *extra,
        env=env,
    )
    return run.exit_code, run.stdout, run.stderr


def secret_file(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


# 1. A bearer-token file with an inner newline.
def test_01_token_file_with_inner_newline_is_refused_without_showing_it(tmp_path: Path, models: Path) -> None:
    token = secret_file(tmp_path, "token", f"{TOKEN[:8]}\n{TOKEN[8:]}\n".encode())
    with hs.serve(hs.normal) as url:
        code, out, err = report(url, models, "--bearer-token-file", token)
    assert code == 2
    one_line(err, 2, "--bearer-token-file", "not shown")
    assert_no_secret(out, err, secrets=(TOKEN[:8], TOKEN[8:]))


# 2. `--header 'Authorization Bearer eyJ...'` (colon missing).
def test_02_header_without_colon_shows_nothing_of_it(models: Path) -> None:
    with hs.serve(hs.normal) as url:
        code, out, err = report(url, models, "--header", f"Authorization Bearer {TOKEN}")
    assert code == 2
    one_line(err, 2, "--header", "header #1", "not 'Name: value'")
    assert "Bearer" not in err
    assert_no_secret(out, err, secrets=(TOKEN, TOKEN[:4]))


# 3. Secrets of the wrong type in the config file.
@pytest.mark.parametrize(
    ("line", "key", "kind"),
    [
        (f'basic_auth_password = ["{PASSWORD}"]', "basic_auth_password", "expected text, got a list"),
        (f'smtp_password = {{ value = "{SMTP_PASSWORD}" }}', "smtp_password", "expected text, got a table"),
        (f'header = {{ Authorization = "Bearer {TOKEN}" }}', "header", "got a table"),
        (f'header = [["X-Key: {HEADER_VALUE}"]]', "header", "expected text, got a list"),
        (f'tenant = ["{HEADER_VALUE}"]', "tenant", "expected text, got a list"),
    ],
    ids=["password list", "smtp password table", "header table", "header nested list", "tenant list"],
)
def test_03_config_type_errors_name_key_and_type_never_the_value(
    tmp_path: Path, models: Path, line: str, key: str, kind: str
) -> None:
    cfg = tmp_path / "retire.toml"
    cfg.write_text(line + "\n")
    code, out, err = report(f"http://127.0.0.1:{free_port()}", models, "--config", str(cfg))
    assert code == 2
    one_line(err, 2, key, kind)
    assert_no_secret(out, err)


# 4. A server or proxy that echoes the request: Basic credentials base64, short tokens.
def test_04_echoed_basic_credentials_are_scrubbed_in_every_form(tmp_path: Path, models: Path) -> None:
    env = {"RETIRE_BASIC_AUTH_PASSWORD": PASSWORD}
    inbox = Inbox()
    with hs.serve(hs.echo_error) as url, smtp(inbox) as port:
        code, out, err = report(
            url,
            models,
            "--basic-auth-user",
            USER,
            "--header",
            f"X-Api-Key: {HEADER_VALUE}",
            "--mail-to",
            "ops@example.com",
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            str(port),
            env=env,
        )
    assert code == 3
    line = one_line(err.replace("retire: mailed the failure to ops@example.com", ""), 3, "bad request")
    assert "Authorization: Basic ***" in line and "X-Api-Key: ***" in line
    ((_, _, msg),) = inbox.messages
    assert_no_secret(out, err, msg.as_string(), str(msg["Subject"]))


def test_04_short_token_is_scrubbed_where_it_is_the_credential(tmp_path: Path, models: Path) -> None:
    token = secret_file(tmp_path, "token", f"{SHORT_TOKEN}\n".encode())
    with hs.serve(hs.echo_error) as url:
        code, _, err = report(url, models, "--bearer-token-file", token)
    assert code == 3
    line = one_line(err, 3)
    assert "Authorization: Bearer ***" in line, line
    assert f"Bearer {SHORT_TOKEN}" not in line
    assert "bad request" in line  # the rest of the message is intact


def test_04_echoed_secrets_stay_out_of_the_report_header(tmp_path: Path, models: Path) -> None:
    token = secret_file(tmp_path, "token", f"{TOKEN}\n".encode())
    with hs.serve(hs.echo_warning) as url:
        code, out, err = report(
            url, models, "--bearer-token-file", token, "--tenant", HEADER_VALUE, "--format", "json"
        )
    assert code == 4, err  # warnings: unknown, never safe
    doc = json.loads(out)
    assert any("Bearer ***" in w for w in doc["header"]["warnings"]), doc["header"]["warnings"]
    assert_no_secret(out, err)


# 5. A redirect to another port or host must not carry --header values or the tenant.
@pytest.mark.parametrize("creds", ["header", "tenant", "token", "url"])
def test_05_cross_origin_redirect_is_refused_and_the_other_server_gets_nothing(
    tmp_path: Path, models: Path, creds: str
) -> None:
    elsewhere: list[hs.Request] = []
    token = secret_file(tmp_path, "token", TOKEN.encode())
    with hs.serve(hs.normal, log=elsewhere) as other:

        def redirect(request: hs.Request) -> hs.Answer:
            return hs.Answer(307, b"", "text/plain", {"Location": other + request.path})

        with hs.serve(redirect) as url:
            args = {
                "header": ["--header", f"X-Api-Key: {HEADER_VALUE}"],
                "tenant": ["--tenant", "team-a"],
                "token": ["--bearer-token-file", token],
                "url": [],
            }[creds]
            if creds == "url":
                url = url.replace("//", f"//{USER}:{PASSWORD}@")
            code, out, err = report(url, models, *args)
    assert code == 3
    one_line(err, 3, "redirected to another server", other.split("//")[1], "--prometheus")
    assert elsewhere == []  # not one request reached it, so no credential did
    assert_no_secret(out, err)


def test_05_same_origin_redirect_is_followed_with_credentials(models: Path) -> None:
    seen: list[hs.Request] = []

    def moved(request: hs.Request) -> hs.Answer:
        if request.path.startswith("/new/"):
            return hs.normal(hs.Request(request.method, request.path[4:], request.headers, request.form))
        return hs.Answer(308, b"", "text/plain", {"Location": "/new" + request.path})

    with hs.serve(moved, log=seen) as url:
        code, _, err = report(url, models, "--header", f"X-Api-Key: {HEADER_VALUE}", "--format", "json")
    assert code == 0, err
    assert all(r.headers.get("X-Api-Key") == HEADER_VALUE for r in seen if r.path.startswith("/new/"))


# 6. Values that used to end in a traceback: one line, exit 2.
CASES_6 = {
    "at inf": ["--at", "inf"],
    "at 1e18": ["--at", "1e18"],
    "at -1e18": ["--at", "-1e18"],
    "timeout 1e308": ["--timeout", "1e308"],
    "port 99999": ["--prometheus", "http://127.0.0.1:99999"],
    "port abc": ["--prometheus", "http://127.0.0.1:abc"],
    "bad IPv6 host": ["--prometheus", "http://[::1:9090"],
    "newline in URL": ["--prometheus", "http://127.0.0.1:9090/\nx"],
    "non-ASCII header value": ["--header", "X-Team: ml-équipe"],
    "mail-from with CR/LF": [
        "--mail-to",
        "a@example.com",
        "--mail-from",
        "a@example.com\r\nBcc: x@evil.example",
    ],
}


@pytest.mark.parametrize("args", CASES_6.values(), ids=CASES_6.keys())
def test_06_bad_values_are_one_line_exit_2(models: Path, args: list[str]) -> None:
    with hs.serve(hs.normal) as url:
        code, _, err = report(url, models, *args)
    assert code == 2, err
    one_line(err, 2)


def test_06_at_inf_in_toml(tmp_path: Path, models: Path) -> None:
    cfg = tmp_path / "retire.toml"
    cfg.write_text("at = inf\n")
    code, _, err = report(f"http://127.0.0.1:{free_port()}", models, "--config", str(cfg))
    assert code == 2
    one_line(err, 2, "at")


def test_06_binary_token_file(tmp_path: Path, models: Path) -> None:
    token = secret_file(tmp_path, "token", b"\xff\xfe\x00tok")
    with hs.serve(hs.normal) as url:
        code, _, err = report(url, models, "--bearer-token-file", token)
    assert code == 2
    one_line(err, 2, "--bearer-token-file", "not UTF-8")


def test_06_missing_smtp_ca_file(tmp_path: Path, models: Path) -> None:
    inbox = Inbox()
    out = tmp_path / "report.txt"
    with hs.serve(hs.normal) as url, smtp(inbox) as port:
        code, _, err = report(
            url,
            models,
            "--mail-to",
            "a@example.com",
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            str(port),
            "--smtp-starttls",
            "--smtp-ca-file",
            str(tmp_path / "nope.pem"),
            "-o",
            str(out),
        )
    assert code == 2
    one_line(err, 2, "--smtp-ca-file", "nope.pem")
    assert not out.exists() and inbox.messages == []


MODEL_CONFIGS = {
    "base_path: 5": 'config { name: "m" base_path: 5 }',
    'versions: "abc"': 'config { name: "m" base_path: "/x" model_version_policy { specific { versions: "abc" } } }',
    "num_versions: 1e400": 'config { name: "m" base_path: "/x" model_version_policy { latest { num_versions: 1e400 } } }',
    "label value not an integer": 'config { name: "m" base_path: "/x" version_labels { key: "stable" value: "x" } }',
    "policy not a message": 'config { name: "m" base_path: "/x" model_version_policy: 5 }',
    "bad escape": 'config { name: "m\\x" base_path: "/x" }',
}


@pytest.mark.parametrize("body", MODEL_CONFIGS.values(), ids=MODEL_CONFIGS.keys())
def test_06_model_config_values_of_the_wrong_type(tmp_path: Path, body: str) -> None:
    cfg = tmp_path / "models.config"
    cfg.write_text(f"model_config_list {{ {body} }}\n")
    with hs.serve(hs.normal) as url:
        run = run_cli("report", "--prometheus", url, "--model-config", str(cfg))
    assert run.exit_code == 2, run.stderr
    one_line(run.stderr, 2, str(cfg))


# 7. (and issue 12) Prometheus answers of the wrong shape: exit 3, one line, never a report.
def _raw(text: str) -> hs.Handler:
    """Every instant query answered with this exact JSON text (range queries answered normally)."""

    def handler(request: hs.Request) -> hs.Answer:
        if request.path.endswith("/query"):
            return hs.Answer(body=text.encode())
        return hs.normal(request)

    return handler


def _instant(data: object, **top: object) -> hs.Handler:
    return hs.with_data(lambda r: data if r.path.endswith("/query") else None, **top)


ODD_ANSWERS = {
    "label value a number": _instant(hs.series({"model_name": 5, "model_version": "1"})),
    "label value null": _instant(hs.series({"model_name": "m", "model_version": None})),
    "labels a list": _instant({"resultType": "vector", "result": [{"metric": ["m"], "value": [1, "0"]}]}),
    "timestamp NaN": _raw(
        '{"status":"success","data":{"resultType":"vector","result":'
        '[{"metric":{"model_name":"m","model_version":"1"},"value":[NaN,"0"]}]}}'
    ),
    "timestamp 1e400": _raw(
        '{"status":"success","data":{"resultType":"vector","result":'
        '[{"metric":{"model_name":"m","model_version":"1"},"value":[1e400,"0"]}]}}'
    ),
    "timestamp a string": _instant(hs.series({"model_name": "m", "model_version": "1"}, "0", "1")),
    "value a JSON number": _instant(hs.series({"model_name": "m", "model_version": "1"}, 0)),
    "value not a number": _instant(hs.series({"model_name": "m", "model_version": "1"}, "1_000")),
    "value out of range": _instant(hs.series({"model_name": "m", "model_version": "1"}, "1e400")),
    "warnings a string": hs.with_data(warnings="store down"),
    "infos an object": hs.with_data(infos={"a": 1}),
    "stats a string": _instant({"resultType": "vector", "result": [], "stats": "fast"}),
    "isPartial a string": hs.with_data(isPartial="yes"),
    "data a list": hs.with_data(lambda r: [1, 2]),
    "instant answered with a matrix": _instant({"resultType": "matrix", "result": []}),
    "range answered with a vector": hs.with_data(
        lambda r: {"resultType": "vector", "result": []} if r.path.endswith("/query_range") else None
    ),
}


@pytest.mark.parametrize("handler", ODD_ANSWERS.values(), ids=ODD_ANSWERS.keys())
def test_07_odd_prometheus_json_is_exit_3(models: Path, handler: hs.Handler) -> None:
    with hs.serve(handler) as url:
        code, out, err = report(url, models, "--format", "json")
    assert code == 3, err
    assert out == ""
    one_line(err, 3, "Prometheus at")


SERIES_ANSWERS = {
    "labels not strings": hs.with_data(lambda r: [{"instance": 5}] if r.path.endswith("/series") else None),
    "warnings a string": hs.with_data(lambda r: [] if r.path.endswith("/series") else None, warnings="down"),
}


@pytest.mark.parametrize("handler", SERIES_ANSWERS.values(), ids=SERIES_ANSWERS.keys())
def test_07_odd_series_api_answer_is_exit_3(models: Path, handler: hs.Handler) -> None:
    """The series API (asked with --coverage): label sets and warnings of the wrong type."""
    with hs.serve(handler) as url:
        code, out, err = report(url, models, "--format", "json", "--coverage", 'up{job="x"}')
    assert code == 3 and out == "", err
    one_line(err, 3, "series")


def test_07_instant_query_answered_with_matrix_says_so(models: Path) -> None:
    """Issue 12's check: a matrix where a vector was asked for is refused, naming both."""
    with hs.serve(
        _instant(
            {
                "resultType": "matrix",
                "result": [{"metric": {"model_name": "m", "model_version": "1"}, "values": [[1, "5"]]}],
            }
        )
    ) as url:
        code, out, err = report(url, models, "--format", "json")
    assert code == 3 and out == ""
    one_line(err, 3, "'matrix'", "'vector'")


def test_07_label_values_that_are_not_strings(models: Path) -> None:
    def handler(request: hs.Request) -> hs.Answer:
        if "/api/v1/label/" in request.path:
            return hs.Answer(body=b'{"status":"success","data":[1,2]}')
        return hs.normal(request)

    with hs.serve(handler) as url:
        code, _, err = report(url, models, "--split-by-model")
    assert code == 3
    one_line(err, 3, "label values")


# 8. An error text with CR/LF and --mail-to: exit 3, the failure mail goes out, one error line.
def test_08_error_text_with_crlf_is_mailed_and_printed_once(models: Path) -> None:
    def evil(request: hs.Request) -> hs.Answer:
        body = {"status": "error", "errorType": "bad_data", "error": "boom\r\nBcc: x@evil.example\r\n\x1b[2J"}
        return hs.Answer(400, json.dumps(body).encode())

    inbox = Inbox()
    with hs.serve(evil) as url, smtp(inbox) as port:
        code, _, err = report(
            url, models, "--mail-to", "ops@example.com", "--smtp-host", "127.0.0.1", "--smtp-port", str(port)
        )
    assert code == 3, err
    errors = [ln for ln in err.splitlines() if ln.startswith("retire: error:")]
    assert len(errors) == 1, err
    assert "boom\\r\\nBcc: x@evil.example" in errors[0] and "\x1b" not in err
    ((_, rcpts, msg),) = inbox.messages
    assert rcpts == ["ops@example.com"] and msg["Bcc"] is None
    assert "FAILED" in msg["Subject"] and "\n" not in msg["Subject"]


# 9. Rich markup in data, on a real terminal (a pty).
def test_09_rich_markup_in_labels_is_text_on_a_terminal(tmp_path: Path, models: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    names = ["[/]", "[bold]z", "[link=http://evil.example]x", "\x1b]0;pwned\x07t"]

    def answer(request: hs.Request) -> hs.Answer:
        if request.path.endswith("/query") and "max_over_time" in request.form.get("query", ""):
            result = [{"metric": {"model_name": n, "model_version": "1"}, "value": [1, "1"]} for n in names]
            return hs.Answer(
                body=json.dumps(
                    {"status": "success", "data": {"resultType": "vector", "result": result}}
                ).encode()
            )
        return hs.normal(request)

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 220, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    with hs.serve(answer) as url:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "retire",
                "report",
                "--prometheus",
                url,
                "--model-dir",
                str(models),
                "--keep-latest",
                "0",
                "--min-age",
                "0",
            ],
            stdout=slave,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        _, err = proc.communicate(timeout=60)
    os.close(master)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, err.decode()
    assert "\x1b[" in screen  # it did draw in colour
    for name in names[:3]:
        assert name in screen, screen
    assert "\x1b]0;pwned" not in screen and "\\x1b]0;pwned\\x07t" in screen  # the title stays
    assert "MarkupError" not in err.decode() and "Traceback" not in err.decode()


# 10. TSV: a directory `a<newline>bert` must not make a `while read` loop yield another path.
def test_10_tsv_safe_list_refuses_names_it_cannot_carry(tmp_path: Path, models: Path) -> None:
    (models / "a\nbert" / "1").mkdir(parents=True)  # protected by the inventory: never listed
    (models / "a").mkdir()  # an innocent model the split line would point at
    roots = [tmp_path / "bad\nroot", tmp_path / "tab\troot", tmp_path / "back\\slash"]
    for n, root in enumerate(roots):
        (root / f"x{n}" / "1").mkdir(parents=True)  # plain names under a root TSV cannot carry
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with hs.serve(hs.normal) as url:
        dirs = " ".join(f"--model-dir {shlex.quote(str(d))}" for d in [models, *roots])
        retire = f"{sys.executable} -m retire safe-list --prometheus {url} {dirs} --keep-latest 0 --min-age 0"
        loop = f"{retire} | while IFS=$'\\t' read -r model version path; do echo \"$path\"; done"
        run = subprocess.run(
            ["bash", "-c", loop], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
        )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [str(models / "m" / "1"), str(models / "m" / "2")]
    refused = [ln for ln in run.stderr.splitlines() if "not listed" in ln]
    assert len(refused) == 3 and any("bad\\nroot" in ln for ln in refused), run.stderr
    assert "--format json" in refused[0]


# 11. Control characters in labels and names; formulas in CSV.
def test_11_control_characters_are_escaped_in_every_human_format(tmp_path: Path, models: Path) -> None:
    (models / "evil\x1b]0;pwned\x07").mkdir()
    (models / "evil\x1b]0;pwned\x07" / "1").mkdir()

    def answer(request: hs.Request) -> hs.Answer:
        if request.path.endswith("/query") and "max_over_time" in request.form.get("query", ""):
            result = [
                {"metric": {"model_name": "\x1b[31mred\u202e", "model_version": "1"}, "value": [1, "1"]}
            ]
            return hs.Answer(
                body=json.dumps(
                    {
                        "status": "success",
                        "warnings": ["w\x1b[2Jx"],
                        "data": {"resultType": "vector", "result": result},
                    }
                ).encode()
            )
        return hs.normal(request)

    inbox = Inbox()
    with hs.serve(answer) as url, smtp(inbox) as port:
        outputs = []
        for fmt in ("table", "markdown"):
            code, out, err = report(url, models, "--format", fmt)
            outputs += [out, err]
        code, out, err = report(
            url, models, "--mail-to", "a@example.com", "--smtp-host", "127.0.0.1", "--smtp-port", str(port)
        )
        outputs += [out, err]
    assert code == 4, err
    ((_, _, msg),) = inbox.messages
    outputs += [msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()]
    for text in outputs:
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b[31mred\\u202e" in outputs[0] and "evil\\x1b]0;pwned\\x07" in outputs[0]


def test_11_csv_formula_cells_are_defused(models: Path) -> None:
    for name in ('=HYPERLINK("evil.example")', "+1", "-2", "@SUM(A1)"):
        (models / name / "1").mkdir(parents=True)
    with hs.serve(hs.normal) as url:
        code, out, _ = report(url, models, "--format", "csv")
        safe = run_cli(
            "safe-list",
            "--prometheus",
            url,
            "--model-dir",
            str(models),
            "--keep-latest",
            "0",
            "--min-age",
            "0",
            "--format",
            "csv",
        )
    assert code == 0
    import csv
    import io

    for text in (out, safe.stdout):
        cells = [row[0] for row in csv.reader(io.StringIO(text))][1:]
        assert '\'=HYPERLINK("evil.example")' in cells and "'+1" in cells and "'-2" in cells
        assert "'@SUM(A1)" in cells and "m" in cells
        assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)
        assert '"\'=HYPERLINK(""evil.example"")"' in text and '"\'+1"' in text  # quoted too


# 12. -o to a device: written in place, never replaced by a regular file (as root: /dev/null).
@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_12_output_paths_leave_a_character_device_a_device(tmp_path: Path, models: Path) -> None:
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    archive = tmp_path / "archive"
    with hs.serve(hs.normal) as url:
        common = ["--prometheus", url, "--model-dir", str(models), "--keep-latest", "0", "--min-age", "0"]
        runs = [
            run_cli("report", *common, "-o", str(device)),
            run_cli("report", *common, "--format", "json", "-o", str(device)),
            run_cli("report", *common, "--since-last", str(device)),
            run_cli("safe-list", *common, "-o", str(device)),
            run_cli("rules", "-o", str(device)),
            run_cli("plan", *common, "--archive-dir", str(archive), "-o", str(device)),
        ]
    for run in runs:
        assert run.exit_code in (0, 4), run.stderr
        assert stat.S_ISCHR(os.stat(device).st_mode), run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "null"]


def test_12_output_to_a_directory_is_refused(tmp_path: Path, models: Path) -> None:
    with hs.serve(hs.normal) as url:
        code, _, err = report(url, models, "-o", str(tmp_path))
    assert code == 2
    one_line(err, 2, "is a directory")


def test_12_symlink_to_a_report_stays_a_symlink(tmp_path: Path, models: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    with hs.serve(hs.normal) as url:
        code, _, err = report(url, models, "--format", "json", "-o", str(link))
    assert code == 0, err
    assert link.is_symlink() and json.loads(real.read_text())["rows"]


# 13. Ctrl-C stops within a second, exit 130, no output file.
def test_13_ctrl_c_stops_within_a_second(tmp_path: Path, models: Path) -> None:
    import signal
    import threading

    arrived, release = threading.Event(), threading.Event()

    def hang(request: hs.Request) -> hs.Answer:
        arrived.set()
        release.wait(60)
        return hs.normal(request)

    out = tmp_path / "out" / "report.json"
    out.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with hs.serve(hang) as url:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "retire",
                "report",
                "--prometheus",
                url,
                "--model-dir",
                str(models),
                "--timeout",
                "120s",
                "--format",
                "json",
                "-o",
                str(out),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        try:
            assert arrived.wait(30), "the query never reached the server"
            time.sleep(0.3)
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=10)
            took = time.monotonic() - started
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, stderr.decode()
    assert took < 1.5, took
    assert stdout == b""
    assert stderr.decode().strip().splitlines() == ["retire: error: interrupted"]
    assert list(out.parent.iterdir()) == []


# 14. Precedence of a bad variable, malformed URL exit 2, Click's usage errors as one line.
def test_14_bad_env_var_overridden_by_a_flag_is_ignored(models: Path) -> None:
    with hs.serve(hs.normal) as url:
        env = {"RETIRE_THRESHOLD": "lots", "RETIRE_TIMEOUT": "soon", "RETIRE_PROMETHEUS_URL": "http://:abc"}
        code, _, err = report(
            url, models, "--threshold", "0", "--timeout", "10s", "--format", "json", env=env
        )
    assert code == 0, err
    code, _, err = report(f"http://127.0.0.1:{free_port()}", models, env={"RETIRE_THRESHOLD": "lots"})
    assert code == 2
    one_line(err, 2, "RETIRE_THRESHOLD")


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "ftp://prom:9090", "prom:9090", "http://"])
def test_14_malformed_prometheus_url_is_a_usage_error(models: Path, url: str) -> None:
    code, _, err = report(url, models)
    assert code == 2
    one_line(err, 2, "--prometheus")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["report", "--bogus"], "No such option: --bogus"),
        (["report", "--threshold", "abc"], "--threshold"),
        (["plan"], "--archive-dir"),
        (["nope"], "No such command"),
    ],
)
def test_14_click_usage_errors_are_one_line_exit_2(args: list[str], needle: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "retire", *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == 2
    one_line(run.stderr, 2, needle, "--help")
    inproc = run_cli(*args)
    assert inproc.exit_code == 2
    one_line(inproc.stderr, 2, needle)


# Every secret-bearing error path at once: nothing leaks to stdout, stderr or mail.
def test_no_secret_in_any_error_path(tmp_path: Path, models: Path) -> None:
    token = secret_file(tmp_path, "token", f"{TOKEN}\n".encode())
    pw_file = secret_file(tmp_path, "pw", f"{PASSWORD}\n".encode())
    smtp_pw = secret_file(tmp_path, "smtp-pw", f"{SMTP_PASSWORD}\n".encode())
    texts: list[str] = []
    inbox = Inbox()
    handlers = [hs.echo_error, hs.echo_warning]
    with smtp(inbox) as port:
        mail = ["--mail-to", "ops@example.com", "--smtp-host", "127.0.0.1", "--smtp-port", str(port)]
        for handler in handlers:
            with hs.serve(handler) as url:
                host = url.split("//")[1]
                for creds in (
                    ["--bearer-token-file", token],
                    ["--basic-auth-user", USER, "--basic-auth-password-file", pw_file],
                ):
                    for extra in ([], ["--format", "json"], mail):
                        _, out, err = report(
                            url, models, *creds, "--header", f"X-Api-Key: {HEADER_VALUE}", *extra
                        )
                        texts += [out, err]
                # the password in the URL itself
                _, out, err = report(f"http://{USER}:{PASSWORD}@{host}", models, "--format", "json", *mail)
                texts += [out, err]
        # a wrong SMTP login: the server's refusal must not echo the password either
        _, out, err = report(
            f"http://127.0.0.1:{free_port()}",
            models,
            *mail,
            "--smtp-user",
            USER,
            "--smtp-password-file",
            smtp_pw,
        )
        texts += [out, err]
    texts += [m.as_string() for _, _, m in inbox.messages]
    assert len(inbox.messages) >= 6
    assert_no_secret(*texts)


def test_since_last_file_nested_too_deep_is_refused_and_kept(tmp_path: Path, models: Path) -> None:
    """Every input decoder: a --since-last file that is JSON nested past Python's recursion limit.
    It is not a retire report, so it is refused and kept (it used to be replaced: see
    tests/delivery/test_history_attacks.py, `--since-last /etc/passwd`); never a traceback."""
    last = tmp_path / "last.json"
    last.write_text("[" * 100_000)
    with hs.serve(hs.normal) as url:
        code, out, err = report(url, models, "--since-last", str(last))
    assert code == 2, err
    one_line(err, 2, "is not a retire report (RecursionError)")
    assert last.read_text() == "[" * 100_000 and out == ""


def test_prometheus_answer_nested_too_deep_is_exit_3(models: Path) -> None:
    deep = ("[" * 100_000).encode()
    with hs.serve(lambda r: hs.Answer(body=deep)) as url:
        code, _, err = report(url, models)
    assert code == 3
    one_line(err, 3, "not JSON")


def test_12_output_to_a_fifo_is_written_in_place(tmp_path: Path, models: Path) -> None:
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    with hs.serve(hs.normal) as url:
        code, _, err = report(url, models, "--format", "json", "-o", str(fifo))
    reader.join(10)
    assert code == 0, err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert json.loads(got[0])["rows"]


def test_11_plan_text_escapes_directory_names(tmp_path: Path) -> None:
    root = tmp_path / "ro\x1b]0;pwned\x07ot"
    (root / "m" / "1").mkdir(parents=True)
    with hs.serve(hs.normal) as url:
        run = run_cli(
            "plan",
            "--prometheus",
            url,
            "--model-dir",
            str(root),
            "--keep-latest",
            "0",
            "--min-age",
            "0",
            "--archive-dir",
            str(tmp_path / "archive"),
        )
    assert run.exit_code == 0, run.stderr
    assert "ro\\x1b]0;pwned\\x07ot" in run.stdout and "\x1b" not in run.stdout


def test_11_rules_comment_stays_one_line(tmp_path: Path) -> None:
    """`retire rules` writes its own command line into a YAML comment: a line break in an argument
    must not start a YAML line of its own (a line after it could be a rule)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "retire", "rules", "--rule-interval", "1m\n  "],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "# Made by: retire rules --rule-interval 1m\\n  \n" in run.stdout
