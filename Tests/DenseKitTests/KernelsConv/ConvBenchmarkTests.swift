import Foundation
import XCTest
@testable import DenseKit

final class ConvBenchmarkTests: XCTestCase {
    /// A quick structural check on one small layer (always runs).
    func testBenchmarkRowOnSmallLayer() {
        let layer = ConvBenchmark.Layer(name: "3x3 8->8 16x16",
                                        parameters: Conv2dParameters(inChannels: 8, outChannels: 8, kernelH: 3, kernelW: 3, padH: 1, padW: 1),
                                        height: 16, width: 16)
        let rows = ConvBenchmark.run(layers: [layer], repeats: 2)
        XCTAssertEqual(rows.count, 1)
        XCTAssertEqual(rows.first?.m, 8)
        XCTAssertEqual(rows.first?.n, 256)
        XCTAssertEqual(rows.first?.k, 72)
        XCTAssertGreaterThan(rows.first?.convGflops ?? 0, 0)
        XCTAssertFalse(rows.first?.line.isEmpty ?? true)
    }

    /// The full benchmark; runs only with DENSEKIT_BENCH=1 (it takes several seconds).
    func testPrintConvBenchmark() throws {
        guard ProcessInfo.processInfo.environment["DENSEKIT_BENCH"] == "1" else { throw XCTSkip("set DENSEKIT_BENCH=1 to run") }
        print(BLAS.summary())
        let env = ProcessInfo.processInfo.environment
        let repeats = Int(env["DENSEKIT_BENCH_REPEATS"] ?? "") ?? 10
        if let t = Int(env["DENSEKIT_IM2COL_TARGET"] ?? "") { Conv2dOperator.im2colTarget = t }
        if let t = Int(env["DENSEKIT_ROWSHIFT_TARGET"] ?? "") { Conv2dOperator.rowShiftTarget = t }
        if let t = Int(env["DENSEKIT_MIN_TILE_COLUMNS"] ?? "") { Conv2dOperator.minTileColumns = t }
        var layers = ConvBenchmark.defaultLayers
        if let only = env["DENSEKIT_BENCH_ONLY"] {
            let idx = Set(only.split(separator: ",").compactMap { Int($0) })
            layers = layers.enumerated().filter { idx.contains($0.offset) }.map { $0.element }
        }
        for r in ConvBenchmark.run(layers: layers, repeats: repeats) { print(r.line) }
    }
}

extension ConvBenchmarkTests {
    /// Times one benchmark layer's forward by process CPU time (robust on a busy machine when
    /// run with DENSEKIT_BENCH_THREADS=1); runs only with DENSEKIT_BENCH_LAYER=<index into defaultLayers>.
    func testProfileOneLayer() throws {
        guard let s = ProcessInfo.processInfo.environment["DENSEKIT_BENCH_LAYER"], let i = Int(s) else {
            throw XCTSkip("set DENSEKIT_BENCH_LAYER to run")
        }
        let layers = ConvBenchmark.defaultLayers
        guard i >= 0 && i < layers.count else { throw XCTSkip("no layer \(i)") }
        if let t = ProcessInfo.processInfo.environment["DENSEKIT_BENCH_THREADS"], let n = Int(t) { Threading.threads = n }
        let repeats = Int(ProcessInfo.processInfo.environment["DENSEKIT_BENCH_REPEATS"] ?? "") ?? 20
        let layer = layers[i]
        let p = layer.parameters
        let op = try Conv2dOperator(p, weight: Tensor(zeros: [p.outChannels, p.inChannels / p.groups, p.kernelH, p.kernelW]),
                                    bias: Tensor(zeros: [p.outChannels]))
        let x = Tensor(shape: [1, p.inChannels, layer.height, layer.width]) { Float($0 % 17) * 0.1 }
        var y = op(x)
        let ws = UnsafeMutablePointer<Float>.allocate(capacity: max(1, op.workspaceCount(batch: 1, height: layer.height, width: layer.width)))
        defer { ws.deallocate() }
        func run() {
            x.withUnsafeBufferPointer { xb in
                y.withUnsafeMutableBufferPointer { yb in
                    op.forward(input: xb.baseAddress!, batch: 1, height: layer.height, width: layer.width, output: yb.baseAddress!, workspace: ws)
                }
            }
        }
        func cpu() -> Double {
            var ts = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
            return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
        }
        var best = Double.infinity
        for _ in 0..<repeats {
            let a = cpu()
            run()
            best = min(best, cpu() - a)
        }
        let gflops = op.flops(batch: 1, height: layer.height, width: layer.width) / best / 1e9
        print(String(format: "%@: best CPU time %.3f ms, %.1f GFLOP/s per CPU-second", layer.name, best * 1000, gflops))
    }
}
