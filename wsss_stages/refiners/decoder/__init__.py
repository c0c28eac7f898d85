"""The decoder plug-in: its declaration (plugin.py) and its stage (predict_decoder.py)."""
