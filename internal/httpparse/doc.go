// Package httpparse reconstructs HTTP/1.x exchanges from the two byte streams
// of one captured connection.
//
// The capture engine sees plaintext as a sequence of events, each carrying
// some bytes written (Egress) or read (Ingress) by the traced process. A Conn
// is fed those events in order and calls back with every finished
// exchange.Exchange. Framing follows RFC 9112; the parser is written for a
// passive observer, so it differs from a server-side parser in three ways:
//
//   - It never has the whole stream. Events may be lost (Gap): inside a body
//     of known length the hole is counted and parsing stays in sync;
//     elsewhere the direction resynchronises on the next line that looks like
//     a start line, so unrelated bytes are never spliced into a message.
//   - It must stay bounded under hostile input: head, body capture, trailer
//     and pipelining buffers all have caps, and garbage ends the connection
//     (State Failed) rather than producing invented exchanges.
//   - Responses may be seen before their request body is complete
//     (100-continue, early errors), so requests and responses are paired by
//     request start order and an exchange is emitted only once both halves
//     are complete, always in request order.
//
// Partial responses: when the connection closes (or fails, or a gap hits a
// response head) after a response's status line was seen but before the
// response completed, the exchange carries that partial response and the
// Incomplete flag, not NoResponse. NoResponse is set exactly when
// Exchange.Response is nil.
//
// Gaps and pairing: a gap that swallows the start of a request queues a
// placeholder that absorbs that request's response (never emitted); a gap
// that swallows the start of a response gives up on the request it answered
// (NoResponse|Incomplete). A gap covering several whole messages still
// misaligns the pairs that follow. Resynchronisation only looks at line
// starts, so a status line glued to the end of a body without a newline is
// missed.
//
// CONNECT and Upgrade: after such a request the request direction is held
// (at most MaxHeaderBytes bytes) until its response arrives. On 101 or a 2xx
// to CONNECT the connection becomes Upgraded; otherwise the held bytes are
// replayed in resynchronising mode. Bytes held after a gap are dropped rather
// than spliced. Replayed messages carry the timestamp of the first held byte.
//
// A Conn is not safe for concurrent use, and emit must not call back into the
// Conn that invoked it.
package httpparse
