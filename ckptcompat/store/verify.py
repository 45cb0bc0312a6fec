"""Checking a checkpoint store against its manifest: every problem, one line each."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ckptcompat.store.io import AUX_PREFIX, hash_file, is_temp_name, list_files
from ckptcompat.store.lock import LOCK_NAME, lock_is_free, read_holder
from ckptcompat.store.manifest import (
    BACKUP_NAME,
    MANIFEST_NAME,
    CheckpointEntry,
    Manifest,
    load_manifest,
)
from ckptcompat.errors import CorruptCheckpointError, UnsupportedFormatError

__all__ = ["Problem", "VerifyReport", "check_entry", "verify_store"]

#: problem kinds that make a listed checkpoint unusable
DAMAGE_KINDS = frozenset({"missing-dir", "missing-file", "unreadable-file", "size-mismatch",
                          "sha256-mismatch"})


@dataclass(frozen=True)
class Problem:
    """One problem found in a store.

    ``kind`` is one of: ``manifest-missing``, ``manifest-corrupt``, ``missing-dir``,
    ``missing-file``, ``unreadable-file``, ``size-mismatch``, ``sha256-mismatch``,
    ``unlisted-file``, ``unlisted-dir``, ``temp-leftover``, ``stale-lock``. ``path`` is
    relative to the store directory; ``checkpoint`` is the id of the entry concerned.
    """

    kind: str
    path: str
    detail: str
    checkpoint: int | None = None

    def __str__(self) -> str:
        which = f" [checkpoint {self.checkpoint}]" if self.checkpoint is not None else ""
        return f"{self.kind}: {self.path}{which}: {self.detail}"


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify_store`: ``ok`` when there is no problem at all."""

    directory: str
    problems: tuple[Problem, ...] = ()
    good: tuple[int, ...] = ()      # ids of listed checkpoints whose files all match
    damaged: tuple[int, ...] = ()   # ids of listed checkpoints with a damage-kind problem
    suggestions: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def kinds(self) -> set[str]:
        """The set of problem kinds found."""
        return {p.kind for p in self.problems}

    def __str__(self) -> str:
        head = (f"{self.directory}: {len(self.good)} good, {len(self.damaged)} damaged "
                f"checkpoint(s), {len(self.problems)} problem(s)")
        lines = [head, *(f"  - {p}" for p in self.problems),
                 *(f"  suggestion: {s}" for s in self.suggestions)]
        return "\n".join(lines)


def check_entry(entry: CheckpointEntry, *, deep: bool = True) -> list[Problem]:
    """Problems of one listed checkpoint: missing, unreadable, resized or altered files
    (sha256 compared only when ``deep``), and files present but not listed."""
    problems: list[Problem] = []
    base = entry.path
    if not base.is_dir():
        return [Problem("missing-dir", entry.name, "listed in the manifest but absent", entry.id)]
    for rel, record in sorted(entry.files.items()):
        where = f"{entry.name}/{rel}"
        full = base / rel
        try:
            size = full.stat().st_size if full.is_file() else None
        except OSError as exc:
            problems.append(Problem("unreadable-file", where, str(exc), entry.id))
            continue
        if size is None:
            problems.append(Problem("missing-file", where, "listed in the manifest but absent",
                                    entry.id))
            continue
        if size != record.size:
            problems.append(Problem("size-mismatch", where,
                                    f"{size} bytes, the manifest says {record.size}", entry.id))
            continue
        if deep:
            try:
                _, digest = hash_file(full)
            except OSError as exc:
                problems.append(Problem("unreadable-file", where, str(exc), entry.id))
                continue
            if digest != record.sha256:
                problems.append(Problem("sha256-mismatch", where,
                                        f"sha256 {digest[:16]}..., the manifest says "
                                        f"{record.sha256[:16]}...", entry.id))
    try:
        present, _ = list_files(base)
    except (OSError, ValueError) as exc:
        present = []
        problems.append(Problem("unlisted-file", entry.name, str(exc), entry.id))
    for rel in present:
        if rel not in entry.files:
            problems.append(Problem("unlisted-file", f"{entry.name}/{rel}",
                                    "present but not listed in the manifest", entry.id))
    return problems


def _directory_problems(directory: Path, listed: Iterable[str]) -> list[Problem]:
    listed = set(listed)
    problems: list[Problem] = []
    known = {MANIFEST_NAME, BACKUP_NAME, LOCK_NAME}
    for name in sorted(os.listdir(directory)):
        full = directory / name
        if is_temp_name(name):
            problems.append(Problem("temp-leftover", name,
                                    "temporary left by an interrupted write; never read, the "
                                    "next writer removes it"))
        elif name not in listed and name not in known and full.is_dir() and not name.startswith(AUX_PREFIX):
            problems.append(Problem("unlisted-dir", name,
                                    "not in the manifest (an interrupted commit or a foreign "
                                    "directory); ignored by readers"))
    if lock_is_free(directory / LOCK_NAME):
        holder = read_holder(directory / LOCK_NAME)
        problems.append(Problem("stale-lock", LOCK_NAME,
                                f"left by process {holder.get('pid') if holder else '?'} on host "
                                f"{holder.get('host') if holder else '?'}, which no longer holds "
                                "its OS lock; the next writer takes it over"))
    return problems


def verify_store(directory: str | os.PathLike[str], *, deep: bool = True) -> VerifyReport:
    """Check every listed checkpoint and the directory itself; never raises for damage."""
    directory = Path(directory)
    problems: list[Problem] = []
    suggestions: list[str] = []
    manifest: Manifest
    try:
        manifest = load_manifest(directory)
    except (CorruptCheckpointError, UnsupportedFormatError) as exc:
        problems.append(Problem("manifest-corrupt", MANIFEST_NAME, exc.message))
        if exc.hint:
            suggestions.append(exc.hint)
        manifest = Manifest()
    else:
        if manifest.raw is None and (directory / BACKUP_NAME).exists():
            problems.append(Problem("manifest-missing", MANIFEST_NAME,
                                    f"absent, but {BACKUP_NAME} exists"))
            suggestions.append(f"copy {BACKUP_NAME} to {MANIFEST_NAME} to recover the "
                               "previous list of checkpoints")
    good: list[int] = []
    damaged: list[int] = []
    for entry in manifest.entries:
        found = check_entry(entry, deep=deep)
        problems.extend(found)
        (damaged if any(p.kind in DAMAGE_KINDS for p in found) else good).append(entry.id)
    dir_problems = _directory_problems(directory, (e.name for e in manifest.entries))
    if manifest.raw is None and any(p.kind == "unlisted-dir" for p in dir_problems) \
            and not any(p.kind.startswith("manifest") for p in problems):
        problems.append(Problem("manifest-missing", MANIFEST_NAME,
                                "absent, but checkpoint directories exist"))
    problems.extend(dir_problems)
    if damaged:
        suggestions.append("readers skip damaged checkpoints (latest_good() falls back to the "
                           "newest intact one); delete or re-create the damaged ones")
    return VerifyReport(str(directory), tuple(problems), tuple(good), tuple(damaged),
                        tuple(suggestions))
