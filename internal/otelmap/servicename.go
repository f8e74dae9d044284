package otelmap

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/tlstap/tlstap/internal/exchange"
)

// ServiceNameRule gives the processes whose executable matches Executable
// the service name Name.
type ServiceNameRule struct {
	// Executable is a glob (path.Match syntax) over process.executable.name,
	// or over process.executable.path when it contains a '/'.
	Executable string `mapstructure:"executable"`
	// Name is the service.name of the matching processes.
	Name string `mapstructure:"name"`
}

// ServiceNames are rules tried in order; the first match names the
// service. A process no rule matches is "unknown_service:<executable name>",
// the value the semantic conventions prescribe when the service is unknown.
type ServiceNames []ServiceNameRule

// Validate reports every rule without a name or with a malformed glob.
func (r ServiceNames) Validate() error {
	var errs []error
	for i, rule := range r {
		if rule.Executable == "" {
			errs = append(errs, fmt.Errorf("service_names[%d].executable: empty", i))
		} else if _, err := path.Match(rule.Executable, ""); err != nil {
			errs = append(errs, fmt.Errorf("service_names[%d].executable: %q: %w", i, rule.Executable, err))
		}
		if strings.TrimSpace(rule.Name) == "" {
			errs = append(errs, fmt.Errorf("service_names[%d].name: empty", i))
		}
	}
	return errors.Join(errs...)
}

// Resolve returns the service.name of p.
func (r ServiceNames) Resolve(p exchange.Process) string {
	for _, rule := range r {
		subject := p.ExeName
		if strings.Contains(rule.Executable, "/") {
			subject = p.ExePath
		}
		if subject == "" {
			continue
		}
		// Validate has rejected malformed patterns: a match error means no match.
		if ok, _ := path.Match(rule.Executable, subject); ok {
			return rule.Name
		}
	}
	if p.ExeName == "" {
		return unknownService
	}
	return unknownService + ":" + p.ExeName
}

// unknownService is the semantic conventions' service.name when the
// service is not known.
const unknownService = "unknown_service"
