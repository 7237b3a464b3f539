/// An operating error with the exit code a script can branch on (sysexits) and a message for people.
/// Messages never carry credentials.
public struct CastleError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Int32, Sendable {
        case usage = 64
        case dataError = 65
        case noInput = 66
        case unavailable = 69
        case software = 70
        case cantCreate = 73
        case ioError = 74
        /// Temporary failure: try again (a lock held elsewhere).
        case temporaryFailure = 75
        /// The store's schema does not fit this binary (`castle migrate` fixes or explains it).
        case config = 78
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var exitCode: Int32 { kind.rawValue }
    public var description: String { message }
}
