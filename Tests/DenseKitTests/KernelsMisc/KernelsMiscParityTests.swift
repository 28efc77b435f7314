import XCTest
@testable import DenseKit

/// Every golden `ops` case of the non-GEMM kernels, through `ParityRunner`.
final class KernelsMiscParityTests: XCTestCase {
    /// `<repo>/../shared/golden/ops`.
    static var opsFolder: String {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("../shared/golden/ops").standardizedFileURL.path
    }

    /// Case files grouped by target (read from each file's metadata).
    static let casesByTarget: [String: [String]] = {
        var out: [String: [String]] = [:]
        guard let files = try? ParityRunner.findCases(in: opsFolder) else { return out }
        for f in files {
            guard let gc = try? GoldenCase(path: f), gc.family == "ops" else { continue }
            out[gc.target, default: []].append(f)
        }
        return out
    }()

    func check(_ target: String, file: StaticString = #filePath, line: UInt = #line) throws {
        guard FileManager.default.fileExists(atPath: Self.opsFolder) else {
            throw XCTSkip("golden ops cases not found at \(Self.opsFolder)")
        }
        let cases = Self.casesByTarget[target] ?? []
        XCTAssertFalse(cases.isEmpty, "no golden case for \(target)", file: file, line: line)
        for c in cases {
            let r = ParityRunner.run(casePath: c)
            if ProcessInfo.processInfo.environment["DENSEKIT_PARITY_VERBOSE"] != nil { print(r.line) }
            XCTAssertEqual(r.status, .pass, r.line, file: file, line: line)
        }
    }

    /// Extra cases (for example other sizes made with the same generator) from the folder named by
    /// `DENSEKIT_EXTRA_OPS`; skipped when it is unset. Every case of a target handled here must pass.
    func testExtraCasesFromEnvironment() throws {
        guard let folder = ProcessInfo.processInfo.environment["DENSEKIT_EXTRA_OPS"] else {
            throw XCTSkip("DENSEKIT_EXTRA_OPS not set")
        }
        let verbose = ProcessInfo.processInfo.environment["DENSEKIT_PARITY_VERBOSE"] != nil
        for r in try ParityRunner.run(folder: folder) where r.status != .skip {
            if verbose { print(r.line) }
            XCTAssertEqual(r.status, .pass, r.line)
        }
    }

    func testBatchNorm() throws { try check("batch_norm") }
    func testLayerNorm() throws { try check("layer_norm") }
    func testLayerNorm2d() throws { try check("layer_norm2d") }
    func testGroupNorm() throws { try check("group_norm") }
    func testRelu() throws { try check("relu") }
    func testRelu6() throws { try check("relu6") }
    func testGelu() throws { try check("gelu") }
    func testSilu() throws { try check("silu") }
    func testSigmoid() throws { try check("sigmoid") }
    func testHardSigmoid() throws { try check("hardsigmoid") }
    func testHardSwish() throws { try check("hardswish") }
    func testPRelu() throws { try check("prelu") }
    func testLeakyRelu() throws { try check("leaky_relu") }
    func testMaxPool2d() throws { try check("max_pool2d") }
    func testAvgPool2d() throws { try check("avg_pool2d") }
    func testAdaptiveAvgPool2d() throws { try check("adaptive_avg_pool2d") }
    func testInterpolate() throws { try check("interpolate") }
    func testSoftmax() throws { try check("softmax") }
    func testLogSoftmax() throws { try check("log_softmax") }
    func testTopK() throws { try check("top_k") }
    func testGather() throws { try check("gather") }
    func testConcat() throws { try check("concat") }
    func testPad() throws { try check("pad") }
    func testPixelShuffle() throws { try check("pixel_shuffle") }
    func testPixelUnshuffle() throws { try check("pixel_unshuffle") }
    func testL2Normalize() throws { try check("l2_normalize") }
    func testArgmax() throws { try check("argmax") }
}
