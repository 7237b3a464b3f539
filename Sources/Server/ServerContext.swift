public import Hummingbird

/// The request context of every route. The one seam for identity: ``AccountMiddleware`` fills `account`
/// from the `X-Castle-Account` header until authentication exists (``AccountMiddleware/account(_:)``,
/// which ``OrderChannelHandler`` asks too); an authenticator then fills it instead, and no route changes.
public struct ServerContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The account the request acts for, once a middleware has established it.
    public var account: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// spec/serve.md: a body over 64 KiB is refused with 413 `too_large`.
    public var maxUploadSize: Int { ServerLimits.bodyBytesMax }
}

public enum ServerLimits {
    public static let bodyBytesMax = 64 * 1024
}
