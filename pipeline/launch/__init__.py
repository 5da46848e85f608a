"""The top layer: the command-line options, what reaches the terminal, resolving the options into
a ``RunConfig``, the checks made before anything is launched, the launch (here or on Dataflow) and
its progress, the CLI (``python -m pipeline``, ``datastore-mapper``) and the Flex Template launcher."""
