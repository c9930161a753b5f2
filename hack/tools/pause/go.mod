// The real node's sandbox ("pause") image: a static program that sleeps, reaps its children and exits on SIGTERM.
module sovereignsuite.io/hack/tools/pause

go 1.26.0
