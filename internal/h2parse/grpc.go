package h2parse

import (
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/tlstap/tlstap/internal/exchange"
)

// IsGRPC reports whether a message's content-type is application/grpc or one
// of its variants (application/grpc+proto, application/grpc+json, ...).
func IsGRPC(m *exchange.Message) bool {
	ct, ok := m.Get("content-type")
	if !ok || len(ct) < len("application/grpc") || !strings.EqualFold(ct[:len("application/grpc")], "application/grpc") {
		return false
	}
	rest := ct[len("application/grpc"):]
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}

// GRPCInfo describes a gRPC exchange: the service and method from the
// request path "/package.Service/Method", and the grpc-status from the
// response trailers (or headers, for a trailers-only response). status is -1
// when no valid grpc-status was seen (no response, or it ended early). ok is
// false when the exchange is not gRPC (request content-type) or its path is
// not of that form.
func GRPCInfo(ex *exchange.Exchange) (service, method string, status int, ok bool) {
	if ex == nil || ex.Request == nil || !IsGRPC(ex.Request) {
		return "", "", -1, false
	}
	path := ex.Request.Target
	if q := strings.IndexByte(path, '?'); q >= 0 {
		path = path[:q]
	}
	if len(path) < 4 || path[0] != '/' {
		return "", "", -1, false
	}
	slash := strings.LastIndexByte(path, '/')
	if slash <= 1 {
		return "", "", -1, false
	}
	service, method = path[1:slash], path[slash+1:]
	if method == "" {
		return "", "", -1, false
	}
	return service, method, grpcStatus(ex.Response), true
}

func grpcStatus(m *exchange.Message) int {
	if m == nil {
		return -1
	}
	for _, list := range [2][]exchange.Header{m.Trailers, m.Headers} {
		for _, h := range list {
			if strings.EqualFold(h.Name, "grpc-status") {
				n, err := strconv.Atoi(strings.TrimSpace(h.Value))
				if err != nil || n < 0 {
					return -1
				}
				return n
			}
		}
	}
	return -1
}

// GRPCMessages splits a gRPC body into its length-prefixed messages (a flag
// byte, a 4-byte big-endian length, the message) and returns their declared
// sizes. complete is true when body ends exactly after a whole message (or is
// empty); a message cut short still has its declared size listed when its
// 5-byte prefix is there.
func GRPCMessages(body []byte) (sizes []int, complete bool) {
	for len(body) > 0 {
		if len(body) < 5 {
			return sizes, false
		}
		n := binary.BigEndian.Uint32(body[1:5])
		sizes = append(sizes, int(n))
		if uint64(len(body)-5) < uint64(n) {
			return sizes, false
		}
		body = body[5+int(n):]
	}
	return sizes, true
}
