import Foundation

/// DeLong's test for two correlated AUCs (two models scoring the same samples), computed
/// with Sun & Xu's fast algorithm from mid-ranks.
///
/// DeLong, DeLong, Clarke-Pearson (1988), "Comparing the areas under two or more correlated
/// receiver operating characteristic curves"; Sun, Xu (2014), "Fast implementation of
/// DeLong's algorithm".
public enum PairedAUC {
    public struct Result: Sendable, Hashable, Codable {
        public var aucA: Double
        public var aucB: Double
        /// aucB − aucA.
        public var delta: Double
        public var standardError: Double
        /// 95% confidence interval of `delta`.
        public var low: Double
        public var high: Double
    }

    /// - Returns: nil unless both classes are present.
    public static func compare(_ a: [Double], _ b: [Double], labels: [Bool]) -> Result? {
        let positives = labels.indices.filter { labels[$0] }
        let negatives = labels.indices.filter { !labels[$0] }
        let m = Double(positives.count), n = Double(negatives.count)
        guard m > 0, n > 0 else { return nil }
        func components(_ scores: [Double]) -> (auc: Double, v10: [Double], v01: [Double]) {
            let x = positives.map { scores[$0] }, y = negatives.map { scores[$0] }
            let tx = midranks(x), ty = midranks(y), tz = midranks(x + y)
            let v10 = (0..<x.count).map { (tz[$0] - tx[$0]) / n }
            let v01 = (0..<y.count).map { 1 - (tz[x.count + $0] - ty[$0]) / m }
            return (v10.reduce(0, +) / m, v10, v01)
        }
        let ca = components(a), cb = components(b)
        func covariance(_ p: [Double], _ q: [Double]) -> Double {
            guard p.count > 1 else { return 0 }
            let mp = p.reduce(0, +) / Double(p.count), mq = q.reduce(0, +) / Double(q.count)
            return zip(p, q).reduce(0) { $0 + ($1.0 - mp) * ($1.1 - mq) } / Double(p.count - 1)
        }
        let variance = (covariance(ca.v10, ca.v10) + covariance(cb.v10, cb.v10) - 2 * covariance(ca.v10, cb.v10)) / m
            + (covariance(ca.v01, ca.v01) + covariance(cb.v01, cb.v01) - 2 * covariance(ca.v01, cb.v01)) / n
        let se = max(variance, 0).squareRoot()
        let delta = cb.auc - ca.auc
        return Result(aucA: ca.auc, aucB: cb.auc, delta: delta, standardError: se, low: delta - 1.959964 * se, high: delta + 1.959964 * se)
    }

    /// 1-based ranks, ties sharing their average rank.
    static func midranks(_ values: [Double]) -> [Double] {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var ranks = [Double](repeating: 0, count: values.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && values[order[j + 1]] == values[order[i]] { j += 1 }
            for k in i...j { ranks[order[k]] = Double(i + j) / 2 + 1 }
            i = j + 1
        }
        return ranks
    }
}
