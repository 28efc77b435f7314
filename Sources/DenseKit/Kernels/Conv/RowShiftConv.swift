/// How a convolution's kernel rows map onto input rows, for the row-shift im2col.
///
/// Output row `oh` and kernel row `a` read input row `ih = s*oh - padTop + a*dH` (`s` the vertical
/// stride). Writing `a*dH - padTop = s*q_a + r_a` with `0 <= r_a < s`, `ih = s*(oh + q_a) + r_a`:
/// all kernel rows with the same phase `r` read input rows `s*j + r` for consecutive `j`. One
/// column matrix per phase holds the horizontal taps of those rows (virtual row `j`); kernel row
/// `a` is then a GEMM over that matrix shifted by `q_a` virtual rows.
struct RowShiftPlan: Sendable, Hashable {
    /// One input-row phase: its residue `r` and the smallest / largest `q_a` of its kernel rows.
    struct Phase: Sendable, Hashable { var residue: Int; var qMin: Int; var qMax: Int }
    var phases: [Phase]
    /// For each kernel row: its phase index and `q_a`.
    var tapPhase: [Int]
    var tapShift: [Int]
    /// Smallest `q_a` (virtual rows are counted from it so that pixel indices stay >= 0).
    var base: Int
    var stride: Int
    /// Rows of each phase's column matrix: `C_in/g * kW`.
    var k: Int

    init(_ p: Conv2dParameters) {
        let s = max(1, p.strideH)
        var phases: [Phase] = []
        var tapPhase: [Int] = [], tapShift: [Int] = []
        for a in 0..<max(0, p.kernelH) {
            let off = a * p.dilationH - p.effectivePadTop
            let q = off >= 0 ? off / s : -((-off + s - 1) / s)     // floor division
            let r = off - q * s
            if let i = phases.firstIndex(where: { $0.residue == r }) {
                phases[i].qMin = min(phases[i].qMin, q)
                phases[i].qMax = max(phases[i].qMax, q)
                tapPhase.append(i)
            } else {
                phases.append(Phase(residue: r, qMin: q, qMax: q))
                tapPhase.append(phases.count - 1)
            }
            tapShift.append(q)
        }
        self.phases = phases
        self.tapPhase = tapPhase
        self.tapShift = tapShift
        self.base = tapShift.min() ?? 0
        self.stride = s
        self.k = p.inChannelsPerGroup * p.kernelW
    }

    /// Virtual rows of phase `i`'s window for a tile of `rows` output rows.
    @inline(__always)
    func window(_ i: Int, rows: Int) -> Int { rows + phases[i].qMax - phases[i].qMin }

    /// Floats of all phase windows for a tile of `rows` output rows.
    func columnFloats(rows: Int, outW: Int) -> Int {
        var total = 0
        for i in phases.indices { total += k * window(i, rows: rows) * outW }
        return total
    }

    /// Output rows per tile, or nil when a single row does not fit `Conv2dOperator.im2colBound`.
    func tileRows(outH: Int, outW: Int) -> Int? {
        let bound = max(1, Conv2dOperator.im2colBound)
        if columnFloats(rows: 1, outW: outW) > bound { return nil }
        let perRow = max(1, k * phases.count * outW)
        let fixed = columnFloats(rows: 0, outW: outW)
        let target = min(bound, max(1, Conv2dOperator.rowShiftTarget))
        var rows = (target - fixed) / perRow
        // Keep the GEMM's N large when the bound allows it.
        let minRows = (Conv2dOperator.minTileColumns + outW - 1) / max(1, outW)
        let maxRows = max(1, (bound - fixed) / perRow)
        rows = max(rows, min(minRows, maxRows))
        rows = max(1, min(rows, maxRows, outH))
        let tiles = (outH + rows - 1) / rows
        return (outH + tiles - 1) / tiles
    }

    /// The 1-row-kernel geometry whose output row `v` reads input row `s*(v + base) + residue`
    /// of phase `i` (so phase `i`'s window for output rows from `oh0` starts at pixel
    /// `(oh0 + qMin - base) * outW`).
    func phaseGeometry(_ i: Int, _ g: ConvGeometry) -> ConvGeometry {
        var pg = g
        pg.kernelH = 1
        pg.dilationH = 1
        pg.strideH = stride
        pg.padTop = -(stride * base + phases[i].residue)
        pg.outH = g.outH + (phases.map { $0.qMax }.max() ?? 0) - base + 1
        return pg
    }
}

extension Conv2dOperator {
    /// Row-shift im2col: per tile of output rows, one column matrix per input-row phase (the
    /// horizontal taps of the tile's input-row window), then one accumulating GEMM per kernel row.
    func forwardRowShift(input: UnsafePointer<Float>, batch: Int, g: ConvGeometry, plan: RowShiftPlan, tileRows: Int,
                         output: UnsafeMutablePointer<Float>, col: UnsafeMutablePointer<Float>) {
        let p = parameters
        let cinG = p.inChannelsPerGroup, coutG = p.outChannelsPerGroup
        let kp = plan.k, kH = p.kernelH
        let px = g.outPixels, ow = g.outW
        let phaseGeometries = plan.phases.indices.map { plan.phaseGeometry($0, g) }
        let nPhases = plan.phases.count
        let biasPtr = packedBias.map { UnsafePointer($0) }
        for n in 0..<batch {
            var oh0 = 0
            while oh0 < g.outH {
                let rows = min(tileRows, g.outH - oh0)
                // Where each phase's window starts in `col`, its first pixel and its size.
                var starts: [Int] = [], pixel0: [Int] = [], counts: [Int] = []
                var offset = 0
                for i in 0..<nPhases {
                    starts.append(offset)
                    pixel0.append((oh0 + plan.phases[i].qMin - plan.base) * ow)
                    counts.append(plan.window(i, rows: rows) * ow)
                    offset += kp * counts[i]
                }
                for grp in 0..<p.groups {
                    let x = input + (n * p.inChannels + grp * cinG) * g.inPixels
                    let y = output + (n * p.outChannels + grp * coutG) * px + oh0 * ow
                    let prefill = biasPtr.map {
                        BiasPrefill(output: y, channels: coutG, planeStride: px, offset: 0, count: rows * ow, bias: $0 + grp * coutG)
                    }
                    fillPhases(x, phaseGeometries, starts, pixel0, counts, kp, col, prefill)
                    for a in 0..<kH {
                        let i = plan.tapPhase[a]
                        let b = col + starts[i] + (plan.tapShift[a] - plan.phases[i].qMin) * ow
                        BLAS.sgemm(m: coutG, n: rows * ow, k: kp, a: packedWeight + (grp * kH + a) * coutG * kp, lda: kp,
                                   b: b, ldb: counts[i], beta: a == 0 && biasPtr == nil ? 0 : 1, c: y, ldc: px)
                    }
                }
                ConvEpilogue.apply(output: output + n * p.outChannels * px, channels: p.outChannels, planeStride: px,
                                   offset: oh0 * ow, count: rows * ow, bias: nil, activation: p.activation)
                oh0 += rows
            }
        }
    }

    /// All phase windows (and the bias prefill) in one parallel pass with a fixed partition.
    private func fillPhases(_ x: UnsafePointer<Float>, _ geometries: [ConvGeometry], _ starts: [Int], _ pixel0: [Int],
                            _ counts: [Int], _ kp: Int, _ col: UnsafeMutablePointer<Float>, _ prefill: BiasPrefill?) {
        let nPhases = geometries.count
        let items = nPhases * kp + (prefill?.channels ?? 0)
        let grain = max(1, 32_768 / max(1, counts.max() ?? 1))
        geometries.withUnsafeBufferPointer { geo in
            starts.withUnsafeBufferPointer { st in
                pixel0.withUnsafeBufferPointer { p0 in
                    counts.withUnsafeBufferPointer { cn in
                        Threading.parallelFor(items, grain: grain) { r in
                            if r < nPhases * kp {
                                let i = r / kp, row = r - i * kp
                                Im2col.fillRow(input: x, row: row, geometry: geo[i], pixel0: p0[i], count: cn[i],
                                               dst: col + st[i] + row * cn[i])
                            } else if let f = prefill {
                                f.fill(channel: r - nPhases * kp)
                            }
                        }
                    }
                }
            }
        }
    }
}
