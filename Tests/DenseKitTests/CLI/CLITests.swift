import Foundation
import XCTest

/// Runs the built `densekit` executable as a user would: exit codes, one-line errors,
/// JSON output. The executable sits beside the test bundle (`swift build --build-tests`
/// builds every product); the tests skip when it is absent.
final class CLITests: XCTestCase {
    static var repoRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }
    static var shared: URL { repoRoot.deletingLastPathComponent().appendingPathComponent("shared") }

    func executable() throws -> URL {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("densekit")
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDir), !isDir.boolValue { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        throw XCTSkip("densekit executable not found beside the test bundle")
    }

    struct Result { let status: Int32; let stdout: String; let stderr: String }

    func run(_ args: [String]) throws -> Result {
        let p = Process()
        p.executableURL = try executable()
        p.arguments = args
        p.currentDirectoryURL = Self.repoRoot
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    func requireShared() throws {
        guard FileManager.default.fileExists(atPath: Self.shared.path) else { throw XCTSkip("../shared not present") }
    }

    func testVersionPrintsBLASLine() throws {
        let r = try run(["--version"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.contains("densekit "), r.stdout)
        XCTAssertTrue(r.stdout.split(separator: "\n").contains { $0.hasPrefix("blas: OpenBLAS ") && $0.contains(" core ") && $0.contains(" threads ") }, r.stdout)
    }

    func testInspectJSONHasRequiredKeys() throws {
        let r = try run(["inspect", "Samples/chelsea.png", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        for key in ["format", "stored_width", "stored_height", "orientation", "width", "height", "mean_rgb"] {
            XCTAssertNotNil(obj?[key], "missing \(key) in \(r.stdout)")
        }
    }

    func testEveryCorruptFileGivesOneLineAndExitCodeOne() throws {
        try requireShared()
        let dir = Self.shared.appendingPathComponent("data/corrupt")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !$0.hasSuffix(".md") && !$0.hasSuffix(".json") }
        XCTAssertFalse(files.isEmpty)
        for f in files.sorted() {
            let path = dir.appendingPathComponent(f).path
            let command = f.hasSuffix(".safetensors") ? "info" : "inspect"
            let r = try run([command, path])
            XCTAssertEqual(r.status, 1, "\(f): exit \(r.status)")
            let lines = r.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(f): stderr was \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(f), "\(f): error does not name the file: \(r.stderr)")
            XCTAssertTrue(r.stdout.isEmpty, "\(f): printed \(r.stdout)")
        }
    }

    func testMissingFilesAndFoldersAreCleanErrors() throws {
        for args in [["inspect", "/nonexistent/photo.jpg"], ["info", "/nonexistent/model.safetensors"],
                     ["parity", "/nonexistent/golden"], ["profile", "/nonexistent/model.safetensors"],
                     ["inspect", "README.md"], ["info", "README.md"]] {
            let r = try run(args)
            XCTAssertEqual(r.status, 1, "\(args): exit \(r.status)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(args): \(r.stderr)")
        }
    }

    func testErrorNamingAFileWithANewlineStaysOneLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("densekit-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad\nname\u{1b}[2J.png")
        try Data("not an image".utf8).write(to: bad)
        let r = try run(["inspect", bad.path])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertFalse(r.stderr.contains("\u{1b}"), r.stderr)
    }

    func testUsageErrorIsNonZero() throws {
        let r = try run(["inspect"])
        XCTAssertNotEqual(r.status, 0)
        let r2 = try run(["no-such-command"])
        XCTAssertNotEqual(r2.status, 0)
    }

    func testAbsurdSizesAndThreadsAreUsageErrorsNotCrashes() throws {
        try requireShared()
        let golden = Self.shared.appendingPathComponent("golden/vovnet").path
        for args in [["parity", golden, "--threads", "2147483648"], ["parity", golden, "--threads", "0"],
                     ["profile", "README.md", "--size", "100000x100000"], ["profile", "README.md", "--size", "9223372036854775807x2"],
                     ["profile", "README.md", "--size", "64x"], ["bench", "model", "README.md", "--repeats", "0"]] {
            let r = try run(args)
            XCTAssertTrue((1...127).contains(r.status), "\(args): exit \(r.status) \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("Fatal error"), "\(args): \(r.stderr)")
        }
    }

    func testParityWithNoMatchingCaseFails() throws {
        try requireShared()
        let r = try run(["parity", Self.shared.appendingPathComponent("golden/ops").path, "--filter", "no-such-case-zzz"])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
    }

    func testParityOnOpsFolderPasses() throws {
        try requireShared()
        let r = try run(["parity", Self.shared.appendingPathComponent("golden/ops").path, "--filter", "conv2d_k3"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertTrue(last.hasSuffix("0 failed, 0 skipped"), last)
        XCTAssertTrue(r.stdout.contains("PASS conv2d_k3_p1 max_abs="), r.stdout)
    }
}
