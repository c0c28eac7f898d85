"""The recurseed plug-in: its declaration (plugin.py) and its training (recurseed.py)."""
