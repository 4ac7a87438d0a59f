#!/bin/bash
#
# fanout.sh - one event, three services: publish/subscribe with a topic.
#
# An online shop publishes an OrderPlaced event for every order to the
# topic 'orders'.  Three services each have a durable subscription to it:
# email (sends the confirmation), analytics (records the sale) and
# inventory (reserves the stock).  Each subscription is a work queue of
# its own, so each service gets its own copy of every event, at its own
# pace; the email service runs two consumers on its subscription, which
# share its work between them (a consumer group).
#
# Everything happens in a temporary spool that is removed at the end.
# The tools are taken from $QSPOOL_BIN if set, else from ../src beside
# this script (a build tree), else from PATH.
#
# Exit status: 0 if every subscriber got every event exactly once, 1 if
# not (so the example doubles as a test).

set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [[ -n ${QSPOOL_BIN-} ]]; then
	PATH=$QSPOOL_BIN:$PATH
elif [[ -x $here/../src/qpub && -x $here/../src/qsub ]]; then
	PATH=$(cd "$here/../src" && pwd):$PATH
fi
for tool in qpub qsub; do
	if ! command -v "$tool" >/dev/null; then
		echo "fanout: $tool not found: build it (make) or set QSPOOL_BIN" >&2
		exit 1
	fi
done

say() { printf '\n== %s\n' "$*"; }
fail() {
	printf '\nfanout: FAILED: %s\n' "$*" >&2
	exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/qspool-fanout.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Every tool finds its spool through $QSPOOL (or -d DIR).
export QSPOOL=$work/spool
export FANOUT_WORK=$work
mkdir "$work/got"
services=(email analytics inventory)

say "Using $(command -v qpub) and $(command -v qsub)"
echo "The spool is $QSPOOL: a directory, nothing else to set up."

# ---------------------------------------------------------------------
# A subscription gets what is published while it exists, so the
# services subscribe first.  `qsub -s NAME --create TOPIC' creates the
# topic (if it is missing) and the durable subscription NAME, and exits.
say "Subscribing email, analytics and inventory to the topic 'orders'"
for s in "${services[@]}"; do
	qsub -s "$s" --create orders || fail "qsub -s $s --create orders failed"
done
echo "qsub --list orders:"
qsub --list orders | sed 's/^/    /'

# ---------------------------------------------------------------------
say "Publishing 5 OrderPlaced events (one per line, -l; -i prints the ids)"
qpub -l -i -t OrderPlaced@1 orders >"$work/published" <<'EOF'
{"order":1041,"customer":"ann@example.org","sku":"A-17","qty":2,"total":31.80}
{"order":1042,"customer":"bob@example.org","sku":"B-02","qty":1,"total":12.50}
{"order":1043,"customer":"cid@example.org","sku":"A-17","qty":1,"total":15.90}
{"order":1044,"customer":"dee@example.org","sku":"C-99","qty":4,"total":99.60}
{"order":1045,"customer":"eve@example.org","sku":"B-02","qty":3,"total":37.50}
EOF
sed 's/^/    /' "$work/published"
echo "Each message is written once and hard-linked into every subscription:"
for s in "${services[@]}"; do
	printf '    %-10s %d ready\n' "$s" \
		"$(find "$QSPOOL/orders/subs/$s/new" -type f | wc -l)"
done
first=$(head -n 1 "$work/published")
links=$(find "$QSPOOL/orders/log" -type f -name "$first.*" -exec stat -c %h {} +)
echo "The first event is one file with $links names: one in each subscription's"
echo "new/ and one in the topic's log/."

# ---------------------------------------------------------------------
# The handler: qsub runs it once per message, with the body on stdin,
# the subscription's name in $QSUB and the message's id in $QID; the
# event type (-t) is $QTYPE.  Exit 0 acknowledges the message.  It appends
# what it got to got/$QSUB, the record this example checks.
handler=$work/handle
cat >"$handler" <<'EOF'
#!/bin/sh
body=$(cat)
order=$(printf '%s\n' "$body" | sed 's/.*"order":\([0-9]*\).*/\1/')
case $QSUB in
email) what="mailed the confirmation of order $order" ;;
analytics) what="recorded the sale of order $order" ;;
inventory) what="reserved the stock for order $order" ;;
*) echo "handle: unexpected subscription $QSUB" >&2; exit 1 ;;
esac
[ "$QTYPE" = OrderPlaced ] || { echo "handle: not an OrderPlaced" >&2; exit 65; }
echo "  $QSUB${WORKER:+ ($WORKER)}: $what"
printf '%s %s\n' "$QID" "$body" >>"$FANOUT_WORK/got/$QSUB"
EOF
chmod +x "$handler"

# A consumer, the way cron would run one: handle what is ready, then
# exit.  0: some handled; 1: nothing to do (the other consumer of a
# group may have taken everything).  Anything else is a failure.
consume() {
	local status=0
	WORKER=${2-} qsub -s "$1" --drain orders -- "$handler" || status=$?
	case $status in
	0 | 1) ;;
	*)
		echo "qsub -s $1 exited $status" >&2
		return 1
		;;
	esac
}

say "Each service drains its own subscription: qsub -s NAME --drain orders -- $handler"
echo "(email runs two consumers, A and B, that share its messages)"
consume email A &
email_a=$!
consume email B &
email_b=$!
consume analytics &
analytics=$!
consume inventory &
inventory=$!
wait "$email_a" || fail "email consumer A failed"
wait "$email_b" || fail "email consumer B failed"
wait "$analytics" || fail "the analytics consumer failed"
wait "$inventory" || fail "the inventory consumer failed"

# ---------------------------------------------------------------------
say "What happened"
for s in "${services[@]}"; do
	printf '    %-10s got %d events\n' "$s" "$(wc -l <"$work/got/$s")"
done
echo "The topic's log keeps the events for later subscribers (a replay):"
printf '    %s/log: %d events\n' "$QSPOOL/orders" \
	"$(find "$QSPOOL/orders/log" -type f | wc -l)"
status=0
qsub -s email --drain orders -- "$handler" || status=$?
echo "A second drain of email finds nothing left: exit $status."

# ---------------------------------------------------------------------
# Check the outcome, so that the example doubles as a test: every
# service got every published id exactly once, with its body.
[[ $status -eq 1 ]] || fail "a second drain of email exited $status, not 1"
[[ $(wc -l <"$work/published") -eq 5 ]] || fail "qpub -i did not print 5 ids"
[[ $links -eq 4 ]] || fail "the first event had $links names, not 4"
sort "$work/published" >"$work/want"
for s in "${services[@]}"; do
	[[ -f $work/got/$s ]] || fail "$s got nothing"
	cut -d ' ' -f 1 "$work/got/$s" | sort >"$work/have"
	dups=$(uniq -d "$work/have")
	[[ -z $dups ]] || fail "$s got an event more than once: $dups"
	cmp -s "$work/want" "$work/have" ||
		fail "$s did not get exactly the events published"
	grep -q '^[0-9a-f]* {"order":1043,"customer":"cid@example.org",' \
		"$work/got/$s" || fail "$s did not get the body of order 1043"
	left=$(find "$QSPOOL/orders/subs/$s/new" "$QSPOOL/orders/subs/$s/cur" \
		"$QSPOOL/orders/subs/$s/later" -type f | wc -l)
	[[ $left -eq 0 ]] || fail "$s has $left messages left"
done

say "Done: email, analytics and inventory each got all 5 events exactly once."
echo "(The temporary spool is removed now.)"
