"""wsss: weakly-supervised semantic segmentation stages.

Importing the package is cheap (no torch): the Snakefile imports :mod:`wsss_stages.lib.plan.config`
and :mod:`wsss_stages.lib.plan.codedeps` while building the DAG. Each stage lives in a module of the
same name (``make_cams``, ``refine_crf`` …) and is run through ``wsss <stage>``.
"""

__version__ = "0.1.0"


class WsssError(Exception):
    """A user-facing error: bad input, bad config, missing file. Printed without traceback."""
