"""The job API: what a job author writes against (``JobSpec``, ``Query``, ``HookContext``,
``register``). No Beam and no Google client here: importing ``pipeline`` to write a job stays
light. ``pipeline`` re-exports the public names."""
