import Foundation

/// Places buffers with known lifetimes in one arena so that buffers alive at the same
/// time never overlap (greedy by size, best-fit gap; the "greedy by size" offset
/// calculation of TFLite's arena planner).
///
/// Each buffer is alive over the closed step interval `[first, last]`. Sizes are in
/// bytes and rounded up to `alignment`; offsets are multiples of `alignment`.
enum MemoryPlanner {
    /// One buffer to place.
    struct Request: Equatable {
        /// Bytes needed.
        var bytes: Int
        /// First step at which the buffer is written.
        var first: Int
        /// Last step at which the buffer is read.
        var last: Int
    }

    /// - Returns: the byte offset of every request (same order) and the arena size in bytes.
    static func plan(_ requests: [Request], alignment: Int = 64) -> (offsets: [Int], arenaBytes: Int) {
        func aligned(_ b: Int) -> Int { (b + alignment - 1) / alignment * alignment }
        let order = requests.indices.sorted { a, b in
            let (ra, rb) = (requests[a], requests[b])
            if ra.bytes != rb.bytes { return ra.bytes > rb.bytes }
            if ra.first != rb.first { return ra.first < rb.first }
            return a < b
        }
        var offsets = [Int](repeating: 0, count: requests.count)
        var placed: [Int] = []   // indices already placed, kept sorted by offset
        var total = 0
        for i in order {
            let r = requests[i]
            let size = aligned(max(r.bytes, 1))
            var prevEnd = 0
            var best: Int? = nil
            var bestGap = Int.max
            for j in placed {
                let q = requests[j]
                guard q.first <= r.last && r.first <= q.last else { continue }
                let gap = offsets[j] - prevEnd
                if gap >= size && gap < bestGap { best = prevEnd; bestGap = gap }
                prevEnd = max(prevEnd, offsets[j] + aligned(max(q.bytes, 1)))
            }
            let off = best ?? prevEnd
            offsets[i] = off
            total = max(total, off + size)
            let pos = placed.firstIndex(where: { offsets[$0] > off }) ?? placed.count
            placed.insert(i, at: pos)
        }
        return (offsets, total)
    }

    /// The largest total of bytes alive at any one step (a lower bound for `arenaBytes`).
    static func peakLiveBytes(_ requests: [Request], alignment: Int = 64) -> Int {
        guard let maxStep = requests.map({ $0.last }).max(), let minStep = requests.map({ $0.first }).min() else { return 0 }
        var peak = 0
        for s in minStep...maxStep {
            var live = 0
            for r in requests where r.first <= s && s <= r.last { live += (max(r.bytes, 1) + alignment - 1) / alignment * alignment }
            peak = max(peak, live)
        }
        return peak
    }
}
