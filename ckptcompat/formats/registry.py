"""The format table and detection; kept for existing imports: the code lives in
:mod:`ckptcompat.formats` (``from ckptcompat import formats; formats.get("keras_h5")``)."""

from __future__ import annotations

from ckptcompat.formats import (FORMATS, Format, FormatInfo, Peek, WrittenFiles, detect, files,
                                format_module, get, names, peek, read, write)
from ckptcompat.state import TrainingState

__all__ = ["FormatInfo", "FORMATS", "Format", "Peek", "WrittenFiles", "detect", "files",
           "format_module", "get", "names", "peek", "read", "write", "TrainingState"]
