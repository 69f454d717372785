/// A unified diff (`diff -u` form, 3 lines of context) between two texts, for dry runs.
package enum UnifiedDiff {
    /// The diff of `old` to `new`, or a one-line note when either side is not text or is too large.
    package static func make(old: [UInt8], new: [UInt8], path: String, limit: Int) -> String {
        if old.count > limit || new.count > limit { return "(diff omitted: larger than \(limit) bytes)\n" }
        guard let oldText = String(validating: old, as: UTF8.self),
            let newText = String(validating: new, as: UTF8.self),
            !old.contains(0), !new.contains(0)
        else { return "(diff omitted: binary content)\n" }
        let a = lines(oldText)
        let b = lines(newText)
        // Common prefix and suffix first: typical edits leave a small middle for the quadratic part.
        var prefix = 0
        while prefix < a.count && prefix < b.count && a[prefix] == b[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < a.count - prefix && suffix < b.count - prefix
            && a[a.count - 1 - suffix] == b[b.count - 1 - suffix]
        {
            suffix += 1
        }
        let midA = Array(a[prefix..<(a.count - suffix)])
        let midB = Array(b[prefix..<(b.count - suffix)])
        guard midA.count * midB.count <= 4_000_000 else { return "(diff omitted: too many changed lines)\n" }
        // Edit script: LCS table over the middle.
        var ops: [(Character, String)] = a[0..<prefix].map { (" ", $0) }
        let n = midA.count
        let m = midB.count
        var table = [Int](repeating: 0, count: (n + 1) * (m + 1))
        if n > 0 && m > 0 {
            for i in stride(from: n - 1, through: 0, by: -1) {
                for j in stride(from: m - 1, through: 0, by: -1) {
                    table[i * (m + 1) + j] =
                        midA[i] == midB[j]
                        ? table[(i + 1) * (m + 1) + j + 1] + 1
                        : max(table[(i + 1) * (m + 1) + j], table[i * (m + 1) + j + 1])
                }
            }
        }
        var i = 0
        var j = 0
        while i < n || j < m {
            if i < n && j < m && midA[i] == midB[j] {
                ops.append((" ", midA[i]))
                i += 1
                j += 1
            } else if j < m && (i == n || table[i * (m + 1) + j + 1] > table[(i + 1) * (m + 1) + j]) {
                ops.append(("+", midB[j]))
                j += 1
            } else {
                ops.append(("-", midA[i]))
                i += 1
            }
        }
        ops += a[(a.count - suffix)...].map { (" ", $0) }
        return render(ops, path: path)
    }

    static func lines(_ text: String) -> [String] {
        var result = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if result.last == "" { result.removeLast() }
        return result
    }

    static func render(_ ops: [(Character, String)], path: String) -> String {
        let changed = ops.indices.filter { ops[$0].0 != " " }
        guard !changed.isEmpty else { return "" }
        var out = "--- \(path)\n+++ \(path)\n"
        var k = 0
        while k < changed.count {
            var start = max(0, changed[k] - 3)
            var end = min(ops.count, changed[k] + 4)
            k += 1
            while k < changed.count && changed[k] - 3 <= end {
                end = min(ops.count, changed[k] + 4)
                k += 1
            }
            start = max(0, start)
            var oldStart = 1
            var newStart = 1
            for op in ops[0..<start] {
                if op.0 != "+" { oldStart += 1 }
                if op.0 != "-" { newStart += 1 }
            }
            let hunk = ops[start..<end]
            let oldCount = hunk.filter { $0.0 != "+" }.count
            let newCount = hunk.filter { $0.0 != "-" }.count
            out +=
                "@@ -\(oldCount == 0 ? oldStart - 1 : oldStart),\(oldCount) +\(newCount == 0 ? newStart - 1 : newStart),\(newCount) @@\n"
            for op in hunk { out += String(op.0) + op.1 + "\n" }
        }
        return out
    }
}
