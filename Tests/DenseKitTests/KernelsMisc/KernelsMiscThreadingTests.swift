import XCTest
@testable import DenseKit

/// Large kernels give bit-identical results for 1 and 2 threads (fixed partitions).
final class KernelsMiscThreadingTests: XCTestCase {
    /// Deterministic pseudo-random tensor with values in about [-4, 4) plus an offset.
    static func random(_ shape: [Int], seed: UInt64, offset: Float = 0) -> Tensor {
        var s = seed &* 6364136223846793005 &+ 1442695040888963407
        return Tensor(shape: shape) { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 1_000_000) / 125_000 - 4 + offset
        }
    }

    func bits(_ t: Tensor) -> [UInt32] { t.scalars.map { $0.bitPattern } }

    /// Runs `body` with 1 and then 2 threads and asserts the results are bit-identical.
    func assertThreadInvariant(_ name: String, _ body: () throws -> Tensor) rethrows {
        let saved = Threading.threads
        defer { Threading.threads = saved }
        Threading.threads = 1
        let a = try body()
        Threading.threads = 2
        let b = try body()
        XCTAssertEqual(a.shape, b.shape, name)
        XCTAssertTrue(bits(a) == bits(b), "\(name): results differ between 1 and 2 threads")
    }

    func testNormsAreThreadInvariant() throws {
        let x = Self.random([2, 64, 48, 56], seed: 1, offset: 3)
        let w = Self.random([64], seed: 2), b = Self.random([64], seed: 3)
        try assertThreadInvariant("groupNorm G=1") { try NormKernels.groupNorm(x, groups: 1, weight: w, bias: b, eps: 1e-5) }
        try assertThreadInvariant("groupNorm G=32") { try NormKernels.groupNorm(x, groups: 32, weight: w, bias: b, eps: 1e-5) }
        try assertThreadInvariant("layerNorm2d") { try NormKernels.layerNorm2d(x, weight: w, bias: b, eps: 1e-6) }
        let t = Self.random([4, 3000, 64], seed: 4, offset: 1)
        try assertThreadInvariant("layerNorm") { try NormKernels.layerNorm(t, weight: w, bias: b, eps: 1e-5) }
        let m = Self.random([64], seed: 5), v = Tensor(shape: [64]) { Float($0) * 0.1 + 1e-4 }
        try assertThreadInvariant("batchNorm") { try NormKernels.batchNorm(x, mean: m, variance: v, weight: w, bias: b, eps: 1e-5) }
    }

    func testPoolsAreThreadInvariant() throws {
        let x = Self.random([2, 48, 65, 77], seed: 6)
        let p = Pool2dParameters(kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, padH: 1, padW: 1, ceilMode: true)
        try assertThreadInvariant("maxPool2d") { try PoolKernels.maxPool2d(x, p) }
        try assertThreadInvariant("avgPool2d") { try PoolKernels.avgPool2d(x, p) }
        try assertThreadInvariant("adaptiveAvgPool2d") { try PoolKernels.adaptiveAvgPool2d(x, outHeight: 7, outWidth: 9) }
    }

    func testSoftmaxResizeActivationAreThreadInvariant() throws {
        let x = Self.random([2, 150, 40, 48], seed: 7, offset: 500)
        try assertThreadInvariant("softmax dim 1") { try SoftmaxKernels.softmax(x, dim: 1) }
        try assertThreadInvariant("logSoftmax dim -1") { try SoftmaxKernels.logSoftmax(x, dim: -1) }
        let y = Self.random([1, 32, 60, 70], seed: 8)
        try assertThreadInvariant("bilinear") {
            try ResizeKernels.interpolate(y, mode: .bilinear, scaleFactor: (2.5, 1.5), alignCorners: false)
        }
        try assertThreadInvariant("bicubic") { try ResizeKernels.interpolate(y, mode: .bicubic, size: (97, 33), alignCorners: true) }
        assertThreadInvariant("gelu") { ElementwiseKernels.activation(.gelu, y) }
        try assertThreadInvariant("l2Normalize") { try ReduceKernels.l2Normalize(x, dim: 1) }
    }
}
