#!/usr/bin/env bash
# The ci configuration end to end through a real one-node SLURM cluster: start the local cluster, run
# the workflow with profiles/slurm-ci into runs/ci-slurm (runs/ci is left alone; its reference rule
# compares the results with the golden table, strictly), check that a rerun finds nothing to do; the
# cluster is stopped whatever happens. Before that, a training job cancelled with scancel must resume.
# Needs root (apt-get, /etc/slurm), the venv active, LIPBENCH_DATA.
#   bash workflow/slurm/run-ci.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

NAME=${LIPBENCH_SLURM_NAME:-ci-slurm} # runs/<NAME>
LIMIT_S=${LIPBENCH_SLURM_TIMEOUT_S:-900}
CLUSTER=workflow/slurm/local-cluster.sh

die() {
	echo "run-ci.sh: $*" >&2
	exit 1
}
for cmd in snakemake lipbench; do
	# the jobs get this environment (the plugin submits with --export=ALL): lipbench must be on PATH
	command -v "$cmd" >/dev/null || die "$cmd is not on PATH: activate the virtual environment"
done
[[ -d ${LIPBENCH_DATA:-} ]] || die "LIPBENCH_DATA must name the data folder"
[[ $NAME =~ ^[A-Za-z0-9_-]+$ && $NAME != quick ]] || die "LIPBENCH_SLURM_NAME=$NAME: not a runs/ folder to replace"
LIPBENCH_DATA=$(cd "$LIPBENCH_DATA" && pwd)
export LIPBENCH_DATA

smk=(snakemake --profile profiles/slurm-ci --configfile config/ci.yaml --config "name=$NAME")
trap '"$CLUSTER" stop' EXIT
# snakemake runs in the background, so that a signal is handled at once: SIGINT makes snakemake cancel
# its jobs and drop its locks (timeout passes it on, and kills it 30 s later); then the cluster stops.
trap 'if [[ -n ${SMK:-} ]]; then kill -INT "$SMK" 2>/dev/null; wait "$SMK" || true; fi; exit 143' INT TERM
"$CLUSTER" start

# A cancelled training job resumes: the base model of a longer ci training (150 steps, a checkpoint every
# 5), cancelled with scancel after its first checkpoint, then rerun through SLURM; its log must say
# "resumed from step N" and its model.pt must be the one an uninterrupted local run writes.
t0=$SECONDS
RESUME=$NAME-resume
resume_config=runs/$RESUME.yaml
rm -rf "runs/$RESUME" "runs/$RESUME-local"
mkdir -p runs
python - "$resume_config" <<'PY'
import sys, yaml
config = yaml.safe_load(open("config/ci.yaml"))
config["train"].update(lambdas=[0.0], base_steps=150, checkpoint_every=5, probe_size=0)
yaml.safe_dump(config, open(sys.argv[1], "w"))
PY
model=models/lam0/model.pt
# the uninterrupted reference, locally, beside the SLURM job (one CPU each)
snakemake --configfile "$resume_config" --config "name=$RESUME-local" --cores 1 --quiet -- "runs/$RESUME-local/$model" \
	>"runs/$RESUME-local.log" 2>&1 &
LOCAL=$!
resume_smk=(snakemake --profile profiles/slurm-ci --configfile "$resume_config" --config "name=$RESUME")
"${resume_smk[@]}" --quiet -- "runs/$RESUME/$model" &
SMK=$!
for _ in $(seq 1200); do
	[[ -f runs/$RESUME/models/lam0/checkpoint.pt ]] && break
	sleep 0.1
done
[[ -f runs/$RESUME/models/lam0/checkpoint.pt ]] || die "the training job wrote no checkpoint in 120 s"
scancel --user "$(id -un)"
# and the submitting snakemake dies with it (a lost login session): its lock stays, --unlock drops it
kill -KILL "$SMK"
wait "$SMK" || true
SMK=
"${resume_smk[@]}" --unlock --quiet >/dev/null
[[ ! -f runs/$RESUME/$model ]] || die "the cancelled job finished anyway: cancel it sooner"
wait "$LOCAL" || die "the uninterrupted local run failed: runs/$RESUME-local.log"
timeout -k 30 300 "${resume_smk[@]}" --quiet -- "runs/$RESUME/$model" || die "the rerun of the cancelled job failed"
grep "resumed from step" "runs/$RESUME/logs/train/lam0.log" || die "the rerun did not resume (runs/$RESUME/logs)"
[[ $(sha256sum <"runs/$RESUME/$model") == $(sha256sum <"runs/$RESUME-local/$model") ]] ||
	die "the resumed model differs from the uninterrupted one"
echo "run-ci.sh: a cancelled training job resumed to the uninterrupted weights in $((SECONDS - t0)) s"

rm -rf "runs/$NAME"
t0=$SECONDS
# hard limit: a lost job makes snakemake wait forever, deaf to SIGTERM; hence -k (SIGKILL 30 s later)
timeout -k 30 "$LIMIT_S" "${smk[@]}" --quiet &
SMK=$!
wait "$SMK" || die "the workflow failed or ran past ${LIMIT_S} s"
SMK=
echo "run-ci.sh: workflow through SLURM in $((SECONDS - t0)) s"
head -1 "runs/$NAME/reference.md"  # the golden comparison, a job of the workflow (strict: it fails the run)
rerun=$(timeout -k 10 120 "${smk[@]}" 2>&1) || die "the rerun failed: $rerun"
grep -q "Nothing to be done" <<<"$rerun" || die "the rerun found work to do: $rerun"
echo "run-ci.sh: passed (golden table matched, rerun had nothing to do) in $((SECONDS - t0)) s"
