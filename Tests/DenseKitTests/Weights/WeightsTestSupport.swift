import Foundation
import XCTest

/// Locates `../shared` next to the repository root (the parent of the checkout).
enum WeightsTestSupport {
    static func sharedFolder(filePath: String = #filePath) -> URL? {
        // <root>/Tests/DenseKitTests/Weights/<file> -> <root>
        let root = URL(fileURLWithPath: filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let shared = root.deletingLastPathComponent().appendingPathComponent("shared")
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: shared.path, isDirectory: &isDir), isDir.boolValue else { return nil }
        return shared
    }

    static func requireShared() throws -> URL {
        guard let s = sharedFolder() else { throw XCTSkip("shared folder not found next to the repository") }
        return s
    }

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("densekit-weights-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

/// Builds raw safetensors bytes from a header text and a data section.
/// `headerPadding` appends that many spaces; `lengthOverride` replaces the length field.
func weightsTestFile(header: String, data: [UInt8] = [], headerPadding: Int = 0, lengthOverride: UInt64? = nil) -> Data {
    var h = Array(header.utf8)
    h.append(contentsOf: [UInt8](repeating: 0x20, count: headerPadding))
    var out = Data()
    var n = (lengthOverride ?? UInt64(h.count)).littleEndian
    withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
    out.append(contentsOf: h)
    out.append(contentsOf: data)
    return out
}

func weightsLEBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    var out: [UInt8] = []
    for v in values {
        var le = v.littleEndian
        withUnsafeBytes(of: &le) { out.append(contentsOf: $0) }
    }
    return out
}

func weightsFloatBytes(_ values: [Float]) -> [UInt8] { weightsLEBytes(values.map(\.bitPattern)) }
