#!/bin/bash
#
# saga-choreography.sh - the order saga of saga-orchestration.sh, with no
# coordinator: each service subscribes to the event before its step and
# publishes the next one, or the one that starts the compensations.
#
#   orders     OrderPlaced     -> inventory reserves -> stock  StockReserved
#   stock      StockReserved   -> payment charges    -> payments PaymentCharged
#   payments   PaymentCharged  -> shipping ships     -> shipments Shipped
#                                  or refuses        -> shipments ShipmentFailed
#   shipments  ShipmentFailed  -> refund             -> payments PaymentRefunded
#   payments   PaymentRefunded -> release            -> stock  StockReleased
#
# Each service is a qsub -f worker on its subscription, which filters
# the event type (--match Type=...).  The order's correlation id, set
# when it is placed, goes with every event a handler publishes.
#
# Everything happens in a temporary spool that is removed at the end.
# Exit status: 0 if every service ended in the state described, 1 if not
# (so the example doubles as a test).

set -eu
. "$(dirname "$0")/example.sh"
example_start saga-choreography qpub qsub

# ---------------------------------------------------------------------
# The services: one script; its subscription ($QSUB) says which.  Each
# logs "CORRELATION-ID SERVICE ORDER", changes its state, and publishes
# its event (qpub run by a handler keeps the correlation id).
service=$WORK/service
cat >"$service" <<'EOF'
#!/bin/bash
set -eu
read -r order item address || [[ -n $order ]]
state=$SAGA/state
echo "$Q_CORRELATION_ID $QSUB $order" >>"$SAGA/log"
next() { qpub -t "$2" "$1" "$order $item $address"; }
case $QSUB in
inventory)
	echo $(($(cat "$state/stock.$item") - 1)) >"$state/stock.$item"
	next stock StockReserved ;;
payment)
	echo "$order charged" >>"$state/payments"
	next payments PaymentCharged ;;
shipping)
	if [[ $address == nowhere ]]; then
		next shipments ShipmentFailed
	else
		echo "$order $address" >>"$state/shipments"
		next shipments Shipped
	fi ;;
refund)
	echo "$order refunded" >>"$state/payments"
	next payments PaymentRefunded ;;
release)
	echo $(($(cat "$state/stock.$item") + 1)) >"$state/stock.$item"
	next stock StockReleased ;;
esac
EOF
chmod +x "$service"
export SAGA=$WORK
mkdir "$WORK/state"
echo 5 >"$WORK/state/stock.lamp"
: >"$WORK/state/payments"
: >"$WORK/state/shipments"
: >"$WORK/log"

# subscribe SERVICE TOPIC TYPE: its subscription, then its worker
subscribe() {
	qsub -s "$1" --match "Type=$3" --create "$2"
	worker qsub -f -q -s "$1" "$2" -- "$service"
	printf '    %-9s on %-9s %s\n' "$1" "$2" "$3"
}
say "Each service subscribes to the event before its step"
subscribe inventory orders OrderPlaced
subscribe payment stock StockReserved
subscribe shipping payments PaymentCharged
subscribe refund shipments ShipmentFailed
subscribe release payments PaymentRefunded

say "Placing order 1 (a lamp to Lyon) and order 2 (a lamp to nowhere)"
Q_CORRELATION_ID=order-1 qpub -t OrderPlaced orders "1 lamp Lyon"
Q_CORRELATION_ID=order-2 qpub -t OrderPlaced orders "2 lamp nowhere"

# the last events: order 1 shipped, order 2's stock released
done_yet() {
	grep -q '^order-1 shipping ' "$WORK/log" &&
		grep -q '^order-2 release ' "$WORK/log"
}
for _ in $(seq 1 200); do
	done_yet && break
	sleep 0.05
done
done_yet || fail "the saga did not finish in 10 seconds"
example_stop

say "The log, by correlation id"
sort -s -k1,1 "$WORK/log" | sed 's/^/    /'

# ---------------------------------------------------------------------
# Check the outcome.
[[ $(grep '^order-1 ' "$WORK/log" | cut -d' ' -f2 | tr '\n' ' ') == "inventory payment shipping " ]] ||
	fail "order 1 did not go inventory, payment, shipping"
[[ $(grep '^order-2 ' "$WORK/log" | cut -d' ' -f2 | tr '\n' ' ') == "inventory payment shipping refund release " ]] ||
	fail "order 2 was not compensated refund first, then release"
[[ $(cat "$WORK/state/stock.lamp") -eq 4 ]] || fail "the stock is not 4 lamps"
[[ $(grep -c charged "$WORK/state/payments") -eq 2 &&
	$(grep -c '^2 refunded' "$WORK/state/payments") -eq 1 ]] ||
	fail "the payments are not: 1 and 2 charged, 2 refunded"
[[ $(cat "$WORK/state/shipments") == "1 Lyon" ]] || fail "not one shipment, to Lyon"
say "Done: order 1 shipped; order 2 refunded, then its stock released, with no coordinator."
