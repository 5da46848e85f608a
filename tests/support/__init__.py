"""What the tests share: the project id every emulator uses, the emulators' fixtures, running
the mapper, building a run's config, and the test-only jobs (``--job_module
tests.support.jobs_*``)."""

#: The project id of every test (any id works with the emulators).
TEST_PROJECT = "test-project"
