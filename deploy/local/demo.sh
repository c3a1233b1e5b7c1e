#!/usr/bin/env bash
# The demo: the CBAK Energy 2023 annual meeting voted and tallied live on the local stack.
#   1. start Kafka and PostgreSQL (deploy/local), migrate the schema
#   2. run the ledger, the projector and the HTTP API in the background; print the dashboard's address
#      and a token for it (the page updates live while the votes flow)
#   3. publish the meeting, its 20,000-position register and its channels' keys, then ~30 s of
#      channel traffic, signed by each channel
#   4. refresh the tally on screen while votes flow; print the final tally with quorum
#   5. print the final report (Form 8-K Item 5.07), the over-vote and the rejection reports
#   6. print a channel's answer to one submission (votes.decisions) and check it as its holder would
#   7. on a terminal, keep the services running for the dashboard until Enter or Ctrl-C (DEMO_KEEP=0: stop
#      at once, DEMO_KEEP=1: keep them even without a terminal)
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

# The stack's home (VOTE_LEDGER_HOME, by default ./.vote-ledger) holds the demo's logs next to Kafka's and PostgreSQL's.
LOGS=${VOTE_LEDGER_HOME:-.vote-ledger}/logs
mkdir -p "$LOGS"
# The services get their own logins only: not the owner's, not the superuser's, not Kafka's operator
# (the ledger's Kafka principal reads its inputs and writes its own topics, nothing else).
VOTE_LEDGER_INSTANCE_ID="${VOTE_LEDGER_INSTANCE_ID:-demo-ledger-1}" \
  env -u VOTE_LEDGER_PG_DSN -u VOTE_LEDGER_PG_ADMIN_DSN -u VOTE_LEDGER_KAFKA_OPERATOR_LOGIN vote-ledger services run >"$LOGS/services.log" 2>&1 &
SERVICES=$!
trap 'kill $SERVICES 2>/dev/null; wait $SERVICES 2>/dev/null || true' EXIT

# The simulated channels sign with public demo keys: registered for this simulation only. The meeting
# file holds the meeting; its synthetic register and campaign are deploy/simulations/$MEETING.toml.
vote-ledger meeting load "deploy/meetings/$MEETING.toml" --simulated-channels
vote-ledger status --wait 60 >/dev/null || { echo "the ledger did not catch up; see $LOGS/services.log"; exit 1; }

# The dashboard: served by the API that `services run` started; the page asks for a token (ops role).
# A token per run, valid for a day: it is printed here, so it should not outlive the demo by much.
DASHBOARD=$(python -m services.devtools.demo.dashboard 60) || { echo "see $LOGS/services.log"; exit 1; }
TOKEN=$(vote-ledger api token issue --name demo --role ops --expires-in 1)  # its id on stderr
echo
echo "Dashboard: $DASHBOARD  (meeting $MEETING; paste this token: $TOKEN)"
echo
[ -t 1 ] && sleep "${DEMO_PAUSE:-5}"  # a moment to open it before the votes flow

# Signed by each simulated channel; then it awaits the answers to the last submissions and keeps one.
ANSWER="$LOGS/sample-answer.json"
rm -f "$ANSWER"
vote-ledger simulate --meeting "$MEETING" --rate "$RATE" --duration "$DURATION" "${SEED_ARGS[@]}" \
    --sample-answer "$ANSWER" >"$LOGS/simulate.log" 2>&1 &
SIMULATE=$!
while kill -0 "$SIMULATE" 2>/dev/null; do
    clear 2>/dev/null || printf '\033[H\033[2J'
    echo "Voting in progress: $(tail -n 1 "$LOGS/simulate.log" 2>/dev/null)"
    echo "Dashboard: $DASHBOARD  token: $TOKEN"
    echo
    vote-ledger tally --meeting "$MEETING" || true
    sleep 2
done
wait "$SIMULATE" || { cat "$LOGS/simulate.log"; exit 1; }

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
vote-ledger audit prove "$EVENT_ID" --meeting "$MEETING" --out "$LOGS/receipt.json"
vote-ledger audit receipt "$LOGS/receipt.json"

KEEP=${DEMO_KEEP:-}
[ -z "$KEEP" ] && { [ -t 0 ] && [ -t 1 ] && KEEP=1 || KEEP=0; }
if [ "$KEEP" = 1 ]; then
    echo
    echo "The services keep running: the dashboard is at $DASHBOARD (token: $TOKEN)."
    echo "Publish more votes from another terminal (vote-ledger simulate --meeting $MEETING --seed 8 --rate 500"
    echo "--duration 60) and watch the page change without reloading."
    if [ -t 0 ]; then
        read -r -p "Press Enter (or Ctrl-C) to stop them. " _ || true
    else
        echo "Stop them with Ctrl-C (or kill $$)."
        wait "$SERVICES" || true
    fi
fi
