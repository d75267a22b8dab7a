# make [build]        release binaries: the front ends static, forward dynamic
# make install        PREFIX=/usr/local, DESTDIR honoured: programs and man pages
# make uninstall      removes what install put there
# make check          the test suite against these binaries (test.sh)
#
# The front ends are linked statically (glibc, +crt-static): no dynamic loader at each
# connection. forward stays dynamic: it resolves the primary's name with getaddrinfo, which
# needs glibc's NSS modules (/etc/nsswitch.conf), and a static glibc cannot load them.
# --target is given so that RUSTFLAGS reach only the programs, not serde's proc macro.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(DESTDIR)$(PREFIX)/bin
MANDIR = $(DESTDIR)$(PREFIX)/share/man
CARGO ?= cargo
TRIPLE ?= x86_64-unknown-linux-gnu

FRONTENDS = smtpfront-echo smtpfront-reject smtpfront-spool
STATIC = target/$(TRIPLE)/release
MAN5 = man/smtpfront-rules.5
MAN7 = man/smtpfront.7
MAN8 = man/smtpfront-echo.8 man/smtpfront-reject.8 man/smtpfront-spool.8 man/forward.8

all: build

# The functions a session runs are laid out together (link/README.md): fewer page faults
# at each exec. A name the program no longer has is skipped without a word.
ORDER = -C link-arg=-Wl,-T,$(CURDIR)/link/hot.ld \
	-C link-arg=-Wl,--symbol-ordering-file=$(CURDIR)/link/hot-functions \
	-C link-arg=-Wl,--no-warn-symbol-ordering

build:
	RUSTFLAGS="-C target-feature=+crt-static $(ORDER)" $(CARGO) build --release --locked \
		--target $(TRIPLE) $(addprefix --bin ,$(FRONTENDS))
	$(CARGO) build --release --locked --bin forward

install: build
	install -d $(BINDIR) $(MANDIR)/man5 $(MANDIR)/man7 $(MANDIR)/man8
	install -m 755 $(addprefix $(STATIC)/,$(FRONTENDS)) $(BINDIR)/
	install -m 755 target/release/forward $(BINDIR)/
	install -m 644 $(MAN5) $(MANDIR)/man5/
	install -m 644 $(MAN7) $(MANDIR)/man7/
	install -m 644 $(MAN8) $(MANDIR)/man8/

uninstall:
	rm -f $(addprefix $(BINDIR)/,$(FRONTENDS) forward)
	rm -f $(addprefix $(MANDIR)/man5/,$(notdir $(MAN5)))
	rm -f $(addprefix $(MANDIR)/man7/,$(notdir $(MAN7)))
	rm -f $(addprefix $(MANDIR)/man8/,$(notdir $(MAN8)))

check:
	bash test.sh

.PHONY: all build install uninstall check
