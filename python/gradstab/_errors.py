"""The exceptions gradstab raises, each also the built-in exception a caller would expect."""


class GradstabError(Exception):
    """Every error gradstab's library reports, with the library's message."""


class InvalidArgument(GradstabError, ValueError):
    """An argument out of range, of the wrong form, or in conflict with another."""


class FileError(GradstabError, OSError):
    """A file that cannot be read or written, or whose contents are malformed."""


class FileNotFound(FileError, FileNotFoundError):
    """A file that does not exist."""


class PermissionDenied(FileError, PermissionError):
    """A file the process may not read or write."""


class WontFit(GradstabError, MemoryError):
    """A run refused before it allocates: it would not fit in host or device memory."""


class DeviceError(GradstabError, RuntimeError):
    """No adapter, an adapter that lacks a feature, or a GPU failure."""


__all__ = [
    "GradstabError",
    "InvalidArgument",
    "FileError",
    "FileNotFound",
    "PermissionDenied",
    "WontFit",
    "DeviceError",
]
