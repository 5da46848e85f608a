# The Flex Template launcher image: `./run_dataflow.sh build-template` builds it with Cloud Build
# (cloudbuild.yaml) and publishes the template spec. Dataflow starts it on a launcher VM, which runs
# flex_main.py with the template's parameters; that builds the pipeline, submits the job and exits.
FROM gcr.io/dataflow-templates-base/python311-template-launcher-base

# Baked in at build time, never console parameters:
#   WORKER_IMAGE  custom SDK container for the workers (./run_dataflow.sh build-worker-image):
#                 workers then need no internet access and get no --setup_file.
#   JOBS_MODULES  comma-separated extra modules that register jobs (importable in this image and on
#                 the workers, e.g. a module under jobs/); `jobs` is always imported.
ARG WORKER_IMAGE=""
ARG JOBS_MODULES=""

WORKDIR /template
COPY requirements.txt setup.py flex_main.py metadata.json README.md ./
COPY pipeline ./pipeline
COPY jobs ./jobs

# Install the pinned dependencies (Beam 2.77, the Datastore client) and our packages, so the launch
# installs nothing; the import check fails the build rather than the first launch.
RUN pip install --no-cache-dir --upgrade pip \
    && pip install --no-cache-dir -r requirements.txt \
    && pip install --no-cache-dir --no-deps . \
    && python -c "import pipeline.launch.template, jobs"

ENV FLEX_TEMPLATE_PYTHON_PY_FILE="/template/flex_main.py" \
    FLEX_TEMPLATE_PYTHON_SETUP_FILE="/template/setup.py" \
    MAPPER_WORKER_IMAGE="${WORKER_IMAGE}" \
    MAPPER_JOBS_MODULES="${JOBS_MODULES}" \
    PIP_NO_DEPS="True"
