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

# libcoap's independent C client, for the interoperability test; redis-server, for the Redis store
# tests (each starts its own on a unix socket); nginx with its stream module, for the load-balancer
# test (the operator guide's nginx example); python3-cbor2 and python3-cryptography for Debian's /usr/bin/python3,
# for the independent COSE check. One apt-get update, then only what is missing.
tools:
	@missing=""; \
	command -v coap-client-notls >/dev/null 2>&1 || missing="$$missing libcoap3-bin"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v nginx >/dev/null 2>&1 || missing="$$missing nginx"; \
	[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing="$$missing libnginx-mod-stream"; \
	/usr/bin/python3 -c 'import cbor2, cryptography' >/dev/null 2>&1 || missing="$$missing python3-cbor2 python3-cryptography"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: install$$missing (libcoap3-bin for the interoperability test, redis-server for the Redis store tests, nginx and libnginx-mod-stream for the load-balancer test, python3-cbor2 and python3-cryptography for the independent COSE check)"; fi; \
	fi

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
