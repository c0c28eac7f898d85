"""The sec plug-in: its declaration (plugin.py), stages and algorithm."""
