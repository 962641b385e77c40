#!/usr/bin/env bash
# scripts/dockerd.sh [start|stop|status|env] — a private Docker daemon for
# the Compose cluster and its test, beside (never instead of) any dockerd the
# machine already runs.
#
#   start   (the default) installs Debian's docker.io, docker-compose (v1)
#           and debootstrap when missing, and starts dockerd unless it is
#           running already (idempotent); waits at most
#           $LOCKSTEP_DOCKER_WAIT seconds (60) for `docker info`; prints the
#           DOCKER_HOST to export. On failure it says why (the tail of the
#           daemon's log) and exits non-zero.
#   stop    stops it (SIGTERM, SIGKILL after 30 s); its containers stop too.
#   status  exit 0 when it answers; prints the storage driver.
#   env     prints `export DOCKER_HOST=...` (eval "$(scripts/dockerd.sh env)").
#
# The daemon has its own data root, exec root, pidfile, socket and log, and
# touches no network outside the namespaces a test creates: --bridge none
# (no docker0), --iptables=false, --ip-forward=false, --ip-masq=false;
# containers run with --network none and get a veth from Compose/network.sh.
# Its containerd is its own too (dockerd supervises one under the exec root
# unless a system containerd runs; then it keeps to its own namespace).
#
# Storage driver: overlay2 where the kernel and the backing filesystem allow
# it (ext4 here: yes), else vfs (slow and big, but works anywhere);
# LOCKSTEP_DOCKER_STORAGE_DRIVER forces one. Cgroup driver: cgroupfs (no
# systemd as PID 1 is needed).
#
# Client: /usr/bin/docker, the one Debian's docker.io installs with its
# daemon (20.10, API 1.41). Any newer client (e.g. a v28 in /usr/local/bin)
# works as well: it negotiates the API version down to 1.41; the scripts here
# call $DOCKER (default /usr/bin/docker) so they do not depend on PATH order.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_ROOT=${LOCKSTEP_DOCKER_DATA_ROOT:-/var/lib/lockstep-docker}
EXEC_ROOT=${LOCKSTEP_DOCKER_EXEC_ROOT:-/run/lockstep-docker}
PIDFILE=$EXEC_ROOT/dockerd.pid
SOCKET=unix://$EXEC_ROOT/docker.sock
LOG=${LOCKSTEP_DOCKER_LOG:-/var/log/lockstep-dockerd.log}
WAIT=${LOCKSTEP_DOCKER_WAIT:-60}
DOCKER=${DOCKER:-/usr/bin/docker}
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}

pid_of_daemon() { # the daemon's pid if it is alive
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -aq dockerd "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}
answers() { DOCKER_HOST=$SOCKET timeout 10 "$DOCKER" info >/dev/null 2>&1; }
driver() { DOCKER_HOST=$SOCKET timeout 10 "$DOCKER" info --format '{{.Driver}}' 2>/dev/null; }
usage_line() { echo "export DOCKER_HOST=$SOCKET"; }

stop_daemon() {
  local pid
  pid=$(pid_of_daemon) || { echo "dockerd ($EXEC_ROOT) is not running"; return 0; }
  kill -TERM "$pid"
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "dockerd (pid $pid) did not stop within 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$PIDFILE"
  # What dockerd leaves mounted after it stopped: its default network
  # namespace file and the data root's private bind mount.
  umount "$EXEC_ROOT/netns/default" 2>/dev/null || true
  if mountpoint -q "$DATA_ROOT"; then umount "$DATA_ROOT" 2>/dev/null || true; fi
  echo "dockerd ($EXEC_ROOT) stopped"
}

# start_with DRIVER: 0 once `docker info` answers; 1 (daemon stopped, log
# tail printed) when it exits or does not answer within $WAIT seconds.
start_with() {
  local storage=$1 pid
  mkdir -p "$DATA_ROOT" "$EXEC_ROOT" "$(dirname "$LOG")"
  echo "--- $(date -u +%FT%TZ) starting dockerd (storage driver $storage)" >>"$LOG"
  local offset
  offset=$(stat -c %s "$LOG")
  # setsid: the daemon outlives the shell that started it (and its job
  # control), so a test's trap decides when it stops.
  setsid "$DOCKERD" \
    --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT" --pidfile "$PIDFILE" --host "$SOCKET" \
    --bridge none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --storage-driver "$storage" --exec-opt native.cgroupdriver=cgroupfs \
    --containerd-namespace lockstep --containerd-plugins-namespace lockstep-plugins \
    --log-level warn </dev/null >>"$LOG" 2>&1 &
  pid=$!
  local deadline=$((SECONDS + WAIT))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if answers; then
      echo "dockerd running (pid $pid, storage driver $(driver), data root $DATA_ROOT, log $LOG)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "dockerd (storage driver $storage) did not answer within $WAIT s" >&2
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  else
    echo "dockerd (storage driver $storage) exited" >&2
  fi
  echo "what it logged ($LOG):" >&2
  tail -c +"$((offset + 1))" "$LOG" | tail -n 15 | cut -c1-400 | sed 's/^/  /' >&2
  return 1
}

start_daemon() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: dockerd needs root" >&2
    exit 1
  fi
  bash scripts/install-deps.sh docker.io docker-compose debootstrap
  [ -x "$DOCKERD" ] || { echo "error: no $DOCKERD after installing docker.io" >&2; exit 1; }
  [ -x "$DOCKER" ] || { echo "error: no $DOCKER after installing docker.io" >&2; exit 1; }
  if pid_of_daemon >/dev/null && answers; then
    echo "dockerd already running (pid $(pid_of_daemon), storage driver $(driver))"
    usage_line
    return 0
  fi
  if pid=$(pid_of_daemon); then
    echo "dockerd (pid $pid) runs but does not answer: stopping it"
    stop_daemon
  fi
  # Containers need the cgroup controllers mounted (v1 or v2).
  if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && [ ! -d /sys/fs/cgroup/memory ] && [ ! -d /sys/fs/cgroup/cpu ]; then
    command -v cgroupfs-mount >/dev/null && cgroupfs-mount || true
  fi
  local drivers
  if [ -n "${LOCKSTEP_DOCKER_STORAGE_DRIVER:-}" ]; then
    drivers=$LOCKSTEP_DOCKER_STORAGE_DRIVER
  elif grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null; then
    drivers="overlay2 vfs"
  else
    echo "the kernel has no overlay filesystem: using vfs"
    drivers=vfs
  fi
  for storage in $drivers; do
    if start_with "$storage"; then
      usage_line
      return 0
    fi
  done
  echo "error: dockerd could not start (tried storage drivers: $drivers; full log: $LOG)" >&2
  exit 1
}

case "${1:-start}" in
  start) start_daemon ;;
  stop) stop_daemon ;;
  status)
    if pid_of_daemon >/dev/null && answers; then
      echo "dockerd running (pid $(pid_of_daemon), storage driver $(driver))"
    else
      echo "dockerd ($EXEC_ROOT) is not running"
      exit 1
    fi
    ;;
  env) usage_line ;;
  *)
    echo "usage: $0 [start|stop|status|env]" >&2
    exit 2
    ;;
esac
