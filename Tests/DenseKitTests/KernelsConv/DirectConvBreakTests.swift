import Foundation
import XCTest
@testable import DenseKit

/// Break-it checks of the direct (strided) convolution path.
final class DirectConvBreakTests: XCTestCase {
    override func tearDown() { KernelDispatch.allowVectorKernels = true; Threading.threads = 2 }

    /// A strided convolution whose `C_in/g * kH * kW` is within the direct kernel's scratch bound but whose
    /// `C_in/g * C_out/g` weights exceed `pointwisePanelBound` (a ResNet-style 1x1 stride-2 shortcut, 2048 -> 130):
    /// the weights must be in the layout the chosen path reads.
    func testStridedConvWithLargeWeights() throws {
        var rng = KAGenerator(seed: 41)
        for (cin, cout, k) in [(2048, 130, 1), (1024, 272, 1), (400, 700, 3)] {
            let p = Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: k, kernelW: k, strideH: 2, strideW: 2,
                                     padH: k / 2, padW: k / 2)
            let w = rng.tensor([cout, cin, k, k]), b = rng.tensor([cout])
            let op = try Conv2dOperator(p, weight: w, bias: b)
            if op.path == .direct { XCTAssertTrue(op.pointwisePanels, "the direct kernel reads 14-channel panels") }
            let x = rng.tensor([1, cin, 5, 7])
            let want = referenceConv2d(x, w, b, p)
            Threading.threads = 2
            let two = op(x)
            assertClose(two, want, tol: 2e-5, "\(p)")
            Threading.threads = 1
            assertBitIdentical(op(x), two, "\(p) 1 vs 2 threads")
        }
    }

    /// `C_in/g * kH * kW` at the scratch bound (4096: direct) and just above it (not direct), a kernel much larger
    /// than the image with padding beyond it, groups with stride 3.
    func testDirectConvScratchBoundEdges() throws {
        var rng = KAGenerator(seed: 43)
        let cases: [(p: Conv2dParameters, h: Int, w: Int, direct: Bool)] = [
            (Conv2dParameters(inChannels: 256, outChannels: 20, kernelH: 4, kernelW: 4, strideH: 4, strideW: 4), 9, 70, true),
            (Conv2dParameters(inChannels: 1, outChannels: 15, kernelH: 64, kernelW: 64, strideH: 32, strideW: 32,
                              padH: 40, padW: 40, activation: .relu), 5, 3, true),
            (Conv2dParameters(inChannels: 4097, outChannels: 3, kernelH: 1, kernelW: 1, strideH: 2, strideW: 2), 3, 3, false),
            (Conv2dParameters(inChannels: 12, outChannels: 30, kernelH: 3, kernelW: 3, strideH: 3, strideW: 3, padH: 1, padW: 1,
                              groups: 3, activation: .gelu), 2, 100, true),
        ]
        for c in cases {
            let w = rng.tensor([c.p.outChannels, c.p.inChannelsPerGroup, c.p.kernelH, c.p.kernelW]), b = rng.tensor([c.p.outChannels])
            let op = try Conv2dOperator(c.p, weight: w, bias: b)
            if KernelDispatch.avx512 { XCTAssertEqual(op.path == .direct, c.direct, "\(c.p)") }
            let x = rng.tensor([2, c.p.inChannels, c.h, c.w])
            let want = referenceConv2d(x, w, b, c.p)
            Threading.threads = 2
            let two = op(x)
            assertClose(two, want, tol: 1e-4, "\(c.p)")   // float32 sums of up to 4096 products
            Threading.threads = 3
            assertBitIdentical(op(x), two, "\(c.p) 3 vs 2 threads")
        }
    }

    /// A workspace sized while the vector kernels were on (0 floats for the direct path, as an execution plan sizes
    /// it) must still do when they are switched off before the call (the im2col fallback must not write past it).
    func testDirectFallbackIgnoresStaleWorkspace() throws {
        var rng = KAGenerator(seed: 45)
        let p = Conv2dParameters(inChannels: 8, outChannels: 16, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, padH: 1, padW: 1)
        let w = rng.tensor([16, 8, 3, 3]), x = rng.tensor([1, 8, 20, 30])
        let op = try Conv2dOperator(p, weight: w, bias: nil)
        let planned = op.workspaceCount(batch: 1, height: 20, width: 30)
        let guardFloats = 1 << 16
        let ws = UnsafeMutablePointer<Float>.allocate(capacity: planned + guardFloats)
        defer { ws.deallocate() }
        ws.initialize(repeating: 7, count: planned + guardFloats)
        let o = p.outputSize(height: 20, width: 30)
        var y = [Float](repeating: 0, count: 16 * o.height * o.width)
        KernelDispatch.allowVectorKernels = false
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                op.forward(input: xp.baseAddress!, batch: 1, height: 20, width: 30, output: yp.baseAddress!, workspace: ws)
            }
        }
        KernelDispatch.allowVectorKernels = true
        var touched = 0
        for i in planned..<(planned + guardFloats) where ws[i] != 7 { touched += 1 }
        XCTAssertEqual(touched, 0, "floats written past the planned workspace (\(planned))")
        assertClose(Tensor(shape: [1, 16, o.height, o.width], values: y), referenceConv2d(x, w, nil, p), tol: 2e-5, "fallback")
    }

    /// Random strided geometries (tiny images, outW 1, padding beyond the image, kernels larger than the image,
    /// dilation, stride 3-5, uneven strides, groups, batch 2, NaN inputs) against the float64 reference, with
    /// 1, 2 and 3 threads bit-identical.
    func testDirectConvRandomGeometries() throws {
        var rng = KAGenerator(seed: 77)
        func ri(_ lo: Int, _ hi: Int) -> Int { lo + Int((rng.next() + 1) * 0.5 * Float(hi - lo + 1)) % (hi - lo + 1) }
        let acts: [Activation] = [.none, .relu, .gelu, .relu6, .silu]
        var ran = 0
        for _ in 0..<300 {
            let g = ri(1, 3)
            let cin = g * ri(1, 5), cout = g * ri(1, 17)
            let kH = ri(1, 7), kW = ri(1, 7), sH = ri(1, 5), sW = ri(1, 5), dH = ri(1, 3), dW = ri(1, 3)
            if sH == 1 && sW == 1 { continue }
            let pre = [ri(0, 3), ri(0, 3), ri(0, 3), ri(0, 3)]
            let p = Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: kH, kernelW: kW, strideH: sH, strideW: sW,
                                     padH: ri(0, 9), padW: ri(0, 9), dilationH: dH, dilationW: dW, groups: g,
                                     prePad: ri(0, 2) == 0 ? pre : [0, 0, 0, 0], activation: acts[ri(0, acts.count - 1)])
            let h = ri(1, 14), wd = ri(1, 90)
            let o = p.outputSize(height: h, width: wd)
            if o.height < 1 || o.width < 1 { continue }
            let w = rng.tensor([cout, cin / g, kH, kW])
            let bias = ri(0, 1) == 0 ? nil : rng.tensor([cout])
            guard let op = try? Conv2dOperator(p, weight: w, bias: bias) else { continue }
            if KernelDispatch.avx512 && !p.isDepthwise { XCTAssertEqual(op.path, .direct, "\(p)") }
            var xs = rng.tensor([ri(1, 2), cin, h, wd]).scalars
            if ri(0, 3) == 0 { xs[ri(0, xs.count - 1)] = .nan }
            let x = Tensor(shape: [xs.count / (cin * h * wd), cin, h, wd], values: xs)
            let want = referenceConv2d(x, w, bias, p)
            Threading.threads = 2
            let two = op(x)
            let a = two.scalars, r = want.scalars
            var bad = 0
            for i in 0..<a.count {
                if r[i].isNaN != a[i].isNaN || (!r[i].isNaN && abs(a[i] - r[i]) > 2e-5 * (1 + abs(r[i]))) { bad += 1 }
            }
            XCTAssertEqual(bad, 0, "\(p) h \(h) w \(wd) bias \(bias != nil)")
            for t in [1, 3] {
                Threading.threads = t
                assertBitIdentical(op(x), two, "\(p) \(t) vs 2 threads")
            }
            ran += 1
        }
        XCTAssertGreaterThan(ran, 100)
    }
}
