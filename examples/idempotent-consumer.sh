#!/bin/bash
#
# idempotent-consumer.sh - charge a card once, whatever is redelivered.
#
# Delivery is at least once: a worker killed after the charge but before
# the ack leaves the message to come back when its lease runs out, and
# the card must not be charged twice.  Two guards:
#
# - the handler's own: it makes the charge under the message id ($QID),
#   in the same step as it records it (here: a ledger line written under
#   a lock), and a delivery that finds the id recorded charges nothing;
# - qpop --idempotent: once the handler has succeeded, qpop records the
#   id (QUEUE/done/) before it acks, so a crash between the two acks the
#   message on its next delivery without running the handler again.
#
# The example kills the worker with kill -9 in the middle of the first
# charge, after the ledger line, and lets the charge come back.
#
# Everything happens in a temporary spool that is removed at the end.
# Exit status: 0 if each card was charged exactly once, 1 if not (so
# the example doubles as a test).

set -eu
. "$(dirname "$0")/example.sh"
example_start idempotent-consumer qpush qpop

export LEDGER=$WORK/ledger SLOW=$WORK/slow
: >"$LEDGER"
handler=$WORK/charge
cat >"$handler" <<'EOF'
#!/bin/bash
set -eu
read -r card amount || [[ -n $card ]]
exec 9>>"$LEDGER.lock"
flock 9
if grep -q "^$QID " "$LEDGER"; then
	echo "    $card: $QID charged already (attempt $QATTEMPT): not again"
else
	echo "$QID $card $amount" >>"$LEDGER"
	echo "    $card: charged $amount (attempt $QATTEMPT)"
fi
flock -u 9
# the receipt, slow the first time: the window for a crash
if [[ -e $SLOW ]]; then
	rm "$SLOW"
	exec sleep 60
fi
EOF
chmod +x "$handler"

say "Three charges; a lease of 1 second, so that a lost one comes back soon"
qpush charges "4111-1111 12.50" "5500-0000 8.00" "3400-0000 99.90"
printf 'lease = 1s\n' >"$QSPOOL/charges/q.conf"

say "A worker: qpop -f --idempotent charges -- charge; killed -9 mid-charge"
touch "$SLOW"
qpop -f --idempotent charges -- "$handler" &
pid=$!
for _ in $(seq 1 200); do
	[[ -s $LEDGER && ! -e $SLOW ]] && break
	sleep 0.05
done
[[ ! -e $SLOW ]] || fail "the first charge never started"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
echo "    (killed: the first charge is in the ledger, its message not acked)"

say "The next worker: the lost charge comes back after its lease"
qpop -n 3 --wait=10s --idempotent charges -- "$handler"

say "The ledger"
sed 's/^/    /' "$LEDGER"

# ---------------------------------------------------------------------
# Check the outcome.
[[ $(wc -l <"$LEDGER") -eq 3 ]] || fail "not 3 charges in the ledger"
[[ $(cut -d' ' -f2 "$LEDGER" | sort -u | wc -l) -eq 3 ]] ||
	fail "a card was charged twice"
[[ -z $(find "$QSPOOL/charges/new" "$QSPOOL/charges/cur" -type f) ]] ||
	fail "a charge is left in the queue"
say "Done: 3 charges, each once, though the first was delivered twice."
