"""Descriptors closed exactly once. `archive_dir_for` once closed the archive's descriptor a
second time on leaving; by then another thread could own that number, so the second close cut
its file or socket: the flaky "cannot reach Prometheus: Bad file descriptor" of the offload
tests, and a `mkdir` under the wrong directory. A real second thread opens and uses files while
the archive directories are made; it must never see its descriptor closed under it."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from retire.actions.offload import archive_dir_for


def test_making_archive_directories_never_closes_another_threads_descriptor(tmp_path: Path) -> None:
    stop = threading.Event()
    seen: list[OSError] = []

    def other() -> None:
        while not stop.is_set():
            fd = os.open("/dev/null", os.O_RDONLY)
            try:
                for _ in range(5):
                    os.fstat(fd)
                os.close(fd)
            except OSError as e:
                seen.append(e)

    fds_before = set(os.listdir("/proc/self/fd"))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    try:
        for i in range(1500):
            archive_dir_for(tmp_path, f"m{i}")
    finally:
        stop.set()
        thread.join(10)
        sys.setswitchinterval(interval)
    assert seen == []
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted(f"m{i}" for i in range(1500))
    leaked = set(os.listdir("/proc/self/fd")) - fds_before
    assert not leaked, leaked
