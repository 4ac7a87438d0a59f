#!/bin/bash
#
# event-sourcing.sh - a read model rebuilt from a topic's retained log.
#
# A bank publishes what happens to its accounts (Opened, Deposited,
# Withdrawn) to the topic 'accounts', over several days, before anyone
# subscribes: the topic's log keeps every event.  Later a new service
# wants the balances.  It creates the subscription 'readmodel' with a
# replay of the whole log (--from-beginning), and its handler folds each
# event, in publish order, into a state file.  The same subscription
# then keeps the balances up to date as new events arrive, and --reset
# throws the model away and rebuilds it from the log, with the same
# result.
#
# Everything happens in a temporary spool that is removed at the end.
# The tools are taken from $QSPOOL_BIN if set, else from ../src beside
# this script (a build tree), else from PATH.
#
# Exit status: 0 if the read model came out right every time, 1 if not
# (so the example doubles as a test).

set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [[ -n ${QSPOOL_BIN-} ]]; then
	PATH=$QSPOOL_BIN:$PATH
elif [[ -x $here/../src/qpub && -x $here/../src/qsub ]]; then
	PATH=$(cd "$here/../src" && pwd):$PATH
fi
for tool in qpub qsub; do
	if ! command -v "$tool" >/dev/null; then
		echo "event-sourcing: $tool not found: build it (make) or set QSPOOL_BIN" >&2
		exit 1
	fi
done

say() { printf '\n== %s\n' "$*"; }
fail() {
	printf '\nevent-sourcing: FAILED: %s\n' "$*" >&2
	exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/qspool-events.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Every tool finds its spool through $QSPOOL (or -d DIR).
export QSPOOL=$work/spool
topic=$QSPOOL/accounts
# The read model: one line per account, "NAME BALANCE", sorted by name.
export ES_STATE=$work/balances

say "Using $(command -v qpub) and $(command -v qsub)"
echo "The spool is $QSPOOL: a directory, nothing else to set up."

# publish DAY EVENT...: publish one day's events, one message each.
publish() {
	local day=$1
	shift
	echo "$day:"
	printf '    %s\n' "$@"
	qpub -H "Type: AccountEvent" accounts "$@"
}

# log_count: the events the topic's log holds.
log_count() { find "$topic/log" -type f | wc -l; }

# ---------------------------------------------------------------------
say "Publishing events over three days, with no subscriber yet"
publish Monday \
	'{"event":"Opened","account":"alice"}' \
	'{"event":"Opened","account":"bob"}' \
	'{"event":"Deposited","account":"alice","amount":100}' \
	'{"event":"Deposited","account":"bob","amount":50}'
# The first qpub created the topic.  An event store keeps its history
# for good, not for the default 7 days: the topic's own q.conf says so.
printf 'retain = forever\n' >"$topic/q.conf"
publish Tuesday \
	'{"event":"Withdrawn","account":"alice","amount":30}' \
	'{"event":"Deposited","account":"bob","amount":200}' \
	'{"event":"Opened","account":"carol"}'
# RFC 3339, to the microsecond, for --since below.
wednesday=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
publish Wednesday \
	'{"event":"Deposited","account":"carol","amount":75}' \
	'{"event":"Withdrawn","account":"bob","amount":20}'

nsubs=$(qsub --list accounts | wc -l)
echo "The topic has $nsubs subscriptions; its log, $topic/log, holds $(log_count) events:"
find "$topic/log" -type f | sort | sed "s|^$topic/|    |"

# ---------------------------------------------------------------------
# The handler: qsub runs it once per event, in publish order, with the
# event on stdin.  It folds the event into the balances and replaces the
# state file whole (rename), so the model is never half-written.  An
# event it cannot apply (a deposit to an account not opened yet: events
# out of order) exits 65, which dead-letters it.
apply=$work/apply
cat >"$apply" <<'EOF'
#!/bin/sh
set -e
event=$(cat)
field() {
	printf '%s\n' "$event" |
		sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}
type=$(field event)
account=$(field account)
amount=$(field amount)
touch "$ES_STATE"
awk -v type="$type" -v acct="$account" -v amt="${amount:-0}" '
	{ bal[$1] = $2 }
	END {
		if (type == "Opened") {
			if (acct in bal) exit 65
			bal[acct] = 0
		} else if (!(acct in bal)) {
			exit 65
		} else if (type == "Deposited") {
			bal[acct] += amt
		} else if (type == "Withdrawn") {
			bal[acct] -= amt
		} else {
			exit 65
		}
		for (a in bal) print a, bal[a] | "sort"
	}' "$ES_STATE" >"$ES_STATE.new"
mv "$ES_STATE.new" "$ES_STATE"
echo "    applied $type $account${amount:+ $amount}"
EOF
chmod +x "$apply"

show_state() {
	echo "The read model, $ES_STATE:"
	sed 's/^/    /' "$ES_STATE"
}

say "Building the read model: qsub -s readmodel --from-beginning --drain accounts -- $apply"
qsub -s readmodel --from-beginning --drain accounts -- "$apply" ||
	fail "the replay into readmodel failed"
show_state
printf '%s\n' 'alice 70' 'bob 230' 'carol 75' >"$work/want"
cmp -s "$work/want" "$ES_STATE" || fail "the rebuilt balances are wrong"

# ---------------------------------------------------------------------
say "Thursday's events go to the subscription as they are published"
publish Thursday \
	'{"event":"Deposited","account":"alice","amount":5}' \
	'{"event":"Withdrawn","account":"carol","amount":25}'
echo "The same subscription, without a replay option, takes only those:"
qsub -s readmodel --drain accounts -- "$apply" ||
	fail "readmodel did not take Thursday's events"
show_state
printf '%s\n' 'alice 75' 'bob 230' 'carol 50' >"$work/want"
cmp -s "$work/want" "$ES_STATE" || fail "the balances after Thursday are wrong"
cp "$ES_STATE" "$work/before-reset"

# ---------------------------------------------------------------------
say "Another look: what was published since Wednesday ($wednesday)"
echo "qsub --since $wednesday --drain -l accounts (an ephemeral subscription):"
qsub --since "$wednesday" --drain -l accounts >"$work/since" ||
	fail "qsub --since printed nothing"
sed 's/^/    /' "$work/since"
[[ $(wc -l <"$work/since") -eq 4 ]] || fail "--since did not give exactly 4 events"
grep -q '"account":"carol","amount":75' "$work/since" ||
	fail "--since did not start with Wednesday's first event"
[[ $(qsub --list accounts) == "readmodel	durable" ]] ||
	fail "the ephemeral subscription was not removed"

# ---------------------------------------------------------------------
say "Rebuilding it: qsub -s readmodel --from-beginning --reset --drain accounts -- $apply"
echo "(after a change to the handler, say: --reset removes the subscription"
echo "and replays the whole log into a new one)"
rm "$ES_STATE"
qsub -s readmodel --from-beginning --reset --drain accounts -- "$apply" ||
	fail "the second replay failed"
show_state
cmp -s "$work/before-reset" "$ES_STATE" ||
	fail "the read model rebuilt with --reset differs from the first one"

# ---------------------------------------------------------------------
# No event was dead-lettered (out of order, or applied twice: an Opened
# twice exits 65) and none is left.
sub=$topic/subs/readmodel
left=$(find "$sub/new" "$sub/cur" "$sub/later" "$sub/dlq" -type f | wc -l)
[[ $left -eq 0 ]] || fail "$left events left in the subscription or dead-lettered"
[[ $(log_count) -eq 11 ]] || fail "the log does not hold all 11 events"

say "Done: the read model was rebuilt from 11 retained events, identically after --reset."
echo "(The temporary spool is removed now.)"
