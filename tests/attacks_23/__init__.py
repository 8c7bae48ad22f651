"""Attacks on the issue #22 refactor (no intended behaviour change), each compared side by side
with the code before it (feeefdc); every attack here behaved the same before and after, so they
stay as plain tests guarding the moved code."""
