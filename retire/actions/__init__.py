"""What `retire` changes on disk, on the user's order: moving safe versions to an archive and back.

Safety properties, each tested for real (tests/actions/test_offload.py, tests/actions/test_offload_safety.py):
- only versions whose verdict is `safe` in a report made immediately before acting, at the present,
  are moved; a version that got a call since the plan was made is skipped and reported (plan.py);
- everything read from outside is untrusted: a plan must name exactly what the fresh scan finds
  (same source, same destination, same archive), and a journal record must have the right shape
  and paths (absolute, normalised, the destination exactly `<archive>/models/<model>/<name>`);
- a source is a real directory (or a TorchServe `.mar` file) reached from `/` without a single
  symlink (model roots are resolved once, when they are named); the destination is reached the
  same way inside the archive, whose directories retire creates itself, never following a link
  (paths.py);
- model and version names must be plain path components (no `/`, `.`, `..`, NUL or control
  characters);
- nothing is ever deleted: a move is an atomic rename on one filesystem; across filesystems it is
  a copy to `<dst>.partial` (iterative, files fsynced), verified entry by entry (type, mode, size,
  SHA-256, link target), renamed into place, journaled as verified, and only then is the source
  removed (step.py, copying.py);
- every step is appended to a journal (`<archive>/journal.jsonl`, JSON lines, fsynced) *before* it
  is done and marked done after; a failure (no space, I/O error) undoes the step's partial copy
  and journals it as failed, and a crash at any point leaves a state that `--resume` completes
  (journal.py);
- one run at a time per archive (`<archive>/.lock`) and per model root (a lock on the root
  directory itself); the locks are taken without waiting (a held lock is a refusal), and the
  re-check made under them ends by the run's `--deadline`, so a slow server cannot hold them past
  it; once the deadline has passed no further move starts (one under way is finished: a move is
  never cut midway), and the locks go with the run (locks.py, offload.py);
- the archive must not be inside a model root (TF Serving would serve it), nor a root inside it.

The plan itself (Move, Plan and its JSON) is pure data in advisor/plan.py, printed by
formats (text.py, json.py); here it is made against the disk and carried out.
"""
