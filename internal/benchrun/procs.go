package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is one process the driver started. Every child gets its own process
// group (so nginx's workers go with their master) and SIGKILL when the
// driver dies; stop signals the group by the child's PID.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

var (
	childMu  sync.Mutex
	children = map[int]*child{}
)

func startChild(name string, cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	childMu.Lock()
	children[cmd.Process.Pid] = c
	childMu.Unlock()
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// wait waits for the child to exit on its own, at most d; then it is stopped.
func (c *child) wait(d time.Duration) error {
	select {
	case <-c.done:
	case <-time.After(d):
		c.stop()
		return fmt.Errorf("%s: still running after %s, stopped", c.name, d)
	}
	c.forget()
	return c.err
}

// stop sends SIGTERM to the child's process group, then SIGKILL after 10 s.
func (c *child) stop() {
	defer c.forget()
	if c.exited() {
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL) // leftovers of the group, if any
		return
	}
	_ = syscall.Kill(-c.pid(), syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		<-c.done
	}
	_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
}

func (c *child) forget() {
	childMu.Lock()
	delete(children, c.pid())
	childMu.Unlock()
}

// stopAll stops every child still registered (failure and signal paths).
func stopAll() {
	childMu.Lock()
	list := make([]*child, 0, len(children))
	for _, c := range children {
		list = append(list, c)
	}
	childMu.Unlock()
	for _, c := range list {
		c.stop()
	}
}

// rusage returns the user+system CPU time of an exited child.
func (c *child) rusage() time.Duration {
	if c.cmd.ProcessState == nil {
		return 0
	}
	return c.cmd.ProcessState.UserTime() + c.cmd.ProcessState.SystemTime()
}

// clkTck is USER_HZ; 100 on every x86-64 Linux.
const clkTck = 100

// procCPU returns utime+stime of a live process (all its threads).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(s[i+2:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// treeCPU sums procCPU over pid and its live descendants.
func treeCPU(pid int) time.Duration {
	total, _ := procCPU(pid)
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if k, err := strconv.Atoi(f); err == nil {
				total += treeCPU(k)
			}
		}
	}
	return total
}

// statusKB reads a "Vm…"/"Rss…" field of /proc/<pid>/status in KiB.
func statusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line[len(field)+1:])
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

// sysCPU returns the machine's busy and total CPU time from /proc/stat.
func sysCPU() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line := strings.SplitN(string(b), "\n", 2)[0]
	f := strings.Fields(line)[1:]
	var sum, idle int64
	for i, x := range f {
		if i >= 8 { // guest time is already in user
			break
		}
		v, _ := strconv.ParseInt(x, 10, 64)
		sum += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	tick := time.Second / clkTck
	return time.Duration(sum-idle) * tick, time.Duration(sum) * tick
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
