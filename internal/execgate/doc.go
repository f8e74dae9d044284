// Package execgate holds every exec on the host until its executable has
// been readied for capture, within a bound. It is built on fanotify
// permission events (FAN_OPEN_EXEC_PERM): the kernel opens the file to be
// executed, queues an event carrying a descriptor of that very file, and
// suspends the exec in the kernel until the listener answers. The process
// is not stopped in any way job control, a parent or the process itself can
// see, and nothing about it changes: the exec only returns later.
//
// The gate is fail-open: an exec is answered ALLOW as soon as its file is
// known not to need anything, when the analysis is done, or at the latest
// when the bound expires, whatever the analysis is doing. When the
// listener's descriptor closes — the agent stops or dies — the kernel
// allows every pending exec itself.
//
// The events are read and answered by a gate process (the warden, see
// warden.go): the agent's own executable run again, which keeps its own
// clock, so the bound holds even when the agent as a whole is stopped or
// stalled. The agent analyses; the warden only holds, asks and answers.
// A front end that is a shared library inside another program cannot run
// it and answers in-process.
package execgate
