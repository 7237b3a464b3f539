import CastleSupport
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// `serve --otlp-endpoint URL`: traces through swift-distributed-tracing, exported by swift-otel over
/// OTLP/HTTP with protobuf bodies (swift-otel 1.6's JSON writes trace and span ids in base64 where OTLP/JSON
/// wants hex, and the OpenTelemetry Collector refuses them). Only then is the process's tracer bootstrapped and a span made; without
/// the flag no tracer exists and the order path starts no span (``OrderPath/tracing``).
enum ServerTracing {
    /// Bootstraps the process's tracer (traces only: logs stay serve's, metrics stay `/metrics`) and returns
    /// its exporter as a service for serve's group, whose graceful stop exports the spans still buffered.
    /// The exporter's failures (collector down, refused batches) are warnings on stderr; they never stop
    /// serve. The `OTEL_*` environment variables of the OpenTelemetry specification still apply (for
    /// example `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_SCHEDULE_DELAY`).
    static func bootstrap(
        endpoint: String,
        serviceName: String,
        logFormat: ServeOptions.LogFormat
    ) throws(CastleError) -> any Service {
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.otlpExporter.endpoint = tracesURL(endpoint)
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        configuration.diagnosticLogger = .custom(ServerLogging.logger(label: "castle.otel", format: logFormat))
        configuration.diagnosticLogLevel = .warning
        do {
            return try OTel.bootstrap(configuration: configuration)
        } catch {
            throw CastleError(.config, "--otlp-endpoint \(endpoint): \(error)")
        }
    }

    /// The OTLP/HTTP traces URL of a collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is read:
    /// `http://collector:4318` → `http://collector:4318/v1/traces`.
    static func tracesURL(_ endpoint: String) -> String {
        endpoint.hasSuffix("/") ? endpoint + "v1/traces" : endpoint + "/v1/traces"
    }
}

/// A span of serve's own: started only when serve traces, else nil and nothing is done.
func startServerSpan(_ tracing: Bool, _ name: String, context: InstrumentationContext? = nil) -> (any Span)? {
    guard tracing else { return nil }
    return startSpan(name, context: context ?? .current ?? .topLevel)
}

extension Span {
    /// Ends the span as failed with `error`.
    func end(failing error: any Error) {
        recordError(error)
        setStatus(SpanStatus(code: .error))
        end()
    }
}
