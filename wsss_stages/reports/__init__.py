"""The stages that write reports: per-experiment metrics, the benchmark page, the gallery, the leaderboard."""
