// Package bpf holds tlstap's eBPF programs and their generated Go bindings.
//
// The compiled objects are committed so that building the agent needs no
// clang; `make generate` rebuilds them and TestGeneratedUpToDate fails when
// they are stale.
package bpf

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type data_event -type ctl_event -type exec_event -type conn_addr -type go_offsets tlstap tlstap.bpf.c -- -I.
