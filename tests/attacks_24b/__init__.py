"""Attacks on the reports' reading of the unload journal (#24, commit 9e31bcb: `--archive-dir` for
report, safe-list, plan, offload, unload and restore; a version retire unloaded and has not
loaded back is `unloaded`). The attacks that worked (fixed since) are the tests in
test_report_unloaded_attacks.py; these are the attacks that were tried and held.

Disguises of absence
- A journal present and read: unloaded versions are `unloaded` with the flag, RETIRE_ARCHIVE_DIR,
  `archive_dir` in a config file, `~/...` in the env var (expanded), a relative --archive-dir
  (from the working directory; the command to copy then names it relative too), a symlinked
  archive and an archive named through `..` (both resolved).
- A relative `archive_dir` in a config file is read from the working directory, not the
  file's directory, as every other path in the config file: consistent, not a new hole.
- Triton numbers with leading zeros: Triton never serves `02/` (retire.servers.triton), and
  the journal's versions are the report's own (canonical) row versions, so `02` in a journal
  names a version no report has; TorchServe's `1.0` vs `1` likewise (the journal takes the
  row's spelling, and `--undo` reads it back the same way).
- A begun, never-finished unload counts as unloaded; a failed unload (loaded back as it was)
  does not; an unload then a failed or begun-only reload stays unloaded; `--undo --only` of some
  versions of a finished unload leaves the others unloaded; an unload after a reload is
  unloaded again; a reload with a lower step number written later does not load back.
- A journal record whose `kind` differs from the report's preset still makes the row unloaded
  (only the command to copy is wrong: an xfail).

Paths and files
- unload.jsonl a symlink, a directory, mode 000, or the archive mode 000 (run as root without
  the DAC capabilities, via setpriv): one line, exit 2. (A parent without search permission is
  a traceback: an xfail.)
- A torn last line (the `done` of a crash) is cut and the begun step keeps the row unloaded; a
  torn line that is not the last, non-UTF-8, a BOM, `[1,2]`, deeply nested brackets: exit 2.
- 200,000 records: read in about 4 s (the whole file is read into memory; no limit).

Edited records
- step 0, 1.0, a boolean or missing; an unknown phase or op; `kind` not a string; versions a
  string or holding `/`, `..` or control characters; a model with control characters; time
  text, NaN, inf or a boolean; a server with a space, a newline, `file://` or an escape: exit 2,
  one line. A step of 10**400 is accepted and harmless.

Output
- Markup (`[bold]`, `<script>`) and bidi overrides in the journal's server or a model name are
  escaped in the table and markdown; CSV carries them exactly by design (formats/__init__).
  The command to copy is shell-quoted.

Servers
- A --server that says loaded clears the unload: the documented rule (it can be told apart
  only by asking the server retire unloaded from; see the replica xfails for the hole).
- A --server that never answers or trickles: the report ends within --timeout; nothing
  retire unloaded comes out safe (test_a_server_that_hangs_or_trickles_never_clears_an_unload).

Commands
- plan, offload, offload --resume, unload (and --undo) and restore without an archive: one
  line, exit 2, naming the flag, the env var and the config key. `offload --resume` and
  `restore` take the archive from RETIRE_ARCHIVE_DIR or a config file's `archive_dir`.

Found by the whole suite, not an attack: `retire plan` without an archive is now retire's own
one-line error (exit 2), not click's usage error, so it no longer ends with the `--help` hint that
tests/hostile/test_hostile.py::test_14_click_usage_errors_are_one_line_exit_2[args2---archive-dir]
asks for: that existing test fails at 9e31bcb (left as it is: never weakened here). Fixed on
main since: the message names `retire plan --help`.

Not tried: the real Triton e2e (tests/e2e/test_unload_triton.py) was not run; an archive on
another filesystem (no second filesystem here: the dangling-symlink xfail stands for an
unmounted one; an empty mount point cannot be told from a new archive).
"""
