"""Getting a report to people: files written all or nothing, mail, and the history that says what
changed since the last run."""
