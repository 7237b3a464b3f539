public import CastleSupport
import Synchronization

/// A client order id claimed for an order: `castle serve`'s idempotency key. `content` is what the
/// request asked for (its fields, without the ids and time serve adds), to tell a repeat of the same
/// order from a conflicting reuse of the id.
public struct ClientOrderClaim: Sendable, Hashable {
    public var account: String
    public var clientOrderID: String
    public var orderID: Int64
    public var content: String

    public init(account: String, clientOrderID: String, orderID: Int64, content: String) {
        self.account = account
        self.clientOrderID = clientOrderID
        self.orderID = orderID
        self.content = content
    }
}

/// `castle serve`'s client order ids (migration 0008, table `client_order_ids`), so that a retry after
/// a timeout, a crash or a restart finds the order its first attempt placed instead of placing another.
/// Memory, SQLite and PostgreSQL implement it; `StorageConformance` checks all three the same way.
public protocol ClientOrderStore: AnyObject, Sendable {
    /// Claims each (account, client order id) for its order, durably, in one transaction, and returns
    /// for each the claim that holds: itself when the key was free, else the earlier claim (the first
    /// of the batch, when one batch claims a key twice). Claims are kept for good.
    func claimClientOrderIDs(_ claims: [ClientOrderClaim]) async throws(CastleError) -> [ClientOrderClaim]

    /// The client order ids of those of `orderIDs` that `account` placed with one.
    func clientOrderIDs(account: String, orderIDs: [Int64]) async throws(CastleError) -> [Int64: String]
}

extension ClientOrderClaim {
    /// What a claim is unique by.
    public struct Key: Hashable, Sendable {
        public var account: String
        public var clientOrderID: String

        public init(account: String, clientOrderID: String) {
            self.account = account
            self.clientOrderID = clientOrderID
        }
    }

    public var key: Key { Key(account: account, clientOrderID: clientOrderID) }
}

extension MemoryBackend: ClientOrderStore {
    public func claimClientOrderIDs(_ claims: [ClientOrderClaim]) async throws(CastleError) -> [ClientOrderClaim] {
        state.withLock { state in
            claims.map { claim in
                if let earlier = state.clientOrders[claim.key] { return earlier }
                state.clientOrders[claim.key] = claim
                return claim
            }
        }
    }

    public func clientOrderIDs(account: String, orderIDs: [Int64]) async throws(CastleError) -> [Int64: String] {
        let wanted = Set(orderIDs)
        return state.withLock { state in
            var found: [Int64: String] = [:]
            for claim in state.clientOrders.values where claim.account == account && wanted.contains(claim.orderID) {
                found[claim.orderID] = claim.clientOrderID
            }
            return found
        }
    }
}
