"""Which worker holds which connection: what `ss -tnp` shows, read from /proc (no ss, no special permissions)."""
from __future__ import annotations

import os
from pathlib import Path

ESTABLISHED = "01"


def held_by_worker(port: int, pids: list[int] | set[int]) -> dict[int, int]:
    """Established connections to this local port held by each of these processes (by their socket descriptors)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == ESTABLISHED and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    held = {}
    for pid in pids:
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except FileNotFoundError:
            continue  # exited meanwhile
        count = 0
        for fd in descriptors:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            count += link.startswith("socket:[") and link[8:-1] in inodes
        held[pid] = count
    return held
