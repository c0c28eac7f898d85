"""The built-in refiners, one folder each: its declaration (``plugin.py``), its stages and its algorithm."""
