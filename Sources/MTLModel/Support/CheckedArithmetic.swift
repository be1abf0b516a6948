/// Size arithmetic on untrusted numbers: every step reports overflow instead of trapping.
enum Checked {
    static func multiply(_ a: UInt64, _ b: UInt64) -> UInt64? {
        let (result, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? nil : result
    }

    static func add(_ a: UInt64, _ b: UInt64) -> UInt64? {
        let (result, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : result
    }

    /// The product of `dims`, or nil when it does not fit in 64 bits.
    static func product(_ dims: [UInt64]) -> UInt64? {
        var total: UInt64 = 1
        for dim in dims {
            guard let next = multiply(total, dim) else { return nil }
            total = next
        }
        return total
    }

    /// `value` rounded up to a multiple of `alignment` (a power of two), or nil on overflow.
    static func alignUp(_ value: UInt64, to alignment: UInt64) -> UInt64? {
        guard let bumped = add(value, alignment - 1) else { return nil }
        return bumped & ~(alignment - 1)
    }
}

/// `array.withUnsafeBytes(body)` keeping `body`'s typed error (the standard library's
/// `rethrows` would widen it to `any Error`).
func withBytes<T, R>(of array: [T], _ body: (UnsafeRawBufferPointer) throws(MTLModelError) -> R) throws(MTLModelError) -> R {
    try array.withUnsafeBytes { raw in Result { () throws(MTLModelError) in try body(raw) } }.get()
}

func withMutableBytes<T, R>(of array: inout [T], _ body: (UnsafeMutableRawBufferPointer) throws(MTLModelError) -> R) throws(MTLModelError) -> R {
    try array.withUnsafeMutableBytes { raw in Result { () throws(MTLModelError) in try body(raw) } }.get()
}
