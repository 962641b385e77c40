#!/usr/bin/env bash
# The demo: boots guests under primary-vmm (standalone: this build has no
# backup yet) and talks to one over TCP.
set -euo pipefail
cd "$(dirname "$0")/.."
VMM=.build/release/primary-vmm
PORT=${LOCKSTEP_DEMO_PORT:-7379}
[ -x "$VMM" ] || { echo "run 'make build' first" >&2; exit 1; }
[ -r /dev/kvm ] || { echo "error: /dev/kvm is not usable here; Lockstep needs KVM" >&2; exit 1; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. The every-call guest: each hypercall checked from inside the VM"
"$VMM" --vm demo-calls --guest Guest/build/callcheck.elf --standalone --memory 64M \
  --disk /tmp/lockstep-demo-disk.img --disk-size 4M --guest-args checks 2>&1 | grep -E 'CHECK|DONE|STANDALONE|stopped'

say "2. A misbehaving guest is stopped with a report; the VMM stays healthy"
"$VMM" --vm demo-bad --guest Guest/build/misbehave.elf --standalone --guest-args null-deref 2>&1 | grep -E 'MISBEHAVE|stopped' || true

say "3. An echo server in the VM on 127.0.0.1:$PORT"
"$VMM" --vm demo-echo --guest Guest/build/callcheck.elf --standalone --guest-args net \
  --serve "127.0.0.1:$PORT" > /tmp/lockstep-demo-echo.log 2>&1 &
vmm=$!
trap 'kill $vmm 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
for line in "hello from the host" "every byte crossed the rings" "quit"; do
  printf '%s\n' "$line" >&3
  IFS= read -r -t 5 reply <&3
  echo "sent: $line    echoed by the guest: $reply"
done
exec 3>&-
exec 4<>"/dev/tcp/127.0.0.1/$PORT"
printf 'shutdown\n' >&4
wait $vmm || true
trap - EXIT
grep -E 'NET|stopped' /tmp/lockstep-demo-echo.log
rm -f /tmp/lockstep-demo-disk.img
