#!/usr/bin/env bash
# Launch mapper jobs on Google Cloud Dataflow, and build/run the Flex Template.
#
#   ./run_dataflow.sh [run] [--name value | --name=value ...] [-- extra options]
#   ./run_dataflow.sh build-template | run-template | build-worker-image [...]
#
# Settings are environment variables or the same names as flags (--temp_location gs://b/tmp,
# --TEMP_LOCATION=gs://b/tmp or --temp-location ...). Arguments after `--` are passed unchanged
# to `python -m pipeline` (run) or to gcloud (the other subcommands).
# DRY_RUN=1 prints the commands instead of running them. PYTHON and GCLOUD name the programs.
# `./run_dataflow.sh help` lists the settings.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: ./run_dataflow.sh [run|build-template|run-template|build-worker-image|help] [--NAME VALUE ...] [-- ...]

  run                 launch a job with DataflowRunner from here (python -m pipeline); the default
  build-template      build the template image (Dockerfile, Cloud Build) and publish the Flex
                      Template spec (metadata.json) at TEMPLATE_PATH
  run-template        launch a job from the published Flex Template
  build-worker-image  build the custom worker image (Dockerfile.worker) for workers without internet

settings (environment variables, or flags of the same name):
  PROJECT          Google Cloud project id, e.g. my-project                  (all)
  REGION           Dataflow region, e.g. us-central1                         (run, run-template)
  TEMP_LOCATION    gs://BUCKET/PATH for Dataflow's temporary files           (run; optional for run-template)
  JOB              registered job name, e.g. count_keys (run: also module:Class)  (run, run-template)
  JOB_PARAMS       the job's parameters, NAME=VALUE,NAME=VALUE
  NAMESPACES       comma-separated namespaces (default: the job's, usually all)
  OUTPUT           gs://BUCKET/PATH: OUTPUT/JOB/summary.json and the job's records
  DATABASE         a named Datastore database (default: the default database)
  READ_TIME        'start' or an RFC 3339 time: read one consistent snapshot
  SHARDS           ranges per namespace
  JOB_NAME         Dataflow job name (default mapper-JOB-UTCTIME)
  JOB_MODULES      run only: comma-separated modules that register jobs (--job_module)
  MAX_WORKERS      maximum number of workers
  MACHINE_TYPE     worker machine type, e.g. n2-standard-4
  SERVICE_ACCOUNT  service account email the workers run as
  NETWORK, SUBNETWORK  VPC network / subnetwork (SUBNETWORK: regions/R/subnetworks/S or a full URL)
  NO_PUBLIC_IPS    true: workers get no public IP (needs Private Google Access on the subnetwork)
  WORKER_IMAGE     custom SDK container image (build-worker-image builds it); run passes it as
                   --sdk_container_image (and no --setup_file); build-template bakes it into
                   the template image, whose launches then do the same
  TEMPLATE_PATH    gs://BUCKET/PATH.json of the Flex Template spec           (build-template, run-template)
  TEMPLATE_IMAGE   the template launcher image, e.g.
                   us-central1-docker.pkg.dev/my-project/dataflow/datastore-mapper-template:latest
  TEMPLATE_JOBS_MODULES  build-template: extra job modules baked into the template image
  DRY_RUN=1        print the commands instead of running them
  PYTHON, GCLOUD   the programs to run (default: .venv/bin/python or python3; gcloud)
EOF
}

die_usage() {  # a missing or malformed setting: exit 2 with what it should look like
  echo "run_dataflow.sh: $*" >&2
  echo "(./run_dataflow.sh help lists the settings)" >&2
  exit 2
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
caller_pwd="$PWD"

# --- arguments ---------------------------------------------------------------------------------
cmd=run
case "${1:-}" in
  run|build-template|run-template|build-worker-image) cmd="$1"; shift ;;
  help|-h|--help) usage; exit 0 ;;
esac

SETTINGS=(PROJECT REGION TEMP_LOCATION JOB JOB_PARAMS NAMESPACES OUTPUT DATABASE READ_TIME SHARDS
          JOB_NAME JOB_MODULES MAX_WORKERS MACHINE_TYPE SERVICE_ACCOUNT NETWORK SUBNETWORK
          NO_PUBLIC_IPS WORKER_IMAGE TEMPLATE_PATH TEMPLATE_IMAGE TEMPLATE_JOBS_MODULES DRY_RUN)
is_setting() { local s; for s in "${SETTINGS[@]}"; do [[ $s == "$1" ]] && return 0; done; return 1; }

extra=()
while [[ $# -gt 0 ]]; do
  arg="$1"; shift
  case "$arg" in
    --) extra=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    --*)
      name="${arg#--}"; value=""; has_value=0
      if [[ $name == *=* ]]; then value="${name#*=}"; name="${name%%=*}"; has_value=1; fi
      var="$(tr 'a-z-' 'A-Z_' <<<"$name")"
      is_setting "$var" || die_usage "unknown option --$name (options for python -m pipeline or gcloud go after --)"
      if [[ $has_value == 0 ]]; then
        if [[ $var == NO_PUBLIC_IPS || $var == DRY_RUN ]] && [[ $# -eq 0 || ${1:-} == --* ]]; then
          value=true
        else
          [[ $# -gt 0 ]] || die_usage "--$name needs a value"
          value="$1"; shift
        fi
      fi
      printf -v "$var" '%s' "$value"
      ;;
    *) die_usage "unexpected argument '$arg' (settings are --NAME VALUE; extra options go after --)" ;;
  esac
done

if [[ -z ${PYTHON:-} ]]; then
  if [[ -x "$here/.venv/bin/python" ]]; then PYTHON="$here/.venv/bin/python"; else PYTHON=python3; fi
fi
GCLOUD="${GCLOUD:-gcloud}"

# --- checks ------------------------------------------------------------------------------------
GS_DIR='^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$'

need() {  # need VAR "what it is" "example"
  local var="$1"
  [[ -n ${!var:-} ]] || die_usage "$var is required for '$cmd': $2, e.g. $var=$3 (or --$(tr 'A-Z_' 'a-z_' <<<"$var") $3)"
}

check() {  # check VAR REGEX "what it should look like"
  local var="$1"
  [[ -z ${!var:-} || ${!var} =~ $2 ]] || die_usage "$var='${!var}' is not valid: $3"
}

truthy() {
  case "$(tr 'A-Z' 'a-z' <<<"${1:-}")" in
    1|true|yes) return 0 ;;
    ""|0|false|no) return 1 ;;
    *) die_usage "'$1' is not a boolean: use true or false" ;;
  esac
}

check_common() {
  check PROJECT '^([a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$' \
    "a Google Cloud project id (6-30 lowercase letters, digits, hyphens), e.g. my-project"
  check REGION '^[a-z]+-[a-z]+[0-9]+$' "a Dataflow region, e.g. us-central1"
  check TEMP_LOCATION "$GS_DIR" "a Cloud Storage path gs://BUCKET/PATH, e.g. gs://my-bucket/tmp"
  check OUTPUT "$GS_DIR" "a Cloud Storage directory gs://BUCKET/PATH, e.g. gs://my-bucket/mapper"
  check TEMPLATE_PATH '^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/.+\.json$' \
    "the template spec's Cloud Storage path, e.g. gs://my-bucket/templates/datastore-mapper.json"
  check MAX_WORKERS '^[1-9][0-9]*$' "a whole number of at least 1"
  check SHARDS '^[1-9][0-9]*$' "a whole number of at least 1"
  check JOB_NAME '^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$' \
    "a Dataflow job name: lowercase letters, digits and hyphens, starting with a letter"
  check NO_PUBLIC_IPS '^([Tt]rue|[Ff]alse|1|0|yes|no)$' "true or false"
}

default_job_name() {
  local base="${JOB%%:*}"; base="${base##*.}"
  base="$(tr 'A-Z_.' 'a-z--' <<<"$base" | tr -cd 'a-z0-9-')"
  echo "mapper-${base:-job}-$(date -u +%Y%m%d-%H%M%S)"
}

# --- running -----------------------------------------------------------------------------------
run_cmd() {
  if truthy "${DRY_RUN:-}"; then
    printf '%q ' "$@" | sed 's/ $//'
    echo
  else
    "$@"
  fi
}

# gcloud splits list/dict flags on commas; values here may hold commas (params, namespaces), so the
# lists use gcloud's alternate delimiter syntax (`gcloud topic escaping`): ^~^k=v~k=v.
gcloud_dict() {
  local IFS='~'
  echo "^~^$*"
}

cmd_run() {
  need PROJECT "the Google Cloud project id" my-project
  need REGION "the Dataflow region" us-central1
  need TEMP_LOCATION "a Cloud Storage path for Dataflow's temporary files" gs://my-bucket/tmp
  need JOB "the registered job to run (python -m pipeline --list_jobs)" count_keys
  check_common
  check JOB '^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_]*)?$' "a job name such as count_keys, or module:Class"
  local args=(-m pipeline --runner=DataflowRunner "--project=$PROJECT" "--region=$REGION"
              "--temp_location=$TEMP_LOCATION" "--job_name=${JOB_NAME:-$(default_job_name)}"
              "--job=$JOB")
  local m
  if [[ -n ${JOB_MODULES:-} ]]; then
    IFS=',' read -r -a mods <<<"$JOB_MODULES"
    for m in "${mods[@]}"; do [[ -n $m ]] && args+=("--job_module=$m"); done
  fi
  [[ -n ${JOB_PARAMS:-} ]] && args+=("--params=$JOB_PARAMS")
  [[ -n ${NAMESPACES:-} ]] && args+=("--namespaces=$NAMESPACES")
  [[ -n ${OUTPUT:-} ]] && args+=("--output=$OUTPUT")
  [[ -n ${DATABASE:-} ]] && args+=("--database=$DATABASE")
  [[ -n ${READ_TIME:-} ]] && args+=("--read_time=$READ_TIME")
  [[ -n ${SHARDS:-} ]] && args+=("--shards=$SHARDS")
  [[ -n ${MAX_WORKERS:-} ]] && args+=("--max_num_workers=$MAX_WORKERS")
  [[ -n ${MACHINE_TYPE:-} ]] && args+=("--machine_type=$MACHINE_TYPE")
  [[ -n ${SERVICE_ACCOUNT:-} ]] && args+=("--service_account_email=$SERVICE_ACCOUNT")
  [[ -n ${NETWORK:-} ]] && args+=("--network=$NETWORK")
  [[ -n ${SUBNETWORK:-} ]] && args+=("--subnetwork=$SUBNETWORK")
  truthy "${NO_PUBLIC_IPS:-}" && args+=(--no_use_public_ips)
  if [[ -n ${WORKER_IMAGE:-} ]]; then
    # Our packages are in the image; a staged sdist would be pip-installed on each worker,
    # which needs PyPI (its build backend), so none is staged.
    args+=("--sdk_container_image=$WORKER_IMAGE")
  else
    args+=(--setup_file ./setup.py)
  fi
  cd "$here"  # ./setup.py; the caller's directory stays importable for --job_module
  export PYTHONPATH="$caller_pwd${PYTHONPATH:+:$PYTHONPATH}"
  run_cmd "$PYTHON" "${args[@]}" ${extra[@]+"${extra[@]}"}
}

cloud_build() {  # cloud_build DOCKERFILE IMAGE
  local subs=("_DOCKERFILE=$1" "_IMAGE=$2" "_WORKER_IMAGE=${WORKER_IMAGE:-}"
              "_JOBS_MODULES=${TEMPLATE_JOBS_MODULES:-}")
  run_cmd "$GCLOUD" builds submit "$here" --project="$PROJECT" --config="$here/cloudbuild.yaml" \
    "--substitutions=$(gcloud_dict "${subs[@]}")" ${extra[@]+"${extra[@]}"}
}

cmd_build_template() {
  need PROJECT "the Google Cloud project id" my-project
  need TEMPLATE_PATH "where to publish the template spec" gs://my-bucket/templates/datastore-mapper.json
  need TEMPLATE_IMAGE "the launcher image to build and push (Artifact Registry)" \
    us-central1-docker.pkg.dev/my-project/dataflow/datastore-mapper-template:latest
  check_common
  cloud_build Dockerfile "$TEMPLATE_IMAGE"
  run_cmd "$GCLOUD" dataflow flex-template build "$TEMPLATE_PATH" --project="$PROJECT" \
    --image="$TEMPLATE_IMAGE" --sdk-language=PYTHON --metadata-file="$here/metadata.json"
}

cmd_build_worker_image() {
  need PROJECT "the Google Cloud project id" my-project
  need WORKER_IMAGE "the worker image to build and push (Artifact Registry)" \
    us-central1-docker.pkg.dev/my-project/dataflow/datastore-mapper-worker:latest
  check_common
  cloud_build Dockerfile.worker "$WORKER_IMAGE"
}

cmd_run_template() {
  need PROJECT "the Google Cloud project id" my-project
  need REGION "the Dataflow region" us-central1
  need TEMPLATE_PATH "the published template spec" gs://my-bucket/templates/datastore-mapper.json
  need JOB "a job registered in the template image" count_keys
  check_common
  check JOB '^[a-z][a-z0-9_]*$' "a registered job name such as count_keys (the template refuses module:Class)"
  [[ -z ${JOB_MODULES:-} ]] || die_usage "JOB_MODULES is not accepted by the template: bake modules into the image (TEMPLATE_JOBS_MODULES at build-template)"
  local params=("job=$JOB")
  [[ -n ${JOB_PARAMS:-} ]] && params+=("params=$JOB_PARAMS")
  [[ -n ${NAMESPACES:-} ]] && params+=("namespaces=$NAMESPACES")
  [[ -n ${OUTPUT:-} ]] && params+=("output=$OUTPUT")
  [[ -n ${DATABASE:-} ]] && params+=("database=$DATABASE")
  [[ -n ${READ_TIME:-} ]] && params+=("read_time=$READ_TIME")
  [[ -n ${SHARDS:-} ]] && params+=("shards=$SHARDS")
  local args=(dataflow flex-template run "${JOB_NAME:-$(default_job_name)}" --project="$PROJECT"
              --region="$REGION" --template-file-gcs-location="$TEMPLATE_PATH"
              "--parameters=$(gcloud_dict "${params[@]}")")
  [[ -n ${TEMP_LOCATION:-} ]] && args+=("--temp-location=$TEMP_LOCATION")
  [[ -n ${MAX_WORKERS:-} ]] && args+=("--max-workers=$MAX_WORKERS")
  [[ -n ${MACHINE_TYPE:-} ]] && args+=("--worker-machine-type=$MACHINE_TYPE")
  [[ -n ${SERVICE_ACCOUNT:-} ]] && args+=("--service-account-email=$SERVICE_ACCOUNT")
  [[ -n ${NETWORK:-} ]] && args+=("--network=$NETWORK")
  [[ -n ${SUBNETWORK:-} ]] && args+=("--subnetwork=$SUBNETWORK")
  truthy "${NO_PUBLIC_IPS:-}" && args+=(--disable-public-ips)
  # WORKER_IMAGE is not passed here: build-template bakes it into the launcher image.
  run_cmd "$GCLOUD" "${args[@]}" ${extra[@]+"${extra[@]}"}
}

case "$cmd" in
  run) cmd_run ;;
  build-template) cmd_build_template ;;
  run-template) cmd_run_template ;;
  build-worker-image) cmd_build_worker_image ;;
esac
