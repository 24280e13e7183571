# Meson is the build; this Makefile only wraps it (see README.md).
#   make          build build/vireo (installing build packages if missing)
#   make demo     boot the guest kit to a shell
#   make check    every test tier; ends with "N passed, N failed, N skipped"
BUILD ?= build

.PHONY: all deps build demo check clean

all: build

deps:
	@scripts/install-deps build

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	@scripts/install-deps all
	guest/demo

check: build
	@scripts/install-deps all
	scripts/check

clean:
	rm -rf $(BUILD)
