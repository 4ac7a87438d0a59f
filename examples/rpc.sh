#!/bin/bash
#
# rpc.sh - request/reply over a queue: a shell service and three callers.
#
# A "service" is one qpop that runs a handler for each request:
#
#   qpop --follow -j 2 quote -- quote.sh
#
# Callers send a request and wait for its answer, as with a function call:
#
#   price=$(qpush --call=10s quote widget)
#
# The handler's standard output is the reply and its exit status the
# caller's.  Three callers ask at once: one for a known item (answered),
# one for an unknown item (the handler exits 65, the request is
# dead-lettered and its caller exits 65 at once, with the handler's
# message), and one for an item the service is slow to price (its caller
# gives up at its timeout with exit 75; the answer that comes later is
# dropped and counted as replies_dropped).
#
# Everything happens in a temporary spool that is removed at the end.
# The tools are taken from $QSPOOL_BIN if set, else from ../src beside
# this script (a build tree), else from PATH.
#
# Exit status: 0 if every caller got what it should, 1 if not (so the
# example doubles as a test).

set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [[ -n ${QSPOOL_BIN-} ]]; then
	PATH=$QSPOOL_BIN:$PATH
elif [[ -x $here/../src/qpush && -x $here/../src/qpop ]]; then
	PATH=$(cd "$here/../src" && pwd):$PATH
fi
for tool in qpush qpop qstat; do
	if ! command -v "$tool" >/dev/null; then
		echo "rpc: $tool not found: build it (make) or set QSPOOL_BIN" >&2
		exit 1
	fi
done

say() { printf '\n== %s\n' "$*"; }
fail() {
	printf '\nrpc: FAILED: %s\n' "$*" >&2
	exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/qspool-rpc.XXXXXX")
service=
trap '[[ -z $service ]] || kill -TERM "$service" 2>/dev/null; wait; rm -rf "$work"' EXIT
export QSPOOL=$work/spool

# The handler: an item on standard input, its price on standard output.
# The slow item is priced once its caller has given up (the file
# 'gave-up' appears), so the late answer is certain to find it gone.
cat >"$work/quote.sh" <<'HANDLER'
#!/bin/sh
item=$(cat)
case $item in
widget) echo "widget: 4.20 EUR" ;;
gadget)
	while [ ! -e "$WORK/gave-up" ]; do sleep 0.05; done
	echo "gadget: 99.00 EUR" ;;
*)
	echo "no such item: $item" >&2
	exit 65 ;;
esac
HANDLER
chmod +x "$work/quote.sh"

say "The service: qpop --follow -j 2 quote -- quote.sh"
qpop --create quote
WORK=$work qpop --follow -j 2 -q quote -- "$work/quote.sh" 2>"$work/service.err" &
service=$!

say "Three callers at once"
caller() {
	local name=$1 timeout=$2 st=0
	qpush --call="$timeout" quote "$name" >"$work/$name.out" \
		2>"$work/$name.err" || st=$?
	echo "$st" >"$work/$name.status"
}
caller widget 30s &
w1=$!
caller nosuch 30s &
w2=$!
caller gadget 1s &
w3=$!
wait "$w1" "$w2"
wait "$w3"
touch "$work/gave-up"

for name in widget nosuch gadget; do
	printf '  qpush --call quote %-7s exit %s  stdout: %s\n' "$name" \
		"$(cat "$work/$name.status")" "$(cat "$work/$name.out")"
	sed 's/^/                               stderr: /' "$work/$name.err"
done

[[ $(cat "$work/widget.status") == 0 ]] || fail "widget: not answered"
[[ $(cat "$work/widget.out") == "widget: 4.20 EUR" ]] || fail "widget: wrong reply"
[[ $(cat "$work/nosuch.status") == 65 ]] || fail "nosuch: not exit 65"
grep -q '^no such item: nosuch$' "$work/nosuch.err" ||
	fail "nosuch: the handler's message did not come back"
[[ $(cat "$work/gadget.status") == 75 ]] || fail "gadget: did not time out"

say "The late answer to gadget is dropped and counted"
dropped=0
for _ in $(seq 100); do
	dropped=$(qstat --json quote | sed -n 's/.*"replies_dropped":\([0-9]*\).*/\1/p')
	[[ $dropped == 1 ]] && break
	sleep 0.1
done
[[ $dropped == 1 ]] || fail "replies_dropped is '$dropped', not 1"
echo "  qstat: replies_dropped 1"
leftover=$(find "$QSPOOL" -maxdepth 1 -name '*_reply.*' | wc -l)
[[ $leftover -eq 0 ]] || fail "$leftover reply queues left behind"

say "Done: one answer, one failure at once, one timeout; no reply queue left."
