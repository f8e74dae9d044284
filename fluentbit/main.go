// Command tlstap is the Fluent Bit Go input plugin of tlstap, built with
// go build -buildmode=c-shared into tlstap.so and loaded by Fluent Bit with
// -e tlstap.so. See README.md.
package main

/*
#include <stdlib.h>
*/
import "C"

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/fluent/fluent-bit-go/input"
	"go.uber.org/zap"
)

// FLBPluginRegister registers the input plugin "tlstap".
//
//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) int {
	return input.FLBPluginRegister(def, pluginName, pluginDescription)
}

// FLBPluginUnregister frees what FLBPluginRegister allocated.
//
//export FLBPluginUnregister
func FLBPluginUnregister(def unsafe.Pointer) {
	input.FLBPluginUnregister(def)
}

// FLBPluginInit reads the input's properties, validates them and starts the
// capture engine. Any failure is printed on stderr as one line naming the
// cause (the offending option, or why capture cannot start).
//
//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) int {
	get := func(key string) string { return input.FLBPluginConfigKey(plugin, key) }
	if err := initPlugin(get); err != nil {
		fmt.Fprintf(os.Stderr, "[%s] %s\n", pluginName, err)
		return input.FLB_ERROR
	}
	return input.FLB_OK
}

// FLBPluginInputCallback returns, in a buffer allocated with malloc, the
// exchanges captured since the last call as concatenated msgpack records
// [EventTime, map]. It never waits for data: with nothing queued it returns
// no buffer and a zero length.
//
//export FLBPluginInputCallback
func FLBPluginInputCallback(data *unsafe.Pointer, size *C.size_t) int {
	if data == nil || size == nil {
		return input.FLB_ERROR
	}
	*data, *size = nil, 0
	p := current()
	if p == nil {
		return input.FLB_OK
	}
	b := p.collect()
	if len(b) == 0 {
		return input.FLB_OK
	}
	buf := C.malloc(C.size_t(len(b)))
	if buf == nil {
		p.logger.Error("malloc failed; records of this collect are lost", zap.Int("bytes", len(b)))
		return input.FLB_ERROR
	}
	copy(unsafe.Slice((*byte)(buf), len(b)), b)
	p.outstanding.Add(1)
	*data, *size = buf, C.size_t(len(b))
	return input.FLB_OK
}

// FLBPluginInputCleanupCallback frees a buffer FLBPluginInputCallback
// returned, once Fluent Bit has copied the records.
//
//export FLBPluginInputCleanupCallback
func FLBPluginInputCleanupCallback(data unsafe.Pointer) int {
	if data == nil {
		return input.FLB_OK
	}
	C.free(data)
	if p := current(); p != nil {
		p.outstanding.Add(-1)
	}
	return input.FLB_OK
}

// FLBPluginInputPause is called when Fluent Bit pauses the input (buffer
// limits reached). The engine keeps capturing; the queue absorbs up to
// queue_size exchanges and drops (counted) beyond.
//
//export FLBPluginInputPause
func FLBPluginInputPause() {
	if p := current(); p != nil {
		p.logger.Info("paused by Fluent Bit; exchanges queue up to queue_size, newer ones are dropped and counted",
			zap.Int("queued", p.queue.Len()), zap.Int("queue_size", p.cfg.QueueSize))
	}
}

// FLBPluginInputResume is called when Fluent Bit resumes the input.
//
//export FLBPluginInputResume
func FLBPluginInputResume() {
	if p := current(); p != nil {
		p.logger.Info("resumed by Fluent Bit", zap.Int("queued", p.queue.Len()), zap.Uint64("dropped_total", p.queue.Dropped()))
	}
}

// FLBPluginExit stops the engine: every probe is detached and every
// goroutine stopped before it returns.
//
//export FLBPluginExit
func FLBPluginExit() int {
	if err := exitPlugin(); err != nil {
		fmt.Fprintf(os.Stderr, "[%s] shutdown: %s\n", pluginName, oneLine(err))
		return input.FLB_ERROR
	}
	return input.FLB_OK
}

func main() {}
