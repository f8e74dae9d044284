// Package chartcheck holds the tests of deploy/: the Helm chart renders, every
// object it renders decodes strictly into the Kubernetes API types, and
// deploy/kubernetes/tlstap.yaml is the chart's render with default values.
//
// It is its own module so that Helm and the Kubernetes API stay out of the
// product's dependencies. Run it with `make deploy-check` (part of `make test`);
// `go test ./... -update` rewrites the manifest from the chart.
package chartcheck
