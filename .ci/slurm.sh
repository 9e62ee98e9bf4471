#!/usr/bin/env bash
# A single-node Slurm on this machine, for the cluster tests (tests/cluster) and CI (issue 25).
#
#   .ci/slurm.sh start   install (Debian slurmctld, slurmd, slurm-client, munge) if missing, write the config into
#                        $HARNESS_SLURM_DIR (default /tmp/harness-slurm), start munged, slurmctld and slurmd, and
#                        wait until `sinfo` shows the node idle. Idempotent: what already runs is left alone.
#   .ci/slurm.sh stop    stop only the daemons this script started (their pids are kept in the folder).
#   .ci/slurm.sh env     print the `export SLURM_CONF=...` that sbatch/squeue/sinfo need.
#
# Needs root (packages, the munge key). What the config needs on 22.05 (found by trial): SlurmUser=root,
# proctrack/linuxproc, task/none, no accounting, cons_tres, ReturnToService=2, and *no* cgroup.conf (with
# CgroupPlugin=disabled slurmd refuses to start).
set -euo pipefail
DIR=${HARNESS_SLURM_DIR:-/tmp/harness-slurm}
CONF=$DIR/slurm.conf
NODE=$(hostname -s)
CPUS=$(nproc)

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null && return
  flock /tmp/apt.lock apt-get update -q
  DEBIAN_FRONTEND=noninteractive flock /tmp/apt.lock apt-get install -y -q slurmctld slurmd slurm-client munge
}

write_config() {
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
  cat > "$CONF" <<EOF
ClusterName=harness
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
MinJobAge=600
KillWait=5
NodeName=$NODE CPUs=$CPUS RealMemory=20000 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
  if pgrep -x munged >/dev/null; then return; fi
  if [ ! -s /etc/munge/munge.key ]; then
    /usr/sbin/mungekey --create --force 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1
  fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$DIR/munged.started"
}

start() {
  install_packages
  mkdir -p "$DIR"
  if ! alive "$DIR/slurmctld.pid" || ! alive "$DIR/slurmd.pid"; then
    write_config
  fi
  start_munge
  export SLURM_CONF=$CONF
  if ! alive "$DIR/slurmctld.pid"; then
    slurmctld -f "$CONF" && sleep 1 && cp "$DIR/slurmctld.pid" "$DIR/slurmctld.started"
  fi
  if ! alive "$DIR/slurmd.pid"; then
    slurmd -f "$CONF" && sleep 1 && cp "$DIR/slurmd.pid" "$DIR/slurmd.started"
  fi
  for _ in $(seq 60); do
    state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
    if [ "$state" = "idle" ] || [ "$state" = "mix" ] || [ "$state" = "alloc" ]; then
      echo "slurm: node $NODE is $state (SLURM_CONF=$CONF)"
      return 0
    fi
    sleep 1
  done
  echo "slurm: node $NODE did not become idle within 60 s (state: ${state:-none}); see $DIR/log" >&2
  return 1
}

stop() {
  for daemon in slurmd slurmctld munged; do
    started=$DIR/$daemon.started
    [ -f "$started" ] || continue
    pid=$(cat "$started")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$started"
    echo "slurm: stopped $daemon ($pid)"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
