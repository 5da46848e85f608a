"""Developer tools: run the Cloud Datastore emulator and seed it with demo/test data."""
