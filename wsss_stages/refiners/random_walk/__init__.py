"""The random_walk plug-in: its declaration (plugin.py), stages and algorithm."""
