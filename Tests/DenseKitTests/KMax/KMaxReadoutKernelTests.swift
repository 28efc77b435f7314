import XCTest
@testable import DenseKit

/// The fused read-out kernel against a plain composition (resize logits, softmax over clusters, mix),
/// and its independence from the thread count.
final class KMaxReadoutKernelTests: XCTestCase {
    func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
        var s = seed
        return Tensor(shape: shape) { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2000) / 500 - 2
        }
    }

    func testFusedMatchesUnfused() throws {
        let k = 5, c = 4, d = 6, h = 7, w = 9, oh = 25, ow = 33
        let ml = randomTensor([1, k, h, w], seed: 1), cl = randomTensor([1, k, c + 1], seed: 2), e = randomTensor([1, d, k], seed: 3)
        var weights = TensorDictionary()
        weights["readout.depth.weight"] = randomTensor([1, d], seed: 4)
        weights["readout.depth.bias"] = randomTensor([1], seed: 5)
        weights["readout.normals.weight"] = randomTensor([3, d], seed: 6)
        weights["readout.normals.bias"] = randomTensor([3], seed: 7)
        let ro = try PolyMaXReadout(weights: weights, queryDim: d, dMin: 0.1, dMax: 10)
        for align in [false, true] {
            let r = try ro.run(maskLogits: ml, classLogits: cl, clusterEmbeddings: e, outputSize: (oh, ow), alignCorners: align)
            // Unfused reference: resize every logit plane, then softmax per pixel.
            var up = [Float](repeating: 0, count: k * oh * ow)
            ml.withUnsafeBufferPointer { src in
                up.withUnsafeMutableBufferPointer { dst in
                    ResizeKernels.bilinear(src.baseAddress!, planes: k, inH: h, inW: w, outH: oh, outW: ow,
                                           alignCorners: align, scaleH: nil, scaleW: nil, dst.baseAddress!)
                }
            }
            let pc = cl.withUnsafeBufferPointer { PolyMaXReadout.classProbabilities($0.baseAddress!, clusters: k, classesWithVoid: c + 1) }
            let dk = try XCTUnwrap(r.clusterDepth).scalars
            let scores = try XCTUnwrap(r.semanticScores), depth = try XCTUnwrap(r.depth)
            var maxErr: Float = 0
            for p in 0..<(oh * ow) {
                var mx = -Float.infinity
                for j in 0..<k { mx = max(mx, up[j * oh * ow + p]) }
                var pr = (0..<k).map { expf(up[$0 * oh * ow + p] - mx) }
                let s = pr.reduce(0, +)
                pr = pr.map { $0 / s }
                for q in 0..<c {
                    let want = (0..<k).reduce(Float(0)) { $0 + pr[$1] * pc[$1 * c + q] }
                    maxErr = max(maxErr, abs(scores.scalars[q * oh * ow + p] - want))
                }
                let wantD = (0..<k).reduce(Float(0)) { $0 + pr[$1] * dk[$1] }
                maxErr = max(maxErr, abs(depth.scalars[p] - wantD) / 10)
            }
            XCTAssertLessThan(maxErr, 1e-5, "align_corners=\(align)")
        }
    }

    func testThreadCountInvariance() throws {
        let ml = randomTensor([1, 6, 11, 13], seed: 9), cl = randomTensor([1, 6, 4], seed: 10)
        let ro = try PolyMaXReadout(weights: TensorDictionary(), queryDim: 2)
        let saved = Threading.threads
        defer { Threading.threads = saved }
        Threading.threads = 1
        let a = try ro.run(maskLogits: ml, classLogits: cl, clusterEmbeddings: nil, outputSize: (45, 53), tasks: .semantic)
        Threading.threads = 3
        let b = try ro.run(maskLogits: ml, classLogits: cl, clusterEmbeddings: nil, outputSize: (45, 53), tasks: .semantic)
        XCTAssertEqual(a.semanticScores?.scalars, b.semanticScores?.scalars)
        XCTAssertEqual(a.semanticLabels, b.semanticLabels)
    }
}
