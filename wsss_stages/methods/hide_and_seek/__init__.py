"""The hide_and_seek plug-in: its declaration (plugin.py), stages and algorithm."""
