"""The built-in plug-ins: classifier methods, CAM sources and refiners, one module each.

Importing this package registers them (see :mod:`wsss_stages.lib.declare`); a plug-in outside
the package registers itself the same way and is named in the config key ``plugins``.
"""

from wsss_stages.methods import cam, crf, eps, gradcam, hide_and_seek, pamr, puzzle, random_walk, scg, sec  # noqa: F401
