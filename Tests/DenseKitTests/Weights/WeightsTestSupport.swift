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
