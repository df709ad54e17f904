"""Who a file's POSIX permissions let read it, as principals: ``user:OWNER``, ``group:GROUP``, ``everyone``.

Reading a file takes its read bit for you and the search (execute) bit of every folder on the way to it. A
principal is kept only when the file lets it read and every folder from the synced folder down lets it
pass: the owner through the owner bits of a folder it owns, the group through the group bits of a folder of
that group, anyone through the others bits. That never grants more than the system does; it may grant less
(a user who passes a folder through another group it belongs to, or an ACL, which is not read).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipeline.access import EVERYONE


@dataclass(frozen=True)
class Mode:
    """A file's or folder's owner, group and permission bits."""

    user: str
    group: str
    bits: int

    def lets(self, principal: str, owner_bit: int, group_bit: int, other_bit: int) -> bool:
        if self.bits & other_bit:
            return True
        if principal == f"user:{self.user}":
            return bool(self.bits & owner_bit)
        return principal == f"group:{self.group}" and bool(self.bits & group_bit)


@lru_cache(maxsize=4096)
def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # no name for this id on this machine (a share mounted from elsewhere)
        return str(uid)


@lru_cache(maxsize=4096)
def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def mode_of(path: Path) -> Mode:
    info = os.stat(path)
    return Mode(_user(info.st_uid), _group(info.st_gid), stat.S_IMODE(info.st_mode))


def posix_readers(path: Path, root: Path, folders: dict[Path, Mode] | None = None) -> tuple[str, ...]:
    """The principals that may read ``path`` (a file under the folder ``root``), sorted. ``folders``: the modes
    of folders already read in this pass (a sync reads each folder once, not once per file)."""
    seen = {} if folders is None else folders
    file = mode_of(path)
    candidates = [f"user:{file.user}", f"group:{file.group}", EVERYONE]
    readers = [p for p in candidates if file.lets(p, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)]
    folder = path.parent
    while True:
        passes = seen.get(folder) or seen.setdefault(folder, mode_of(folder))
        readers = [p for p in readers if passes.lets(p, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)]
        if folder == root or folder == folder.parent or not readers:
            break
        folder = folder.parent
    return tuple(sorted(readers))


def describe(path: Path) -> str:
    """``owner alice, group hr, mode 0640``: what ``ragline access explain`` shows of a file."""
    found = mode_of(path)
    return f"owner {found.user}, group {found.group}, mode {found.bits:04o}"
