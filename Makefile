# Vigil: the two commands a newcomer needs are in the README:
#   make demo   builds the dashboard and Vigil, then runs a simulated ward
#   .ci/run     installs what the tests need (Debian, npm, FerretDB), then runs make test
GO       ?= go
GOFLAGS  ?= -buildvcs=false
export GOFLAGS
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -s -w -X main.version=$(VERSION)

.PHONY: all build web vigil demo serve test vet fmt-check fuzz bench clean

all: build

build: web vigil

# The dashboard's third-party code (MQTT.js) comes from npm, never from the repository.
web: web/vendor/mqtt.min.js
web/vendor/mqtt.min.js: web/package.json web/package-lock.json web/build.mjs
	cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

vigil:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/vigil ./cmd/vigil

demo: build
	./bin/vigil demo

serve: build
	./bin/vigil serve

# The whole suite. Integration tests need Mosquitto, Chromium, Node packages and a MongoDB
# wire-protocol server ($$VIGIL_TEST_MONGO_URI); .ci/run installs and starts them and sets
# VIGIL_REQUIRE_INTEGRATION=1 so that none of them may skip.
test: vet fmt-check web
	$(GO) test -race -count=1 -timeout 20m ./...
	cd web && npm test --silent
	$(MAKE) fuzz

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './web/node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# A short fuzzing run of every fuzz target (the seed corpora run in make test anyway). The
# budget is a count of executions, not a duration: with a duration, Go 1.26's fuzzing
# coordinator can report its own deadline as a failure ("context deadline exceeded", no failing
# input) when a worker is busy as time runs out (golang/go#75804, fixed in Go 1.27).
# About 8-12 s per target on the 2-core machine.
FUZZ_TOPICS ?= 500000x
FUZZ_DECODE ?= 150000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZ_TOPICS) ./topics
	$(GO) test -run '^$$' -fuzz '^FuzzMatch$$' -fuzztime $(FUZZ_TOPICS) ./topics
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZ_DECODE) ./ingest

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./topics ./news2 ./ingest ./store/... ./broker

clean:
	rm -rf bin test-artifacts
