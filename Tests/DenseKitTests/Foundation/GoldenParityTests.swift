import XCTest
@testable import DenseKit

/// The parity runner over the whole `../shared/golden` tree: no case may fail, and a case
/// may be skipped only when its family has no DenseKit implementation registered yet.
final class GoldenParityTests: XCTestCase {
    static var golden: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("shared/golden")
    }

    func testEveryGoldenCasePassesOrBelongsToAnUnbuiltFamily() throws {
        guard FileManager.default.fileExists(atPath: Self.golden.path) else { throw XCTSkip("../shared/golden not present") }
        let implementedFamilies = Set(ParityRegistry.handlers.keys.compactMap { $0.split(separator: "/").first.map(String.init) })
        let results = try ParityRunner.run(folder: Self.golden.path)
        XCTAssertGreaterThan(results.count, 100)
        for r in results {
            let family = String(r.name.split(separator: "/").first ?? "")
            switch r.status {
            case .pass: break
            case .fail: XCTFail(r.line)
            case .skip: XCTAssertFalse(implementedFamilies.contains(family), "skipped in an implemented family: \(r.line)")
            }
        }
        // Families the runtime must always cover.
        for family in ["ops", "vovnet"] { XCTAssertTrue(implementedFamilies.contains(family), family) }
    }

    func testOutputsDoNotDependOnThreadCount() throws {
        guard FileManager.default.fileExists(atPath: Self.golden.path) else { throw XCTSkip("../shared/golden not present") }
        let saved = Threading.threads
        defer { Threading.threads = saved }
        let cases = try ParityRunner.findCases(in: Self.golden.appendingPathComponent("vovnet").path)
            + ParityRunner.findCases(in: Self.golden.appendingPathComponent("ops").path).filter { $0.contains("conv2d_dw") || $0.contains("interpolate") }
        for path in cases {
            let gc = try GoldenCase(path: path)
            guard let handler = ParityRegistry.handler(family: gc.family, target: gc.target) else { continue }
            Threading.threads = 1
            let one = try handler(gc)
            Threading.threads = 2
            let two = try handler(gc)
            for (name, v1) in one {
                guard case .float(let a) = v1, case .float(let b)? = two[name] else { continue }
                XCTAssertEqual(a.scalars, b.scalars, "\(gc.name).\(name) differs between 1 and 2 threads")
            }
        }
    }
}
