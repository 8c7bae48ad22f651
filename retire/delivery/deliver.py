"""Where a report goes besides stdout: the mail (--mail-to) and the state file (--since-last).

`Delivery` holds what `retire report` needs for both, checked before any query (a bad password
file or a --since-last file that is not a report is a usage error, exit 2, before anything is
sent), so the command reads as: check, make the report (mailing the failure if it cannot be
made), render, write, deliver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from retire.deadline import NO_DEADLINE, Deadline
from retire.errors import RetireError

if TYPE_CHECKING:
    from retire.advisor import Report
    from retire.advisor.changes import History
    from retire.delivery.mail import Mailing
    from retire.formats import Format

Say = Callable[[str], None]


@dataclass(frozen=True)
class Delivery:
    mailing: Mailing | None = None
    since_last: Path | None = None
    deadline: Deadline = NO_DEADLINE

    def check(self) -> None:
        """Refuse, before any query, a --since-last file retire would replace though it is not a
        report of its own."""
        from retire.delivery import history

        if self.since_last is not None:
            history.check(self.since_last)

    def sparklines(self, shown: Format) -> bool:
        """Whether the hourly traffic must be read: the format shown or a mailed part draws it."""
        from retire.formats import mail_parts

        parts = mail_parts(self.mailing.attach) if self.mailing is not None else ()
        return any(f.sparklines for f in (shown, *parts))

    def made(self, make: Callable[[], Report], say: Say, err: Say) -> Report:
        """`make()`'s report; when it cannot be made, the mail says so (nothing listed as safe)
        before the error goes on. The failure mail has its own --smtp-timeout, even past the
        deadline: the team must hear of it. If that mail fails too, the cause is said first."""
        from retire.delivery import mail

        try:
            return make()
        except RetireError as e:
            if self.mailing is not None:
                try:
                    say(mail.send_failure(self.mailing, e))
                except RetireError:
                    err(e.message)  # the cause first, then why nobody was told (exit 5)
                    raise
            raise

    def changes(self, report: Report) -> History | None:
        """What changed since the report kept in --since-last (None without it)."""
        from retire.delivery import history

        return history.since(self.since_last, report) if self.since_last is not None else None

    def deliver(self, report: Report, changes: History | None, say: Say) -> None:
        """Mail the report, then keep it for the next run's comparison."""
        from retire.delivery import history, mail

        if self.mailing is not None:
            say(mail.send_report(self.mailing, report, changes, self.deadline))
        if self.since_last is not None:
            history.save(self.since_last, report)
