"""File output: the layout under ``OUTPUT/JOB/``, sharded writes composed into one file per
namespace (and optionally one per job), and the composition itself (local or Cloud Storage)."""
