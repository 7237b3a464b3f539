public import CastleSupport
import PostgresNIO
public import Storage

/// `castle serve`'s client order ids in the database (migration 0008).
extension PostgresBackend: ClientOrderStore {
    public func claimClientOrderIDs(_ claims: [ClientOrderClaim]) async throws(CastleError) -> [ClientOrderClaim] {
        let accounts = claims.map(\.account)
        let clientOrderIDs = claims.map(\.clientOrderID)
        let orderIDs = claims.map(\.orderID)
        let contents = claims.map(\.content)
        return try await transaction("claiming client order ids") { connection -> [ClientOrderClaim] in
            // One statement for the batch; a key claimed twice in it goes to the first (the rows are
            // inserted in array order, and DO NOTHING skips the second).
            try await connection.rows(
                """
                INSERT INTO client_order_ids (account, client_order_id, order_id, content)
                SELECT * FROM unnest(\(accounts)::text[], \(clientOrderIDs)::text[], \(orderIDs)::bigint[],
                                     \(contents)::text[])
                ON CONFLICT (account, client_order_id) DO NOTHING
                """
            )
            var holders: [ClientOrderClaim.Key: (orderID: Int64, content: String)] = [:]
            for row in try await connection.rows(
                """
                SELECT c.account, c.client_order_id, c.order_id, c.content FROM client_order_ids c
                JOIN unnest(\(accounts)::text[], \(clientOrderIDs)::text[]) AS k (account, client_order_id)
                  ON c.account = k.account AND c.client_order_id = k.client_order_id
                """
            ) {
                let (account, clientOrderID, orderID, content) = try row.decode((String, String, Int64, String).self)
                holders[ClientOrderClaim.Key(account: account, clientOrderID: clientOrderID)] = (orderID, content)
            }
            return claims.map { claim in
                guard let holder = holders[claim.key] else { return claim }
                var held = claim
                held.orderID = holder.orderID
                held.content = holder.content
                return held
            }
        }
    }

    public func clientOrderIDs(account: String, orderIDs: [Int64]) async throws(CastleError) -> [Int64: String] {
        let rows = try await select(
            "reading client order ids",
            """
            SELECT order_id, client_order_id FROM client_order_ids
            WHERE order_id = ANY(\(orderIDs)::bigint[]) AND account = \(account)
            """
        ) { row in try row.decode((Int64, String).self) }
        return Dictionary(rows, uniquingKeysWith: { first, _ in first })
    }
}
