/// xoshiro256** seeded through SplitMix64: fast, and the same sequence for the same seed on every
/// platform (the generator's determinism rests on it).
public struct Xoshiro256: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1), from the top 53 bits.
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in (0, 1]: safe for log.
    public mutating func unitOpen() -> Double { Double((next() >> 11) + 1) * 0x1.0p-53 }

    public mutating func chance(_ p: Double) -> Bool { unit() < p }

    /// Exponential with the given mean.
    public mutating func exponential(mean: Double) -> Double { -mean * log(unitOpen()) }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Double { (-2 * log(unitOpen())).squareRoot() * cos(2 * Double.pi * unit()) }

    /// Pareto: `minimum × U^(-1/alpha)`, the power law of order distances from the mid.
    public mutating func pareto(minimum: Double, alpha: Double) -> Double { minimum * pow(unitOpen(), -1 / alpha) }

    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
