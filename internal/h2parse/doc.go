// Package h2parse reconstructs HTTP/2 (and gRPC) exchanges from the two
// plaintext byte streams of one captured connection, one exchange.Exchange
// per stream.
//
// It has the shape of httpparse: a Conn is fed the events of both directions
// in order (Feed, Gap, Skip, Close) and calls emit synchronously with every
// finished exchange. Dir is httpparse.Dir, so the engine can hold either
// parser behind the same calls.
//
// Roles: the direction that starts with the client connection preface is the
// client. The other direction may start first (a server writes its SETTINGS
// as soon as the connection is up); its bytes are held, at most
// MaxHeaderListBytes plus 64 KiB, while they look like a SETTINGS frame, and
// parsed once the preface shows up. Anything else leaves the connection
// NotHTTP2. NewUpgradedConn starts a connection that switched from HTTP/1.1
// with "Upgrade: h2c": stream 1 is the upgrade request, answered in HTTP/2.
//
// Frames are parsed per direction without buffering payloads: DATA bytes go
// straight to the capped body, header block fragments (HEADERS, CONTINUATION,
// PUSH_PROMISE) straight to that direction's HPACK decoder, so memory per
// connection is bounded by the header list cap, the bodies' caps, the dynamic
// tables (at most 1 MiB each) and MaxStreams.
//
// Exchanges: a stream's exchange is emitted when both its request and its
// response ended (END_STREAM), when it is reset (RST_STREAM, recorded in
// Exchange.Reset), when a server GOAWAY says it was never processed, when it
// is evicted by MaxStreams (flagged Incomplete), and at Close. Flags follow
// httpparse: NoResponse exactly when Response is nil; Incomplete when a
// message did not end (reset, close, eviction, GOAWAY) or bytes were lost.
// 1xx interim responses are skipped. A second header block on a side is its
// trailers. A server push (PUSH_PROMISE) becomes an exchange whose request is
// the promised header block.
//
// Pseudo-header fields stay in Message.Headers, in wire order (:method,
// :scheme, :authority, :path; :status), and are also mapped to Method, Target
// (:path, or :authority for CONNECT) and StatusCode; Proto is "HTTP/2". No
// Host header is invented. A header list beyond MaxHeaderListBytes (counted
// as in RFC 9113: name + value + 32 per field) keeps its first fields and
// flags the exchange Incomplete; the block is still decoded so that the
// dynamic table stays right.
//
// Gaps: HPACK is stateful, so a direction that lost bytes of a header block
// no longer knows its dynamic table. Decoding resumes after that block with
// an empty table (Stats.Resumed): entries inserted from then on have the
// same index as in the encoder's table, so a later block made of literals,
// static entries and those entries decodes exactly, while one that refers
// to an entry from before the loss fails to decode and is treated like the
// lost block (counted, never decoded against a wrong entry). A gap (or a Skip not covered below) that
// falls inside one frame's payload keeps frame sync: inside DATA the lost
// bytes are counted in BodySize, the body capture stops at the hole and the
// exchange is flagged Incomplete; inside a header block the direction's HPACK
// state becomes unreliable. A gap that crosses a frame boundary loses frame
// sync and the direction stops being parsed (frame boundaries cannot be found
// again reliably). A gap that swallows a padded DATA frame's pad length makes
// the padding count as body (BodySize over by at most 255). Unreliable reports both cases; Stats counts the effects:
//
//   - a request whose header block could not be decoded is dropped
//     (Stats.Dropped): without method and path it cannot be reported;
//   - a response whose header block could not be decoded is emitted with
//     StatusCode 0 and no headers, flagged Incomplete|ParseError;
//   - undecodable trailers are left out and flag the exchange the same way;
//   - when a direction stopped, pending messages in it end flagged
//     Incomplete, and later requests are emitted without response as soon as
//     they end (server direction stopped) or never seen (client direction).
//
// Skip (bytes left uncaptured on purpose) inside a DATA payload whose body
// capture already reached MaxBodyBytes is only counted; anywhere else it is a
// gap. A read that holds several frames and is cut by the capture cap loses
// frame sync like any gap: HTTP/2 needs whole reads captured.
//
// gRPC needs nothing special: Body keeps the length-prefixed messages as sent
// (see GRPCMessages), grpc-status and grpc-message arrive in Response.Trailers
// (or Response.Headers for a trailers-only response); GRPCInfo reads them.
//
// A Conn is not safe for concurrent use, and emit must not call back into the
// Conn that invoked it.
package h2parse
