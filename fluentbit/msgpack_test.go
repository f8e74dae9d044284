package main

import (
	"encoding/binary"
	"fmt"
	"math"
)

// A small, strict msgpack reader for the tests, independent of the codec the
// plugin encodes with. It keeps the types apart: str -> string, bin ->
// []byte, ints -> int64 (uint64 above MaxInt64), ext -> mpExt, maps ->
// mpMap (string keys, order kept).
type mpExt struct {
	Type int8
	Data []byte
}

type mpMap struct {
	Keys   []string
	Values map[string]any
}

type mpReader struct {
	b   []byte
	off int
}

func (r *mpReader) need(n int) ([]byte, error) {
	if n < 0 || r.off+n > len(r.b) {
		return nil, fmt.Errorf("truncated at offset %d (need %d bytes)", r.off, n)
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}

func (r *mpReader) uint(n int) (uint64, error) {
	s, err := r.need(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range s {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

func (r *mpReader) next() (any, error) {
	s, err := r.need(1)
	if err != nil {
		return nil, err
	}
	c := s[0]
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c&0xe0 == 0xa0:
		return r.str(int(c & 0x1f))
	case c&0xf0 == 0x90:
		return r.array(int(c & 0x0f))
	case c&0xf0 == 0x80:
		return r.mapN(int(c & 0x0f))
	}
	switch c {
	case 0xc0:
		return nil, nil
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	case 0xc4, 0xc5, 0xc6:
		n, err := r.uint(1 << (c - 0xc4))
		if err != nil {
			return nil, err
		}
		b, err := r.need(int(n))
		return append([]byte{}, b...), err
	case 0xc7, 0xc8, 0xc9:
		n, err := r.uint(1 << (c - 0xc7))
		if err != nil {
			return nil, err
		}
		return r.ext(int(n))
	case 0xca:
		v, err := r.uint(4)
		return float64(math.Float32frombits(uint32(v))), err
	case 0xcb:
		v, err := r.uint(8)
		return math.Float64frombits(v), err
	case 0xcc, 0xcd, 0xce, 0xcf:
		v, err := r.uint(1 << (c - 0xcc))
		if v > math.MaxInt64 {
			return v, err
		}
		return int64(v), err
	case 0xd0, 0xd1, 0xd2, 0xd3:
		n := 1 << (c - 0xd0)
		v, err := r.uint(n)
		shift := 64 - 8*n
		return int64(v<<shift) >> shift, err
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return r.ext(1 << (c - 0xd4))
	case 0xd9, 0xda, 0xdb:
		n, err := r.uint(1 << (c - 0xd9))
		if err != nil {
			return nil, err
		}
		return r.str(int(n))
	case 0xdc, 0xdd:
		n, err := r.uint(2 << (c - 0xdc))
		if err != nil {
			return nil, err
		}
		return r.array(int(n))
	case 0xde, 0xdf:
		n, err := r.uint(2 << (c - 0xde))
		if err != nil {
			return nil, err
		}
		return r.mapN(int(n))
	}
	return nil, fmt.Errorf("invalid msgpack byte 0x%02x at offset %d", c, r.off-1)
}

func (r *mpReader) str(n int) (any, error) {
	b, err := r.need(n)
	return string(b), err
}

func (r *mpReader) ext(n int) (any, error) {
	t, err := r.need(1)
	if err != nil {
		return nil, err
	}
	b, err := r.need(n)
	return mpExt{Type: int8(t[0]), Data: append([]byte{}, b...)}, err
}

func (r *mpReader) array(n int) (any, error) {
	out := make([]any, 0, n)
	for i := 0; i < n; i++ {
		v, err := r.next()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (r *mpReader) mapN(n int) (any, error) {
	m := mpMap{Values: make(map[string]any, n)}
	for i := 0; i < n; i++ {
		k, err := r.next()
		if err != nil {
			return nil, err
		}
		ks, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("map key %#v is not a str", k)
		}
		if _, dup := m.Values[ks]; dup {
			return nil, fmt.Errorf("duplicate map key %q", ks)
		}
		v, err := r.next()
		if err != nil {
			return nil, err
		}
		m.Keys = append(m.Keys, ks)
		m.Values[ks] = v
	}
	return m, nil
}

// eventTimeOf reads Fluent Bit's EventTime ext.
func eventTimeOf(v any) (sec, nsec uint32, ok bool) {
	e, isExt := v.(mpExt)
	if !isExt || e.Type != 0 || len(e.Data) != 8 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(e.Data), binary.BigEndian.Uint32(e.Data[4:]), true
}
