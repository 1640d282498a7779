"""Params: ``params.yaml`` as one frozen, typed :class:`Params`, parsed and checked once.

Every stage, tool and the benchmark call :func:`load_params` and read their values from the
object it returns (``params.explain.num_samples``, ``params.model("lstm")``, ``params.seed``):
whichever runs first fails on a typo or an impossible value anywhere in the file, naming its
key path, before any work. ``schema`` holds one dataclass per section, ``parsing`` the generic
mapping-to-dataclass check, ``loading`` the file and its layout.
"""

from stages.common.params.loading import DEFAULT_PARAMS, load_params
from stages.common.params.schema import Params

__all__ = ["DEFAULT_PARAMS", "Params", "load_params"]
