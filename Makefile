# The two commands of the README: `make demo` and `make test`. Everything they need is
# installed here, into .venv, from nothing but python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := demo
# the demo's clock: a Monday morning in January 2027
NOW    := 2027-01-04T15:00:00Z
# the file transport needs no secret, but links are signed: the demo uses a throwaway one
SECRET := DRIPPER_SECRET=demo-not-a-secret-0123456789
# ... and so are the shop's webhooks: the demo's Shopify signs with this one
SHOP   := DRIPPER_SHOPIFY_SECRET=demo-shop-secret

.PHONY: demo test system lint typecheck unit integration cli delivery browser web docs bench-import clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,postgres]'
	touch $@

$(VENV)/.docs: $(VENV)/.base
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[docs]'
	touch $@

demo: $(VENV)/.base
	rm -rf $(DEMO)
	$(BIN)/dripper init $(DEMO)
	cd $(DEMO) && ../$(BIN)/dripper check --strict
	cd $(DEMO) && ../$(BIN)/dripper --now $(NOW) customers import customers.csv
	cd $(DEMO) && ../$(BIN)/dripper --now $(NOW) event purchase ada@example.com --data '{"amount": 24.50}'
	@echo "--- Grace orders in the Shopify shop; its webhook comes, and comes again (Shopify"
	@echo "    retries on any slow answer): one purchase is recorded, the second is a duplicate"
	cd $(DEMO) && $(SECRET) $(SHOP) ../$(BIN)/python -m dripper.web.local --now $(NOW) --to grace@example.com --shopify-order 1001
	cd $(DEMO) && $(SECRET) $(SHOP) ../$(BIN)/python -m dripper.web.local --now $(NOW) --to grace@example.com --shopify-order 1001
	cd $(DEMO) && ../$(BIN)/dripper --now $(NOW) event purchase new.buyer@example.com --data '{"amount": 12}'
	@echo "--- the daemon, once, right after those purchases: the thank-yous go out"
	cd $(DEMO) && $(SECRET) ../$(BIN)/dripper --now $(NOW) run --once
	@echo "--- Grace's thank-you names what she ordered (from the webhook's order)"
	cd $(DEMO) && ../$(BIN)/python -m dripper.web.local --to grace@example.com --show
	@echo "--- the next morning: the newsletter's first edition"
	cd $(DEMO) && $(SECRET) ../$(BIN)/dripper --now 2027-01-05T18:00:00Z run --once
	@echo "--- day 2: Ada replies to the newsletter; the newsletter to Linus bounces (both through the MTA pipe)"
	cd $(DEMO) && ../$(BIN)/python -m dripper.inbound.samples reply ada@example.com | ../$(BIN)/dripper --now 2027-01-06T09:00:00Z inbound
	cd $(DEMO) && ../$(BIN)/python -m dripper.inbound.samples bounce linus@example.com | ../$(BIN)/dripper --now 2027-01-06T09:05:00Z inbound
	@echo "--- day 5: Ada buys again (her welcome sequence ended with her reply; the referral request starts)"
	cd $(DEMO) && ../$(BIN)/dripper --now 2027-01-09T10:00:00Z event purchase ada@example.com --data '{"amount": 31}'
	cd $(DEMO) && $(SECRET) ../$(BIN)/dripper --now 2027-01-12T12:00:00Z run --once
	cd $(DEMO) && ../$(BIN)/dripper customers show ada@example.com
	@echo "--- day 15: the second-sale offers go out, asking how the first bag was"
	cd $(DEMO) && $(SECRET) ../$(BIN)/dripper --now 2027-01-19T12:00:00Z run --once
	@echo "--- Grace answers 'Not for me' with one click; the new buyer unsubscribes with one click"
	@echo "    (each through the real dripper serve app, in this process)"
	cd $(DEMO) && $(SECRET) ../$(BIN)/python -m dripper.web.local --now 2027-01-19T13:00:00Z --to grace@example.com --answer first_bag=poor
	cd $(DEMO) && $(SECRET) ../$(BIN)/python -m dripper.web.local --now 2027-01-19T13:05:00Z --to new.buyer@example.com --unsubscribe
	@echo "--- the new buyer orders again; the next run writes to Grace personally, and she orders again too"
	cd $(DEMO) && ../$(BIN)/dripper --now 2027-01-19T14:00:00Z event purchase new.buyer@example.com --data '{"amount": 12}'
	cd $(DEMO) && $(SECRET) ../$(BIN)/dripper --now 2027-01-19T16:00:00Z run --once
	@echo "--- Grace's 'Not for me' also put a call on the owner's list (campaigns/unhappy-call.yaml),"
	@echo "    and that run emailed the owner the day's digest of tasks: the owner calls, and closes it"
	cd $(DEMO) && ../$(BIN)/dripper --now 2027-01-19T16:05:00Z tasks
	cd $(DEMO) && ../$(BIN)/dripper --now 2027-01-19T16:30:00Z tasks done $$(../$(BIN)/dripper tasks --json | ../$(BIN)/python -c 'import json, sys; print(next(t["id"] for t in json.load(sys.stdin) if t["step"] == "call"))') --note "Called Grace: too dark a roast for her; a washed Kenya is on its way"
	cd $(DEMO) && ../$(BIN)/dripper --now 2027-01-19T16:35:00Z tasks --all
	cd $(DEMO) && ../$(BIN)/dripper --now 2027-01-19T17:00:00Z event purchase grace@example.com --data '{"amount": 18}'
	@echo "--- four days on: both have bought twice, so their referral requests are due (as Ada's was);"
	@echo "    Grace gets hers; the new buyer unsubscribed, so he gets nothing"
	cd $(DEMO) && $(SECRET) ../$(BIN)/dripper --now 2027-01-23T16:00:00Z run --once
	cd $(DEMO) && ../$(BIN)/dripper --now 2027-01-23T16:00:00Z customers show new.buyer@example.com
	@echo "--- a reader signs up on the shop's site (the signup form of dripper serve), is sent a"
	@echo "    confirmation link within one tick, confirms with one click and is welcomed"
	cd $(DEMO) && sed -i.bak 's/^enabled = false/enabled = true/' config.toml && rm -f config.toml.bak
	cd $(DEMO) && $(SECRET) ../$(BIN)/python -m dripper.web.local --now 2027-01-24T08:00:00Z --to reader@example.com --subscribe news
	cd $(DEMO) && $(SECRET) ../$(BIN)/dripper --now 2027-01-24T08:00:30Z run --once
	cd $(DEMO) && ../$(BIN)/python -m dripper.web.local --to reader@example.com --show
	cd $(DEMO) && $(SECRET) ../$(BIN)/python -m dripper.web.local --now 2027-01-24T08:05:00Z --to reader@example.com --confirm
	cd $(DEMO) && $(SECRET) ../$(BIN)/dripper --now 2027-01-24T08:05:30Z run --once
	cd $(DEMO) && ../$(BIN)/dripper --now 2027-01-24T08:06:00Z customers show reader@example.com
	@echo "--- the owner holds the welcome sequence for a day (a new blend is late): its offers wait"
	cd $(DEMO) && ../$(BIN)/dripper pause welcome
	cd $(DEMO) && ../$(BIN)/dripper --now 2027-01-24T09:00:00Z campaigns
	cd $(DEMO) && ../$(BIN)/dripper resume welcome
	@echo "--- Monday: who are the best customers, and what worked"
	cd $(DEMO) && ../$(BIN)/dripper --now 2027-01-25T09:00:00Z customers top
	@echo "--- who will stay? The lifetime models need 200 buyers (50 of them repeat buyers): at"
	@echo "    demo size they say so and predict nothing; the welcome campaign's 10% holdout is"
	@echo "    too small yet for a lift (stats says 'not enough data', honestly)"
	cd $(DEMO) && ../$(BIN)/dripper --now 2027-01-25T09:00:00Z customers predict
	cd $(DEMO) && ../$(BIN)/dripper --now 2027-01-25T09:00:00Z customers top --predicted
	cd $(DEMO) && ../$(BIN)/dripper --now 2027-01-25T09:00:00Z stats --cadence 6w
	@echo
	@echo "Demo project in ./$(DEMO): $$(ls $(DEMO)/outbox | wc -l) email(s) written to $(DEMO)/outbox/."
	@echo "Edit campaigns/*.yaml and templates/, then 'dripper check' and 'dripper preview welcome'."

# What the tests need from the machine: Debian's chromium (browser tests) and Dovecot (IMAP
# tests), PostgreSQL's server programs (a test's own throwaway cluster), SpamAssassin
# (`check`'s spam rules) and a running PostgreSQL at 127.0.0.1:5432. As root with apt they are installed (and PostgreSQL started);
# otherwise one line says what to run, before any test runs: no test ever skips for them.
system:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	{ [ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap ]; } || missing="$$missing dovecot-imapd"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v spamassassin >/dev/null 2>&1 || missing="$$missing spamassassin"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make test: installing Debian's$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq >/dev/null 2>&1 || true; \
	    apt-get install -y -qq $$missing >/dev/null || exit 2; \
	  else \
	    echo "make test needs Debian's$$missing: run  sudo apt-get install -y$$missing  then make test again" >&2; \
	    exit 2; \
	  fi; \
	fi; \
	if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null 2>&1; then \
	    pg_ctlcluster --skip-systemctl-redirect "$$(ls /etc/postgresql | head -n1)" main start || true; \
	    for _ in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	  fi; \
	  pg_isready -q -h 127.0.0.1 -p 5432 || { echo "make test needs PostgreSQL at 127.0.0.1:5432 (user postgres, database test; or DRIPPER_TEST_PG_URL): start it, then make test again" >&2; exit 2; }; \
	fi

# Tests run on every core (pytest-xdist; every test can run beside any other: its own
# schema, ports and files). WORKERS=0 runs them in this one process.
WORKERS ?= auto

test: system lint typecheck
	$(BIN)/pytest -q -n $(WORKERS)

lint: $(VENV)/.test
	$(BIN)/ruff check .

typecheck: $(VENV)/.test
	$(BIN)/mypy

unit: $(VENV)/.test
	$(BIN)/pytest -q tests/unit

integration: $(VENV)/.test
	$(BIN)/pytest -q tests/integration

cli: $(VENV)/.test
	$(BIN)/pytest -q tests/cli

delivery: $(VENV)/.test
	$(BIN)/pytest -q tests/delivery

browser: $(VENV)/.test
	$(BIN)/pytest -q tests/browser

web: $(VENV)/.test
	$(BIN)/pytest -q tests/web

docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

bench-import: $(VENV)/.base
	$(BIN)/python bench/import_customers.py

clean:
	rm -rf $(VENV) $(DEMO) .mypy_cache .ruff_cache .pytest_cache site
