import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// Every error serve answers, as spec/serve.md's `{"error": {"code": "...", "message": "..."}}`.
struct APIError: Error, HTTPResponseError {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var headers: HTTPFields = [:]
    /// The 1.1 events of the command, when the matcher rejected it.
    var events: [String] = []

    static func malformed(_ message: String) -> APIError {
        APIError(status: .badRequest, code: "malformed", message: message)
    }
    static func invalid(_ message: String) -> APIError {
        APIError(status: .badRequest, code: "invalid", message: message)
    }
    static func unknownOrder(_ id: String) -> APIError {
        APIError(status: .notFound, code: "unknown_order", message: "no open order \(id) of this account")
    }
    static func notReady(_ message: String) -> APIError {
        APIError(status: .serviceUnavailable, code: "not_ready", message: message)
    }

    /// A body over ``ServerLimits/bodyBytesMax``.
    static var tooLarge: APIError {
        APIError(
            status: .contentTooLarge,
            code: "too_large",
            message: "the body is over \(ServerLimits.bodyBytesMax) bytes"
        )
    }

    /// The response's body.
    var text: String {
        var body = JSONText()
        body.object {
            $0.key("error")
            $0.object {
                $0.member("code", code)
                $0.member("message", message)
            }
            if !events.isEmpty { $0.rawArray("events", events) }
        }
        return body.text
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Turns every error a route or Hummingbird throws into the JSON error shape: unknown routes (404
/// `not_found`), bodies over the cap (413 `too_large`), and anything else a route did not classify.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    @concurrent func handle(
        _ request: Request,
        context: Context,
        next: @concurrent (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch is NIOTooManyBytesError {
            throw APIError.tooLarge
        } catch let error as HTTPParserError {
            // A body cut short (the client closed its side before its Content-Length), or bytes that are
            // not HTTP after the head: the request's fault, not the server's.
            throw APIError.malformed("the request could not be read: \(error)")
        } catch let error as HTTPError {
            switch error.status {
            case .notFound:
                throw APIError(
                    status: .notFound,
                    code: "not_found",
                    message: "no such route: \(request.method) \(request.uri.path)"
                )
            case .contentTooLarge:
                throw APIError.tooLarge
            default:
                throw APIError(status: error.status, code: "malformed", message: error.body ?? "\(error.status)")
            }
        } catch {
            context.logger.error("request failed: \(error)")
            throw APIError(status: .internalServerError, code: "internal", message: "internal error")
        }
    }
}

/// The account a trading request acts for, from `X-Castle-Account` until authentication exists:
/// ``account(_:)`` is the one place identity is established, for the routes (``ServerContext/account``)
/// and for ``OrderChannelHandler``'s orders.
struct AccountMiddleware: RouterMiddleware {
    static let header = HTTPField.Name("X-Castle-Account")!

    @concurrent func handle(
        _ request: Request,
        context: ServerContext,
        next: @concurrent (Request, ServerContext) async throws -> Response
    ) async throws -> Response {
        var context = context
        context.account = try Self.account(request.headers)
        return try await next(request, context)
    }

    /// The account `fields` name, or 401 `unauthenticated` (also when the header is given twice). Looked
    /// for field by field: `HTTPFields`' subscript joins the values it finds into one string.
    static func account(_ fields: HTTPFields) throws(APIError) -> String {
        var values: [String] = []
        for field in fields where field.name == header { values.append(field.value) }
        return try account(values)
    }

    /// The account of the header's `values`, or 401 `unauthenticated` unless there is exactly one.
    static func account(_ values: [String]) throws(APIError) -> String {
        func unauthenticated(_ message: String) -> APIError {
            APIError(status: .unauthorized, code: "unauthenticated", message: message)
        }
        if values.count > 1 { throw unauthenticated("X-Castle-Account is given \(values.count) times: give it once") }
        guard let name = values.first, isValid(name) else {
            throw unauthenticated("X-Castle-Account must name the account: 1 to 64 of A-Z a-z 0-9 _ . -")
        }
        return name
    }

    static func isValid(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
            }
    }
}
