"""Transactions: locking, atomic file replacement and compaction.

A change to a store never edits the live file. The writer takes the store's lock, copies
the file to a private temporary file in the same directory, applies the change there,
fsyncs it, atomically renames it over the original and fsyncs the directory. Readers never
lock and always see a complete file: the old one or the new one.
"""
from .atomic import (TMP_MARK, atomic_replace, cleanup_leftovers, copy_file, fsync_dir,
                     tmp_path_for)
from .lock import StoreLock, lock_path_for

__all__ = ["StoreLock", "lock_path_for", "TMP_MARK", "atomic_replace", "cleanup_leftovers",
           "copy_file", "fsync_dir", "tmp_path_for"]
