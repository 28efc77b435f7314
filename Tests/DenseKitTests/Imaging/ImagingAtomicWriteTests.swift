import DenseKit
import Foundation
import XCTest

/// PNGEncoder.write: atomic, refuses to overwrite unless told, leaves no temporary file.
final class ImagingAtomicWriteTests: XCTestCase {
    private func listing(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    }

    func testWriteRefuseAndOverwrite() throws {
        let dir = try ImagingTestData.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("out.png").path
        let a = try PNGEncoder.encodeGray8(width: 2, height: 2, pixels: [0, 1, 2, 3])
        let b = try PNGEncoder.encodeGray8(width: 2, height: 2, pixels: [9, 9, 9, 9])

        try PNGEncoder.write(a, to: target, overwrite: false)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: target)), a)
        XCTAssertEqual(try listing(dir), ["out.png"])

        XCTAssertThrowsError(try PNGEncoder.write(b, to: target, overwrite: false)) {
            guard case ImageError.outputExists(let p) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(p, target)
            XCTAssertTrue("\($0)".contains(target))
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: target)), a, "refused write changed the file")
        XCTAssertEqual(try listing(dir), ["out.png"], "temporary file left behind")

        try PNGEncoder.write(b, to: target, overwrite: true)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: target)), b)
        XCTAssertEqual(try listing(dir), ["out.png"])
        let mode = try FileManager.default.attributesOfItem(atPath: target)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o644)

        // empty data is a valid (empty) file
        try PNGEncoder.write(Data(), to: dir.appendingPathComponent("empty.bin").path, overwrite: false)
        XCTAssertEqual(try listing(dir), ["empty.bin", "out.png"])
    }

    func testUnwritableTargets() throws {
        let dir = try ImagingTestData.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = try PNGEncoder.encodeGray8(width: 1, height: 1, pixels: [7])

        let missing = dir.appendingPathComponent("no-such-folder/out.png").path
        XCTAssertThrowsError(try PNGEncoder.write(data, to: missing, overwrite: true)) {
            guard case ImageError.unwritableOutput(let p, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(p, missing)
            XCTAssertFalse("\($0)".contains("\n"))
        }
        let sub = dir.appendingPathComponent("sub")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: false)
        XCTAssertThrowsError(try PNGEncoder.write(data, to: sub.path, overwrite: true)) {
            guard case ImageError.unwritableOutput = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try PNGEncoder.write(data, to: "", overwrite: true))
        XCTAssertEqual(try listing(dir), ["sub"])
        XCTAssertEqual(try listing(sub), [])

        // A folder without write permission (not meaningful as root, who may write anyway).
        if geteuid() != 0 {
            try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: sub.path)
            defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: sub.path) }
            XCTAssertThrowsError(try PNGEncoder.write(data, to: sub.appendingPathComponent("x.png").path,
                                                      overwrite: true)) {
                guard case ImageError.unwritableOutput = $0 else { return XCTFail("\($0)") }
            }
            XCTAssertEqual(try listing(sub), [])
        }
    }
}
