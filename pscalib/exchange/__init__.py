"""Moving constants between stores: verify, diff, copy/squeeze and merge (docs/exchange.rst)."""
from .copy import CopyResult, copy_store
from .diff import DiffReport, diff_stores
from .merge import MergeReport, merge_stores
from .verify import Problem, VerifyReport, verify

__all__ = ["verify", "VerifyReport", "Problem", "diff_stores", "DiffReport", "copy_store",
           "CopyResult", "merge_stores", "MergeReport"]
