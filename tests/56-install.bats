#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines: set by run
# make install puts the tools, pages, completions, units and examples
# where they belong, make uninstall removes exactly that, and a program
# transform (./configure --program-prefix=q-) renames them all alike.

load helper

setup() {
	common_setup
	BUILD=${QSPOOL_INSTALL_BIN%/src}
	[[ -f $BUILD/Makefile ]] || skip "no build tree at $BUILD"
	ROOT=$T/root
}

# mkvar NAME: a variable of the build's Makefile, expanded
mkvar() { make -s -C "$BUILD" --no-print-directory -f Makefile -f - print <<<"print: ; @echo \$($1)"; }

installed() { (cd "$ROOT" && find . \( -type f -o -type l \) | sed 's|^\./|/|' | sort); }

tools() {
	local t
	for t in qpush qpop qdlq qpub qsub qstat qbridge; do
		[[ -x $QSPOOL_INSTALL_BIN/$t ]] && echo "$t"
	done
}

@test "make install puts every file where it belongs; make uninstall removes exactly that" {
	run make -s -C "$BUILD" install DESTDIR="$ROOT"
	assert_success
	local bindir mandir bash zsh fish units docdir t files
	bindir=$(mkvar bindir) mandir=$(mkvar mandir) bash=$(mkvar bashcompdir)
	zsh=$(mkvar zshcompdir) fish=$(mkvar fishcompdir) units=$(mkvar systemdunitdir)
	docdir=$(mkvar docdir)
	files=$(installed)
	for t in $(tools); do
		grep -qx "$bindir/$t" <<<"$files" || fail "no $bindir/$t"
		grep -qx "$mandir/man1/$t.1" <<<"$files" || fail "no $t.1"
		grep -qx "$bash/$t" <<<"$files" || fail "no bash completion for $t"
		grep -qx "$fish/$t.fish" <<<"$files" || fail "no fish completion for $t"
		[[ $("$ROOT$bindir/$t" --version) == "$t $(mkvar VERSION)" ]] ||
			fail "$t --version is not '$t $(mkvar VERSION)'"
	done
	for t in man5/q-spool.5 man5/q.conf.5 man7/qspool.7; do
		grep -qx "$mandir/$t" <<<"$files" || fail "no $t"
	done
	grep -qx "$zsh/_qspool" <<<"$files"
	grep -qx "$docdir/examples/demo.sh" <<<"$files"
	[[ -x $ROOT$docdir/examples/saga-orchestration.sh ]]
	if [[ $units != no ]]; then
		grep -qx "$units/qpop@.service" <<<"$files"
		grep -qx "$units/qpop-drain@.timer" <<<"$files"
		grep -q "^ExecStart=$bindir/qpop -f " "$ROOT$units/qpop@.service"
	fi
	run make -s -C "$BUILD" uninstall DESTDIR="$ROOT"
	assert_success
	run installed
	assert_output ""
}

@test "--program-prefix: the tools, their pages, completions and units are renamed alike" {
	run make -s -C "$BUILD" install DESTDIR="$ROOT" transform='s,^,q-,'
	assert_success
	local bindir bash fish units files
	bindir=$(mkvar bindir) bash=$(mkvar bashcompdir) fish=$(mkvar fishcompdir)
	units=$(mkvar systemdunitdir)
	files=$(installed)
	grep -qx "$bindir/q-qpush" <<<"$files"
	grep -qx "$(mkvar mandir)/man1/q-qstat.1" <<<"$files"
	grep -qx "$(mkvar mandir)/man5/q-spool.5" <<<"$files"
	run grep -qx "$bindir/qpush" <<<"$files"
	assert_failure 1
	# bash: loaded by the renamed command's name, completes it
	[[ -L $ROOT$bash/q-qpush ]]
	run bash -c '
		source "$1"
		complete -p q-qpush
		COMP_WORDS=(q-qpush --deb); COMP_CWORD=1
		_qspool q-qpush --deb q-qpush
		printf "%s\n" "${COMPREPLY[@]}"' _ "$ROOT$bash/q-qpush"
	assert_line "complete -F _qspool q-qpush"
	assert_line "--debounce="
	grep -q '^#compdef q-qpush q-qpop' "$ROOT$(mkvar zshcompdir)/_qspool"
	grep -qx '__qspool_complete qpush q-qpush' "$ROOT$fish/q-qpush.fish"
	if [[ $units != no ]]; then
		grep -q "^ExecStart=$bindir/q-qpop -f " "$ROOT$units/q-qpop@.service"
		grep -q "^ExecStart=$bindir/q-qpop --drain " "$ROOT$units/q-qpop-drain@.service"
		[[ -f $ROOT$units/q-qpop-drain@.timer ]]
	fi
	run make -s -C "$BUILD" uninstall DESTDIR="$ROOT" transform='s,^,q-,'
	assert_success
	run installed
	assert_output ""
}

@test "the installed pages and completions name the system files where this build reads them (--sysconfdir)" {
	local man5 man7 man1 src=$QSPOOL_SRCDIR/man
	man1=$(mkvar man1dir) man5=$(mkvar man5dir) man7=$(mkvar man7dir)
	# (a strict umask, as under sudo: install(1) sets the modes itself)
	run bash -c 'umask 077; make -s -C "$1" install-data DESTDIR="$2" sysconfdir=/opt/q/etc' _ "$BUILD" "$ROOT"
	assert_success
	grep -q '^\.It Pa /opt/q/etc/qspool\.conf$' "$ROOT$man1/qpop.1"
	grep -q '/opt/q/etc/qspool/QUEUE\.env' "$ROOT$man1/qpop.1"
	grep -q '^\.Pa /opt/q/etc/qspool\.conf$' "$ROOT$man5/q.conf.5"
	grep -q '/opt/q/etc/qspool/images\.env' "$ROOT$man7/qspool.7"
	# the completions read the spool root where the tools do
	grep -q ' /opt/q/etc/qspool\.conf' "$ROOT$(mkvar bashcompdir)/qspool.bash"
	grep -q ' /opt/q/etc/qspool\.conf' "$ROOT$(mkvar zshcompdir)/_qspool"
	grep -q ' /opt/q/etc/qspool\.conf' "$ROOT$(mkvar fishfuncdir)/__qspool_complete.fish"
	run grep -rl '[^A-Za-z0-9_./]/etc/qspool' "$ROOT"
	assert_output ""
	# the pages keep the mode they were installed with
	[[ $(stat -c %a "$ROOT$man1/qpop.1") == 644 ]]
	# built for /etc: the pages as written
	rm -rf "$ROOT"
	run make -s -C "$BUILD" install-data DESTDIR="$ROOT" sysconfdir=/etc
	assert_success
	cmp "$src/qpop.1" "$ROOT$man1/qpop.1"
	cmp "$src/qspool.7" "$ROOT$man7/qspool.7"
}

@test "the default build links libbsd, libmd and inih into the tools, libc shared (--disable-static-deps: dynamically)" {
	command -v ldd >/dev/null || skip "no ldd"
	local libs t
	libs=$(mkvar LIBBSD_LIBS)
	for t in $(tools); do
		run ldd "$QSPOOL_INSTALL_BIN/$t"
		assert_success
		assert_output --partial "libc.so"
		if [[ $libs == *-Bstatic* ]]; then
			refute_output --regexp 'libbsd|libmd|libinih'
		else
			assert_output --partial "libbsd"
		fi
	done
	# without either option, the archives that the compiler finds are
	# linked statically
	if ! sed -n '/^  \$ /p' "$BUILD/config.log" | grep -q -- '-static-deps'; then
		local a path have=1
		for a in libbsd.a libmd.a libinih.a; do
			path=$($(mkvar CC) -print-file-name="$a")
			[[ $path == /* && -f $path ]] || have=
		done
		[[ -z $have || $libs == *-Bstatic* ]] ||
			fail "libbsd.a, libmd.a and libinih.a are there, yet linked dynamically: $libs"
	fi
}
