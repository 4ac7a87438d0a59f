#!/bin/bash
#
# outbox.sh - the transactional outbox, for a shell service.
#
# An order service takes commands ("place ORDER ITEM"), keeps each order
# in a file, and must tell the world with an OrderPlaced event: never an
# event for an order it did not record, never an order recorded without
# its event, whoever is killed when.  A service with a database writes
# the event into an outbox table in the same transaction as the change;
# here the handler makes its change idempotently (the order's file, put
# in place by rename) and prints the event, and qpop --forward=events
# commits what it prints as messages of 'events' exactly once for each
# command, before the command is acked:
#
# - killed before the change: the command comes back; change and event;
# - killed after the change, before the event is committed: the command
#   comes back, the change is made again (the same file), the event is
#   committed once;
# - killed after the event's commit, before the ack: the command comes
#   back and is acked; its event is not committed twice.
#
# (Without --forward, a handler can push its event with
# qpush --dedup="$QID": a retry's push is dropped as a duplicate.)
#
# The example kills the service with kill -9 after a change and before
# its event, and checks one event per order.
#
# Everything happens in a temporary spool that is removed at the end.
# Exit status: 0 if every order has its one event, 1 if not (so the
# example doubles as a test).

set -eu
. "$(dirname "$0")/example.sh"
example_start outbox qpush qpop

export ORDERS=$WORK/orders SLOW=$WORK/slow
mkdir "$ORDERS"
handler=$WORK/order-service
cat >"$handler" <<'EOF'
#!/bin/bash
set -eu
read -r verb order item || [[ -n $item ]]
[[ $verb == place ]] || { echo "not a command: $verb" >&2; exit 65; }
# the change: the order's file, in place at once (rename), the same
# however often it is made
printf 'order %s: %s\n' "$order" "$item" >"$ORDERS/.$order.$$"
mv "$ORDERS/.$order.$$" "$ORDERS/$order"
# slow the first time: the window between the change and the event
if [[ -e $SLOW ]]; then
	rm "$SLOW"
	sleep 60
fi
# the event: what this prints, qpop commits with the ack
echo "OrderPlaced $order $item"
EOF
chmod +x "$handler"

say "Three commands; a lease of 1 second, so that a lost one comes back soon"
qpush commands "place 1001 lamp" "place 1002 chair" "place 1003 desk"
printf 'lease = 1s\n' >"$QSPOOL/commands/q.conf"

say "The service: qpop -f -l --forward=events commands -- order-service"
echo "(-l: each line it prints is one event; killed -9 after its first change)"
touch "$SLOW"
qpop -f -l --forward=events commands -- "$handler" &
pid=$!
for _ in $(seq 1 200); do
	[[ ! -e $SLOW ]] && break
	sleep 0.05
done
[[ ! -e $SLOW ]] || fail "the first command never ran"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
echo "    killed: order $(ls "$ORDERS") is recorded; its event is not committed"
[[ -z $(find "$QSPOOL/events/new" -type f 2>/dev/null) ]] ||
	fail "an event was committed before its command ended"

say "The service again: the command comes back after its lease"
qpop -n 3 --wait=10s -l --forward=events commands -- "$handler"

say "The orders, and the events (qpop --drain -l --create events)"
cat "$ORDERS"/* | sed 's/^/    /'
qpop --drain -l --create events >"$WORK/events" || [[ $? -eq 1 ]]
sed 's/^/    /' "$WORK/events"

# ---------------------------------------------------------------------
# Check the outcome.
[[ $(find "$ORDERS" -type f ! -name '.*' | wc -l) -eq 3 ]] ||
	fail "not 3 orders recorded"
[[ $(sort "$WORK/events" | tr '\n' ' ') == "OrderPlaced 1001 lamp OrderPlaced 1002 chair OrderPlaced 1003 desk " ]] ||
	fail "not one OrderPlaced event for each order"
say "Done: 3 orders, 3 events, one each, though a command ran twice."
