# The two set-up commands in README: `make demo` and `make test`. Both install what they need first.
SHELL := bash
NPM_STAMP := node_modules/.install-stamp

.PHONY: install demo test typecheck certs bench clean

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: $(NPM_STAMP)

certs: $(NPM_STAMP)
	node --import tsx certs/make-certs.ts certs/out

typecheck: $(NPM_STAMP)
	npx tsc -p tsconfig.json

# tap's own summary, then the line CI reads: "N passed, N failed".
test: $(NPM_STAMP) certs typecheck
	set -o pipefail; npx tap --reporter=base test/unit test/integration 2>&1 | node test/summary.mjs

demo: $(NPM_STAMP) certs
	npx device-sim demo

bench: $(NPM_STAMP)
	npx device-sim bench

clean:
	rm -rf var .tap coverage certs/out
