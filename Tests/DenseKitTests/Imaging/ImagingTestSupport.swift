import Foundation
import XCTest

/// Locates `../shared/data` next to the repository root and reads its manifests.
enum ImagingTestData {
    /// `<root>/../shared/data`, where `<root>` is found from this file's path
    /// (`<root>/Tests/DenseKitTests/Imaging/<file>`); `nil` if absent.
    static func dataFolder(filePath: String = #filePath) -> URL? {
        let root = URL(fileURLWithPath: filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let data = root.deletingLastPathComponent().appendingPathComponent("shared").appendingPathComponent("data")
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: data.path, isDirectory: &isDir), isDir.boolValue else {
            return nil
        }
        return data
    }

    /// The data folder, or an XCTSkip when the shared folder is not there.
    static func requireData() throws -> URL {
        guard let d = dataFolder() else { throw XCTSkip("../shared/data not found next to the repository") }
        return d
    }

    /// One entry of `photos/manifest.json`.
    struct PhotoEntry: Decodable {
        let file: String
        let format: String?
        let stored_width: Int?
        let stored_height: Int?
        let orientation: Int?
        let width: Int?
        let height: Int?
        let mean_rgb: [Double]?
        let mean_rgb_top_left: [Double]?
        let tolerance: Double?
        let must_fail: Bool?
    }

    struct PhotoManifest: Decodable { let files: [PhotoEntry] }

    /// One entry of `corrupt/manifest.json`.
    struct CorruptEntry: Decodable {
        let file: String
        let kind: String?
        let must_fail: Bool?
    }

    struct CorruptManifest: Decodable { let files: [CorruptEntry] }

    static func load<T: Decodable>(_ type: T.Type, _ url: URL) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
    }

    /// A fresh empty temporary folder.
    static func temporaryFolder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("densekit-imaging-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Largest absolute per-channel difference.
    static func maxDiff(_ a: [Double], _ b: [Double]) -> Double {
        guard a.count == b.count else { return .infinity }
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }
}
