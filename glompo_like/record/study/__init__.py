"""Several managers, one study: the shared storage (see :doc:`/study`).

A study is a storage URL (``sqlite:///path/to/study.db`` or
``postgresql://user@host/dbname``) given to each manager as ``study=``.  This package holds
its tables (:mod:`.schema`), the storage (:mod:`.storage`: creating, joining, storing,
reading, marking lost), what defines it (:mod:`.fingerprint`) and a manager's side of it
(:mod:`.link`: the sync and the heartbeat thread).
"""


from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Study", "StudyError", "StudyMismatch", "fingerprint", "is_study_url", "normalise_url",
           "open_existing"]


def __getattr__(name: str) -> Any:
    """The package's names, imported when first asked for: the storage needs SQLAlchemy
    (``pip install 'glompo_like[study]'``), which a run without ``study`` never imports."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(".fingerprint" if name == "fingerprint" else ".storage", __name__)
    return getattr(module, name)
