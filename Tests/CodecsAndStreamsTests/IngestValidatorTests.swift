import CastleCore
import Testing

@testable import Pipeline

/// The partition keys that ingest gives rows, and the memory it needs to give them.
@Suite struct IngestValidatorTests {
    func key(_ validator: inout Validator, _ line: String, _ number: Int = 1) -> String? {
        guard case .valid(let key) = validator.check(line, line: number) else { return nil }
        return key
    }

    @Test func aCancelOrAnAmendIsKeyedByItsOrdersSymbol() {
        var validator = Validator()
        #expect(
            key(&validator, #"{"op":"new","id":1,"symbol":"ETH-USD","side":"buy","price":"10","qty":"1"}"#) == "ETH-USD"
        )
        #expect(key(&validator, #"{"op":"amend","id":1,"qty":"0.5"}"#) == "ETH-USD")
        #expect(key(&validator, #"{"op":"cancel","id":1}"#) == "ETH-USD")
        // The order is gone: a second cancel is rejected by the engine wherever it lands.
        #expect(key(&validator, #"{"op":"cancel","id":1}"#) == "")
        #expect(key(&validator, #"{"op":"cancel","id":99}"#) == "")
    }

    /// Memory follows the orders that may still rest, not the length of the stream: thirty thousand orders that
    /// are cancelled, amended to zero, or could never rest leave nothing behind.
    @Test func ordersThatEndedAreForgotten() {
        var validator = Validator()
        for id in 1...30_000 {
            let symbol = id % 2 == 0 ? "BTC-USD" : "ETH-USD"
            let new = #"{"op":"new","id":\#(id),"symbol":"\#(symbol)","side":"buy","price":"10","qty":"2"}"#
            #expect(key(&validator, new, id) == symbol)
            switch id % 3 {
            case 0: #expect(key(&validator, #"{"op":"cancel","id":\#(id)}"#, id) == symbol)
            case 1: #expect(key(&validator, #"{"op":"amend","id":\#(id),"qty":"0"}"#, id) == symbol)
            default:
                let ioc =
                    #"{"op":"new","id":\#(id + 1_000_000),"symbol":"BTC-USD","side":"sell","price":"9","qty":"1","tif":"ioc"}"#
                #expect(key(&validator, ioc, id) == "BTC-USD")
                #expect(key(&validator, #"{"op":"cancel","id":\#(id)}"#, id) == symbol)
            }
            if id % 10_000 == 0 { #expect(validator.trackedOrders == 0) }
        }
        let resting = #"{"op":"new","id":7,"symbol":"BTC-USD","side":"buy","price":"10","qty":"2"}"#
        _ = key(&validator, resting)
        #expect(validator.trackedOrders == 1)
    }
}
