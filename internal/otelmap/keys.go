package otelmap

// Semantic-convention attribute keys used by tlstap.
const (
	KeyHTTPRequestMethod         = "http.request.method"
	KeyHTTPRequestMethodOriginal = "http.request.method_original"
	KeyHTTPResponseStatusCode    = "http.response.status_code"
	KeyHTTPRequestBodySize       = "http.request.body.size"
	KeyHTTPResponseBodySize      = "http.response.body.size"
	KeyURLFull                   = "url.full"
	KeyURLPath                   = "url.path"
	KeyURLQuery                  = "url.query"
	KeyURLScheme                 = "url.scheme"
	KeyServerAddress             = "server.address"
	KeyServerPort                = "server.port"
	KeyClientAddress             = "client.address"
	KeyClientPort                = "client.port"
	KeyNetworkPeerAddress        = "network.peer.address"
	KeyNetworkPeerPort           = "network.peer.port"
	KeyNetworkProtocolName       = "network.protocol.name"
	KeyNetworkProtocolVersion    = "network.protocol.version"
	KeyNetworkTransport          = "network.transport"
	KeyUserAgentOriginal         = "user_agent.original"
	KeyErrorType                 = "error.type"

	// RPC semantic conventions (stable since SemConvVersion), for gRPC
	// exchanges: rpc.method is fully qualified ("pkg.Service/Method"), the
	// status code is its name ("OK", "NOT_FOUND").
	KeyRPCSystemName         = "rpc.system.name"
	KeyRPCMethod             = "rpc.method"
	KeyRPCResponseStatusCode = "rpc.response.status_code"

	// Log-record-only keys. The header keys are prefixes followed by the
	// lowercased header name.
	KeyHTTPRequestHeaderPrefix  = "http.request.header."
	KeyHTTPResponseHeaderPrefix = "http.response.header."
	KeyHTTPRequestBodyContent   = "http.request.body.content"
	KeyHTTPResponseBodyContent  = "http.response.body.content"

	// tlstap-specific keys.
	KeyTlstapFlags        = "tlstap.flags"
	KeyTlstapTLSLibrary   = "tlstap.tls.library"
	KeyTlstapConnectionID = "tlstap.connection.id"
	// KeyTlstapPIITypes lists the kinds of personal data found in the
	// bodies, sorted (email, iban, payment_card, phone); absent when none.
	KeyTlstapPIITypes = "tlstap.pii.types"

	// Resource keys.
	KeyServiceName           = "service.name"
	KeyProcessUserID         = "process.user.id"
	KeyProcessPID            = "process.pid"
	KeyProcessParentPID      = "process.parent_pid"
	KeyProcessCreationTime   = "process.creation.time"
	KeyProcessExecutableName = "process.executable.name"
	KeyProcessExecutablePath = "process.executable.path"
	KeyProcessCommandArgs    = "process.command_args"
	KeyProcessOwner          = "process.owner"
	KeyContainerID           = "container.id"
	KeyK8sPodUID             = "k8s.pod.uid"
	KeyHostName              = "host.name"
)

// SemConvVersion is the version of the OpenTelemetry semantic conventions
// the attributes follow (metadata.yaml's sem_conv_version says the same).
const SemConvVersion = "1.41.0"

// SchemaURL is the schema URL of SemConvVersion.
const SchemaURL = "https://opentelemetry.io/schemas/" + SemConvVersion

// EventName is the event name of every exchange log record.
const EventName = "tlstap.http.exchange"

// ScopeName is the instrumentation scope tlstap's spans and logs carry.
const ScopeName = "github.com/tlstap/tlstap"
