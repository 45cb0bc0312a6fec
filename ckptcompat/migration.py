"""``migrate(src, dst, to=...)``: convert a checkpoint to another generation's format, safely.

Read ``src`` with the registry reader, write it with the target
:class:`~ckptcompat.formats.Format` into a temporary folder next to ``dst``, read the result
back and compare every tensor bitwise, then move exactly the files ``write()`` returned into
place. HDF5 sources are read lazily (:func:`ckptcompat.formats._headers.lazy_tensors`): each
tensor is read from the source when the writer writes it and again when it is compared, so
a ``.h5`` -> ``.keras`` migration holds about one tensor at a time, not the whole state. ``src`` is only ever read. An existing ``dst`` (the files the format's ``files()``
lists) is replaced only with ``force=True``, and its previous content is kept as
``<dst>.bak`` (for a TF1 bundle prefix ``p``: the bundle ``p.bak``). No framework is imported::

    report = migrate("old/model.h5", "new/model.keras", to="keras3")
    print(report.summary())
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ckptcompat._arrays import same_values
from ckptcompat._atomic import atomic_replace, fsync_dir, remove_temp, temp_name
from ckptcompat.errors import (CheckpointNotFoundError, IncompatibleStateError, InvalidArgumentError,
                               StoreWriteError, UnsupportedFormatError)
from ckptcompat.state import TrainingState

if TYPE_CHECKING:  # pragma: no cover
    from ckptcompat.formats import Format

__all__ = ["TARGETS", "MigrationReport", "ProgressCallback", "migrate"]

log = logging.getLogger(__name__)

#: ``to=`` value -> (registry format, accepted ``dst`` endings, what loads the result natively)
TARGETS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "keras3": ("keras_zip", (".keras", ".weights.h5"), "keras.saving.load_model / model.load_weights (Keras 3)"),
    "h5": ("keras_h5", (".h5", ".hdf5"), "tf.keras / tf_keras load_model or load_weights (Keras 2)"),
    "tf1": ("tf_bundle", (), "tf.compat.v1.train.Saver.restore / tf.train.load_checkpoint"),
}

#: ``progress(stage, done, total)``; stages ``"read"``, ``"write"``, ``"verify"`` (per tensor).
ProgressCallback = Callable[[str, int, int], None]

#: a prefix-named target (no ``endings``): the name a folder ``dst`` gets, and the endings of
#: its files that name the prefix too (``dst`` = ``model.ckpt.index`` means ``model.ckpt``)
_PREFIX_DEFAULT = "model.ckpt"
_PREFIX_FILE_ENDINGS = (".index",)


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`migrate` did. ``verified`` is True once every tensor read back bitwise equal."""

    src: Path
    dst: Path
    to: str
    source_format: str
    target_format: str
    weights: int
    slots: int
    optimizer: str | None
    iterations: int | None
    epoch: int | None
    verified: bool
    backup: Path | None = None
    #: the ``model.to_json()`` document beside a weights-only ``.h5`` source that gave the model
    #: config written (the source records none); None where the source records it or nothing does
    model_config_from: Path | None = None

    @property
    def tensors(self) -> int:
        """Weights plus optimizer slots written and compared."""
        return self.weights + self.slots

    def summary(self) -> str:
        """A few aligned lines for people."""
        opt = "none" if self.optimizer is None else (
            f"{self.optimizer}  iterations={'-' if self.iterations is None else self.iterations}")
        rows = [("source", f"{self.src} ({self.source_format})"),
                ("written", f"{self.dst} ({self.target_format}, --to {self.to})"),
                ("tensors", f"{self.tensors} ({self.weights} weight(s), {self.slots} optimizer slot(s))"),
                ("optimizer", opt),
                ("epoch", "-" if self.epoch is None else str(self.epoch)),
                *([("model config", f"{self.model_config_from} (the source records none)")]
                  if self.model_config_from is not None else []),
                ("verified", "yes: every tensor read back bitwise equal" if self.verified else "no")]
        if self.backup is not None:
            rows.append(("backup", str(self.backup)))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _target_path(dst: Path, to: str) -> Path:
    fmt, endings, _ = TARGETS[to]
    if not endings:  # a prefix-named checkpoint (several files): a folder gets the default name
        if dst.is_dir():
            return dst / _PREFIX_DEFAULT
        for end in _PREFIX_FILE_ENDINGS:
            if dst.name.endswith(end):
                return dst.with_name(dst.name[: -len(end)])
        return dst
    if not dst.name.lower().endswith(endings):
        raise InvalidArgumentError(f"--to {to} writes {fmt} files, whose name ends with "
                                   f"{' or '.join(endings)}", path=dst,
                                   hint=f"name the output e.g. {dst.with_suffix(endings[0]).name}")
    return dst


def _own(files: list[Path], target: Path) -> list[Path]:
    """The files that belong to ``target`` alone (not a folder file shared with others)."""
    return [f for f in files if f.name.startswith(target.name)]


def _renamed(f: Path, old: str, new: Path) -> Path:
    """``f`` (named ``old`` + ending) renamed to ``new``'s name + the same ending, in ``new``'s folder."""
    return new.parent / (new.name + f.name[len(old):])


def _compare(state: TrainingState, back: TrainingState, progress: ProgressCallback | None,
             where: Path) -> None:
    want, got = state.tensors(), back.tensors()
    problems: list[str] = []
    total = len(want)
    for i, (key, value) in enumerate(want.items(), 1):
        other = got.get(key)
        a = np.asarray(value)
        if other is None:
            if key.startswith("optimizer/") and not np.any(a):
                log.info("%s: %s (all zero) not written: the target optimizer keeps no such slot "
                         "(zero is the same as absent)", where, key)
            else:
                problems.append(f"{key}: missing from the written file")
        else:
            b = np.asarray(other)
            if a.dtype != b.dtype or a.shape != b.shape:
                problems.append(f"{key}: wrote {a.dtype}{list(a.shape)}, read back {b.dtype}{list(b.shape)}")
            elif a.dtype == object:
                if a.tolist() != b.tolist():
                    problems.append(f"{key}: values differ")
            elif not same_values(a, b):
                problems.append(f"{key}: values differ")
            del b
        del a, other  # a lazy tensor's data is dropped before the next one is read
        if progress is not None:
            progress("verify", i, total)
    for key in got:
        if key not in want:
            if key.startswith("optimizer/") and not np.any(np.asarray(got[key])):
                log.info("%s: %s written as zeros (the source's optimizer keeps no such slot: "
                         "unused by its configuration; zero is the same as absent)", where, key)
            else:
                problems.append(f"{key}: in the written file but not in the source")
    if state.optimizer is not None:
        if back.optimizer is None:
            problems.append("optimizer: not read back")
        else:
            if back.optimizer.class_name != state.optimizer.class_name:
                problems.append(f"optimizer class: wrote {state.optimizer.class_name}, "
                                f"read back {back.optimizer.class_name}")
            if (state.optimizer.iterations is not None
                    and back.optimizer.iterations != state.optimizer.iterations):
                problems.append(f"optimizer iterations: wrote {state.optimizer.iterations}, "
                                f"read back {back.optimizer.iterations}")
    if problems:
        raise IncompatibleStateError("the migrated checkpoint does not read back identically",
                                     problems, path=where,
                                     hint="nothing was written at the destination; "
                                          + ("the target format cannot hold this optimizer state: "
                                             "try another --to, or drop it with --no-optimizer "
                                             "(include_optimizer=False)"
                                             if all(p.startswith("optimizer") for p in problems)
                                             else "report this with the source file"))


def _install(written: list[Path], tmp: Path, target: Path, fmt: Format, *, replace: bool) -> Path | None:
    """Move the verified files into place; keep the old ``target``'s files as ``.bak`` when
    replacing. A written file shared by the folder (TF's ``checkpoint`` state file) is only
    installed where the folder has none."""
    backup: Path | None = None
    if replace:
        backup = target.with_name(target.name + ".bak")
        for old in _own(fmt.files(backup), backup):
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
        for f in _own(fmt.files(target), target):
            atomic_replace(f, _renamed(f, target.name, backup), durable=False)
        log.info("%s: previous content kept as %s", target, backup)
    own = _own(written, tmp)
    for f in own:
        atomic_replace(f, _renamed(f, tmp.name, target), durable=False)
    for f in written:
        if f in own:
            continue
        shared = target.parent / f.name
        if shared.exists():
            log.info("%s exists; left unchanged (load the checkpoint by its path %s)", shared, target)
        else:
            atomic_replace(f, shared, durable=False)
    return backup



def _check_lambda(state: TrainingState, src: Path, safe_mode: bool) -> None:
    """Refuse (safe mode) or loudly allow Lambda byte-code in the model config."""
    from ckptcompat._plausible import check_no_lambda, lambda_bytecode

    if safe_mode:
        check_no_lambda(state, src)
    elif state.model_config and lambda_bytecode(state.model_config):
        log.warning("%s: safe_mode=False: Lambda byte-code (%s) is copied into the new file",
                    src, ", ".join(lambda_bytecode(state.model_config)))


def migrate(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, to: str, force: bool = False,
            progress: ProgressCallback | None = None, include_optimizer: bool = True,
            safe_mode: bool = True, **write_options: Any) -> MigrationReport:
    """Convert the checkpoint at ``src`` into ``dst`` in format ``to``; return a report.

    ``to``: ``"keras3"`` (``.keras`` / ``.weights.h5``, Keras 3), ``"h5"`` (legacy ``.h5`` for
    tf.keras 2.12-2.15 / tf-keras) or ``"tf1"`` (TF1 Saver bundle; ``dst`` is the prefix, or a
    folder that gets ``model.ckpt``). ``write_options`` go to the format writer (e.g.
    ``keras_version=``, ``target=``). ``include_optimizer=False`` drops the optimizer state on
    purpose (the only way to write weights-only files from a checkpoint that has one).
    ``safe_mode=False`` (CLI ``--allow-unsafe``) lets a model config with Lambda byte-code
    through; by default it is refused with :class:`UnsafeCheckpointError`. Every
    tensor of the result is read back and compared bitwise before it is moved into place; on
    any failure nothing at ``dst`` changes. ``progress(stage, done, total)`` is called for
    stages ``"read"``, ``"write"`` and ``"verify"`` (once per tensor).

    Raises :class:`InvalidArgumentError` (unknown ``to``, wrong ``dst`` ending, ``dst`` is
    ``src``), :class:`StoreWriteError` (``dst`` exists and not ``force``; disk errors),
    :class:`IncompatibleStateError` (the result does not read back identically),
    :class:`UnsafeCheckpointError` (Lambda byte-code while ``safe_mode``) and the
    reader's/writer's typed errors.
    """
    from ckptcompat import formats

    if to not in TARGETS:
        raise InvalidArgumentError(f"unknown target --to {to!r}", hint=f"use one of: {', '.join(TARGETS)}")
    src_p, dst_p = Path(src), Path(dst)
    fmt = TARGETS[to][0]
    writer = formats.get(fmt)
    target, exists = _check_destination(src_p, dst_p, to, writer, force=force)
    from ckptcompat.formats._headers import lazy_tensors

    with lazy_tensors():  # streaming: each tensor read when written, and when compared
        source_format, state, document = _read_source(src_p, progress, include_optimizer=include_optimizer,
                                                      safe_mode=safe_mode, with_document=fmt == "keras_zip")
        if fmt == "keras_zip" and state.model_config is None:
            raise _no_architecture(src_p, source_format)
        backup = _write_verified(state, target, fmt, writer, progress, replace=exists,
                                 write_options=write_options)
    opt = state.optimizer
    report = MigrationReport(
        src=src_p, dst=target, to=to, source_format=source_format, target_format=fmt,
        weights=len(state.weights), slots=0 if opt is None else opt.slot_count,
        optimizer=None if opt is None else opt.class_name,
        iterations=None if opt is None else opt.iterations, epoch=state.progress.epoch,
        verified=True, backup=backup, model_config_from=document)
    log.info("migrated %s (%s) -> %s (%s): %d tensor(s) verified", src_p, source_format, target,
             fmt, report.tensors)
    return report


def _no_architecture(src_p: Path, source_format: str) -> UnsupportedFormatError:
    """The refusal of a ``keras3`` target for a source that records no model config."""
    ways = "migrate --to h5 or --to tf1; ckptcompat.resume(path, model=...) restores it into a live model as it is"
    if source_format == "keras_h5":
        from ckptcompat.formats.keras_h5.architecture_file import document_names

        ways = f"keep the script's model.to_json() output beside it as {' or '.join(document_names(src_p))}, or {ways}"
    return UnsupportedFormatError("the source records no model config (no architecture: weights only), and a "
                                  "Keras 3 file is laid out from one", path=src_p, hint=ways)


def _check_destination(src_p: Path, dst_p: Path, to: str, writer: Format, *,
                       force: bool) -> tuple[Path, bool]:
    """(the checkpoint path to write, whether one exists there already); refuses a missing
    source, a destination that is the source, and an existing one without ``force``."""
    if not src_p.exists() and not Path(f"{src_p}.index").exists():
        raise CheckpointNotFoundError("no such file, folder or bundle prefix", path=src_p,
                                      hint="check the source path")
    target = _target_path(dst_p, to)
    existing = _own(writer.files(target), target)
    src_r = src_p.resolve()
    if src_r == target.resolve() or any(src_r == f.resolve() for f in existing):
        raise InvalidArgumentError("the destination is the source", path=dst_p,
                                   hint="write to another path; migrate never modifies its source")
    exists = bool(existing)
    if exists and not force:
        raise StoreWriteError("the destination exists already", path=target, errno=errno.EEXIST,
                              hint="choose another path, or pass --force (force=True) to replace it; "
                                   "the old one is kept as .bak")
    return target, exists


def _read_source(src_p: Path, progress: ProgressCallback | None, *, include_optimizer: bool,
                 safe_mode: bool, with_document: bool) -> tuple[str, TrainingState, Path | None]:
    """(source format, state, the ``model.to_json()`` document beside a weights-only ``.h5`` that
    gave its model config, read where ``with_document``) of ``src_p``, Lambda byte-code checked,
    the optimizer dropped unless ``include_optimizer``."""
    from ckptcompat import formats
    from ckptcompat.formats.keras_h5.architecture_file import with_architecture

    if progress is not None:
        progress("read", 0, 1)
    source_format = formats.detect(src_p)
    state, document = formats.read(src_p, format=source_format), None
    if source_format == "keras_h5" and with_document:  # a Keras 3 file is laid out from a model config
        state, document = with_architecture(state, src_p)
    _check_lambda(state, document if document is not None else src_p, safe_mode)  # the Lambda is in the document
    if not include_optimizer:
        state = state.replace(optimizer=None)
    if progress is not None:
        progress("read", 1, 1)
    return source_format, state, document


def _write_verified(state: TrainingState, target: Path, fmt: str, writer: Format,
                    progress: ProgressCallback | None, *, replace: bool,
                    write_options: dict[str, Any]) -> Path | None:
    """Write ``state`` into a temporary folder beside ``target``, read it back and compare
    bitwise, then install it (the old files kept as ``.bak`` when ``replace``); returns the
    backup's path. On any failure nothing at ``target`` changes."""
    from ckptcompat import formats

    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreWriteError(f"cannot create the destination folder ({exc})", path=folder,
                              errno=exc.errno, hint="check the path and permissions") from exc
    tmp_dir: Path | None = None
    try:
        tmp_dir = temp_name(target)
        tmp_dir.mkdir()
        tmp = tmp_dir / target.name
        if progress is not None:
            progress("write", 0, 1)
        written = formats.write(tmp, state, format=fmt, **write_options)
        if progress is not None:
            progress("write", 1, 1)
        back = formats.read(tmp, format=fmt)
        _compare(state, back, progress, target)
        backup = _install(written, tmp, target, writer, replace=replace)
        fsync_dir(folder)  # every rename above, durable at once
    except OSError as exc:
        from ckptcompat.errors import CkptCompatError

        if isinstance(exc, CkptCompatError):
            raise
        raise StoreWriteError(f"writing the migrated checkpoint failed ({exc})", path=target,
                              errno=exc.errno, hint="check free space and permissions; "
                                                    "the destination was not changed") from exc
    finally:
        if tmp_dir is not None:
            remove_temp(tmp_dir)
    return backup
