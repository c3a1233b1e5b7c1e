#!/usr/bin/env bash
# The demo: the CBAK Energy 2023 annual meeting voted and tallied live on the local stack.
#   1. start Kafka and PostgreSQL (deploy/local), migrate the schema
#   2. run the ledger and the projector in the background
#   3. publish the meeting, its 20,000-position register and its channels' keys, then ~30 s of
#      channel traffic, signed by each channel
#   4. refresh the tally on screen while votes flow; print the final tally with quorum
#   5. print the final report (Form 8-K Item 5.07), the over-vote and the rejection reports
#   6. print a channel's answer to one submission (votes.decisions) and check it as its holder would
set -euo pipefail
cd "$(dirname "$0")/../.."

MEETING=${DEMO_MEETING:-cbak-2023-agm}
RATE=${DEMO_RATE:-1500}
DURATION=${DEMO_DURATION:-30}
# The meeting file holds the default seed: a re-run republishes the same event ids (applied once, R18).
SEED_ARGS=()
[ -n "${DEMO_SEED:-}" ] && SEED_ARGS=(--seed "$DEMO_SEED")

# Exports every login's DSN: the owner's (VOTE_LEDGER_PG_DSN, for `db migrate`), the superuser's and
# one per service (VOTE_LEDGER_PG_LEDGER_DSN, _PROJECTOR_DSN, _READER_DSN; README "Configuration").
eval "$(vote-ledger stack up)"
vote-ledger db migrate

mkdir -p .vote-ledger/logs
# The services get their own logins only: not the owner's, not the superuser's, not Kafka's operator
# (the ledger's Kafka principal reads its inputs and writes its own topics, nothing else).
VOTE_LEDGER_INSTANCE_ID="${VOTE_LEDGER_INSTANCE_ID:-demo-ledger-1}" \
  env -u VOTE_LEDGER_PG_DSN -u VOTE_LEDGER_PG_ADMIN_DSN -u VOTE_LEDGER_KAFKA_OPERATOR_LOGIN vote-ledger services run >.vote-ledger/logs/services.log 2>&1 &
SERVICES=$!
trap 'kill $SERVICES 2>/dev/null; wait $SERVICES 2>/dev/null || true' EXIT

# The simulated channels sign with public demo keys: registered for this simulation only. The meeting
# file holds the meeting; its synthetic register and campaign are deploy/simulations/$MEETING.toml.
vote-ledger meeting load "deploy/meetings/$MEETING.toml" --simulated-channels
vote-ledger status --wait 60 >/dev/null || { echo "the ledger did not catch up; see .vote-ledger/logs/services.log"; exit 1; }

# Signed by each simulated channel; then it awaits the answers to the last submissions and keeps one.
ANSWER=.vote-ledger/logs/sample-answer.json
rm -f "$ANSWER"
vote-ledger simulate --meeting "$MEETING" --rate "$RATE" --duration "$DURATION" "${SEED_ARGS[@]}" \
    --sample-answer "$ANSWER" >.vote-ledger/logs/simulate.log 2>&1 &
SIMULATE=$!
while kill -0 "$SIMULATE" 2>/dev/null; do
    clear 2>/dev/null || printf '\033[H\033[2J'
    echo "Voting in progress: $(tail -n 1 .vote-ledger/logs/simulate.log 2>/dev/null)"
    echo
    vote-ledger tally --meeting "$MEETING" || true
    sleep 2
done
wait "$SIMULATE" || { cat .vote-ledger/logs/simulate.log; exit 1; }

echo
echo "Polls closed to simulated traffic; waiting for the ledger and projector to catch up..."
vote-ledger status --wait 120
echo
echo "=== Final tally ==="
vote-ledger tally --meeting "$MEETING"
echo
echo "=== Final report (Form 8-K Item 5.07) ==="
vote-ledger report final --meeting "$MEETING"
echo
echo "=== Over-votes (R17) ==="
vote-ledger report overvotes --meeting "$MEETING"
echo
echo "=== Rejections ==="
vote-ledger report rejections --meeting "$MEETING" --examples 1
echo
echo "=== A channel's receipt: its answer on votes.decisions, checked as the holder would ==="
cat "$ANSWER"
EVENT_ID=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["event_id"])' "$ANSWER")
vote-ledger audit prove "$EVENT_ID" --meeting "$MEETING" --out .vote-ledger/logs/receipt.json
vote-ledger audit receipt .vote-ledger/logs/receipt.json
