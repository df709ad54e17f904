"""Access rules (pipeline.access) and POSIX readers (connectors.permissions): who may read a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors.permissions import posix_readers
from pipeline.access import ADMIN, EVERYONE, Reader, grant, principal
from pipeline.config import parse_config
from pipeline.errors import ConfigError, RaglineError

pytestmark = pytest.mark.unit


def access(**settings: object):  # noqa: ANN201 - an AccessConfig
    return parse_config({"access": {"enabled": True, **settings}}).access


RULES = access(
    rules=[
        {"path": "hr/**", "allow": ["group:hr"]},
        {"path": "hr/public/**", "allow": ["everyone"]},  # after hr/**: never reached
        {"path": "/srv/share/legal/**", "allow": ["group:legal", "user:lena"]},
        {"path": "**/*.md", "allow": ["everyone"]},
    ]
)


@pytest.mark.parametrize(
    ("source", "absolute", "readers", "rule"),
    [
        ("hr/salaries.xlsx", "/srv/share/hr/salaries.xlsx", ("group:hr",), 1),
        ("hr/public/holidays.md", None, ("group:hr",), 1),  # the first match wins, not the most specific
        ("legal/nda.pdf", "/srv/share/legal/nda.pdf", ("group:legal", "user:lena"), 3),
        ("legal/nda.pdf", "/home/x/legal/nda.pdf", (), None),  # an absolute rule reads the absolute path
        ("legal/nda.pdf", None, (), None),
        ("notes/todo.md", "/srv/share/notes/todo.md", (EVERYONE,), 4),
        ("notes/todo.txt", "/srv/share/notes/todo.txt", (), None),  # deny by default
    ],
)
def test_the_first_matching_rule_gives_the_readers(
    source: str, absolute: str | None, readers: tuple[str, ...], rule: int | None
) -> None:
    found = grant(source, absolute, (), RULES)
    assert (found.readers, found.rule) == (readers, rule)
    assert ("deny by default" in " ".join(found.explain(RULES))) == (not readers)


def test_posix_readers_join_the_rule_only_with_from_posix() -> None:
    posix = ("group:staff", "user:ann")
    assert grant("hr/a.md", None, posix, RULES).readers == ("group:hr",)
    with_posix = access(from_posix=True, rules=[{"path": "hr/**", "allow": ["group:hr"]}])
    found = grant("hr/a.md", None, posix, with_posix)
    assert found.readers == ("group:hr", "group:staff", "user:ann") and found.posix == posix
    assert grant("other.md", None, posix, with_posix).readers == posix


@pytest.mark.parametrize(
    "bad", ["alice", "user:", "user: alice", "group:hr ", "group:a\nb", "role:admin", "Everyone", ""]
)
def test_a_principal_is_everyone_user_or_group(bad: str) -> None:
    assert principal("group:HR Team") == "group:HR Team" and principal("user:j.doe@example.com")
    with pytest.raises(RaglineError, match="not a principal"):
        principal(bad)
    with pytest.raises(ConfigError, match="access.rules.0.allow.0"):
        parse_config({"access": {"rules": [{"path": "x", "allow": [bad]}]}})


def test_a_reader_always_holds_everyone_and_admins_see_all() -> None:
    alice = Reader.person("alice", ["hr", "eng"], admins=["group:it"])
    assert alice.visible == ("everyone", "group:eng", "group:hr", "user:alice") and not alice.admin
    assert Reader.person(None, ["it"], admins=["group:it"]).visible is None
    assert ADMIN.visible is None
    assert Reader.holding([]).visible == (EVERYONE,)


def test_jwt_settings_are_checked_when_read() -> None:
    with pytest.raises(ConfigError, match="public_key_file"):
        parse_config({"access": {"jwt": {"algorithm": "RS256", "issuer": "i", "audience": "a"}}})
    with pytest.raises(ConfigError, match="issuer and an audience"):
        parse_config({"access": {"jwt": {"algorithm": "HS256"}}})
    with pytest.raises(ConfigError, match="algorithm"):
        parse_config({"access": {"jwt": {"algorithm": "none", "issuer": "i", "audience": "a"}}})


# -- POSIX ----------------------------------------------------------------------------------------
def _tree(tmp_path: Path, file_mode: int, folder_mode: int) -> tuple[Path, Path]:
    root = tmp_path / "share"
    (root / "team").mkdir(parents=True)
    file = root / "team" / "plan.md"
    file.write_text("plan")
    file.chmod(file_mode)
    (root / "team").chmod(folder_mode)
    return root, file


def test_posix_readers_follow_the_read_bits(tmp_path: Path) -> None:
    import grp
    import pwd

    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    root, file = _tree(tmp_path, 0o644, 0o755)
    root.chmod(0o755)
    assert posix_readers(file, root) == tuple(sorted((EVERYONE, f"group:{group}", f"user:{user}")))
    file.chmod(0o640)
    assert posix_readers(file, root) == tuple(sorted((f"group:{group}", f"user:{user}")))
    file.chmod(0o600)
    assert posix_readers(file, root) == (f"user:{user}",)
    file.chmod(0o000)
    assert posix_readers(file, root) == ()


def test_a_closed_folder_hides_a_world_readable_file(tmp_path: Path) -> None:
    import grp
    import pwd

    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    root, file = _tree(tmp_path, 0o644, 0o750)
    root.chmod(0o755)
    assert posix_readers(file, root) == tuple(sorted((f"group:{group}", f"user:{user}")))
    (root / "team").chmod(0o700)
    assert posix_readers(file, root) == (f"user:{user}",)
    (root / "team").chmod(0o755)
    root.chmod(0o711)  # others may pass the shared folder without listing it
    assert EVERYONE in posix_readers(file, root)
    root.chmod(0o700)  # the synced folder itself counts
    assert posix_readers(file, root) == (f"user:{user}",)
    root.chmod(0o755)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file another owner needs root")
def test_owner_and_group_of_another_user_are_named(tmp_path: Path) -> None:
    root, file = _tree(tmp_path, 0o640, 0o755)
    os.chown(file, 4242, 4343)  # ids with no name on this machine: the number is the name
    assert posix_readers(file, root) == ("group:4343", "user:4242")
    os.chown(root / "team", 4242, 0)
    (root / "team").chmod(0o750)  # the group passes only as the folder's group: 4343 is not it
    assert posix_readers(file, root) == ("user:4242",)
