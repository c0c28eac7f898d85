"""The eps plug-in: its declaration (plugin.py), stages and algorithm."""
