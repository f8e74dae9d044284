//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package tlstapreceiver is the OpenTelemetry Collector receiver of type
// "tlstap": it runs the tlstap capture engine and turns every captured HTTP
// exchange into one span and one log record.
package tlstapreceiver
