"""Mailing the report: one multipart message (text + HTML, optional JSON/CSV attachments) to every
recipient in one SMTP transaction, or to nobody.

smtplib's `send_message` delivers to the recipients the server accepts and drops the rest; for a
report that someone will act on, a partial delivery is worse than a clear failure, so recipients
are given one by one and a single refusal aborts the transaction (RSET) before any data is sent.

`--smtp-timeout` bounds the whole conversation (connect, greeting, TLS, login, every reply), not
each read as smtplib's socket timeout does: a server that trickles its greeting a byte at a time
would hold that forever. A `retire.deadline.Watchdog` shuts the socket down when the time is up.
The report's mail also ends by the run's `--deadline`; the failure notice gets its own
`--smtp-timeout` even when the deadline is what failed the run, so the team still hears of it.
"""

from __future__ import annotations

import contextlib
import email.policy
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any

from retire import redact
from retire.deadline import NO_DEADLINE, Deadline, Watchdog
from retire.errors import MailError

if TYPE_CHECKING:
    from retire.advisor import Report
    from retire.advisor.changes import History
    from retire.errors import RetireError


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    starttls: bool
    ssl: bool
    user: str | None
    password: str | None = field(repr=False)
    ca_file: str | None
    timeout: float


@dataclass(frozen=True)
class Mailing:
    """Who gets the report, when and how (built from --mail-* and --smtp-* by retire.config.build)."""

    sender: str
    recipients: tuple[str, ...]
    smtp: SmtpSettings
    when: str = "always"  # or "actionable": only when something is safe, unknown or changed
    attach: tuple[str, ...] = ()  # the formats to attach (retire.formats.ATTACHABLE)
    source: str | None = None  # the Prometheus URL, named (without its password) in a failure mail


def send_report(
    mailing: Mailing, report: Report, history: History | None = None, deadline: Deadline = NO_DEADLINE
) -> str:
    """Mail the report as --mail-* say (text, HTML, attachments); returns what was done, in one
    line for stderr. With --mail-when actionable, nothing is sent when nothing is safe, unknown
    or changed since the last report. The conversation ends by the run's `deadline`."""
    from retire.formats import View, mail_parts

    s = report.summary
    if mailing.when == "actionable" and not (s.safe or s.unknown or (history and history.changes)):
        return "nothing to act on; no mail sent (--mail-when actionable)"
    body: dict[str, str] = {}  # MIME type -> text, for each alternative of the body
    attachments = {}
    for fmt in mail_parts(mailing.attach):
        assert fmt.mail is not None and fmt.report is not None  # tests/formats/test_registry.py
        if fmt.mail.filename is None:
            body[fmt.mail.mime] = fmt.report(report, View(history=history))
        else:  # a file for scripts: the report alone, as `--format NAME` prints it without --since-last
            attachments[fmt.mail.filename] = (fmt.report(report, View()), fmt.mail.mime)
    message = build(
        sender=mailing.sender,
        recipients=mailing.recipients,
        subject_line=subject(report),
        text=body["text/plain"],
        html=body["text/html"],
        attachments=attachments,
    )
    send(message, mailing.sender, mailing.recipients, mailing.smtp, deadline)
    return f"mailed the report to {', '.join(mailing.recipients)}"


def send_failure(mailing: Mailing, error: RetireError) -> str:
    """Mail that no report could be made, and why: nothing is listed as safe. Returns what was
    done, in one line for stderr."""
    from retire.escape import printable
    from retire.formats import html
    from retire.sources.prometheus.connection import redact_url

    source = redact_url(mailing.source) if mailing.source else None
    reason = printable(redact.scrub(error.message))  # one line: it goes into the Subject header too
    text = f"retire could not make the report:\n\n  {reason}\n\n"
    text += "No version is listed as safe to offload: without the evidence, none can be.\n"
    message = build(
        sender=mailing.sender,
        recipients=mailing.recipients,
        subject_line=f"retire: report FAILED, nothing listed as safe ({reason[:80]})",
        text=text,
        html=html.render_failure(reason, source),
    )
    send(message, mailing.sender, mailing.recipients, mailing.smtp)
    return f"mailed the failure to {', '.join(mailing.recipients)}"


def subject(report: Report) -> str:
    """The outcome at a glance: `retire: 3 versions safe to offload (12.4 GiB), 1 unknown`."""
    from retire.advisor import human_bytes

    s = report.summary
    noun = "version" if s.safe == 1 else "versions"
    text = f"retire: {s.safe} {noun} safe to offload ({human_bytes(s.safe_bytes)})"
    if s.unknown:
        text += f", {s.unknown} unknown"
    return text


def build(
    *,
    sender: str,
    recipients: tuple[str, ...],
    subject_line: str,
    text: str,
    html: str,
    attachments: dict[str, tuple[str, str]] | None = None,
) -> EmailMessage:
    """attachments: file name -> (content, MIME type), e.g. {"report.json": (doc, "application/json")}."""
    msg = EmailMessage()
    msg["Subject"] = subject_line
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    # Quoted-printable keeps every line under SMTP's 998-character limit (long report lines,
    # one-line HTML rows) and survives 7-bit relays; the text stays readable in raw form.
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    for name, (content, mime) in (attachments or {}).items():
        main, _, sub = mime.partition("/")
        if main == "text":
            msg.add_attachment(content, subtype=sub, filename=name)
        else:
            msg.add_attachment(content.encode(), maintype=main, subtype=sub, filename=name)
    return msg


class _Bounded(smtplib.SMTP):
    """smtplib's client with every socket it talks through known to a watchdog: the plain one,
    then the TLS one (SMTPS from the start, or after STARTTLS). Each TLS handshake's own bound is
    the time left; the watchdog cannot reach a socket while it is being wrapped."""

    def __init__(self, dog: Watchdog, tls: ssl.SSLContext | None) -> None:
        self._dog = dog
        self._tls = tls
        super().__init__(timeout=dog.seconds)  # no host: connect() is called under the watchdog

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        self._host = host  # what STARTTLS checks the certificate against (set by __init__ otherwise)
        # smtplib's own hook for making the connection (not in typeshed)
        sock: socket.socket = super()._get_socket(host, port, min(timeout, self._dog.left()))  # type: ignore[misc]
        self._dog.watch(sock)
        if self._tls is None:
            return sock
        sock.settimeout(self._dog.left())
        wrapped = self._tls.wrap_socket(sock, server_hostname=host)
        self._dog.watch(wrapped)
        return wrapped

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        if self.sock is not None:
            self.sock.settimeout(self._dog.left())
        reply: tuple[int, bytes] = super().starttls(*args, **kwargs)
        if self.sock is not None:
            self._dog.watch(self.sock)
        return reply


def send(
    msg: EmailMessage,
    sender: str,
    recipients: tuple[str, ...],
    smtp: SmtpSettings,
    deadline: Deadline = NO_DEADLINE,
) -> None:
    """Deliver to all recipients or none; every failure is a MailError with the server's words.
    The whole conversation ends within --smtp-timeout, and by the run's `deadline`."""
    where = f"SMTP server {smtp.host}:{smtp.port}"
    limit, by_run = deadline.limit(smtp.timeout)
    if by_run:
        late = MailError(
            f"{where} did not answer before the run's --deadline ({deadline.shown}) passed; nothing "
            "was sent (raise --deadline)"
        )
    else:
        late = MailError(f"{where} did not answer within {smtp.timeout:g}s; nothing was sent")
    if limit <= 0:
        raise late
    context = ssl.create_default_context(cafile=smtp.ca_file)
    dog = Watchdog(limit)
    try:
        with dog:
            client = _Bounded(dog, context if smtp.ssl else None)
            try:
                _converse(client, context, msg, sender, recipients, smtp, where)
            finally:
                if not dog.fired:  # QUIT, politely; the message is sent or refused already
                    with contextlib.suppress(smtplib.SMTPException, OSError):
                        client.quit()
                client.close()
    except MailError:
        raise
    except (smtplib.SMTPException, OSError) as e:  # ssl.SSLError and TimeoutError are OSErrors
        if dog.fired or isinstance(e, TimeoutError) or "timed out" in str(e):
            raise late from None  # whatever the cut socket made smtplib say
        raise _failure(e, where, smtp) from None


def _converse(
    client: smtplib.SMTP,
    context: ssl.SSLContext,
    msg: EmailMessage,
    sender: str,
    recipients: tuple[str, ...],
    smtp: SmtpSettings,
    where: str,
) -> None:
    code, reply = client.connect(smtp.host, smtp.port)
    if code != 220:
        raise smtplib.SMTPConnectError(code, reply)
    client.ehlo()
    if smtp.starttls:
        client.starttls(context=context)
        client.ehlo()
    if smtp.user:
        assert smtp.password is not None
        client.login(smtp.user, smtp.password)
    code, reply = client.mail(sender)
    if code != 250:
        raise MailError(f"{where} refused the sender {sender}: {code} {reply.decode(errors='replace')}")
    for rcpt in recipients:
        code, reply = client.rcpt(rcpt)
        if code not in (250, 251):
            client.rset()
            raise MailError(
                f"{where} refused recipient {rcpt}: {code} {reply.decode(errors='replace')}; "
                "nothing was sent to anyone"
            )
    # CRLF line ends: smtplib's data() does not convert the bare LFs of as_bytes().
    code, reply = client.data(msg.as_bytes(policy=email.policy.SMTP))
    if code != 250:
        raise MailError(f"{where} refused the message: {code} {reply.decode(errors='replace')}")


def _failure(e: Exception, where: str, smtp: SmtpSettings) -> MailError:
    """A failure that is not the clock's, in one line."""
    if isinstance(e, smtplib.SMTPAuthenticationError):
        return MailError(
            f"{where} refused the login of {smtp.user}: {e.smtp_code}; check --smtp-user and "
            "RETIRE_SMTP_PASSWORD"
        )
    if isinstance(e, smtplib.SMTPNotSupportedError):
        return MailError(f"{where} does not support that ({e}); check --smtp-starttls/--smtp-ssl")
    if isinstance(e, smtplib.SMTPServerDisconnected):
        return MailError(f"{where} closed the connection before the message was sent; nothing was sent")
    if isinstance(e, ssl.SSLError):
        return MailError(f"TLS with {where} failed ({e.reason}); pass its CA with --smtp-ca-file")
    reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
    if isinstance(e, ConnectionRefusedError):
        return MailError(
            f"cannot send mail through {where}: {reason}; nothing listens at {smtp.host} port "
            f"{smtp.port}: check --smtp-host and --smtp-port (465 with --smtp-ssl, 587 with "
            "--smtp-starttls, 25 otherwise), and that the mail server is up"
        )
    return MailError(f"cannot send mail through {where}: {reason}")
