"""Local paths a caller names, opened by handle beneath ``s3.local_roots``.

A WriteFile or ReadFile caller names a path on the server's machine, and the
server often has more rights than the caller. So a path is never checked
and then reopened by name (a directory swapped for a symlink in between
would escape the root): the root is opened, and every directory below it is
opened relative to the one before with ``O_NOFOLLOW | O_DIRECTORY``, as
OpenSSH's sftp-server uses the handle it opened. What the walk saw is what
the file operations then use, through ``dir_fd``. No symbolic link below a
root is followed, wherever it points; ``..`` goes back to the directory the
walk came from, never above the root. A root's own path is the
administrator's and may contain symlinks.

Sources are opened with ``O_NONBLOCK`` (a FIFO would otherwise block the
open until a writer came) and must be regular files, checked on the handle.
Every function here makes system calls on caller-named paths and so runs in
a worker thread (:func:`trio.to_thread.run_sync`), never on the event loop:
even ``O_NONBLOCK`` does not keep a hung network filesystem from blocking.
"""

from __future__ import annotations

import errno
import os
import pwd
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from trio_s3rpc.callers import Caller
from trio_s3rpc.errors import ErrorCode, RPCError

PART_SUFFIX = ".trio-s3rpc-part"
# ``.NAME.<12 hex>.trio-s3rpc-part``: the temporary file a ReadFile writes beside its destination.
_PART_NAME = re.compile(r"\..+\.[0-9a-f]{12}" + re.escape(PART_SUFFIX), re.DOTALL)
# Entries a leftover sweep looks at per root, so a huge tree cannot hold a thread for long.
SWEEP_MAX_ENTRIES = 200_000

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# What open(2) answers for a socket file, or a device whose driver is absent.
_CANNOT_OPEN_KIND = (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP)
_SOURCE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFLNK: "a symbolic link",
}


def kind_of(mode: int) -> str:
    """What a file that is not a regular file is, in words for an error message."""
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def not_regular(field_name: str, path: str, mode: int) -> RPCError:
    return RPCError(
        ErrorCode.INVALID_REQUEST,
        f"{field_name} is {kind_of(mode)}, not a regular file",
        f"path: {path}",
    )


def local_error(exc: OSError, field_name: str, path: str) -> RPCError:
    """The contract's error for a failed system call on a caller's path."""
    details = f"path: {path}"
    if isinstance(exc, FileNotFoundError):
        return RPCError(ErrorCode.FILE_NOT_FOUND, f"{field_name} does not exist", details)
    if isinstance(exc, PermissionError):
        return RPCError(ErrorCode.PERMISSION_DENIED, f"{field_name} is not accessible", details)
    if isinstance(exc, IsADirectoryError):
        return RPCError(ErrorCode.INVALID_REQUEST, f"{field_name} is a directory", details)
    if exc.errno == errno.ENAMETOOLONG:
        return RPCError(ErrorCode.INVALID_REQUEST, f"{field_name} is too long", details)
    return RPCError(
        ErrorCode.S3_OPERATION_FAILED,
        f"local file error on {field_name}: {exc.strerror or exc}",
        details,
    )


def _close_all(fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)


@dataclass(slots=True)
class Destination:
    """Where a ReadFile lands: its directory's handle, the entry's name, what is there now."""

    dir_fd: int
    name: str
    path: str
    existing: os.stat_result | None  # a regular file being replaced; None for a new entry
    # The owner the new file gets: the replaced file's, or the calling user's under
    # s3.local_files: peer; None keeps the server's.
    owner: tuple[int, int] | None = None

    def close(self) -> None:
        os.close(self.dir_fd)


READ, WRITE, SEARCH = 4, 2, 1


@dataclass(slots=True, frozen=True)
class Rights:
    """Another user's rights (``s3.local_files: peer``), checked on opened handles from
    their owner, group and permission bits; POSIX ACLs are not consulted, so an
    ACL can only make the check refuse what the user could do, never allow more."""

    uid: int
    groups: frozenset[int]

    @classmethod
    def of(cls, caller: Caller | None) -> Rights | None:
        """The caller's rights; None (the server's own) for no caller or the server's user.
        Looks the user's groups up (NSS): call it in a thread."""
        if caller is None or caller.uid == os.geteuid():
            return None
        try:
            groups = frozenset(os.getgrouplist(pwd.getpwuid(caller.uid).pw_name, caller.gid))
        except (KeyError, OSError):
            groups = frozenset({caller.gid})
        return cls(caller.uid, groups | {caller.gid})

    def allows(self, info: os.stat_result, wanted: int) -> bool:
        if self.uid == 0:
            return True
        if info.st_uid == self.uid:
            granted = info.st_mode >> 6
        elif info.st_gid in self.groups:
            granted = info.st_mode >> 3
        else:
            granted = info.st_mode
        return granted & wanted == wanted

    def refusal(self, what: str, path: str) -> RPCError:
        return RPCError(
            ErrorCode.PERMISSION_DENIED,
            f"{what} by the calling user (uid {self.uid}; s3.local_files: peer)",
            f"path: {path}",
        )


class LocalRoots:
    """The directories local file access is confined to, and the walk beneath them."""

    def __init__(self, roots: Sequence[str]) -> None:
        spellings: dict[tuple[str, ...], str] = {}
        for root in roots:
            # As configured and as resolved: /var/run/x and /run/x both name a file
            # under a root configured as /var/run.
            for spelling in (os.path.normpath(root), os.path.realpath(root)):
                spellings.setdefault(_components(spelling), root)
        # Longest first: a path under nested roots is walked from the deepest one.
        self._roots = sorted(spellings.items(), key=lambda item: -len(item[0]))
        self.roots = tuple(dict.fromkeys(os.path.realpath(root) for root in roots))

    def _locate(self, path: str, field_name: str) -> tuple[str, list[str]]:
        """The root ``path`` names a file under and the components below it (lexically)."""
        if not path:
            raise RPCError(ErrorCode.INVALID_REQUEST, f"field '{field_name}' is empty")
        if "\x00" in path:
            raise RPCError(ErrorCode.INVALID_REQUEST, f"field '{field_name}' contains a NUL byte")
        if not os.path.isabs(path):
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                f"field '{field_name}' must be an absolute path",
                f"path: {path}",
            )
        parts = [part for part in path.split("/") if part not in ("", ".")]
        for prefix, root in self._roots:
            if tuple(parts[: len(prefix)]) == prefix:
                return root, parts[len(prefix) :]
        raise self.outside(field_name, path)

    @staticmethod
    def outside(field_name: str, path: str) -> RPCError:
        return RPCError(
            ErrorCode.PERMISSION_DENIED,
            f"{field_name} is outside the directories this server may use (s3.local_roots)",
            f"path: {path}",
        )

    def _walk(
        self, root: str, parts: Sequence[str], field_name: str, path: str, rights: Rights | None
    ) -> int:
        """A handle on the directory ``parts`` lead to from ``root``, never leaving it;
        with ``rights``, each directory on the way must be searchable by that user."""
        try:
            opened = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
        except OSError as exc:
            raise RPCError(
                ErrorCode.FILE_NOT_FOUND,
                f"the local root of {field_name} cannot be opened: {exc.strerror}",
                f"path: {path}",
            ) from None
        try:
            if rights is not None and not rights.allows(os.fstat(opened[0]), SEARCH):
                raise rights.refusal(f"the local root of {field_name} is not searchable", path)
            for part in parts:
                if part == "..":
                    if len(opened) == 1:
                        raise self.outside(field_name, path)
                    os.close(opened.pop())
                    continue
                opened.append(self._open_directory(opened[-1], part, field_name, path))
                if rights is not None and not rights.allows(os.fstat(opened[-1]), SEARCH):
                    raise rights.refusal(f"a directory of {field_name} is not searchable", path)
        except BaseException:
            _close_all(opened)
            raise
        _close_all(opened[:-1])
        return opened[-1]

    def _open_directory(self, dir_fd: int, name: str, field_name: str, path: str) -> int:
        try:
            return os.open(name, _DIRECTORY_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                if isinstance(exc, FileNotFoundError):
                    raise RPCError(
                        ErrorCode.FILE_NOT_FOUND,
                        f"a directory of {field_name} does not exist",
                        f"path: {path}",
                    ) from None
                raise local_error(exc, field_name, path) from None
            raise self._not_a_directory(dir_fd, name, field_name, path) from None

    def _not_a_directory(self, dir_fd: int, name: str, field_name: str, path: str) -> RPCError:
        mode = _mode_of(dir_fd, name)
        if stat.S_ISLNK(mode) or stat.S_ISDIR(mode):
            # A directory now means a symlink was there when it was opened: swapped back.
            return self.through_symlink(field_name, path)
        return RPCError(
            ErrorCode.FILE_NOT_FOUND,
            f"a directory of {field_name} is {kind_of(mode)}",
            f"path: {path}",
        )

    @staticmethod
    def through_symlink(field_name: str, path: str) -> RPCError:
        return RPCError(
            ErrorCode.PERMISSION_DENIED,
            f"{field_name} passes through a symbolic link, which this server does not follow "
            "beneath s3.local_roots",
            f"path: {path}",
        )

    def open_source(
        self, path: str, caller: Caller | None = None, field_name: str = "source_path"
    ) -> tuple[int, int]:
        """A read handle on the regular file ``path``, and its size (call it in a thread);
        with a ``caller``, only a file that user may read."""
        rights = Rights.of(caller)
        root, parts = self._locate(path, field_name)
        if not parts or parts[-1] == "..":
            raise RPCError(
                ErrorCode.INVALID_REQUEST, f"{field_name} is a directory", f"path: {path}"
            )
        dir_fd = self._walk(root, parts[:-1], field_name, path, rights)
        try:
            try:
                fd = os.open(parts[-1], _SOURCE_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise self.through_symlink(field_name, path) from None
                mode = _mode_of(dir_fd, parts[-1]) if exc.errno in _CANNOT_OPEN_KIND else 0
                if mode and not stat.S_ISREG(mode):
                    # A socket (or an absent device) cannot be opened at all: say what it is.
                    raise not_regular(field_name, path, mode) from None
                raise local_error(exc, field_name, path) from None
        finally:
            os.close(dir_fd)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise not_regular(field_name, path, info.st_mode)
            if rights is not None and not rights.allows(info, READ):
                raise rights.refusal(f"{field_name} is not readable", path)
            # O_NONBLOCK only kept the open from waiting; reads of a regular file ignore it.
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd, info.st_size

    def open_destination(
        self, path: str, caller: Caller | None = None, field_name: str = "destination_path"
    ) -> Destination:
        """The directory a ReadFile of ``path`` writes in, by handle (call it in a thread).

        The final entry is never followed: an existing regular file or hard
        link is replaced as an entry, and so is a symbolic link, which is
        accepted only when its target, read as written, lies under a root.
        With a ``caller``, that user must be able to write in the directory
        (and, in a sticky one like /tmp, own the entry replaced).
        """
        rights = Rights.of(caller)
        root, parts = self._locate(path, field_name)
        if path.endswith("/") or not parts or parts[-1] == "..":
            raise RPCError(
                ErrorCode.INVALID_REQUEST, f"field '{field_name}' must name a file", f"path: {path}"
            )
        dir_fd = self._walk(root, parts[:-1], field_name, path, rights)
        try:
            existing = self._entry(dir_fd, parts[-1], field_name, path)
            owner = None if existing is None else (existing.st_uid, existing.st_gid)
            if rights is not None and caller is not None:
                self._check_may_replace(dir_fd, parts[-1], rights, path)
                owner = owner or (caller.uid, caller.gid)
        except BaseException:
            os.close(dir_fd)
            raise
        return Destination(dir_fd, parts[-1], path, existing, owner)

    @staticmethod
    def _check_may_replace(dir_fd: int, name: str, rights: Rights, path: str) -> None:
        directory = os.fstat(dir_fd)
        if not rights.allows(directory, WRITE | SEARCH):
            raise rights.refusal("the directory of destination_path is not writable", path)
        try:
            entry = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        sticky = directory.st_mode & stat.S_ISVTX
        if sticky and rights.uid not in (0, entry.st_uid, directory.st_uid):
            raise rights.refusal(
                "destination_path is another user's file in a sticky directory: not replaceable",
                path,
            )

    def _entry(self, dir_fd: int, name: str, field_name: str, path: str) -> os.stat_result | None:
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise local_error(exc, field_name, path) from None
        if stat.S_ISREG(info.st_mode):
            return info
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(name, dir_fd=dir_fd)
            where = os.path.join(os.path.dirname(path), target)
            parts = [part for part in where.split("/") if part not in ("", ".")]
            if ".." in parts or not any(
                tuple(parts[: len(prefix)]) == prefix for prefix, _ in self._roots
            ):
                raise self.outside(field_name, path)
            return None  # replaced as an entry: the link goes, its target is untouched
        raise not_regular(field_name, path, info.st_mode)

    def remove_leftover_parts(self, older_than: float) -> list[str]:
        """Remove this server's temporary ReadFile files not written since ``older_than``
        (a Unix time) under every root; answers the paths removed (call it in a thread).

        Only regular files of the server's own user with the temporary files'
        name pattern are removed, found without following a symbolic link; at
        most ``SWEEP_MAX_ENTRIES`` entries of each root are looked at.
        """
        uid = os.geteuid()
        removed: list[str] = []
        for root in self.roots:
            seen = 0
            # Leaving the loop early drops the walk, which closes its handles.
            for top, dirs, files, top_fd in os.fwalk(root):
                seen += len(dirs) + len(files)
                if seen > SWEEP_MAX_ENTRIES:
                    break
                for name in files:
                    if _PART_NAME.fullmatch(name) and _remove_if_stale(
                        top_fd, name, uid, older_than
                    ):
                        removed.append(os.path.join(top, name))
        return removed


def _mode_of(dir_fd: int, name: str) -> int:
    """The entry's file type and mode, not following a symlink; 0 when it cannot be read."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        return 0


def _remove_if_stale(dir_fd: int, name: str, uid: int, older_than: float) -> bool:
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISREG(info.st_mode) and info.st_uid == uid and info.st_mtime < older_than:
            os.unlink(name, dir_fd=dir_fd)
            return True
    except OSError:
        pass
    return False


def _components(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part not in ("", "."))
