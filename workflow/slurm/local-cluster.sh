#!/usr/bin/env bash
# A throwaway one-node SLURM cluster on this machine, for CI (issue 14): munged, slurmctld and slurmd
# run as root, every piece of state (spool, logs, pid files, munge key and socket) lives in a temp dir.
# Only /etc/slurm/slurm.conf and gres.conf are written outside it (srun inside a job ignores SLURM_CONF, so
# the config must be at the default path); existing ones are kept as *.lipbench-backup, put back by stop.
#   workflow/slurm/local-cluster.sh start   # installs the Debian packages if missing, waits for the node
#   workflow/slurm/local-cluster.sh status
#   workflow/slurm/local-cluster.sh stop    # kills exactly the recorded daemons, removes the state
set -euo pipefail

CONFS=(/etc/slurm/slurm.conf /etc/slurm/gres.conf)
RECORD=/etc/slurm/lipbench-local-cluster.state # "state <dir>" and "pid <name> <pid>" lines
MARK="# lipbench local-cluster"
PACKAGES=(slurmctld slurmd slurm-client munge)
WAIT_S=${LIPBENCH_SLURM_WAIT_S:-30}

die() {
	echo "local-cluster.sh: $*" >&2
	exit 1
}

install_packages() {
	local cmd missing=0
	for cmd in munged slurmctld slurmd sbatch squeue sinfo; do
		command -v "$cmd" >/dev/null || missing=1
	done
	((missing)) || return 0
	echo "installing ${PACKAGES[*]} ..."
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get install -y --no-install-recommends "${PACKAGES[@]}" ||
		{ apt-get update && apt-get install -y --no-install-recommends "${PACKAGES[@]}"; }; } >/dev/null ||
		die "cannot install ${PACKAGES[*]} with apt-get (needs root on Debian/Ubuntu and its package mirror)"
}

recorded() { # recorded state | recorded pids: the temp dir, or "<name> <pid>" lines
	[[ -f $RECORD ]] || return 0
	if [[ $1 == state ]]; then awk '$1 == "state" {print $2}' "$RECORD"; else awk '$1 == "pid" {print $2, $3}' "$RECORD"; fi
}

alive() { # alive NAME PID: PID runs and is still that daemon (not a reused PID, not a zombie)
	local comm state
	read -r _ comm state _ 2>/dev/null <"/proc/$2/stat" || return 1
	[[ $comm == "($1"* && $state != Z ]]
}

cluster_up() {
	local name pid
	[[ -f $RECORD ]] || return 1
	while read -r name pid; do alive "$name" "$pid" || return 1; done < <(recorded pids)
	timeout 5 sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'
}

launch() { # launch NAME CMD...: run a daemon in the foreground, in the background; record its PID
	local name=$1 state
	state=$(recorded state)
	shift
	"$@" </dev/null >"$state/log/$name.out" 2>&1 &
	echo "pid $name $!" >>"$RECORD"
}

write_conf() { # write_conf STATE NODE CPUS MEM
	local conf i
	for conf in "${CONFS[@]}"; do
		if [[ -f $conf ]] && ! grep -q "^$MARK" "$conf"; then
			[[ ! -e $conf.lipbench-backup ]] || die "both $conf and $conf.lipbench-backup exist: move one away"
			mv "$conf" "$conf.lipbench-backup"
		fi
	done
	cat >/etc/slurm/slurm.conf <<EOF
$MARK: written by workflow/slurm/local-cluster.sh, state in $1; stop restores the previous file.
ClusterName=lipbench-ci
SlurmctldHost=$2(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$1/munge/munge.socket
StateSaveLocation=$1/ctld
SlurmdSpoolDir=$1/spool
SlurmctldPidFile=$1/slurmctld.pid
SlurmdPidFile=$1/slurmd.pid
SlurmctldLogFile=$1/log/slurmctld.log
SlurmdLogFile=$1/log/slurmd.log
# no cgroups (none in containers), no accounting (no slurmdbd: sacct fails, use squeue for status)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
# finished jobs stay visible to squeue for an hour: the plugin's squeue status query needs them
MinJobAge=3600
# placeholder GPUs (no device files): the workflow's gpu=1 rules become --gpus=1, which needs a GRES
GresTypes=gpu
NodeName=$2 NodeAddr=127.0.0.1 CPUs=$3 RealMemory=$4 Gres=gpu:$3 State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
	# GPUs need File= lines (without, slurmd reports 0 GPUs and the node is drained): empty placeholder files
	mkdir "$1/gpu"
	for ((i = 0; i < $3; i++)); do touch "$1/gpu/gpu$i"; done
	printf '%s\nNodeName=%s Name=gpu File=%s/gpu/gpu[0-%s]\n' "$MARK" "$2" "$1" "$(($3 - 1))" >/etc/slurm/gres.conf
}

start() {
	[[ $EUID -eq 0 ]] || die "start needs root: it writes /etc/slurm and runs the daemons"
	if [[ -f $RECORD ]]; then
		if cluster_up; then
			echo "local cluster already up, state in $(recorded state)"
			return 0
		fi
		echo "a previous local cluster is recorded but not up: stopping it first"
		stop
	fi
	install_packages
	local state node cpus mem i
	mkdir -p /etc/slurm
	state=$(mktemp -d "${TMPDIR:-/tmp}/lipbench-slurm.XXXXXX")
	echo "state $state" >"$RECORD"
	echo "local cluster state in $state"
	mkdir -m 700 "$state"/{munge,ctld,spool,log}

	# munge: own key and socket, so a system munged (if any) is neither used nor disturbed
	dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
	chmod 400 "$state/munge/munge.key"
	launch munged munged --foreground --force --key-file="$state/munge/munge.key" \
		--socket="$state/munge/munge.socket" --pid-file="$state/munge/munged.pid" \
		--log-file="$state/log/munged.log" --seed-file="$state/munge/munged.seed"

	# the node as slurmd sees it; RealMemory a bit below the real one (more drains the node)
	read -r node cpus mem < <(slurmd -C | sed -nE 's/^NodeName=([^ ]+) CPUs=([0-9]+) .*RealMemory=([0-9]+).*/\1 \2 \3/p')
	[[ -n ${mem:-} ]] || die "cannot read the node's CPUs and memory from 'slurmd -C'"
	write_conf "$state" "$node" "$cpus" "$((mem * 9 / 10))"

	for ((i = 0; i < 10 * WAIT_S; i++)); do
		if [[ -S $state/munge/munge.socket ]]; then break; fi
		sleep 0.1
	done
	launch slurmctld slurmctld -D
	launch slurmd slurmd -D -N "$node"
	for ((i = 0; i < WAIT_S; i++)); do
		if cluster_up; then
			echo "local cluster up: node $node, $cpus CPUs, $((mem * 9 / 10)) MB, partition ci"
			return 0
		fi
		sleep 1
	done
	tail -n 5 "$state"/log/* >&2 || true
	die "the node did not come up idle within ${WAIT_S} s (logs above); run '$0 stop'"
}

stop() {
	local state name pid i conf
	state=$(recorded state)
	if [[ -n $state ]] && timeout 5 squeue -h >/dev/null 2>&1; then
		# cancel the jobs first: a slurmstepd outlives slurmd otherwise
		timeout 10 squeue -h -o %A | xargs -r timeout 10 scancel || true
		for ((i = 0; i < 15; i++)); do
			if [[ -z $(timeout 5 squeue -h -t R,CG -o %A 2>/dev/null) ]]; then break; fi
			sleep 1
		done
	fi
	# exactly the recorded daemons, newest first
	while read -r name pid; do
		if alive "$name" "$pid"; then kill "$pid" 2>/dev/null || true; fi
		for ((i = 0; i < 50; i++)); do
			if ! alive "$name" "$pid"; then break; fi
			sleep 0.2
		done
		if alive "$name" "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
	done < <(recorded pids | tac)
	for conf in "${CONFS[@]}"; do
		if [[ -f $conf ]] && grep -q "^$MARK" "$conf"; then rm -f "$conf"; fi
		if [[ -f $conf.lipbench-backup && ! -e $conf ]]; then mv "$conf.lipbench-backup" "$conf"; fi
	done
	if [[ $state == */lipbench-slurm.* ]]; then rm -rf "$state"; fi
	rm -f "$RECORD"
	echo "local cluster stopped${state:+, $state removed}"
}

status() {
	[[ -f $RECORD ]] || die "no local cluster recorded ($RECORD)"
	cat "$RECORD"
	if cluster_up; then
		sinfo
		squeue
	else
		die "recorded, but not up"
	fi
}

case ${1:-} in
start | stop | status) "$1" ;;
*) die "usage: $0 start|status|stop" ;;
esac
