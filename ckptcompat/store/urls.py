"""Store locations: local paths, ``file://`` URLs and fsspec URLs (``gs://``, ``s3://``, ...).

One job: tell a remote URL from a local path, and open a URL's fsspec file system with a
typed error naming the package to install when it is missing. Nothing here creates files:
a URL is never turned into a local folder named after its scheme (``Path("gs://b/run")``
would be ``gs:/b/run``). fsspec is imported only when a remote URL is opened.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ckptcompat.errors import InvalidArgumentError, MissingDependencyError

__all__ = ["REMOTE_HINT", "is_remote", "local_path", "location", "filesystem", "check_available"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: what ``pathlib`` makes of a URL: ``gs://b/run`` -> ``gs:/b/run`` (two letters at least, so
#: that Windows drives ``C:/`` are not taken for one)
_MANGLED = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/(?!/)")
REMOTE_HINT = "pip install 'ckptcompat[remote]'"
#: the package that implements a protocol, for the install hint
_PACKAGES = {"gs": "gcsfs", "gcs": "gcsfs", "s3": "s3fs", "s3a": "s3fs", "az": "adlfs",
             "abfs": "adlfs", "abfss": "adlfs", "adl": "adlfs", "hf": "huggingface_hub",
             "hdfs": "pyarrow", "sftp": "paramiko", "ssh": "paramiko", "oci": "ocifs",
             "webhdfs": "requests", "http": "aiohttp", "https": "aiohttp"}


def _scheme(location: Any) -> str | None:
    if not isinstance(location, str):
        return None
    match = _SCHEME.match(location)
    return match.group(1).lower() if match else None


def is_remote(location: Any) -> bool:
    """Whether ``location`` is a URL for fsspec: ``xxx://...`` other than ``file://``."""
    scheme = _scheme(location)
    return scheme is not None and scheme not in ("file", "local")


def local_path(location: str | os.PathLike[str]) -> Path:
    """The local path of ``location`` (a path, or a ``file://`` URL).

    Raises :class:`InvalidArgumentError` for a remote URL, or for a path that is a URL
    mangled by ``pathlib`` (``Path("gs://b")`` is ``gs:/b``): it would create a folder named
    after the scheme.
    """
    if is_remote(location):
        raise InvalidArgumentError("a remote URL is not a local path", path=str(location),
                                   hint="open it through CheckpointStore(url), resume(url), ...")
    if _scheme(location) is not None:  # file:// or local://
        parts = urlsplit(str(location))
        if parts.netloc not in ("", "localhost"):
            raise InvalidArgumentError(f"file URL of host {parts.netloc!r}", path=str(location),
                                       hint="write file:///absolute/path (three slashes)")
        return Path(unquote(parts.path))
    text = os.fspath(location)
    if isinstance(text, str) and _MANGLED.match(text) and not os.path.exists(text):
        raise InvalidArgumentError(
            "this path looks like a URL whose '//' was collapsed by pathlib", path=text,
            hint="pass the URL as a string (str, not pathlib.Path), e.g. 'gs://bucket/run'")
    return Path(text)


def location(directory: str | os.PathLike[str]) -> str | Path:
    """``directory`` as a store location: the URL string when remote, else a local Path."""
    if is_remote(directory):
        return str(directory).rstrip("/")
    return local_path(directory)


def _fsspec(url: str) -> Any:
    try:
        import fsspec
    except ImportError as exc:
        raise MissingDependencyError(
            "fsspec is needed for checkpoint stores at URLs but is not installed",
            path=url, hint=REMOTE_HINT) from exc
    return fsspec


def check_available(url: str) -> None:
    """Raise :class:`MissingDependencyError` unless fsspec and the package of ``url``'s
    protocol can be imported; connects to nothing and creates nothing."""
    fsspec = _fsspec(url)
    protocol = _scheme(url) or ""
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        package = _PACKAGES.get(protocol, f"the fsspec implementation of {protocol}://")
        raise MissingDependencyError(
            f"{package} is needed for {protocol}:// checkpoint stores but is not installed",
            path=url, hint=f"pip install {package}" if protocol in _PACKAGES else
            f"{REMOTE_HINT}, then the package fsspec names for {protocol}:// ({exc})") from exc
    except ValueError as exc:
        raise InvalidArgumentError(f"fsspec knows no protocol {protocol!r}", path=url,
                                   hint="check the URL's scheme (gs://, s3://, memory://, ...)"
                                   ) from exc


def filesystem(url: str) -> tuple[Any, str]:
    """``(fs, root)``: the fsspec file system of ``url`` and the path inside it."""
    check_available(url)
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    return fs, str(root).rstrip("/")
