"""Several managers, one study: the shared storage (see :doc:`/study`).

A study is a storage URL (``sqlite:///path/to/study.db`` or
``postgresql://user@host/dbname``) given to each manager as ``study=``.  This package holds
its tables (:mod:`.schema`), the storage (:mod:`.storage`: creating, joining, storing,
reading, marking lost), what defines it (:mod:`.fingerprint`) and a manager's side of it
(:mod:`.link`: the sync and the heartbeat thread).
"""

from .fingerprint import fingerprint
from .storage import Study, StudyError, StudyMismatch, is_study_url, normalise_url, open_existing

__all__ = ["Study", "StudyError", "StudyMismatch", "fingerprint", "is_study_url", "normalise_url",
           "open_existing"]
