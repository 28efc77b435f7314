/// Position-only index lists of the local-window token clustering (spec `token-clustering.md` 2.2-2.4),
/// built once per call and shared by every iteration: which tokens have each home cell, which centres
/// are their candidates, and, per centre, which (token, affinity) pairs feed its update.
///
/// All row indices are float offsets into row-major `[*, C]` buffers (row * C), as the C kernels take them.
/// Affinities live in one buffer of `affinityCount` floats: home cell q owns the block
/// `affStart[q] ..< affStart[q] + nt_q * nc_q`, row-major `[token of q][candidate of q]`.
struct TokenClusterWindows {
    /// Home cell q = hy * w + hx owns tokens `tokenRows[tokenStart[q] ..< tokenStart[q + 1]]` (offsets
    /// token * C; row-major token order within the cell). `tokenStart` has M + 1 entries.
    let tokenStart: [Int]
    /// Token offsets (token * C), grouped by home cell.
    let tokenRows: [Int]
    /// Home cell q's candidate centres are `candRows[candStart[q] ..< candStart[q + 1]]` (offsets centre * C,
    /// window order: row-major over the lambda x lambda window, cut at the grid border; spec 2.3).
    let candStart: [Int]
    /// Candidate centre offsets (centre * C), grouped by home cell.
    let candRows: [Int]
    /// Start of home cell q's `[nt_q, nc_q]` affinity block (M + 1 entries; the last is the total).
    let affStart: [Int]
    /// Centre m is updated from pairs `pairStart[m] ..< pairStart[m + 1]` (M + 1 entries).
    let pairStart: [Int]
    /// Token offset (token * C) of each pair.
    let pairRows: [Int]
    /// Index into the affinity buffer of each pair.
    let pairAff: [Int]

    /// Floats of the affinity buffer.
    var affinityCount: Int { affStart.last ?? 0 }

    /// Builds the lists for an H x W token grid, h x w cells, odd window lambda and C channels. Pairs of a
    /// centre are ordered by home cell (row-major) then token, as the Swift kernel sums them.
    /// - Precondition: sizes validated by `TokenClustering` (1 <= h <= H, 1 <= w <= W, odd window >= 1).
    init(height: Int, width: Int, cellsH: Int, cellsW: Int, window: Int, channels c: Int) {
        let m = cellsH * cellsW, r = (window - 1) / 2
        let homeRow = (0..<height).map { TokenClusterKernels.homeCell($0, size: height, cells: cellsH) }
        let homeCol = (0..<width).map { TokenClusterKernels.homeCell($0, size: width, cells: cellsW) }
        // Tokens bucketed by home cell (counting sort keeps row-major order inside a cell).
        var start = [Int](repeating: 0, count: m + 1)
        for y in 0..<height { for x in 0..<width { start[homeRow[y] * cellsW + homeCol[x] + 1] += 1 } }
        for q in 0..<m { start[q + 1] += start[q] }
        var fill = start
        var rows = [Int](repeating: 0, count: height * width)
        for y in 0..<height {
            for x in 0..<width {
                let q = homeRow[y] * cellsW + homeCol[x]
                rows[fill[q]] = (y * width + x) * c
                fill[q] += 1
            }
        }
        // Candidate windows and affinity blocks.
        func span(_ v: Int, _ cells: Int) -> (lo: Int, hi: Int) { (max(0, v - r), min(cells - 1, v + r)) }
        var cStart = [Int](), cRows = [Int](), aStart = [Int]()
        cStart.reserveCapacity(m + 1); aStart.reserveCapacity(m + 1); cRows.reserveCapacity(m * window * window)
        var affTotal = 0
        for q in 0..<m {
            cStart.append(cRows.count)
            aStart.append(affTotal)
            let rs = span(q / cellsW, cellsH), cs = span(q % cellsW, cellsW)
            for i in rs.lo...rs.hi { for j in cs.lo...cs.hi { cRows.append((i * cellsW + j) * c) } }
            affTotal += (start[q + 1] - start[q]) * (cRows.count - cStart[q])
        }
        cStart.append(cRows.count)
        aStart.append(affTotal)
        // Per centre: every (home cell within r, token of that cell) pair and its affinity index.
        var pStart = [Int](), pRows = [Int](), pAff = [Int]()
        pStart.reserveCapacity(m + 1); pRows.reserveCapacity(height * width * window * window)
        pAff.reserveCapacity(height * width * window * window)
        for cm in 0..<m {
            pStart.append(pRows.count)
            let i = cm / cellsW, j = cm % cellsW
            let hys = span(i, cellsH), hxs = span(j, cellsW)
            for hy in hys.lo...hys.hi {
                for hx in hxs.lo...hxs.hi {
                    let q = hy * cellsW + hx
                    let rs = span(hy, cellsH), cs = span(hx, cellsW)
                    let nc = (rs.hi - rs.lo + 1) * (cs.hi - cs.lo + 1)
                    let slot = (i - rs.lo) * (cs.hi - cs.lo + 1) + (j - cs.lo)
                    for t in 0..<(start[q + 1] - start[q]) {
                        pRows.append(rows[start[q] + t])
                        pAff.append(aStart[q] + t * nc + slot)
                    }
                }
            }
        }
        pStart.append(pRows.count)
        tokenStart = start; tokenRows = rows
        candStart = cStart; candRows = cRows; affStart = aStart
        pairStart = pStart; pairRows = pRows; pairAff = pAff
    }
}
