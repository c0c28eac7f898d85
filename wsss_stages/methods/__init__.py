"""The built-in classifier methods and CAM sources, one folder each (declaration in ``<name>/plugin.py``).

:func:`wsss_stages.lib.plan.declare.load_plugins` imports every ``plugin`` module found here and in
:mod:`wsss_stages.refiners`; a plug-in outside the package is a module named in the config key ``plugins``.
"""
