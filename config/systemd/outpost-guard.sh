#!/bin/sh
# ExecStartPre= guard for self-update (runs before every start of outpost.service):
#   ExecStartPre=/opt/outpost/current/../outpost-guard.sh /opt/outpost 3
# During a trial (trial.env present) it counts this start in trial-boots; once the version on
# trial has had MAX starts without committing, it points `current` back at the previous slot,
# so a new binary that cannot even start its own code is rolled back without its help.
# The gateway (either version) records the rollback in state.json on its next start.
set -eu
ROOT="${1:-/opt/outpost}"
MAX="${2:-3}"
cd "$ROOT"
[ -f trial.env ] || exit 0
PREVIOUS_SLOT=$(sed -n 's/^PREVIOUS_SLOT=\([ab]\)$/\1/p' trial.env)
[ -n "$PREVIOUS_SLOT" ] || { echo "outpost-guard: $ROOT/trial.env has no PREVIOUS_SLOT" >&2; exit 0; }
printf x >> trial-boots
sync trial-boots 2>/dev/null || sync
BOOTS=$(wc -c < trial-boots)
# The supervised start was attempt 1; each start through systemd adds one.
if [ $((BOOTS + 1)) -gt "$MAX" ]; then
  ln -sfn "slots/$PREVIOUS_SLOT" current.guard-tmp
  mv -T current.guard-tmp current
  sync .
  rm -f trial.env
  echo "outpost-guard: trial failed after $((BOOTS + 1)) starts; restored slots/$PREVIOUS_SLOT" >&2
fi
exit 0
