"""Resuming: pick a checkpoint, read it, rebuild and restore a live model.

:func:`resume` (re-exported as ``ckptcompat.resume``) returns a :class:`ResumeResult`.
``read`` picks and reads the checkpoint, ``build`` rebuilds and compiles a model from its
config, ``orchestrate`` ties them to the runtime flavour's ``apply``.
"""

from __future__ import annotations

from ckptcompat.resuming.orchestrate import CHECKPOINT_STATE_KEY, ResumeResult, ResumeSource, resume

__all__ = ["resume", "ResumeResult", "ResumeSource", "CHECKPOINT_STATE_KEY"]
