public import CastleSupport
import Ledger
public import Storage

/// `castle ledger balances`: the stored projection as a table, NDJSON or CSV.
public enum LedgerBalances {
    public enum Format: String, Sendable, CaseIterable {
        case table, ndjson, csv
    }

    /// The balances of `account` and/or `asset` (all when nil), sorted by account then asset, amounts in
    /// the asset's unit with exactly its decimals. NDJSON: `{"account","asset","balance"}` a line; CSV with
    /// a header `account,asset,balance`; the table aligns columns, amounts to the right.
    public static func render(
        store: any LedgerStore,
        account: String?,
        asset: String?,
        format: Format
    ) async throws(CastleError) -> String {
        let rows = try await store.ledgerBalances(account: account, asset: asset)
        var cells: [(account: String, asset: String, balance: String)] = []
        for row in rows {
            let unit: Asset
            do throws(LedgerInputError) {
                unit = try Asset(code: row.asset, scale: row.scale)
            } catch {
                throw CastleError(.dataError, "a stored balance of \(row.account): \(error.reason)")
            }
            cells.append((row.account, row.asset, unit.format(row.balance)))
        }
        var out = ""
        switch format {
        case .ndjson:
            for cell in cells {
                out +=
                    "{\"account\":\(json(cell.account)),\"asset\":\(json(cell.asset)),\"balance\":\"\(cell.balance)\"}\n"
            }
        case .csv:
            out += "account,asset,balance\n"
            for cell in cells { out += "\(csv(cell.account)),\(csv(cell.asset)),\(cell.balance)\n" }
        case .table:
            let header = (account: "ACCOUNT", asset: "ASSET", balance: "BALANCE")
            let accountWidth = cells.map(\.account.count).reduce(header.account.count, max)
            let assetWidth = cells.map(\.asset.count).reduce(header.asset.count, max)
            let balanceWidth = cells.map(\.balance.count).reduce(header.balance.count, max)
            func line(_ a: String, _ b: String, _ c: String) -> String {
                a + String(repeating: " ", count: accountWidth - a.count) + "  " + b
                    + String(repeating: " ", count: assetWidth - b.count) + "  "
                    + String(repeating: " ", count: balanceWidth - c.count) + c + "\n"
            }
            out += line(header.account, header.asset, header.balance)
            for cell in cells { out += line(cell.account, cell.asset, cell.balance) }
        }
        return out
    }

    /// A JSON string literal: `"` `\` and control characters escaped.
    static func json(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break.
    static func csv(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        var out = "\""
        for character in text {
            if character == "\"" { out += "\"" }
            out.append(character)
        }
        return out + "\""
    }
}
