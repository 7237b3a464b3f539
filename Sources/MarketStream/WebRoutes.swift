import HTTPTypes
public import Hummingbird
import NIOCore

/// The page's static files (``WebAssets``), with an ETag and Cache-Control, as a CDN would serve them:
/// the page revalidates on every load (`no-cache`: a new server version shows at once), the script and
/// the style sheet are cached for a few minutes; a matching `If-None-Match` gets `304 Not Modified`.
public enum WebRoutes {
    struct Asset: Sendable {
        let body: ByteBuffer
        let contentType: String
        let cacheControl: String
        /// A strong validator from the bytes: the same file always has the same tag.
        let eTag: String

        init(_ text: String, contentType: String, cacheControl: String) {
            body = ByteBuffer(string: text)
            self.contentType = contentType
            self.cacheControl = cacheControl
            eTag = "\"" + Self.fnv1a(Array(text.utf8)) + "\""
        }

        /// FNV-1a 64 in hex: not a security hash, only a change detector for our own files.
        static func fnv1a(_ bytes: [UInt8]) -> String {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            let hex = String(hash, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }
    }

    static let assets: [(path: String, asset: Asset)] = [
        ("/", Asset(WebAssets.indexHTML, contentType: "text/html; charset=utf-8", cacheControl: "no-cache")),
        (
            "/app.js",
            Asset(WebAssets.appJS, contentType: "text/javascript; charset=utf-8", cacheControl: "public, max-age=300")
        ),
        (
            "/style.css",
            Asset(WebAssets.styleCSS, contentType: "text/css; charset=utf-8", cacheControl: "public, max-age=300")
        ),
    ]

    /// Mounts `/`, `/app.js` and `/style.css` (GET; HEAD too on a router made with
    /// `.autoGenerateHeadEndpoints`, as serve's are).
    public static func add<Context: RequestContext>(to router: Router<Context>) {
        for (path, asset) in assets {
            router.get(RouterPath(path)) { request, _ in response(asset, ifNoneMatch: request.headers[.ifNoneMatch]) }
        }
    }

    static func response(_ asset: Asset, ifNoneMatch: String?) -> Response {
        var headers: HTTPFields = [.eTag: asset.eTag, .cacheControl: asset.cacheControl]
        if let ifNoneMatch,
            ifNoneMatch.split(separator: ",").contains(where: { tag in
                let tag = String(tag.filter { $0 != " " && $0 != "\t" })  // tags hold no blanks
                return tag == asset.eTag || tag == "*" || tag == "W/" + asset.eTag
            })
        {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = asset.contentType
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: asset.body))
    }
}
