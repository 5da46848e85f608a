"""The Beam graph: the restriction trackers, the slice loop, the steps (expand namespaces, split
them, read ranges with the job applied, roll counters up, fire hooks, write the summary) and
``build``, which assembles them with a sink."""
