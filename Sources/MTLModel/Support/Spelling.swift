/// The closest of some known names to a misspelled one, for "did you mean …?" hints.
enum Spelling {
    /// The candidate nearest to `name` by edit distance, if it is near enough to be the name
    /// meant (at most a third of its length, at least 2, apart; ties go to the first), else
    /// the first candidate that `name` begins (a shortened name: "vocab" for "vocab_size").
    static func closest(to name: String, in candidates: some Sequence<String>) -> String? {
        let candidates = Array(candidates)
        return nearest(to: name, in: candidates)
            ?? (name.utf8.count >= 3 ? candidates.first { $0 != name && $0.hasPrefix(name) } : nil)
    }

    private static func nearest(to name: String, in candidates: [String]) -> String? {
        let target = Array(name.utf8)
        let limit = max(2, target.count / 3)
        var best: (name: String, distance: Int)?
        for candidate in candidates where candidate != name {
            let distance = editDistance(target, Array(candidate.utf8), limit: limit)
            if distance <= limit && distance < (best?.distance ?? .max) { best = (candidate, distance) }
        }
        return best?.name
    }

    /// Levenshtein distance, stopping early (returning more than `limit`) once it exceeds it.
    static func editDistance(_ a: [UInt8], _ b: [UInt8], limit: Int) -> Int {
        if abs(a.count - b.count) > limit { return limit + 1 }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            current[0] = i
            var rowMinimum = current[0]
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                rowMinimum = min(rowMinimum, current[j])
            }
            if rowMinimum > limit { return limit + 1 }
            swap(&previous, &current)
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}
