#!/bin/bash
#
# saga-orchestration.sh - an order as a saga, driven by a coordinator.
#
# Placing an order takes three services, each a queue with a worker:
# reserve the stock, charge the payment, create the shipment.  There is
# no transaction across them: when a step fails, the steps already done
# are undone by compensations, in reverse order (refund the payment,
# then release the stock).  The coordinator is a shell function that
# calls each service with qpush --call (request/reply: it waits for the
# worker's answer and exits with its status), all under one correlation
# id per order, which every service logs.
#
# Order 1 ships.  Order 2 goes to an address the carrier refuses: its
# payment is refunded and its stock released, in that order.
#
# Everything happens in a temporary spool that is removed at the end.
# Exit status: 0 if every service ended in the state described, 1 if not
# (so the example doubles as a test).

set -eu
. "$(dirname "$0")/example.sh"
example_start saga-orchestration qpush qpop

# ---------------------------------------------------------------------
# The services: one script, the step its queue names ($QQUEUE).  Each
# appends "CORRELATION-ID STEP ARGS" to the log, keeps its state in a
# file, and prints its answer, which qpush --call prints for the caller.
# A refusal is exit 65: a failure for good, dead-lettered at once and
# answered as such (exit 1 would be retried first).
service=$WORK/service
cat >"$service" <<'EOF'
#!/bin/bash
set -eu
read -r order item address || [[ -n $order ]]  # (no newline at the end)
state=$SAGA/state
echo "$Q_CORRELATION_ID $QQUEUE $order" >>"$SAGA/log"
case $QQUEUE in
reserve)
	stock=$(cat "$state/stock.$item")
	[[ $stock -gt 0 ]] || { echo "no $item left" >&2; exit 65; }
	echo $((stock - 1)) >"$state/stock.$item"
	echo "reserved a $item" ;;
release)
	echo $(($(cat "$state/stock.$item") + 1)) >"$state/stock.$item"
	echo "released a $item" ;;
charge)
	echo "$order charged" >>"$state/payments"
	echo "charged order $order" ;;
refund)
	echo "$order refunded" >>"$state/payments"
	echo "refunded order $order" ;;
ship)
	[[ $address != nowhere ]] || { echo "the carrier refuses '$address'" >&2; exit 65; }
	echo "$order $address" >>"$state/shipments"
	echo "shipped order $order to $address" ;;
esac
EOF
chmod +x "$service"
export SAGA=$WORK
mkdir "$WORK/state"
echo 5 >"$WORK/state/stock.lamp"
: >"$WORK/state/payments"
: >"$WORK/state/shipments"

say "A worker for each step: qpop -f STEP -- service"
for step in reserve charge ship refund release; do
	qpop --create "$step"
	worker qpop -f -q "$step" -- "$service"
done

# ---------------------------------------------------------------------
# The coordinator: each step a call; a failed step undoes those before
# it, the last done first.  Q_CORRELATION_ID ties every message of the
# order together (qpush puts it on each; the workers get it back).
call() { qpush --call=30s "$@" 2>/dev/null; }

place_order() {
	local order=$1 item=$2 address=$3
	export Q_CORRELATION_ID=order-$order
	call reserve "$order $item $address" || return 1
	if ! call charge "$order $item $address"; then
		call release "$order $item $address"
		return 1
	fi
	if ! call ship "$order $item $address"; then
		echo "order $order: the shipment failed: compensating"
		call refund "$order $item $address"
		call release "$order $item $address"
		return 1
	fi
}

say "Order 1: a lamp to Lyon"
place_order 1 lamp Lyon | sed 's/^/  /'
say "Order 2: a lamp to nowhere"
if place_order 2 lamp nowhere | sed 's/^/  /'; [[ ${PIPESTATUS[0]} -eq 0 ]]; then
	fail "order 2 went through"
fi
example_stop

say "The log, by correlation id"
sed 's/^/    /' "$WORK/log"

# ---------------------------------------------------------------------
# Check the outcome.
[[ $(grep '^order-1 ' "$WORK/log" | cut -d' ' -f2 | tr '\n' ' ') == "reserve charge ship " ]] ||
	fail "order 1 did not go reserve, charge, ship"
[[ $(grep '^order-2 ' "$WORK/log" | cut -d' ' -f2 | tr '\n' ' ') == "reserve charge ship refund release " ]] ||
	fail "order 2 was not compensated refund first, then release"
[[ $(cat "$WORK/state/stock.lamp") -eq 4 ]] || fail "the stock is not 4 lamps"
[[ $(cat "$WORK/state/payments") == $'1 charged\n2 charged\n2 refunded' ]] ||
	fail "the payments are not: 1 charged, 2 charged then refunded"
[[ $(cat "$WORK/state/shipments") == "1 Lyon" ]] || fail "not one shipment, to Lyon"
say "Done: order 1 shipped; order 2 refunded, then its stock released."
