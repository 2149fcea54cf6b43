# The two set-up commands in README: `make demo` and `make test`. Both install what they need first.
SHELL := bash
NPM_STAMP := node_modules/.install-stamp

.PHONY: install demo test typecheck certs bench clean tools

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: $(NPM_STAMP)

certs: $(NPM_STAMP)
	node --import tsx certs/make-certs.ts certs/out

# libcoap's independent C client, for the interoperability test.
tools:
	@command -v coap-client-notls >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcoap3-bin >/dev/null; \
	  else echo "note: install libcoap3-bin (coap-client-notls) for the interoperability test"; fi; }

typecheck: $(NPM_STAMP)
	npx tsc -p tsconfig.json

# tap's own summary, then the line CI reads: "N passed, N failed".
test: $(NPM_STAMP) certs tools typecheck
	set -o pipefail; npx tap --reporter=base test/unit test/integration 2>&1 | node test/summary.mjs

demo: $(NPM_STAMP) certs
	npx device-sim demo

bench: $(NPM_STAMP)
	npx device-sim bench

clean:
	rm -rf var .tap coverage certs/out
