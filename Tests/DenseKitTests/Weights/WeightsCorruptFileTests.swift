import Foundation
import XCTest
@testable import DenseKit

final class WeightsCorruptFileTests: XCTestCase {
    private struct Manifest: Decodable {
        struct Entry: Decodable { let file: String; let kind: String?; let must_fail: Bool }
        let files: [Entry]
    }

    /// Every `.safetensors` file of corrupt/manifest.json must throw a WeightsError.
    func testEveryCorruptFileIsRefused() throws {
        let shared = try WeightsTestSupport.requireShared()
        let folder = shared.appendingPathComponent("data/corrupt")
        let manifestURL = folder.appendingPathComponent("manifest.json")
        guard FileManager.default.fileExists(atPath: manifestURL.path) else { throw XCTSkip("no corrupt/manifest.json") }
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: manifestURL))
        let cases = manifest.files.filter { $0.file.hasSuffix(".safetensors") }
        XCTAssertGreaterThanOrEqual(cases.count, 12)
        for entry in cases {
            XCTAssertTrue(entry.must_fail, entry.file)
            let path = folder.appendingPathComponent(entry.file).path
            do {
                let f = try SafeTensorsFile(path: path)
                XCTFail("\(entry.file) opened with tensors \(f.tensorNames)")
            } catch let e as WeightsError {
                XCTAssertFalse(e.description.contains("\n"), e.description)
                XCTAssertTrue(e.description.contains(entry.file), e.description)
            } catch {
                XCTFail("\(entry.file): not a WeightsError: \(error)")
            }
            // The same bytes through init(data:) must fail the same way.
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try SafeTensorsFile(data: data, name: entry.file)) { XCTAssertTrue($0 is WeightsError) }
        }
    }

    func testValidControlLoads() throws {
        let shared = try WeightsTestSupport.requireShared()
        let path = shared.appendingPathComponent("data/corrupt-controls/st_valid_control.safetensors").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("no st_valid_control.safetensors") }
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.tensorNames, ["a", "b"])
        XCTAssertEqual(f.metadata, ["note": "valid control"])
        let a = try f.floatTensor("a", expectedShape: [2, 2])
        XCTAssertEqual(a.shape, [2, 2])
        XCTAssertEqual(a.scalars, [1, 2, 3, 4])
        XCTAssertEqual(try f.indexTensor("b"), IndexTensor(shape: [1], values: [7]))
        XCTAssertEqual(f.info("a")?.dtype, .f32)
        XCTAssertEqual(f.info("b")?.dtype, .i64)
        XCTAssertTrue(f.contains("a"))
        XCTAssertFalse(f.contains("c"))
        XCTAssertThrowsError(try f.floatTensor("b"))
        XCTAssertThrowsError(try f.indexTensor("a"))
        XCTAssertThrowsError(try f.floatTensor("c"))
        XCTAssertThrowsError(try f.floatTensor("a", expectedShape: [4])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("st_valid_control.safetensors") && text.contains("\"a\"")
                          && text.contains("[4]") && text.contains("[2, 2]"), text)
        }
        // Same through the in-memory initialiser.
        let g = try SafeTensorsFile(data: Data(contentsOf: URL(fileURLWithPath: path)), name: "control")
        XCTAssertEqual(try g.floatTensor("a").scalars, [1, 2, 3, 4])
    }
}
