package tlstapreceiver

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/tlstap/tlstap/internal/engine"
	"github.com/tlstap/tlstap/receiver/tlstapreceiver/internal/metadata"
)

// NewFactory returns the factory of the tlstap receiver.
func NewFactory() receiver.Factory {
	return newFactory(newRealEngine)
}

func newFactory(newEngine engineFactory) receiver.Factory {
	f := &factory{newEngine: newEngine}
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithTraces(f.createTraces, metadata.TracesStability),
		receiver.WithLogs(f.createLogs, metadata.LogsStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		engineConfig:       engine.DefaultConfig(),
		ResourceAttributes: metadata.DefaultResourceAttributesConfig(),
	}
}

// receivers holds one tlstapReceiver per component ID, so that the logs and
// the traces pipelines of the same "tlstap/<name>" share one capture engine.
var receivers = newSharedComponents[component.ID, *tlstapReceiver]()

type factory struct {
	newEngine engineFactory
}

func (f *factory) load(set receiver.Settings, cfg component.Config) (*sharedComponent[*tlstapReceiver], error) {
	return receivers.LoadOrStore(set.ID, func() (*tlstapReceiver, error) {
		return newReceiver(cfg.(*Config), set, f.newEngine)
	})
}

func (f *factory) createTraces(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Traces) (receiver.Traces, error) {
	r, err := f.load(set, cfg)
	if err != nil {
		return nil, err
	}
	r.Unwrap().registerTraces(next)
	return r, nil
}

func (f *factory) createLogs(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	r, err := f.load(set, cfg)
	if err != nil {
		return nil, err
	}
	r.Unwrap().registerLogs(next)
	return r, nil
}
