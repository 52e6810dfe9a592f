# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a step they depend on.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
TESTBED := node packages/testbed/dist/src/cli.js

.PHONY: all deps binaries build lint test demo testbed-up testbed-down clean

all: build

deps:
	@bash scripts/install-deps.sh

# kube-apiserver, kubectl and etcd, built from the Go module proxy once and cached in ~/.cache/nio-testbed.
binaries: deps
	@bash packages/testbed/scripts/build-binaries.sh >/dev/null

build: deps
	pnpm build

lint: build
	pnpm lint

test: build lint binaries
	pnpm test

# The whole stack on the testbed (e2e/src/demo.ts); KEEP=1 leaves the lab and the operators running in .demo/.
demo: build binaries
	KEEP=$(KEEP) node e2e/dist/src/demo.js

testbed-up: build binaries
	$(TESTBED) up --dir .testbed

testbed-down:
	@if [ -f packages/testbed/dist/src/cli.js ]; then $(TESTBED) down --dir .testbed; fi

clean:
	pnpm clean
