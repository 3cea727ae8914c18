# shellcheck shell=bash
# The packages every native build selects (`scripts/build`, `scripts/test`):
# the same selection, so their builds share artefacts.
PACKAGES=(
  -p bridge -p spinmesh-config -p spinmesh-host -p spinmesh-events -p spinmesh-delivery
  -p kit -p auth -p analytics -p notifications -p products -p orders -p payments -p posts -p gateway
)
