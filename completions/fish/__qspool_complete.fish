# fish completion for the qspool tools.  completions/fish/TOOL.fish
# calls __qspool_complete TOOL, which defines TOOL's completions; the
# helpers below find the spool root and what is in it, as the bash and
# zsh completions do.

# The spool root: -d DIR on the command line, $QSPOOL, the spool key of
# the user's then the system's q.conf, else the default.
function __qspool_root
    set -l words (commandline -opc)
    for i in (seq (count $words))
        if test "$words[$i]" = -d; and test $i -lt (count $words)
            echo $words[(math $i + 1)]
            return
        else if string match -q -- '-d?*' $words[$i]
            string sub -s 3 -- $words[$i]
            return
        end
    end
    if test -n "$QSPOOL"
        echo $QSPOOL
        return
    end
    set -l config $HOME/.config
    set -q XDG_CONFIG_HOME; and set config $XDG_CONFIG_HOME
    for conf in $config/qspool/q.conf /etc/qspool.conf
        test -r $conf; or continue
        set -l s (string match -r -g '^\s*spool\s*=\s*(.*?)\s*$' <$conf)
        if test -n "$s"
            echo $s[-1]
            return
        end
    end
    if test (id -u) -eq 0
        echo /var/spool/qspool
    else if set -q XDG_STATE_HOME
        echo $XDG_STATE_HOME/qspool
    else
        echo $HOME/.local/state/qspool
    end
end

# The queues (KIND queue) or topics (topic) of the spool root; "any":
# both.  A caller's reply queue (qpush --call) is no one else's.
function __qspool_names --argument-names kind
    for f in (__qspool_root)/*/format
        set -l line (head -n 1 $f 2>/dev/null)
        set -l name (basename (dirname $f))
        string match -q '_reply.*' -- $name; and continue
        if test $kind = any; or string match -q "qspool $kind *" -- $line
            echo $name
        end
    end
end

# The subscriptions of the topic on the command line, or of every topic
# when it is not there yet (qsub -s NAME comes before the topic).
function __qspool_subs
    set -l root (__qspool_root)
    set -l topics
    for w in (commandline -opc)[2..-1]
        test -d $root/$w/subs; and set -a topics $w
    end
    test (count $topics) -gt 0; or set topics (__qspool_names topic)
    for t in $topics
        for d in $root/$t/subs/*/
            set -l s (basename $d)
            string match -q '_*' -- $s; or echo $s
        end
    end
end

# The dead letters' ids of the queue on the command line (qdlq).
function __qspool_dlq_ids
    set -l root (__qspool_root)
    for w in (commandline -opc)[3..-1]
        test -d $root/$w/dlq; or continue
        for f in $root/$w/dlq/*
            string match -q '*.diag' -- $f; and continue
            string split -f 2 . -- (basename $f)
        end
    end
end

set -g __qspool_durations '30s\tseconds 5m\tminutes 2h\thours 1d\tdays 500ms\tmilliseconds'

# complete -c TOOL ...: for the tool being defined
function __qspool_c
    complete -c $__qspool_tool $argv
end

# __qspool_complete TOOL [NAME]: TOOL's completions, for the command
# NAME it is installed as (./configure --program-prefix ...)
function __qspool_complete --argument-names tool name
    test -n "$name"; or set name $tool
    set -g __qspool_tool $name
    __qspool_c -s h -l help -d 'print usage and exit'
    __qspool_c -s V -l version -d 'print the version and exit'
    __qspool_c -s d -r -a '(__fish_complete_directories)' -d 'spool root'
    switch $tool
        case qpush qpub
            set -l what queue
            test $tool = qpub; and set what topic
            __qspool_c -n "__fish_is_first_arg; or __fish_seen_subcommand_from -d" -f -a "(__qspool_names $what)"
            __qspool_c -s l -d 'one message per line of standard input'
            __qspool_c -s 0 -d 'one message per NUL-terminated record'
            __qspool_c -s i -d 'print the id of each message pushed'
            __qspool_c -s H -x -d "a header, 'Name: value'"
            __qspool_c -s p -x -a '0 1 2 3 4 5 6 7 8 9' -d 'priority, 0 most urgent'
            __qspool_c -s k -x -d 'ordering key'
            __qspool_c -s t -x -d 'event type[@version]'
            __qspool_c -l delay -x -a "$__qspool_durations" -d 'ready after DURATION'
            __qspool_c -l at -x -d 'ready at TIME (RFC 3339, @epoch)'
            __qspool_c -l ttl -x -a "$__qspool_durations" -d 'dead-letter if undelivered after DURATION'
            __qspool_c -l dedup -x -d 'drop if ID was pushed within dedup_window'
            __qspool_c -l block -x -a "$__qspool_durations" -d 'when full, wait this long'
            __qspool_c -l call -d 'send one request, print the reply'
            if test $tool = qpush
                __qspool_c -l unique -x -d 'push only if no message with KEY is pending'
                __qspool_c -l debounce -x -d 'KEY=DUR[,max=DUR]: one message per burst'
                __qspool_c -l schedule -x -d 'make the message the schedule NAME'
                __qspool_c -l every -x -a "$__qspool_durations" -d 'with --schedule: each multiple of DURATION'
                __qspool_c -l cron -x -d "with --schedule: a crontab line ('0 3 * * *')"
                __qspool_c -l catch-up -x -a 'none one all' -d 'the times that passed with nobody there'
                __qspool_c -l overlap -x -a 'queue skip' -d 'skip a time while the last is pending?'
                __qspool_c -l remove -d 'with --schedule: remove the schedule'
                __qspool_c -l batch -x -d 'a member of batch NAME'
                __qspool_c -l then -x -a '(__qspool_names queue)' -d "with --batch: the callback's queue"
                __qspool_c -l on -x -a 'success complete' -d 'with --then: when the batch is done'
            end
        case qpop qsub
            if test $tool = qpop
                __qspool_c -n __fish_is_first_arg -f -a '(__qspool_names queue)'
            else
                __qspool_c -f -a '(__qspool_names topic)'
                __qspool_c -s s -x -a '(__qspool_subs)' -d 'a durable subscription'
                __qspool_c -l match -x -d 'a filter on the headers (Name=glob ...)'
                __qspool_c -l from-beginning -d 'fill a new subscription with the retained log'
                __qspool_c -l since -x -d 'fill a new subscription from TIME'
                __qspool_c -l reset -d 'remove the subscription and make it again'
                __qspool_c -l unsubscribe -d 'remove the subscription'
                __qspool_c -l list -d 'list the subscriptions of the topic'
            end
            __qspool_c -s n -x -d 'handle up to N messages (with --batch: the batch size)'
            __qspool_c -l drain -d 'handle messages until none is claimable'
            __qspool_c -s f -l follow -d 'run for ever'
            __qspool_c -s w -d 'wait when nothing is claimable'
            __qspool_c -l wait -x -a "$__qspool_durations" -d 'wait at most DURATION in all'
            __qspool_c -l create -d 'make the queue or topic if it is missing'
            __qspool_c -s q -l quiet -d 'report only dead letters and errors'
            __qspool_c -l lease -x -a "$__qspool_durations" -d 'lease duration'
            __qspool_c -l timeout -x -a "$__qspool_durations" -d 'kill a handler after DURATION'
            __qspool_c -s j -l jobs -x -d 'run up to JOBS (or MIN-MAX) handlers at once'
            __qspool_c -s v -l verbose -d 'with -j MIN-MAX: a line per change of the slots'
            __qspool_c -l scale-lag -x -a "$__qspool_durations" -d 'add a slot when messages wait longer'
            __qspool_c -l scale-step -x -a "$__qspool_durations" -d 'at most one change per DURATION'
            __qspool_c -l scale-idle -x -a "$__qspool_durations" -d 'remove a slot not needed for DURATION'
            __qspool_c -l breaker -x -d 'N/DURATION: the circuit breaker'
            __qspool_c -l breaker-max -x -a "$__qspool_durations" -d 'the longest cool-down'
            __qspool_c -l rate -x -d 'N/DURATION: all consumers together'
            __qspool_c -l rate-per-key -x -d 'N/DURATION: each key'
            __qspool_c -l concurrency-per-key -x -d 'deliveries of one key at once'
            __qspool_c -l sem -x -d 'NAME[=N]: a slot of a spool semaphore'
            __qspool_c -l max-load -x -d 'claim nothing while the load is above LOAD'
            __qspool_c -s l -d 'a newline after each body'
            __qspool_c -s 0 -d 'a NUL after each body'
            __qspool_c -l json -d 'each message as one line of JSON'
            __qspool_c -l no-ack -d 'at most once: remove each message when taken'
            __qspool_c -l peek -d 'print without taking'
            __qspool_c -l lock -d 'exit at once if another --lock run holds the queue'
            __qspool_c -l max-time -x -a "$__qspool_durations" -d 'stop taking messages after DURATION'
            __qspool_c -l idempotent -d 'record handled messages; never run one twice'
            __qspool_c -l batch -d 'up to N messages to one run of the command'
            __qspool_c -l batch-paths -d 'with --batch: the bodies as files'
            __qspool_c -l forward -x -a '(__qspool_names any)' -d "the command's output into a queue or topic"
            __qspool_c -s H -x -d 'with --forward: a header of every output'
            __qspool_c -s k -x -d 'with --forward: the ordering key of every output'
            __qspool_c -s p -x -a '0 1 2 3 4 5 6 7 8 9' -d 'with --forward: their priority'
        case qdlq
            set -l cmds ls show replay purge count
            __qspool_c -n "not __fish_seen_subcommand_from $cmds" -f -a 'ls\tlist\ show\t"one, whole" replay\t"back to the queue" purge\tremove count\t"how many"'
            __qspool_c -s s -x -a '(__qspool_subs)' -d "a topic's subscription"
            __qspool_c -n "__fish_seen_subcommand_from $cmds" -f -a '(__qspool_names any) (__qspool_dlq_ids)'
            __qspool_c -l json -d 'as JSON'
            __qspool_c -l body -d 'the body only'
            __qspool_c -l all -d 'every dead letter'
            __qspool_c -l failed -d 'those that failed (not expired or cancelled)'
            __qspool_c -l reason -x -a 'max-attempts poison expired corrupt cancelled timeout' -d 'those with these reasons'
            __qspool_c -l to -x -a '(__qspool_names queue)' -d 'replay into another queue'
            __qspool_c -l reset-attempts -d 'replay with attempts from 0'
            __qspool_c -l ttl -x -a "$__qspool_durations" -d 'the replayed time to live'
            __qspool_c -l older-than -x -a "$__qspool_durations" -d 'purge those older'
            __qspool_c -l max -x -d 'count: exit 1 above N'
        case qstat
            __qspool_c -f -a '(__qspool_names any)'
            __qspool_c -s s -x -a '(__qspool_subs)' -d "a topic's subscription"
            __qspool_c -l json -d 'as JSON'
            __qspool_c -l types -d 'with --json: counts by event type'
            __qspool_c -l prom -d 'as Prometheus text'
            __qspool_c -l max-age -x -a "$__qspool_durations" -d 'exit 1 if a ready message waited longer'
            __qspool_c -l max-oldest -x -a "$__qspool_durations" -d 'exit 1 if a message was pushed longer ago'
            __qspool_c -l max-depth -x -d 'exit 1 above N messages'
            __qspool_c -l max-dead -x -d 'exit 1 above N dead letters'
            __qspool_c -l reap -d 'take back expired leases, promote due messages now'
            __qspool_c -l check -d 'check the spool against the format'
            __qspool_c -l repair -d 'with --check: repair what can be'
            __qspool_c -l doctor -d 'what each fsync level gives where it lives'
            __qspool_c -l pause -d 'stop every consumer from claiming'
            __qspool_c -l resume -d 'end the pause'
            __qspool_c -l reason -x -d 'with --pause: why'
            __qspool_c -l hold -d 'park ready messages (by id)'
            __qspool_c -l release -d 'put held messages back'
            __qspool_c -l cancel -d 'dead-letter messages (by id) as cancelled'
            __qspool_c -l schedules -d 'the schedules of the queues'
            __qspool_c -l batches -d 'the batches of the spool'
        case qbridge
            set -l cmds setup out in
            __qspool_c -n "not __fish_seen_subcommand_from $cmds" -f -a 'setup\t"make the stream" out\t"spool to NATS" in\t"NATS to spool"'
            __qspool_c -n "__fish_seen_subcommand_from out in" -f -a '(__qspool_names any)'
            __qspool_c -s s -x -a '(__qspool_subs)' -d "a topic's subscription"
            __qspool_c -s f -d 'run for ever'
            __qspool_c -l drain -d 'until nothing is left'
            __qspool_c -l server -x -d 'NATS servers, tried in order'
            __qspool_c -l stream -x -d 'the JetStream stream'
            __qspool_c -l subject -x -d 'the subject to publish to'
            __qspool_c -l subjects -x -d "the stream's subjects"
            __qspool_c -l consumer -x -d 'the durable consumer'
            __qspool_c -l replicas -x -d "the stream's replicas"
            __qspool_c -l dedup-window -x -a "$__qspool_durations" -d "the stream's duplicate window"
            __qspool_c -l ack-wait -x -a "$__qspool_durations" -d "the consumer's ack wait"
            __qspool_c -l lease -x -a "$__qspool_durations" -d 'lease duration'
            __qspool_c -l window -x -d 'messages in flight at most'
            __qspool_c -l confirm -x -a "$__qspool_durations" -d 'keep each copy until confirmed'
            __qspool_c -l batch -x -d 'messages fetched at once'
    end
end
