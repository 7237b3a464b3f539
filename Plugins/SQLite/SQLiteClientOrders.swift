internal import CSQLite
public import CastleSupport
public import Storage

/// `castle serve`'s client order ids in the database file (migration 0008).
extension SQLiteBackend: ClientOrderStore {
    public func claimClientOrderIDs(_ claims: [ClientOrderClaim]) async throws(CastleError) -> [ClientOrderClaim] {
        try await withConnection { (connection) throws(CastleError) -> [ClientOrderClaim] in
            defer { connection.resetAll() }
            return try connection.writeTransaction { () throws(CastleError) -> [ClientOrderClaim] in
                let insert = try connection.prepare(
                    """
                    INSERT OR IGNORE INTO client_order_ids (account, client_order_id, order_id, content)
                    VALUES (?, ?, ?, ?)
                    """
                )
                let holder = try connection.prepare(
                    "SELECT order_id, content FROM client_order_ids WHERE account = ? AND client_order_id = ?"
                )
                return try claims.map { (claim) throws(CastleError) -> ClientOrderClaim in
                    insert.bind(1, claim.account)
                    insert.bind(2, claim.clientOrderID)
                    insert.bind(3, claim.orderID)
                    insert.bind(4, claim.content)
                    try insert.run()
                    if connection.changes == 1 { return claim }
                    holder.bind(1, claim.account)
                    holder.bind(2, claim.clientOrderID)
                    guard try holder.step() else {
                        throw CastleError(.software, "\(self.displayURL): client order id claimed and not found")
                    }
                    var earlier = claim
                    earlier.orderID = holder.int64(0)
                    earlier.content = holder.string(1)
                    sqlite3_reset(holder.handle)
                    return earlier
                }
            }
        }
    }

    public func clientOrderIDs(account: String, orderIDs: [Int64]) async throws(CastleError) -> [Int64: String] {
        try await withConnection { (connection) throws(CastleError) -> [Int64: String] in
            defer { connection.resetAll() }
            let statement = try connection.prepare(
                "SELECT client_order_id FROM client_order_ids WHERE order_id = ? AND account = ?"
            )
            var found: [Int64: String] = [:]
            for id in orderIDs {
                statement.bind(1, id)
                statement.bind(2, account)
                if try statement.step() { found[id] = statement.string(0) }
                sqlite3_reset(statement.handle)
            }
            return found
        }
    }
}
