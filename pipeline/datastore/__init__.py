"""Talking to Datastore: clients, the queries the mapper runs, one retry policy, errors turned
into advice, metadata listings, and the sampling that a namespace's split is cut from. Thin on
purpose: the splitting and claiming logic lives in ``pipeline.core``."""
