import Foundation
import XCTest
@testable import DenseKit

/// Every safetensors file under shared/golden opens and every tensor reads.
final class WeightsGoldenSmokeTests: XCTestCase {
    func testEveryGoldenFileReads() throws {
        let shared = try WeightsTestSupport.requireShared()
        let golden = shared.appendingPathComponent("golden")
        guard let walker = FileManager.default.enumerator(at: golden, includingPropertiesForKeys: nil) else {
            throw XCTSkip("no shared/golden folder")
        }
        var files = 0, tensors = 0
        for case let url as URL in walker where url.pathExtension == "safetensors" {
            files += 1
            do {
                let f = try SafeTensorsFile(path: url.path)
                for name in f.tensorNames {
                    guard let info = f.info(name) else { XCTFail("\(url.path): \(name) has no info"); continue }
                    switch info.dtype {
                    case .f32, .f16, .bf16:
                        let t = try f.floatTensor(name, expectedShape: info.shape)
                        XCTAssertEqual(t.count, info.elementCount)
                    case .i64, .i32:
                        let t = try f.indexTensor(name)
                        XCTAssertEqual(t.values.count, info.elementCount)
                    default:
                        XCTAssertThrowsError(try f.floatTensor(name))
                    }
                    tensors += 1
                }
            } catch {
                XCTFail("\(error)")
            }
        }
        if files == 0 { throw XCTSkip("no .safetensors files under shared/golden") }
        print("golden smoke: \(files) files, \(tensors) tensors")
    }
}
