"""The planning side: what the Snakefile imports to build the DAG.

Nothing here imports torch (tests/test_cli_and_code.py checks it).
"""
