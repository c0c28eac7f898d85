"""The library the stages share, in four rooms.

- ``plan``: torch-free, what the Snakefile imports: declarations, the stage graph, config, experiments,
  shards, code fingerprints;
- ``data``: datasets and every artifact format;
- ``nets``: networks, training, CAM computation, inference, devices and precision;
- ``evaluation``: metrics, threshold sweeps, statistics, reports and figures.

A room imports only from rooms listed before it (``plan`` from none of the others).
"""
