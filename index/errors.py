"""Errors of the index package.

Every exception here carries a message written for the person at the keyboard (an operator
at the CLI or a Discord user): callers may show `str(error)` as it is.
"""


class IndexError_(Exception):
    """Base class: a problem with the index that the user can act on."""


class IndexNotBuilt(IndexError_):
    """No published index in the folder yet."""


class IndexMismatch(IndexError_):
    """The index was built with another model, chunker or format version."""


class RebuildBusy(IndexError_):
    """Another rebuild holds the lock on the index folder."""


class EmbedderUnavailable(IndexError_):
    """The embedding model could not be loaded."""


REBUILD_FULL_HINT = "run `python -m index rebuild --full`"


class IndexDamaged(IndexError_):
    """A file of the published index is missing, truncated or corrupt.

    The message names what is wrong and always ends with the command that repairs it: a full
    rebuild never reads the damaged version, so it always works.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"index damaged: {what}; {REBUILD_FULL_HINT}")


class IndexFolderError(IndexError_):
    """The index folder cannot be used: not a folder, read-only, or the disk is full."""
