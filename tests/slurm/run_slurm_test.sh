#!/usr/bin/env bash
# Real SLURM test: bring up a one-node SLURM cluster on this machine (Debian's munge and
# slurm 22.05 packages), run the DAG on a small generated consortium through
# workflow/profiles/slurm, check that every output equals that of a local run, and take the
# cluster down again. Needs root (it installs packages and starts daemons). From the repo root:
#
#   bash tests/slurm/run_slurm_test.sh          # (.ci/run does this when FLAQUM_SLURM_TEST=1)
#
# Environment (all optional):
#   FLAQUM_SLURM_TARGETS   targets to build (default: the whole DAG, rule all)
#   FLAQUM_SLURM_WORKFLOW  folder with the Snakefile, workflow/ and config/ (default: this repo)
#   FLAQUM_SLURM_TIMEOUT   seconds the SLURM run may take before it is killed (default 900)
#   FLAQUM_SLURM_KEEP=1    keep the work folder (projects, slurm.conf, daemon logs) afterwards
#
# Only the daemons this script starts are stopped, by the PIDs in their PID files. A munged
# that is already running is used and left running; a slurmctld/slurmd already running on this
# machine is not touched (the test cluster uses its own ports, conf, spool and state folders).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WF="$(cd "${FLAQUM_SLURM_WORKFLOW:-$ROOT}" && pwd)"
PY="$ROOT/.venv/bin/python"
SNAKEMAKE="$ROOT/.venv/bin/snakemake"
TIMEOUT="${FLAQUM_SLURM_TIMEOUT:-900}"
read -r -a TARGETS <<<"${FLAQUM_SLURM_TARGETS:-}"
T0=$SECONDS
STARTED_PIDFILES=()   # PID files of the daemons this script started, stopped in reverse order
POLICY_RC_CREATED=0
WORK=""
RESULT="FAIL"
REASON="setup did not finish"

log() { printf '[slurm-test %4ds] %s\n' "$((SECONDS - T0))" "$*"; }
fail() { REASON="$*"; exit 1; }

stop_pidfile() {  # stop the process named in a PID file: TERM, wait up to 15 s, then KILL
  local f="$1" pid
  [ -s "$f" ] || return 0
  pid="$(cat "$f")"
  kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  if [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ] && [ "${#STARTED_PIDFILES[@]}" -gt 0 ]; then
    scancel --quiet --user "$(id -un)" 2>/dev/null   # jobs of the test cluster only (its conf)
    sleep 1
  fi
  for ((i = ${#STARTED_PIDFILES[@]} - 1; i >= 0; i--)); do
    stop_pidfile "${STARTED_PIDFILES[$i]}"
  done
  [ "${#STARTED_PIDFILES[@]}" -gt 0 ] && log "stopped the daemons this script started"
  [ "$POLICY_RC_CREATED" = 1 ] && rm -f /usr/sbin/policy-rc.d
  if [ "$rc" -ne 0 ] && [ -n "$WORK" ] && [ -d "$WORK/log" ]; then
    for f in "$WORK"/log/*.log; do
      [ -s "$f" ] && { echo "---- last lines of $f"; tail -n 25 "$f"; }
    done
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "${FLAQUM_SLURM_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
      log "work folder kept: $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  if [ "$rc" -eq 0 ] && [ "$RESULT" = PASS ]; then
    echo "PASS: SLURM run of the DAG equals the local run ($REASON; total $((SECONDS - T0)) s)"
  else
    echo "FAIL: $REASON (total $((SECONDS - T0)) s)"
    [ "$rc" -eq 0 ] && rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'REASON="interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# 0. Preconditions and packages
[ "$(id -u)" -eq 0 ] || fail "must run as root (installs packages, starts munged/slurmctld/slurmd)"
[ -x "$SNAKEMAKE" ] || fail "$SNAKEMAKE not found: set up the venv first (see README)"
"$PY" -c "import snakemake_executor_plugin_slurm" 2>/dev/null ||
  fail "snakemake-executor-plugin-slurm is not installed: .venv/bin/pip install -e '.[slurm]'"

need=()
for c in munged munge slurmctld slurmd sbatch; do command -v "$c" >/dev/null || need+=("$c"); done
if [ "${#need[@]}" -gt 0 ]; then
  log "installing munge slurmctld slurmd slurm-client (missing: ${need[*]})"
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep the packages from starting their daemons
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || fail "apt-get update failed"
  apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client \
    >/dev/null || fail "apt-get install of munge/slurm failed"
  if [ "$POLICY_RC_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=0; fi
fi
log "slurm $(dpkg-query -W -f='${Version}' slurmctld 2>/dev/null || echo '?'), munge $(munged --version 2>&1 | awk '{print $1}' | sed 's/munge-//'), snakemake $("$SNAKEMAKE" --version), plugin $("$PY" -c 'from importlib.metadata import version; print(version("snakemake-executor-plugin-slurm"))')"

WORK="$(mktemp -d /tmp/flaqum-slurm-test.XXXXXX)"
mkdir -p "$WORK"/{etc,state,spool,log,run}

# ---------------------------------------------------------------------------------------------
# 1. munge: use a running munged, or start one (as user munge, PID file in /run/munge)
MUNGE_PIDFILE=/run/munge/munged.pid
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running: using it (and leaving it running)"
else
  id munge >/dev/null 2>&1 || fail "user munge does not exist (is the munge package installed?)"
  install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge
  install -d -o munge -g munge -m 0755 /run/munge /var/log/munge
  if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  rm -f "$MUNGE_PIDFILE"
  runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PIDFILE" ||
    fail "munged did not start (see /var/log/munge/munged.log)"
  for _ in $(seq 40); do [ -s "$MUNGE_PIDFILE" ] && break; sleep 0.25; done
  [ -s "$MUNGE_PIDFILE" ] || fail "munged wrote no PID file $MUNGE_PIDFILE"
  STARTED_PIDFILES+=("$MUNGE_PIDFILE")
  munge -n | unmunge >/dev/null || fail "munge credential round trip failed"
  log "munged started (pid $(cat "$MUNGE_PIDFILE"))"
fi

# ---------------------------------------------------------------------------------------------
# 2. slurm.conf for one node: this machine, its CPUs, a little less than its memory
NODE="$(hostname -s)"
CPUS="$(nproc)"
MEM_TOTAL="$(free -m | awk '/^Mem:/{print $2}')"
REAL_MEM=$((MEM_TOTAL * 9 / 10))
read -r CTLD_PORT SLURMD_PORT < <("$PY" - <<'EOF'
import socket
ports = []
socks = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
    ports.append(s.getsockname()[1])
print(*ports)
EOF
)
export SLURM_CONF="$WORK/etc/slurm.conf"
cat >"$SLURM_CONF" <<EOF
# Written by tests/slurm/run_slurm_test.sh: a throw-away one-node cluster.
ClusterName=flaqumtest
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/run/slurmctld.pid
SlurmdPidFile=$WORK/run/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
# squeue (the test's status command) and scontrol see a finished job for this many seconds
MinJobAge=3600
ReturnToService=2
InactiveLimit=0
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=test Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
# not the default: the SLURM run asks for it through SBATCH_PARTITION, as the README says
PartitionName=flaqum Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF
# The jobstep plugin (inside each job) clears every SLURM_* variable but a few before it calls
# srun, SLURM_CONF among them. On a real cluster srun then finds slurm.conf at its compiled-in
# place (/etc/slurm) or configless; this test's conf is in a temp folder and the machine's
# /etc/slurm is left alone, so an srun on PATH (which the jobs inherit) puts SLURM_CONF back.
mkdir -p "$WORK/bin"
printf '#!/bin/sh\nSLURM_CONF=%q exec %q "$@"\n' "$SLURM_CONF" "$(command -v srun)" >"$WORK/bin/srun"
chmod 755 "$WORK/bin/srun"
export PATH="$WORK/bin:$PATH"
log "slurm.conf: node $NODE, $CPUS CPUs, RealMemory=$REAL_MEM MB, ports $CTLD_PORT/$SLURMD_PORT ($SLURM_CONF)"

# ---------------------------------------------------------------------------------------------
# 3. slurmctld and slurmd (they daemonize and write their PID files)
slurmctld -f "$SLURM_CONF" -i || fail "slurmctld did not start"
for _ in $(seq 60); do [ -s "$WORK/run/slurmctld.pid" ] && break; sleep 0.25; done
[ -s "$WORK/run/slurmctld.pid" ] || fail "slurmctld wrote no PID file"
STARTED_PIDFILES+=("$WORK/run/slurmctld.pid")
slurmd -f "$SLURM_CONF" || fail "slurmd did not start"
for _ in $(seq 60); do [ -s "$WORK/run/slurmd.pid" ] && break; sleep 0.25; done
[ -s "$WORK/run/slurmd.pid" ] || fail "slurmd wrote no PID file"
STARTED_PIDFILES+=("$WORK/run/slurmd.pid")
log "slurmctld (pid $(cat "$WORK/run/slurmctld.pid")) and slurmd (pid $(cat "$WORK/run/slurmd.pid")) started"

state=""
for i in $(seq 120); do
  state="$(sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | head -n1 || true)"
  [ "$state" = idle ] && break
  if [ "$i" = 20 ] && [[ "$state" =~ ^(down|drain|drng|inval) ]]; then
    scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
  fi
  sleep 0.5
done
[ "$state" = idle ] || fail "node $NODE is '${state:-not listed}', not idle, after 60 s ($(sinfo -h -N -R 2>/dev/null))"
log "cluster up: $(sinfo -h -N -p test -o '%N %t %c CPUs %m MB'), partitions: $(sinfo -h -o '%P' | tr '\n' ' ')"

# ---------------------------------------------------------------------------------------------
# 4. Two identical projects on a small generated consortium
make_project() {
  local p="$1"
  mkdir -p "$p"
  for f in Snakefile workflow environment.yml; do ln -s "$WF/$f" "$p/$f"; done
  cp -r "$WF/config" "$p/config"
}
make_project "$WORK/local"
(cd "$WORK/local" && "$PY" -c "
from flaqum.config import load_study
from flaqum.simulate import generate_consortium
generate_consortium('data/raw', load_study(), n_hospitals=6, scale=0.3, seed=1)
") || fail "generating the test consortium failed"
make_project "$WORK/slurm"
cp -r "$WORK/local/data" "$WORK/slurm/data"
log "projects ready in $WORK/{local,slurm}: $(ls "$WORK/local/data/raw" | grep -v json | tr '\n' ' ')"

export MPLBACKEND=Agg

t=$SECONDS
(cd "$WORK/local" && "$SNAKEMAKE" --workflow-profile workflow/profiles/default --cores 2 \
  --nocolor "${TARGETS[@]}" >"$WORK/log/snakemake-local.log" 2>&1) || {
  tail -n 40 "$WORK/log/snakemake-local.log"
  fail "the local reference run failed (log above); the SLURM run was not attempted"
}
LOCAL_S=$((SECONDS - t))
log "local run: $(grep -Eo '[0-9]+ of [0-9]+ steps \(100%\) done' "$WORK/log/snakemake-local.log" | tail -n1) in ${LOCAL_S} s"

# ---------------------------------------------------------------------------------------------
# 5. The same DAG on SLURM: the pipeline's profile, the test layer, and (on the command line,
#    which wins over both profiles) quick polling for jobs that take seconds. The partition is
#    chosen the way the README tells users to: SBATCH_PARTITION, read by the profile.
t=$SECONDS
set +e
(cd "$WORK/slurm" && SBATCH_PARTITION=flaqum timeout -k 10 "$TIMEOUT" "$SNAKEMAKE" \
  --workflow-profile workflow/profiles/slurm --profile "$ROOT/tests/slurm/profile" \
  --seconds-between-status-checks 3 --latency-wait 10 --retries 0 \
  --nocolor "${TARGETS[@]}" >"$WORK/log/snakemake-slurm.log" 2>&1)
SLURM_RC=$?
set -e
SLURM_S=$((SECONDS - t))
if [ "$SLURM_RC" -ne 0 ]; then
  tail -n 60 "$WORK/log/snakemake-slurm.log"
  [ "$SLURM_RC" -eq 124 ] && fail "the SLURM run did not finish within $TIMEOUT s"
  fail "the SLURM run failed (exit $SLURM_RC; log above)"
fi
SUBMITTED="$(grep -c 'submitted to SLURM\|Job .* has been submitted with SLURM jobid' "$WORK/log/snakemake-slurm.log" || true)"
STEPS="$(grep -Eo '[0-9]+ of [0-9]+ steps \(100%\) done' "$WORK/log/snakemake-slurm.log" | tail -n1)"
grep -q "Using profiles .*tests/slurm/profile and workflow specific profile workflow/profiles/slurm" \
  "$WORK/log/snakemake-slurm.log" || fail "snakemake did not report using both profiles"
[ "${SUBMITTED:-0}" -gt 0 ] || fail "no job was submitted to SLURM (see $WORK/log/snakemake-slurm.log)"
log "SLURM run: $STEPS, $SUBMITTED jobs submitted with sbatch, in ${SLURM_S} s"

# The sbatch requests are the profile's (memory, time limit per rule) in the asked partition
REQUESTS="$(scontrol show job -o | "$PY" "$ROOT/tests/slurm/check_requests.py" \
  "$WF/workflow/profiles/slurm" flaqum)" || {
  echo "$REQUESTS"
  fail "the jobs' SLURM requests differ from workflow/profiles/slurm"
}
echo "$REQUESTS"

# ---------------------------------------------------------------------------------------------
# 6. Same outputs
COMPARE="$("$PY" "$ROOT/tests/slurm/compare_outputs.py" "$WORK/local" "$WORK/slurm")" || {
  echo "$COMPARE"
  fail "outputs of the SLURM run differ from those of the local run"
}
echo "$COMPARE"
RESULT=PASS
REASON="$STEPS, $SUBMITTED sbatch jobs, ${COMPARE%%:*}, all equal; local ${LOCAL_S} s, SLURM ${SLURM_S} s"
