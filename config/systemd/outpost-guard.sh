#!/bin/sh
# ExecStartPre= guard for self-update (runs before every start of outpost.service):
#   ExecStartPre=/opt/outpost/outpost-guard.sh /opt/outpost
# During a trial (state.json says "phase": "trial" and trial.env is present) it counts this start
# in trial-boots; once the version on trial has had MAX starts without committing, it points
# `current` back at the previous slot, so a new binary that cannot even start its own code is
# rolled back without its help. The gateway records the rollback in state.json on its next start.
# Outside a trial it counts nothing: power cuts during normal boots never lead to a rollback.
# MAX comes from trial.env (the gateway writes update.maxAttempts there), else from $2, else 3.
set -eu
ROOT="${1:-/opt/outpost}"
cd "$ROOT"
[ -f trial.env ] || exit 0
if ! grep -q '"phase": *"trial"' state.json 2>/dev/null; then
  # Left behind by a power cut between the commit (or rollback) and their removal.
  rm -f trial.env trial-boots
  exit 0
fi
PREVIOUS_SLOT=$(sed -n 's/^PREVIOUS_SLOT=\([ab]\)$/\1/p' trial.env)
[ -n "$PREVIOUS_SLOT" ] || { echo "outpost-guard: $ROOT/trial.env has no PREVIOUS_SLOT" >&2; exit 0; }
MAX=$(sed -n 's/^MAX_ATTEMPTS=\([0-9][0-9]*\)$/\1/p' trial.env)
MAX="${MAX:-${2:-3}}"
# SUPERVISED=1: the old version started the new one itself (attempt 1); 0: the trial began with
# a restart, so every start is one through systemd.
SUPERVISED=$(sed -n 's/^SUPERVISED=\([01]\)$/\1/p' trial.env)
SUPERVISED="${SUPERVISED:-1}"
printf x >> trial-boots
sync trial-boots 2>/dev/null || sync
BOOTS=$(wc -c < trial-boots)
if [ $((BOOTS + SUPERVISED)) -gt "$MAX" ]; then
  ln -sfn "slots/$PREVIOUS_SLOT" current.guard-tmp
  mv -T current.guard-tmp current
  sync .
  rm -f trial.env
  sync .
  echo "outpost-guard: the version on trial had $((BOOTS + SUPERVISED - 1)) starts without committing; restored slots/$PREVIOUS_SLOT" >&2
else
  echo "outpost-guard: start $((BOOTS + SUPERVISED)) of at most $MAX of the version on trial" >&2
fi
exit 0
