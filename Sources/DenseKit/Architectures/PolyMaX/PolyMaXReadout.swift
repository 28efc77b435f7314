import Foundation

/// The results of a PolyMaX read-out (spec `polymax-head.md` section 6). An output is nil when it
/// was not requested or its weights are absent.
public struct PolyMaXReadoutResult: Sendable {
    /// Semantic scores `[B, C, Ho, Wo]` (void dropped, not renormalised; spec 6.1).
    public var semanticScores: Tensor?
    /// Semantic labels `[B, Ho, Wo]` (argmax over C, lowest index on ties).
    public var semanticLabels: IndexTensor?
    /// Depth `[B, 1, Ho, Wo]` (option A, spec 6.2).
    public var depth: Tensor?
    /// Unit surface normals `[B, 3, Ho, Wo]` (option A, spec 6.3), channels in the order of `readout.normals.weight`'s rows.
    public var normals: Tensor?
    /// Depth per cluster `[B, K]`.
    public var clusterDepth: Tensor?
    /// Unit normal per cluster `[B, K, 3]`.
    public var clusterNormals: Tensor?
}

/// Which read-outs to compute.
public struct PolyMaXReadoutTasks: OptionSet, Sendable {
    /// Bit mask of the tasks.
    public let rawValue: Int
    /// Creates a task set.
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// Semantic scores and labels (spec 6.1).
    public static let semantic = PolyMaXReadoutTasks(rawValue: 1)
    /// Depth (spec 6.2).
    public static let depth = PolyMaXReadoutTasks(rawValue: 2)
    /// Surface normals (spec 6.3).
    public static let normals = PolyMaXReadoutTasks(rawValue: 4)
    /// Everything.
    public static let all: PolyMaXReadoutTasks = [.semantic, .depth, .normals]
}

/// Errors of the read-out.
public enum PolyMaXError: Error, CustomStringConvertible, Sendable, Equatable {
    /// An input tensor has the wrong shape.
    case shape(String)
    /// A read-out was requested whose weights were not loaded.
    case missingReadout(String)
    /// An image whose size this model cannot take, too large for its axial attention or too small for its backbone
    /// (known from the size alone, before anything is allocated).
    case unsupportedInputSize(String)

    /// One line naming the problem.
    public var description: String {
        switch self {
        case .shape(let m): return "polymax: \(m)"
        case .missingReadout(let m): return "polymax read-out: \(m)"
        case .unsupportedInputSize(let m): return m
        }
    }
}

/// PolyMaX read-out heads, option A (spec `polymax-head.md` section 6; DenseKit's own keys `readout.*`):
/// one depth and one unit normal per cluster from the cluster embeddings `E [B, D, K]`, mixed per pixel
/// with the softmax over clusters of the (optionally resized) mask logits; semantic scores as kMaX's
/// `semantic_inference`. Runs the fused kernel `ReadoutKernels.fused` (no `K x Ho x Wo` buffer).
public struct PolyMaXReadout: Sendable {
    /// Cluster-embedding width D.
    public let queryDim: Int
    /// Depth range of option A.
    public let dMin: Float
    /// Depth range of option A.
    public let dMax: Float
    /// `readout.depth.weight [1, D]` and `.bias [1]`, nil when absent.
    let depthHead: (weight: [Float], bias: Float)?
    /// `readout.normals.weight [3, D]` (row-major) and `.bias [3]`, nil when absent.
    let normalsHead: (weight: [Float], bias: [Float])?

    /// Whether depth weights were loaded.
    public var hasDepth: Bool { depthHead != nil }
    /// Whether normal weights were loaded.
    public var hasNormals: Bool { normalsHead != nil }

    /// Loads `readout.depth.*` and `readout.normals.*` when present (either may be absent; a lone weight
    /// without its bias is an error).
    /// - Parameters:
    ///   - weights: the tensors; keys under `prefix` (default `readout.`).
    ///   - queryDim: D (the cluster-embedding width).
    ///   - dMin, dMax: depth range, `dMin < dMax`.
    /// - Throws: `ModelConfigError` for wrong shapes, a missing bias or an invalid range.
    public init(weights: any WeightSource, queryDim: Int, dMin: Double = 1e-3, dMax: Double = 10, prefix: String = "readout.") throws {
        guard queryDim > 0 else { throw ModelConfigError.invalidField(model: "polymax", field: "query_dim", message: "must be positive") }
        guard dMin.isFinite, dMax.isFinite, dMin < dMax else {
            throw ModelConfigError.invalidField(model: "polymax", field: "d_min/d_max", message: "need finite d_min < d_max, got \(dMin), \(dMax)")
        }
        let r = KMaXWeightReader(source: weights, model: "polymax")
        self.queryDim = queryDim
        self.dMin = Float(dMin)
        self.dMax = Float(dMax)
        if r.has(prefix + "depth.weight") {
            let w = try r.tensor(prefix + "depth.weight", shape: [1, queryDim]).scalars
            let b = try r.tensor(prefix + "depth.bias", shape: [1]).scalars
            depthHead = (w, b[0])
        } else { depthHead = nil }
        if r.has(prefix + "normals.weight") {
            let w = try r.tensor(prefix + "normals.weight", shape: [3, queryDim]).scalars
            let b = try r.tensor(prefix + "normals.bias", shape: [3]).scalars
            normalsHead = (w, b)
        } else { normalsHead = nil }
    }

    /// Class probabilities `[K, C]` of one image: softmax over the C+1 classes of `cl [K, C+1]`, void column dropped.
    static func classProbabilities(_ cl: UnsafePointer<Float>, clusters k: Int, classesWithVoid c1: Int) -> [Float] {
        let c = c1 - 1
        var out = [Float](repeating: 0, count: k * c)
        var e = [Float](repeating: 0, count: c1)
        for j in 0..<k {
            let row = cl + j * c1
            var mx = -Float.infinity
            for q in 0..<c1 { mx = max(mx, row[q]) }
            var s: Float = 0
            for q in 0..<c1 { e[q] = expf(row[q] - mx); s += e[q] }
            for q in 0..<c { out[j * c + q] = e[q] / s }
        }
        return out
    }

    /// Depth per cluster `[K]` from embeddings `e [D, K]` of one image (spec 6.2).
    func clusterDepths(_ e: UnsafePointer<Float>, clusters k: Int) -> [Float]? {
        guard let head = depthHead else { return nil }
        var out = [Float](repeating: 0, count: k)
        for j in 0..<k {
            var z = head.bias
            for d in 0..<queryDim { z += head.weight[d] * e[d * k + j] }
            out[j] = dMin + (dMax - dMin) * (1 / (1 + expf(-z)))
        }
        return out
    }

    /// Unit normal per cluster `[K, 3]` from embeddings `e [D, K]` of one image (spec 6.3).
    func clusterNormalVectors(_ e: UnsafePointer<Float>, clusters k: Int) -> [Float]? {
        guard let head = normalsHead else { return nil }
        var out = [Float](repeating: 0, count: 3 * k)
        for j in 0..<k {
            var v: [Float] = head.bias
            for r in 0..<3 {
                for d in 0..<queryDim { v[r] += head.weight[r * queryDim + d] * e[d * k + j] }
            }
            let inv = 1 / max((v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).squareRoot(), 1e-12)
            for r in 0..<3 { out[3 * j + r] = v[r] * inv }
        }
        return out
    }

    /// Runs the read-outs.
    /// - Parameters:
    ///   - maskLogits: `[B, K, h, w]` (OS4 mask logits, after the scalar mask BN).
    ///   - classLogits: `[B, K, C+1]` (void last, void prior included); needed for `.semantic`.
    ///   - clusterEmbeddings: `[B, D, K]` (`_class_embedding_projection` output); needed for depth / normals.
    ///   - outputSize: `(Ho, Wo)`, or nil for the logits' own resolution; the LOGITS are resized (spec 6, trap 11).
    ///   - alignCorners: the resize's flag (kMaX uses `Wo` odd).
    ///   - tasks: which outputs to compute.
    /// - Throws: `PolyMaXError.shape` for inconsistent shapes, `.missingReadout` when depth / normals are asked
    ///   without their weights.
    public func run(maskLogits: Tensor, classLogits: Tensor?, clusterEmbeddings: Tensor?,
                    outputSize: (height: Int, width: Int)? = nil, alignCorners: Bool = false,
                    tasks: PolyMaXReadoutTasks = .all) throws -> PolyMaXReadoutResult {
        guard maskLogits.rank == 4 else { throw PolyMaXError.shape("mask logits must be [B, K, h, w], got \(maskLogits.shape)") }
        let b = maskLogits.shape[0], k = maskLogits.shape[1], h = maskLogits.shape[2], w = maskLogits.shape[3]
        let (oh, ow) = outputSize.map { ($0.height, $0.width) } ?? (h, w)
        guard oh > 0, ow > 0, k > 0, h > 0, w > 0 else { throw PolyMaXError.shape("empty mask logits \(maskLogits.shape) or output size \(oh)x\(ow)") }
        var c = 0
        if tasks.contains(.semantic) {
            guard let cl = classLogits, cl.rank == 3, cl.shape[0] == b, cl.shape[1] == k, cl.shape[2] >= 2 else {
                throw PolyMaXError.shape("class logits must be [\(b), \(k), C+1], got \(classLogits?.shape ?? [])")
            }
            c = cl.shape[2] - 1
        }
        let needE = tasks.contains(.depth) || tasks.contains(.normals)
        if tasks.contains(.depth) && depthHead == nil { throw PolyMaXError.missingReadout("no readout.depth.* weights") }
        if tasks.contains(.normals) && normalsHead == nil { throw PolyMaXError.missingReadout("no readout.normals.* weights") }
        if needE {
            guard let e = clusterEmbeddings, e.shape == [b, queryDim, k] else {
                throw PolyMaXError.shape("cluster embeddings must be [\(b), \(queryDim), \(k)], got \(clusterEmbeddings?.shape ?? [])")
            }
        }
        var result = PolyMaXReadoutResult()
        var scores = tasks.contains(.semantic) ? Tensor(zeros: [b, c, oh, ow]) : nil
        var labels = tasks.contains(.semantic) ? [Int64](repeating: 0, count: b * oh * ow) : nil
        var depth = tasks.contains(.depth) ? Tensor(zeros: [b, 1, oh, ow]) : nil
        var normals = tasks.contains(.normals) ? Tensor(zeros: [b, 3, oh, ow]) : nil
        var cDepth = tasks.contains(.depth) ? [Float](repeating: 0, count: b * k) : nil
        var cNormals = tasks.contains(.normals) ? [Float](repeating: 0, count: b * k * 3) : nil
        let mlAll = maskLogits.scalars
        let clAll = classLogits?.scalars ?? []
        let eAll = clusterEmbeddings?.scalars ?? []
        let outPlane = oh * ow
        for n in 0..<b {
            var pc: [Float]? = nil
            if tasks.contains(.semantic) {
                pc = clAll.withUnsafeBufferPointer { p -> [Float]? in
                    guard let base = p.baseAddress else { return nil }
                    return Self.classProbabilities(base + n * k * (c + 1), clusters: k, classesWithVoid: c + 1)
                }
            }
            var dk: [Float]? = nil, nk: [Float]? = nil
            if needE {
                eAll.withUnsafeBufferPointer { p in
                    guard let base = p.baseAddress else { return }
                    let en = base + n * queryDim * k
                    if tasks.contains(.depth) { dk = clusterDepths(en, clusters: k) }
                    if tasks.contains(.normals) { nk = clusterNormalVectors(en, clusters: k) }
                }
            }
            if let dk { cDepth?.replaceSubrange(n * k ..< (n + 1) * k, with: dk) }
            if let nk { cNormals?.replaceSubrange(n * k * 3 ..< (n + 1) * k * 3, with: nk) }
            var sBuf = [Float](repeating: 0, count: scores != nil ? c * outPlane : 0)
            var lBuf = [Int64](repeating: 0, count: labels != nil ? outPlane : 0)
            var dBuf = [Float](repeating: 0, count: depth != nil ? outPlane : 0)
            var nBuf = [Float](repeating: 0, count: normals != nil ? 3 * outPlane : 0)
            mlAll.withUnsafeBufferPointer { mp in
                guard let mb = mp.baseAddress else { return }
                (pc ?? []).withUnsafeBufferPointer { pcp in
                    (dk ?? []).withUnsafeBufferPointer { dkp in
                        (nk ?? []).withUnsafeBufferPointer { nkp in
                            sBuf.withUnsafeMutableBufferPointer { sp in
                                lBuf.withUnsafeMutableBufferPointer { lp in
                                    dBuf.withUnsafeMutableBufferPointer { dp in
                                        nBuf.withUnsafeMutableBufferPointer { np in
                                            ReadoutKernels.fused(
                                                logits: mb + n * k * h * w, clusters: k, h: h, w: w, classes: c,
                                                classProbs: pc == nil ? nil : UnsafePointer(pcp.baseAddress),
                                                clusterDepth: dk == nil ? nil : UnsafePointer(dkp.baseAddress),
                                                clusterNormals: nk == nil ? nil : UnsafePointer(nkp.baseAddress),
                                                outH: oh, outW: ow, alignCorners: alignCorners,
                                                out: ReadoutKernels.Buffers(scores: sp.baseAddress, labels: lp.baseAddress,
                                                                            depth: dp.baseAddress, normals: np.baseAddress))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if scores != nil {
                scores?.withUnsafeMutableBufferPointer { p in for i in 0..<sBuf.count { p[n * c * outPlane + i] = sBuf[i] } }
                labels?.replaceSubrange(n * outPlane ..< (n + 1) * outPlane, with: lBuf)
            }
            if depth != nil { depth?.withUnsafeMutableBufferPointer { p in for i in 0..<outPlane { p[n * outPlane + i] = dBuf[i] } } }
            if normals != nil { normals?.withUnsafeMutableBufferPointer { p in for i in 0..<3 * outPlane { p[n * 3 * outPlane + i] = nBuf[i] } } }
        }
        result.semanticScores = scores
        result.semanticLabels = labels.map { IndexTensor(shape: [b, oh, ow], values: $0) }
        result.depth = depth
        result.normals = normals
        result.clusterDepth = cDepth.map { Tensor(shape: [b, k], values: $0) }
        result.clusterNormals = cNormals.map { Tensor(shape: [b, k, 3], values: $0) }
        return result
    }
}
